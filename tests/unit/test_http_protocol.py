"""describe(): what a malformed request had wrong, never the client's bytes, whichever parser raised it."""

from __future__ import annotations

import pytest
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)

from gemini_cli_proxy.http_protocol import describe

SECRET = "AIzaSyD-0123456789abcdefghijklmnopqrstu"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # llhttp (the C parser): its fixed reason, then the offending bytes, which are dropped.
        (
            BadHttpMessage(f"Invalid header value char:\n\n  b'Authorization: Bearer {SECRET}'\n  ^"),
            "Invalid header value char",
        ),
        (
            BadStatusLine(error="Bad status line:\n  Invalid HTTP version:\n\n  b'GET / HTTP/9.9'\n  ^"),
            "Bad status line Invalid HTTP version",
        ),
        (
            BadHttpMethod(error="Received HTTPS traffic on an HTTP port"),
            "Received HTTPS traffic on an HTTP port",
        ),
        # aiohttp's own messages quote the bytes: the kind of error is said instead.
        (LineTooLong(f"X-Key: {SECRET}".encode(), 8190), "the request line or a header line is too long"),
        (InvalidHeader(f"Authorization: Bearer {SECRET}".encode()), "invalid header"),
        (BadHttpMethod(f"G{SECRET}"), "invalid method"),
        (BadStatusLine(f"GET /{SECRET}"), "invalid request line"),
        (InvalidURLError(f"/{SECRET}?'"), "invalid URL"),
        (BadHttpMessage(f"Duplicate '{SECRET}' header found."), "malformed request"),
        (
            TransferEncodingError("Not enough data to satisfy transfer length header."),
            "Not enough data to satisfy transfer length header.",
        ),
        (BadHttpMessage("Too many headers received"), "Too many headers received"),
        (HttpProcessingError(code=400), "malformed request"),
        (ValueError(SECRET), "malformed request"),
    ],
)
def test_describe_names_the_error_without_the_clients_bytes(error: BaseException, expected: str) -> None:
    described = describe(error)
    assert described == expected
    assert SECRET not in described and "AIza" not in described


def test_describe_is_short() -> None:
    assert len(describe(BadHttpMessage("x" * 10_000 + ":\n\n  b'...'"))) <= 100
