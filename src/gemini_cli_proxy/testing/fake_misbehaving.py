"""A misbehaving Google: what a broken or hostile upstream answers, for the hardening tests.

The faithful fake answers as Google does; these are the answers Google never gives but a proxy must
survive: redirects, replies of the wrong shape, error events quoting secrets, bytes trickled one at a
time, SSE comments and no event, one endless line. Each function returns a `Reply` that the faithful
fake serves like any other (``fake.push(misbehaving.redirect(...))``), on whichever route is called
next (AI Studio, Vertex or Code Assist, after the route's own authentication), written to the wire
exactly as given: no Code Assist envelope is added.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import orjson

from gemini_cli_proxy.testing.fake_replies import JSON_CONTENT_TYPE, Reply

SSE_CONTENT_TYPE: Final = "text/event-stream"


def event(value: Any) -> bytes:
    """One SSE event carrying `value` as JSON, framed as Google frames them (CRLF)."""
    return b"data: " + orjson.dumps(value) + b"\r\n\r\n"


def text_event(text: str) -> dict[str, Any]:
    """A well-formed streamed GenerateContentResponse with `text`, to come before a bad event."""
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
    }


def error_object(message: str, *, code: Any = 500, status: str = "INTERNAL") -> dict[str, Any]:
    """Google's error body, with any `code` (a misbehaving one need not be a number)."""
    return {"error": {"code": code, "message": message, "status": status}}


def redirect(location: str, *, status: int = 302) -> Reply:
    """A redirect, which Google's APIs never send: a proxy that follows it sends its key there."""
    return Reply.wire([b""], status=status, headers={"Location": location}, content_type="text/html")


def json_reply(value: Any, *, status: int = 200) -> Reply:
    """Exactly this JSON value as the whole reply (a list, a string, a wrong-typed field...)."""
    return Reply.wire([orjson.dumps(value)], status=status)


def events(*values: Any, interval: float = 0.0) -> Reply:
    """Exactly these JSON values as SSE events, unchecked: a good event then a bad one, say."""
    return Reply.wire([event(v) for v in values], content_type=SSE_CONTENT_TYPE, interval=interval)


def trickled(
    body: bytes, *, interval: float, content_type: str = JSON_CONTENT_TYPE, status: int = 200
) -> Reply:
    """`body` one byte every `interval` s: never quiet long enough to trip a socket read timeout."""
    pieces = [body[i : i + 1] for i in range(len(body))]
    return Reply.wire(pieces, content_type=content_type, interval=interval, status=status)


def comments_only(*, interval: float, count: int) -> Reply:
    """An SSE stream of keep-alive comments and never an event."""
    return Reply.wire(
        [b": keep-alive\r\n\r\n"], content_type=SSE_CONTENT_TYPE, interval=interval, repeat=count
    )


def endless_line(total_bytes: int, *, piece: int = 1024 * 1024) -> Reply:
    """One SSE `data:` line of about `total_bytes` that never ends (no newline), `piece` bytes a write."""
    filler = b"x" * piece  # one object, written many times
    pieces = [b'data: {"x": "', *([filler] * max(1, total_bytes // piece))]
    return Reply.wire(pieces, content_type=SSE_CONTENT_TYPE)


def _with_part(part: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": [part]}}]}


def _with_candidate(**fields: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": [{"text": "a"}]}, **fields}]}


# JSON values that are not a GenerateContentResponse, each breaking a type a translator relies on.
WRONG_SHAPES: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "a list": [{"candidates": []}],
        "a string": "candidates",
        "a number": 5,
        "null": None,
        "candidates not a list": {"candidates": {"0": {}}},
        "a candidate not an object": {"candidates": [5]},
        "parts not a list": {"candidates": [{"content": {"parts": "hello"}}]},
        "text a number": _with_part({"text": 5}),
        "text an object": _with_part({"text": {"a": 1}}),
        "thought signature a number": _with_part({"text": "a", "thoughtSignature": 1}),
        "function name a number": _with_part({"functionCall": {"name": 5}}),
        "function args a list": _with_part({"functionCall": {"name": "f", "args": [1]}}),
        "finish reason a number": _with_candidate(finishReason=3),
        "index a string": _with_candidate(index="first"),
        "index beyond 2**53": _with_candidate(index=2**60),
        "logprobs of the wrong shape": _with_candidate(logprobsResult={"topCandidates": [5]}),
        "usage counts as words": {"usageMetadata": {"promptTokenCount": "seven"}},
        "usage a list": {**_with_candidate(), "usageMetadata": [1]},
        "block reason a number": {"promptFeedback": {"blockReason": 5}},
        "an error with a word for a code": error_object("broken", code="bad"),
        "an error whose details are a number": {"error": {"code": 500, "message": "x", "details": 5}},
    }
)

# Wrong in a way that still has a sensible reading: served as Google's protobuf JSON mapping allows.
LENIENT_SHAPES: Final[Mapping[str, Any]] = MappingProxyType(
    {"usage counts as strings": {**text_event("fine"), "usageMetadata": {"promptTokenCount": "3"}}}
)
