"""How doctor talks to secured endpoints: a CA bundle, an explicit insecure mode, a bearer token
read from a file; and failures worded with the options that exist and the proxy in use.

    --ca-file FILE            verify TLS against this CA bundle (PEM)
    --insecure                do not verify TLS certificates (say so explicitly; never implied)
    --bearer-token-file FILE  send `Authorization: Bearer <the file's content>` (a service
                              account token, e.g. /var/run/secrets/kubernetes.io/serviceaccount/token)

The token is read once, never printed, and requests drops it on a redirect to another host.
Proxies come from the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), as for every requests
client; a failure through one names the proxy (without its credentials).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from ..errors import UserError
from ..exposition import body
from ..urls import safe_url

MAX_TOKEN_BYTES = 64 * 1024
TLS_HINT = "check the CA, pass it with --ca-file, or use --insecure"


@dataclass(frozen=True)
class Transport:
    verify: Union[bool, str] = True
    token: Optional[str] = None

    def request_kwargs(self):
        headers = {"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "gzip"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {"headers": headers, "verify": self.verify}


def add_arguments(parser):
    group = parser.add_argument_group("TLS and authentication (agent, operator and Hubble endpoints)")
    group.add_argument("--ca-file", metavar="FILE", help="CA bundle (PEM) to verify https:// endpoints with")
    group.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (explicit opt-out)")
    group.add_argument("--bearer-token-file", metavar="FILE",
                       help="send the file's content as `Authorization: Bearer` (never printed)")


def from_args(args) -> Transport:
    ca_file = getattr(args, "ca_file", None)
    insecure = getattr(args, "insecure", False)
    token_file = getattr(args, "bearer_token_file", None)
    if ca_file and insecure:
        raise UserError("--ca-file and --insecure contradict each other; give one")
    verify: Union[bool, str] = True
    if ca_file:
        _readable(ca_file, "--ca-file", "a PEM CA bundle")
        verify = ca_file
    elif insecure:
        verify = False
        # Asked for explicitly: no per-request warning on stderr.
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    token = None
    if token_file:
        data = _readable(token_file, "--bearer-token-file", "a file holding the token")
        try:
            token = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise UserError(f"--bearer-token-file {token_file}: not a text file; pass the file holding the token") from None
        if not token or any(ch in token for ch in "\r\n\0"):
            raise UserError(f"--bearer-token-file {token_file}: "
                            f"{'empty' if not token else 'holds more than one line'}; pass the file holding the token alone")
    return Transport(verify, token)


def _readable(path, flag, what) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TOKEN_BYTES * 16 + 1)
    except FileNotFoundError:
        raise UserError(f"{flag} {path}: no such file; pass {what}") from None
    except IsADirectoryError:
        raise UserError(f"{flag} {path}: is a directory; pass {what}") from None
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot read ({exc.strerror or exc}); check its permissions") from None
    return data


def proxy_for(url) -> str:
    """The proxy requests would use for `url`, as shown to people (no credentials), or ""."""
    try:
        from requests.utils import get_environ_proxies

        proxies = get_environ_proxies(url)
    except Exception:  # noqa: BLE001 - a malformed proxy variable: show no proxy rather than fail here
        return ""
    scheme = url.split("://", 1)[0].lower()
    proxy = proxies.get(scheme) or proxies.get("all")
    return safe_url(proxy) if proxy else ""


def describe(exc, url) -> str:
    """One line for a failed request: the cause, the options that fix it, the proxy if one is used."""
    text = body.describe_failure(exc, tls_hint=TLS_HINT)
    proxy = proxy_for(url)
    names = " ".join(type(e).__name__ for e in _chain(exc))
    if proxy and ("ProxyError" in names or "Proxy" in str(exc)):
        return f"the proxy {proxy} (from the *_PROXY environment) failed: {text}; check it, or exclude the host with NO_PROXY"
    if proxy:
        return f"{text} (through the proxy {proxy} from the *_PROXY environment)"
    return text


def _chain(exc):
    seen = []
    while exc is not None and len(seen) < 8:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen
