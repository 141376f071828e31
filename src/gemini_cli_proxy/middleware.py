"""Request-wide concerns: proxy-key auth, errors in the front door's shape, one log line per request."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import time
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestPayloadError

from . import errors
from .doors import door_for
from .drain import DRAIN
from .errors import ProxyError
from .frontdoor import FRONT_DOOR, LOG_FIELDS, OPEN_STREAM, end_stream, error_response
from .logconfig import batched_handler
from .metrics import METRICS

log = logging.getLogger("gemini_cli_proxy.access")

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The routes a caller may use without a key: a monitor's /health, and the service page at / that
# tells a client a key is needed (it holds nothing secret). The status page checks its own (a key or
# the cookie set from one: routes/status.py).
OPEN_PATHS = frozenset({"/health", "/", "/status", "/status.json"})


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> ProxyError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return errors.request_too_large(request.app._client_max_size)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return errors.method_not_allowed(request.method, request.path)
    if isinstance(exc, web.HTTPNotFound):
        return errors.not_found_route(request.path)
    return ProxyError(exc.status, exc.reason, code=None)


def _access_line(request: web.Request, status: int, started: float, request_id: str) -> None:
    fields = request.get(LOG_FIELDS) or {}
    extra = "".join(f" {key}={value}" for key, value in fields.items())
    elapsed = (time.perf_counter() - started) * 1000
    message = (
        f"request_id={request_id} method={request.method} path={request.path} status={status} "
        f"ms={elapsed:.1f}{extra}"
    )
    sink = batched_handler()
    if sink is not None:
        sink.write_line(log.name, message)
    else:
        log.info("%s", message)


async def _answer(request: web.Request, error: ProxyError, request_id: str) -> web.StreamResponse:
    """`error` in the shape of the request's front door: as a response, or as the ending of the
    stream the handler had begun (never a second response on the same connection)."""
    stream: web.StreamResponse | None = request.get(OPEN_STREAM)
    if stream is None:
        return error_response(error, request[FRONT_DOOR], request_id)
    await end_stream(request, error)
    return stream


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    offered = request.headers.get("x-request-id", "")
    # A caller's id is kept for tracing, but only if it cannot break the log line's format.
    # 32 random hex digits, like uuid4().hex at a fifth of the cost.
    request_id = offered if _SAFE_ID.fullmatch(offered) else os.urandom(16).hex()
    request[LOG_FIELDS] = {}
    request[FRONT_DOOR] = door_for(request)
    status = 500
    drain = request.app[DRAIN]
    task = asyncio.current_task()
    if task is not None:
        drain.track(task)
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["x-request-id"] = request_id
        return response
    except ProxyError as exc:
        if exc.status >= 500 or exc.status == 429:
            request[LOG_FIELDS]["error"] = repr(exc.message)
        response = await _answer(request, exc, request_id)
        status = response.status  # a begun stream's 200: what the client got
        return response
    except web.HTTPException as exc:
        response = await _answer(request, _from_http_exception(exc, request), request_id)
        status = response.status
        return response
    except RequestPayloadError:
        # The body itself is broken (e.g. its gzip cannot be decoded): the client's, not a bug of ours.
        response = await _answer(
            request, errors.invalid_http_request("the body could not be decoded"), request_id
        )
        status = response.status
        return response
    except asyncio.CancelledError:
        if drain.ended():
            response = await _answer(request, errors.shutting_down(), request_id)
            status = response.status
            return response
        status = 499  # the client went away first (nginx's code for it)
        raise
    except Exception:
        log.exception("request_id=%s unhandled error", request_id)
        response = await _answer(request, errors.internal_error(), request_id)
        status = response.status
        return response
    finally:
        if task is not None:
            drain.untrack(task)
        _count(request, status)
        if log.isEnabledFor(logging.INFO):
            _access_line(request, status, started, request_id)


def _count(request: web.Request, status: int) -> None:
    """The request in the metrics: its door, model and status; a stream it held open, closed."""
    metrics = request.app.get(METRICS)
    if metrics is None:  # an app built without create_app (some tests')
        return
    door = request[FRONT_DOOR].name
    fields = request[LOG_FIELDS]
    if OPEN_STREAM in request:
        metrics.stream_closed(door)
    metrics.request(
        door,
        fields.get("model", ""),
        status,
        disconnected=status == 499 or fields.get("client") == "disconnected",
    )


def make_auth_middleware(keys: Iterable[str], *, also_open: Iterable[str] = ()) -> Middleware:
    """Proxy-key check (`Authorization: Bearer`, or `x-api-key`), constant time per key; a no-op when
    no key is configured. `also_open`: paths the operator opened besides OPEN_PATHS (/metrics)."""
    encoded = tuple(key.encode() for key in keys)
    open_paths = OPEN_PATHS | frozenset(also_open)

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if encoded and request.path not in open_paths and not matches_any(presented_key(request), encoded):
            raise errors.invalid_api_key()
        return await handler(request)

    return auth_middleware


def presented_key(request: web.Request) -> bytes:
    """The key a client sent: `Authorization: Bearer`, or as Anthropic's clients send it (x-api-key),
    or Google's (x-goog-api-key, ?key=); never forwarded: the pool's credentials go upstream."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() == "bearer" and presented.strip():
        return presented.strip().encode()
    presented = (
        request.headers.get("x-api-key")
        or request.headers.get("x-goog-api-key")
        or request.query.get("key", "")
    )
    return presented.strip().encode()


def matches_any(token: bytes, keys: Iterable[bytes]) -> bool:
    """Compared against every key without stopping early, so timing says nothing."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key)
    return matched
