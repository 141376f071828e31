"""The front doors this proxy serves, and the paths each owns (see frontdoor.py)."""

from __future__ import annotations

from .errors import ProxyError
from .frontdoor import FrontDoor
from .sse import DONE, encode_event
from .wire import openai


def _openai_stream_error(error: ProxyError) -> bytes:
    # After the first byte of a stream: `data: {"error": {...}}`, then `data: [DONE]` (CONTRACT.md).
    return encode_event(openai.error_body(error)) + DONE


# OpenAI's door owns every path no other door claims: /health, /, the debug routes, unknown ones.
OPENAI = FrontDoor("openai", openai.error_body, _openai_stream_error, owns=lambda path: True)

# The first door that owns a path answers for it.
DOORS: tuple[FrontDoor, ...] = (OPENAI,)


def door_for(path: str) -> FrontDoor:
    return next(door for door in DOORS if door.owns(path))
