"""HTTP to Google over the one shared aiohttp session, with transport failures mapped in one place."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import orjson

from ..sse import SSEDecoder
from .errors import UpstreamError, from_response, garbage, timed_out, unreachable

T = TypeVar("T")


async def guarded(call: Callable[[], Awaitable[T]]) -> T:
    """Run one network step, turning aiohttp's failures into UpstreamError."""
    try:
        return await call()
    except UpstreamError:
        raise
    except aiohttp.ConnectionTimeoutError as exc:
        # No connection within PROXY_CONNECT_TIMEOUT: nothing was sent, so this is Google (or the
        # path to it) out of reach, like a refused connection: the next credential may well answer.
        raise unreachable(type(exc).__name__) from None
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise timed_out(type(exc).__name__) from None
    except aiohttp.ClientError as exc:
        raise unreachable(type(exc).__name__) from None


async def request_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    body: bytes | None = None,
    form: dict[str, str] | None = None,
    secrets: tuple[str, ...] = (),
) -> Any:
    """One JSON request; any non-2xx answer raises the classified UpstreamError."""

    async def call() -> Any:
        async with session.request(method, url, headers=headers, data=body if form is None else form) as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise from_response(resp.status, raw, secrets=secrets)
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise garbage("not JSON") from None

    return await guarded(call)


async def sse_events(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: dict[str, str],
    body: bytes,
    secrets: tuple[str, ...] = (),
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """Google's SSE events as dicts, in batches: every event that one network read completed.
    Batches let the relay write once per read instead of once per event, which is most of the
    cost of a fast stream; a slow stream still gets each event as soon as it arrives. The request
    is sent on the first `__anext__`, so a failure to connect or a non-200 answer surfaces there,
    before anything reached the client."""
    sending = session.post(url, headers=headers, data=body)
    # A stream may stay open for minutes: this frame need not keep the request body (images and all).
    del body
    resp = await guarded(lambda: sending)
    try:
        if resp.status != 200:
            raw = await guarded(resp.read)
            raise from_response(resp.status, raw, secrets=secrets)
        decoder = SSEDecoder()
        while True:
            chunk = await guarded(resp.content.readany)
            if not chunk:
                break
            for batch in _batches(decoder.feed(chunk)):
                yield batch
        for batch in _batches(decoder.flush()):
            yield batch
    finally:
        # Releasing (not closing) keeps the connection for reuse when the body was read to the
        # end; a stream abandoned midway is closed so that Google stops generating.
        if resp.content.at_eof():
            resp.release()
        else:
            resp.close()


def _batches(payloads: list[bytes]) -> Iterator[list[dict[str, Any]]]:
    """The events of one read as one batch; an error event still lets the events before it out."""
    batch: list[dict[str, Any]] = []
    try:
        for data in payloads:
            batch.append(_event(data))
    except UpstreamError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def _event(data: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise garbage("a stream event was not JSON") from None
    if not isinstance(event, dict):
        raise garbage("a stream event was not an object")
    if isinstance(event.get("error"), dict):
        # Google reports a failure inside a stream that had started as a 200.
        raise from_response(int(event["error"].get("code") or 500), data)
    return event


def timeout(connect: float, read: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)
