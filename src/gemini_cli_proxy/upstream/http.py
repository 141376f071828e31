"""HTTP to Google over the one shared aiohttp session, with transport failures mapped in one place.

Google's APIs never redirect, so nothing here follows a redirect: aiohttp would re-send the
`x-goog-api-key` header to whatever host the redirect names. Every wait is bounded by the session's
read timeout (PROXY_UPSTREAM_TIMEOUT), counted in what matters rather than in socket reads, so an
upstream that trickles one byte at a time, or only SSE comments, cannot hold a request forever:
- a JSON reply must be complete within it;
- a stream must bring its headers and first event within it, and each further event within it of
  the one before;
- neither may grow past MAX_REPLY_BYTES in one reply or one event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import Any, Final, TypeVar

import aiohttp
import orjson

from ..connection import describe
from ..errors import invalid_request
from ..sse import MAX_EVENT_BYTES, EventTooLarge, SSEDecoder
from .errors import UpstreamError, from_response, garbage, timed_out, unreachable
from .replies import Parser, any_json

T = TypeVar("T")

# The largest JSON reply read into memory (a reply with several generated images is a few MB).
MAX_REPLY_BYTES: Final = 64 * 1024 * 1024
_REDIRECTS: Final = range(300, 400)
DEFAULT_PATIENCE: Final = 300.0  # for a session built without a read timeout


async def guarded(call: Callable[[], Awaitable[T]]) -> T:
    """Run one network step, turning aiohttp's failures into UpstreamError."""
    try:
        return await call()
    except UpstreamError:
        raise
    except aiohttp.ConnectionTimeoutError as exc:
        # No connection within PROXY_CONNECT_TIMEOUT: nothing was sent, so this is Google (or the
        # path to it) out of reach, like a refused connection: the next credential may well answer.
        raise unreachable(describe(exc)) from None
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise timed_out("Google sent nothing within the read timeout") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise unreachable(describe(exc)) from None


def patience(session: aiohttp.ClientSession) -> float:
    """How long Google may keep us waiting (PROXY_UPSTREAM_TIMEOUT, the session's read timeout)."""
    return session.timeout.sock_read or DEFAULT_PATIENCE


def _redirected(status: int) -> UpstreamError:
    return garbage(f"a redirect (HTTP {status}), which Google's APIs never send; not followed", status)


async def _by(when: float, call: Callable[[], Awaitable[T]], message: str) -> T:
    """`call()`, unless the loop's clock reaches `when` first: then Google took too long."""
    limit = asyncio.timeout_at(when)
    try:
        async with limit:
            return await call()
    except TimeoutError:
        if limit.expired():
            raise timed_out(message) from None
        raise  # aiohttp's own connect or read timeout, not ours (guarded() words it)


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    if resp.content_length is not None:
        if resp.content_length > MAX_REPLY_BYTES:
            raise garbage(f"an answer of {resp.content_length} bytes, over the {MAX_REPLY_BYTES} limit")
        return await resp.read()  # its length is known and within the limit: one read
    body = bytearray()
    while chunk := await resp.content.readany():
        body += chunk
        if len(body) > MAX_REPLY_BYTES:
            raise garbage(f"an answer over the {MAX_REPLY_BYTES} bytes limit")
    return bytes(body)


async def request_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    body: bytes | None = None,
    form: dict[str, str] | None = None,
    secrets: tuple[str, ...] = (),
    parse: Parser = any_json,
) -> Any:
    """One JSON request; any non-2xx answer raises the classified UpstreamError, and the reply is
    `parse`d (and checked) with the credential's secrets at hand."""

    async def call() -> Any:
        async with session.request(
            method, url, headers=headers, data=body if form is None else form, allow_redirects=False
        ) as resp:
            if resp.status in _REDIRECTS:
                raise _redirected(resp.status)
            raw = await _read_capped(resp)
            if resp.status >= 300:
                raise from_response(resp.status, raw, secrets=secrets)
            return parse(raw, secrets)

    async def bounded() -> Any:
        # The whole reply, headers to last byte: a reply trickled a byte at a time never trips
        # the socket's read timeout, which only bounds the gap between two reads.
        wait = patience(session)
        when = asyncio.get_running_loop().time() + wait
        return await _by(when, call, f"Google sent no complete answer within {wait:g} s")

    return await guarded(bounded)


