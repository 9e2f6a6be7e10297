from .__about__ import __version__
from .check import CiliumDay2Check

__all__ = ["__version__", "CiliumDay2Check"]
