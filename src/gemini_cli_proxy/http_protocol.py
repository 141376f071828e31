"""The server's side of a client connection: how long a client may take to send a request, and what a
malformed request gets.

The request head needs no code: aiohttp's `keepalive_timeout` is armed when a connection opens and again
when each request ends, is not pushed back by bytes trickling in, and closes the connection if no complete
head has arrived by then (an idle keep-alive connection is the same case: a head that has not come).
`ProxyAppRunner` sets it to the read timeout. It closes without a 408: on an idle keep-alive connection
the client could read that 408 as the answer to a request it was sending at that moment.

What aiohttp (3.14) leaves open, done here in a subclass of its connection protocol:

- The body has no time limit: a handler reading a body that comes a byte a second waits for ever. It gets
  the read timeout from when the handler starts, plus a second for each KiB that arrives (a minimum rate,
  as Kestrel has: a large upload over a slow line keeps going, a trickle does not), and then a 408. Only
  requests whose body had not all arrived with the head pay for it (one timer, re-armed only when it
  fires); a response, however long it streams, is never timed.
- A malformed request is answered 400 with aiohttp's text (which quotes the offending bytes back, secret
  headers included) and logged at ERROR with a traceback, though nothing is wrong with the server. It gets
  our JSON error and one INFO line that never repeats the client's bytes. Errors of our own code still go
  to aiohttp's handling, traceback and all.

aiohttp has no option for either, so this hooks into its internals (RequestHandler._handle_request, the
_ErrInfo it queues for a parse error, AppRunner._make_server, Server._kwargs), as of aiohttp 3.14;
tests/integration/test_http_protocol.py fails if an upgrade moves one of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    PayloadEncodingError,
)
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from .doors import door_for
from .errors import invalid_http_request, request_timeout
from .frontdoor import error_response
from .redact import scrub

log = logging.getLogger("gemini_cli_proxy.http")
# A body that arrives slower than this, after the read timeout, is cut (1 KiB/s: a trickle, not a line).
MIN_BODY_BYTES_PER_SECOND = 1024

_RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
_MAX_REASON = 100
# What to say for the parser errors whose message quotes the client's bytes (aiohttp's own messages).
_REASONS: tuple[tuple[type[HttpProcessingError], str], ...] = (
    (LineTooLong, "the request line or a header line is too long"),
    (InvalidURLError, "invalid URL"),
    (BadHttpMethod, "invalid method"),
    (BadStatusLine, "invalid request line"),
    (InvalidHeader, "invalid header"),
    (PayloadEncodingError, "invalid body encoding"),
)


def describe(exc: BaseException) -> str:
    """What was wrong with a request, in words that never repeat the client's bytes."""
    text = exc.message if isinstance(exc, HttpProcessingError) else ""
    if "\n\n" in text:
        # llhttp's errors: "<its own fixed reason>:\n\n  <the offending bytes>\n  ^". Keep the reason.
        text = text.split("\n\n", 1)[0]
    elif not text or "'" in text or '"' in text:
        # aiohttp's own messages quote the offending bytes; say what kind of error it was instead.
        text = next((words for kind, words in _REASONS if isinstance(exc, kind)), "malformed request")
    reason = " ".join(line.strip().rstrip(":") for line in text.splitlines() if line.strip())
    return scrub(reason[:_MAX_REASON]) or "malformed request"


def _host(peer: str | tuple[Any, ...] | None) -> str | None:
    return str(peer[0]) if isinstance(peer, tuple) else peer


class ProxyRequestHandler(RequestHandler):
    """aiohttp's connection protocol with a deadline on request bodies and quiet 400s; see the module."""

    __slots__ = ("_arriving", "_body_bytes", "_body_deadline", "_body_started")

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        # The body a handler is running for while it is still arriving: parser errors inside it are its.
        self._arriving: StreamReader | None = None
        self._body_bytes = 0  # bytes received while it arrives: each buys it more time
        self._body_started = 0.0
        self._body_deadline: asyncio.TimerHandle | None = None

    async def _handle_request(
        self, request: web.BaseRequest, start_time: float | None, request_handler: _RequestHandler
    ) -> tuple[web.StreamResponse, bool]:
        body = request.content
        if body.is_eof():  # no body, or all of it came with the head: most requests, nothing to time
            return await super()._handle_request(request, start_time, request_handler)
        self._arriving = body
        self._body_bytes = 0
        self._body_started = self._loop.time()
        self._body_deadline = self._loop.call_later(self.keepalive_timeout, self._body_overdue, body)
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            if self._body_deadline is not None:
                self._body_deadline.cancel()
                self._body_deadline = None
            self._arriving = None
            if body.exception() is not None:
                # The body failed (too slow, malformed, undecodable) and its rest will never be read.
                # aiohttp would linger to read it, and log the body's error as an "Unhandled exception";
                # the response is written, so close now.
                self.force_close()

    def _body_overdue(self, body: StreamReader) -> None:
        self._body_deadline = None
        if body.is_eof() or body.exception() is not None:
            return
        allowed = self.keepalive_timeout + self._body_bytes / MIN_BODY_BYTES_PER_SECOND
        left = self._body_started + allowed - self._loop.time()
        if left > 0:  # it kept coming at the minimum rate: it has earned more time
            self._body_deadline = self._loop.call_later(left, self._body_overdue, body)
            return
        # The handler's read raises this; the error middleware answers it like any ProxyError.
        body.set_exception(request_timeout(self.keepalive_timeout))

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        body = self._arriving
        if body is not None:
            self._body_bytes += len(data)
        # A parser error while a body is arriving is an error in that body (no next request can start
        # before it ends), e.g. bad chunk framing. aiohttp queues it as the next request's 400, which
        # would come only after the handler gave up waiting for a body that cannot come.
        if body is not None and self._messages and not body.is_eof() and body.exception() is None:
            failed = self._messages[-1][0]
            if isinstance(failed, _ErrInfo):
                reason = describe(failed.exc)
                log.info("malformed request body peer=%s status=400 reason=%r", _host(self.peername), reason)
                body.set_exception(invalid_http_request(reason))

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status != 400 or not isinstance(exc, HttpProcessingError):  # ours: aiohttp logs the traceback
            return super().handle_error(request, status, exc, message)
        reason = describe(exc)
        log.info("malformed request peer=%s status=400 reason=%r", request.remote, reason)
        response = error_response(invalid_http_request(reason), door_for(request))
        response.force_close()
        return response


class _Server(web.Server):
    """aiohttp's Server, making ProxyRequestHandler connections."""

    def __call__(self) -> RequestHandler:
        return ProxyRequestHandler(self, loop=self._loop, **self._kwargs)


class ProxyAppRunner(web.AppRunner):
    """web.AppRunner serving with ProxyRequestHandler, `read_timeout` seconds for a request head (from
    connecting or from the previous request's end) and again for its body."""

    def __init__(self, app: web.Application, *, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=read_timeout, **kwargs)

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # the app's startup, and its Server with every setting
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            **made._kwargs,
        )