async def sse_events(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: dict[str, str],
    body: bytes,
    secrets: tuple[str, ...] = (),
    parse: Parser = any_json,
    answer_within: float | None = None,
) -> AsyncGenerator[list[Any], None]:
    """Google's SSE events, `parse`d, in batches: every event that one network read completed.
    Batches let the relay write once per read instead of once per event, which is most of the
    cost of a fast stream; a slow stream still gets each event as soon as it arrives. The request
    is sent on the first `__anext__`, so a failure to connect or a non-200 answer surfaces there,
    before anything reached the client. `answer_within`: seconds for the answer's headers, when less
    than the upstream timeout."""
    wait = patience(session)
    loop = asyncio.get_running_loop()
    # When the next event is due: reads that bring bytes but no event (comments, a trickle) do
    # not buy time. Checked after each read, so it costs a clock read, not a timer per read.
    due = loop.time() + wait
    sending = session.post(url, headers=headers, data=body, allow_redirects=False)
    # A stream may stay open for minutes: this frame need not keep the request body (images and all).
    del body

    async def connect() -> aiohttp.ClientResponse:
        return await sending

    # A retry may have less time than that to get its answer started (see Gateway: the retry deadline).
    started_by = due if answer_within is None else min(due, loop.time() + answer_within)
    waited = started_by - loop.time()
    resp = await guarded(lambda: _by(started_by, connect, f"Google sent no answer within {waited:g} s"))
    try:
        if resp.status in _REDIRECTS:
            raise _redirected(resp.status)
        if resp.status != 200:
            message = f"Google sent no complete answer within {wait:g} s"
            raw = await guarded(lambda: _by(due, lambda: _read_capped(resp), message))
            raise from_response(resp.status, raw, secrets=secrets)
        decoder = SSEDecoder(MAX_EVENT_BYTES)
        while True:
            chunk = await guarded(resp.content.readany)
            if not chunk:
                break
            try:
                payloads = decoder.feed(chunk)
            except EventTooLarge as exc:
                raise garbage(str(exc)) from None
            if payloads:
                due = loop.time() + wait
            elif loop.time() > due:
                raise timed_out(f"Google sent no stream event for {wait:g} s")
            for batch in _batches(payloads, parse, secrets):
                yield batch
        for batch in _batches(decoder.flush(), parse, secrets):
            yield batch
    finally:
        # Releasing (not closing) keeps the connection for reuse when the body was read to the
        # end; a stream abandoned midway is closed so that Google stops generating.
        if resp.content.at_eof():
            resp.release()
        else:
            resp.close()


def _batches(payloads: list[bytes], parse: Parser, secrets: tuple[str, ...]) -> Iterator[list[Any]]:
    """The events of one read as one batch; an error event still lets the events before it out."""
    batch: list[Any] = []
    try:
        for data in payloads:
            batch.append(parse(data, secrets))
    except UpstreamError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def encode(request: Any) -> bytes:
    """A request body for Google. The door's validation names the field of anything that cannot
    be JSON (an integer beyond 64 bits); this is the last line, so that such a value is never a 500."""
    try:
        return orjson.dumps(request)
    except orjson.JSONEncodeError as exc:
        raise invalid_request(
            f"The request holds a value that cannot be sent to Gemini as JSON ({exc}).", code="invalid_value"
        ) from None


def timeout(connect: float, read: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)


def key_headers(key: str) -> dict[str, str]:
    # The key goes in a header, never in `?key=`, which ends up in access logs.
    return {"Content-Type": "application/json", "x-goog-api-key": key}


def bearer_headers(token: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
