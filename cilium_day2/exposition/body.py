"""An HTTP response body read within bounds, for the check and `doctor` alike.

Two limits hold for the whole response, whatever the server does (see docs/limits.md):

* a deadline: each read waits at most until the deadline, so a server that drips one byte a
  second cannot keep a scrape alive past its timeout (a per-read timeout alone would wait forever);
* a size: at most `MAX_BODY_BYTES` of decompressed body. gzip/deflate is inflated here, in
  bounded steps, so that a small compressed body cannot expand into gigabytes in one call.

Text comes out as UTF-8 chunks (the exposition formats are UTF-8 by definition; invalid bytes
become U+FFFD). Failures raise `BodyError` with a user-facing message, or the HTTP library's own
exception for `describe_failure` to word.
"""

import codecs
import time
import zlib

MAX_BODY_BYTES = 256 * 1024 * 1024
READ_SIZE = 64 * 1024
# Inflate in steps of this many output bytes, so one compressed read never becomes a huge string.
INFLATE_STEP = 1024 * 1024


class BodyError(Exception):
    """The body broke a limit or could not be decoded. The message is user-facing."""


def deadline_after(seconds):
    return time.monotonic() + seconds


def _socket(raw):
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    return getattr(connection, "sock", None)


def _raw_reads(raw, deadline, timeout_text):
    """Compressed (as sent) byte chunks, each read waiting no longer than the deadline."""
    sock = _socket(raw)
    read1 = getattr(raw, "read1", None)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BodyError(f"timed out: no complete response within {timeout_text} (the whole response must arrive in time)")
        if sock is not None:
            try:
                sock.settimeout(remaining)
            except OSError:
                pass
        try:
            # read1: one network read, so a slow drip returns control (and a deadline check) often.
            data = read1(READ_SIZE, decode_content=False) if read1 else raw.read(READ_SIZE, decode_content=False)
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise BodyError(f"timed out: no complete response within {timeout_text} (the whole response must arrive in time)") from None
            raise exc
        if not data:
            return
        yield data


def _inflated(chunks, encoding):
    """Decompressed chunks, each at most INFLATE_STEP bytes."""
    if encoding in ("", "identity"):
        yield from chunks
        return
    if encoding in ("gzip", "x-gzip", "deflate"):
        # 32 + MAX_WBITS: accept gzip and zlib headers alike (servers label deflate loosely).
        inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)
    else:
        raise BodyError(f"the response uses Content-Encoding {encoding!r}; serve it plain or gzip")
    try:
        for chunk in chunks:
            data = inflater.decompress(chunk, INFLATE_STEP)
            while True:
                if data:
                    yield data
                if not inflater.unconsumed_tail:
                    break
                data = inflater.decompress(inflater.unconsumed_tail, INFLATE_STEP)
        tail = inflater.flush()
    except zlib.error:
        raise BodyError(f"the response is not valid {encoding} data") from None
    if not inflater.eof:
        raise BodyError(f"the {encoding} response was cut off before its end (truncated body)")
    if tail:
        yield tail


def iter_text(response, deadline, timeout_text, max_bytes=MAX_BODY_BYTES):
    """UTF-8 text chunks of a streamed `requests` response, within the deadline and size."""
    raw = response.raw
    encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    total = 0
    for data in _inflated(_raw_reads(raw, deadline, timeout_text), encoding):
        total += len(data)
        if total > max_bytes:
            raise BodyError(f"the response is larger than {max_bytes // (1024 * 1024)} MiB (the limit; see docs/limits.md)")
        text = decoder.decode(data)
        if text:
            yield text
    text = decoder.decode(b"", True)
    if text:
        yield text


def describe_failure(exc, tls_hint="check the CA, or `tls_verify`"):
    """One line naming the cause of a failed fetch: no URL (it may carry credentials), no frames.
    `tls_hint` names the caller's own options for a certificate that does not verify."""
    if isinstance(exc, BodyError):
        return str(exc)
    chain = []
    seen = exc
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    names = " ".join(type(e).__name__ for e in chain)
    text = " ".join(str(e) for e in chain)
    if "ProxyError" in " ".join(type(e).__name__ for e in chain):
        return "the proxy refused or could not make the connection"
    for needle, reason in (
        ("CERTIFICATE_VERIFY_FAILED", f"TLS certificate verification failed ({tls_hint})"),
        ("WRONG_VERSION_NUMBER", "TLS handshake failed: the port does not speak TLS (try http://)"),
        ("SSLError", "TLS handshake failed"),
        ("SSL", "TLS handshake failed"),
        ("Connection refused", "connection refused: unreachable (nothing listens on this port; is Cilium serving metrics here?)"),
        ("Name or service not known", "host name does not resolve"),
        ("nodename nor servname", "host name does not resolve"),
        ("Temporary failure in name resolution", "host name does not resolve"),
        ("Connection reset", "connection reset by the server before the response was complete"),
        ("ConnectionResetError", "connection reset by the server before the response was complete"),
        ("RemoteDisconnected", "unreachable: the server closed the connection without a response"),
        ("IncompleteRead", "the response was cut off before its end (truncated body)"),
        ("InvalidChunkLength", "the response was cut off before its end (truncated body)"),
        ("ChunkedEncodingError", "the response was cut off before its end (truncated body)"),
        ("ProtocolError", "the server broke the HTTP protocol (truncated or garbled response)"),
        ("ContentDecodingError", "the response could not be decompressed"),
        ("ConnectTimeout", "timed out: no connection within the timeout (is the port reachable?)"),
        ("ReadTimeout", "timed out: no answer within the timeout"),
        ("Timeout", "timed out: no answer within the timeout"),
        ("timed out", "timed out: no answer within the timeout"),
        ("TooManyRedirects", "too many redirects (a redirect loop?); give the final URL"),
        ("LocationParseError", "the URL is not valid"),
        ("InvalidURL", "the URL is not valid"),
    ):
        if needle in names or needle in text:
            return reason
    if "ConnectionError" in names:
        return "connection failed"
    return f"request failed ({type(exc).__name__})"
