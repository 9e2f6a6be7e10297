from .__about__ import __version__

try:
    from .check import CiliumDay2Check
except ImportError as exc:  # pragma: no cover - exercised in a bare venv by the packaging test
    raise ImportError(
        f"the cilium_day2 check runs inside the Datadog Agent, or next to `datadog-checks-base[deps]` "
        f"(pip install 'datadog-checks-base[deps]'); missing: {exc.name or exc}"
    ) from None

__all__ = ["__version__", "CiliumDay2Check"]
