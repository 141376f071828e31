"""Front doors: the APIs the proxy answers in (OpenAI's today; Anthropic's and Google's next).

Every door is a thin adapter over one core: its handlers parse its protocol, translate, call the
gateway and translate back; every failure anywhere is a `ProxyError`, the one neutral error type;
and the door says, in one place, how that error looks on its wire: as a response, and as the end of
a stream it has begun. The error middleware asks the door that owns the request's path, so an error
raised before any handler ran (a wrong proxy key, an unknown route) is in the client's API's shape
too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from .drain import ENDING_SECONDS
from .errors import ProxyError
from .metrics import METRICS


@dataclass(frozen=True, slots=True)
class FrontDoor:
    name: str
    error_body: Callable[[ProxyError], Any]  # an error response's JSON body
    # What ends a begun stream with the error; given the request, whose items hold the stream's state
    # (a Responses stream's failure event carries its response and the next sequence number).
    stream_error: Callable[[web.Request, ProxyError], bytes]
    # Whether a request is this door's: by its path, and where two APIs share a path (GET /v1/models),
    # by the way the client sends its key.
    owns: Callable[[web.BaseRequest], bool]
    # The HTTP status an error answers with: the neutral one, unless the door's API has its own.
    status_of: Callable[[ProxyError], int] = lambda error: error.status


# The door a request came in by (see error_middleware), and the stream a handler began: once a
# stream has begun, an error is its door's ending of that stream, never a second response.
FRONT_DOOR = web.RequestKey("front_door", FrontDoor)
OPEN_STREAM = web.RequestKey("open_stream", web.StreamResponse)
# Handlers put what the access line should say about a request under this key.
LOG_FIELDS = web.RequestKey("log_fields", dict[str, Any])


def json_response(body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON reply (orjson: several times faster than aiohttp's json.dumps on large bodies)."""
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def error_response(error: ProxyError, door: FrontDoor, request_id: str = "") -> web.Response:
    headers = error.headers()
    if request_id:
        headers["x-request-id"] = request_id
    return json_response(door.error_body(error), status=door.status_of(error), headers=headers)


async def begin_stream(request: web.Request, headers: Mapping[str, str]) -> web.StreamResponse:
    """Send a 200 stream's head; from here on an error ends this stream (end_stream)."""
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    request[OPEN_STREAM] = response
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.stream_opened(request[FRONT_DOOR].name)  # closed by the middleware
    return response


async def end_stream(request: web.Request, error: ProxyError) -> None:
    """End the stream the handler began with its door's error ending; a client too slow to take it
    within a moment (or gone) is left as it is."""
    fields = request[LOG_FIELDS]
    fields["stream_error"] = repr(error.message)
    try:
        async with asyncio.timeout(ENDING_SECONDS):
            await request[OPEN_STREAM].write(request[FRONT_DOOR].stream_error(request, error))
    except (ConnectionError, TimeoutError, RuntimeError):  # RuntimeError: aiohttp's "closed" write
        fields["client"] = "disconnected"
