"""The front doors this proxy serves, and the paths each owns (see frontdoor.py)."""

from __future__ import annotations

import math
from typing import Any, Literal

import orjson
from aiohttp import web

from .errors import ProxyError
from .frontdoor import FrontDoor
from .sse import DONE, encode_event
from .translate import anthropic_out
from .translate.anthropic_out import MessagesStream
from .translate.responses_out import ResponsesStream
from .wire import openai


def _openai_stream_error(request: web.Request, error: ProxyError) -> bytes:
    # After the first byte of a stream: `data: {"error": {...}}`, then `data: [DONE]` (CONTRACT.md).
    return encode_event(openai.error_body(error)) + DONE


# OpenAI's door owns every path no other door claims: /health, /, the debug routes, unknown ones.
OPENAI = FrontDoor("openai", openai.error_body, _openai_stream_error, owns=lambda request: True)
# The stream a Responses request has begun: its failure event carries the response so far and the
# next sequence number.
RESPONSES_STREAM = web.RequestKey("responses_stream", ResponsesStream)


def _responses_stream_error(request: web.Request, error: ProxyError) -> bytes:
    return request[RESPONSES_STREAM].fail(error.code or "server_error", error.message)


def _responses_path(request: web.BaseRequest) -> bool:
    return request.path.startswith(("/v1/responses", "/responses"))


# The Responses API answers errors as Chat Completions does, but ends a stream with `response.failed`.
RESPONSES = FrontDoor("responses", openai.error_body, _responses_stream_error, owns=_responses_path)

# The stream a Messages request has begun: its error event needs nothing else, but a door's ending
# is the stream's to write.
MESSAGES_STREAM = web.RequestKey("messages_stream", MessagesStream)


def _anthropic_status(error: ProxyError) -> int:
    # Google out of capacity for the model on every credential: Anthropic's own status for that.
    return 529 if error.overloaded else error.status


def _anthropic_error_body(error: ProxyError) -> dict[str, Any]:
    return anthropic_out.error_body(_anthropic_status(error), error.message)


def _anthropic_stream_error(request: web.Request, error: ProxyError) -> bytes:
    return request[MESSAGES_STREAM].fail(anthropic_out.error_type(_anthropic_status(error)), error.message)


def _messages_path(request: web.BaseRequest) -> bool:
    return request.path.startswith(("/v1/messages", "/messages"))


# Anthropic's Messages API: its error shape and types, and `event: error` to end a stream.
ANTHROPIC = FrontDoor(
    "anthropic",
    _anthropic_error_body,
    _anthropic_stream_error,
    owns=_messages_path,
    status_of=_anthropic_status,
)

# Google's own API: how its stream is framed (SSE with ?alt=sse, else one JSON array).
GeminiStreamMode = Literal["sse", "array"]
GEMINI_STREAM = web.RequestKey("gemini_stream", str)

_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    408: "DEADLINE_EXCEEDED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _google_error_body(error: ProxyError) -> dict[str, Any]:
    """Google's `{"error": {code, message, status, details}}`, with a RetryInfo when to retry is known."""
    details: list[dict[str, Any]] = []
    if error.retry_after is not None:
        seconds = max(1, math.ceil(error.retry_after))
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds}s"})
    status = _GOOGLE_STATUS.get(error.status, "INTERNAL" if error.status >= 500 else "INVALID_ARGUMENT")
    return {"error": {"code": error.status, "message": error.message, "status": status, "details": details}}


def _google_stream_error(request: web.Request, error: ProxyError) -> bytes:
    data = orjson.dumps(_google_error_body(error))
    if request.get(GEMINI_STREAM) == "array":
        return b",\r\n" + data + b"]"
    return b"data: " + data + b"\r\n\r\n"


def _gemini_path(request: web.BaseRequest) -> bool:
    """/v1beta/..., a model's method under /v1/ or bare (`/models/{model}:generateContent`), and the
    model list that OpenAI's door shares (`/v1/models`, where google-genai looks when given a base
    URL) when the client is Google's: its key in `x-goog-api-key` or `?key=`."""
    path = request.path
    if path.startswith("/v1beta/"):
        return True
    if not path.startswith(("/v1/models", "/models")):
        return False
    return ":" in path or "x-goog-api-key" in request.headers or "key" in request.query


# Google's Gemini API: Google's error shape, and its error object to end a stream.
GEMINI = FrontDoor("gemini", _google_error_body, _google_stream_error, owns=_gemini_path)

# The first door that owns a path answers for it.
DOORS: tuple[FrontDoor, ...] = (RESPONSES, ANTHROPIC, GEMINI, OPENAI)


def door_for(request: web.BaseRequest) -> FrontDoor:
    return next(door for door in DOORS if door.owns(request))
