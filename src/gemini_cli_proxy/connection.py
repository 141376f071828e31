"""What went wrong with an outgoing connection, in words: Google's, and image hosts' (media_fetch)."""

from __future__ import annotations

import errno
import ssl

import aiohttp


def describe(exc: BaseException, peer: str = "Google") -> str:
    """What went wrong with the connection to `peer`, in words (not aiohttp's class names)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"the name {exc.host} could not be resolved"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError) or isinstance(
        getattr(exc, "os_error", None), ssl.SSLError
    ):
        return f"the TLS handshake with {peer} failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED:
            return f"the connection to {exc.host}:{exc.port} was refused"
        return f"could not connect to {exc.host}:{exc.port} ({exc.os_error.strerror or 'no reason given'})"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "no connection could be opened in time"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{peer} closed the connection without a complete answer"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"the connection broke in the middle of {peer}'s answer"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{peer}'s HTTP answer was malformed"
    if isinstance(exc, aiohttp.InvalidURL):
        return "the upstream URL is not valid (check the *_BASE_URL settings)"
    if isinstance(exc, ConnectionResetError) or getattr(exc, "errno", None) == errno.ECONNRESET:
        return "the connection was reset"
    if isinstance(exc, OSError) and exc.strerror:
        return f"the connection failed ({exc.strerror})"
    return "the connection failed"
