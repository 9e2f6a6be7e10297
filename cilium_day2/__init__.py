"""The Day-2 signal catalog, its renderers and the command-line tools.

Imports no Datadog library: the Agent check is the separate package `datadog_checks.cilium_day2`.
"""

from .__about__ import __version__

__all__ = ["__version__"]
