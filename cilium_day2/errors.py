"""Errors meant for people: one line that names the input and the fix, never a traceback."""


class UserError(Exception):
    """A problem with what the user gave us (a file, a flag, an endpoint).

    The CLI prints the message on one line to stderr and exits with `exit_code`.
    """

    exit_code = 2

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class CatalogError(UserError):
    """The packaged catalog (or an override of it) is invalid."""
