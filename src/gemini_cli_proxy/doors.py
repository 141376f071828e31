"""The front doors this proxy serves, and the paths each owns (see frontdoor.py)."""

from __future__ import annotations

from typing import Any

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
OPENAI = FrontDoor("openai", openai.error_body, _openai_stream_error, owns=lambda path: True)
# The stream a Responses request has begun: its failure event carries the response so far and the
# next sequence number.
RESPONSES_STREAM = web.RequestKey("responses_stream", ResponsesStream)


def _responses_stream_error(request: web.Request, error: ProxyError) -> bytes:
    return request[RESPONSES_STREAM].fail(error.code or "server_error", error.message)


def _responses_path(path: str) -> bool:
    return path.startswith(("/v1/responses", "/responses"))


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


def _messages_path(path: str) -> bool:
    return path.startswith(("/v1/messages", "/messages"))


# Anthropic's Messages API: its error shape and types, and `event: error` to end a stream.
ANTHROPIC = FrontDoor(
    "anthropic",
    _anthropic_error_body,
    _anthropic_stream_error,
    owns=_messages_path,
    status_of=_anthropic_status,
)

# The first door that owns a path answers for it.
DOORS: tuple[FrontDoor, ...] = (RESPONSES, ANTHROPIC, OPENAI)


def door_for(path: str) -> FrontDoor:
    return next(door for door in DOORS if door.owns(path))
