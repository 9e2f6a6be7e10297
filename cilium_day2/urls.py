"""Endpoint URLs as they may be shown: in logs, messages, tags and reports.

A metrics URL can carry credentials (`http://user:token@host:9962/metrics`) or a token in its
query string. Everything the check and `doctor` print or tag goes through `safe_url` first.
"""

from urllib.parse import urlsplit, urlunsplit


def safe_url(url):
    """The URL without credentials, query string or fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
