"""Google's generate replies and stream events, checked at the boundary and turned into UpstreamError
when they are errors or not what Google documents. Pure: bytes in, typed dicts or UpstreamError out.

A parser takes the credential's secrets, since any text of Google's that reaches a client or a log
(an error event quoting a key or a token) must be scrubbed of them first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..wire.gemini import GenerateContentResponse, WrongShape, code_assist_reply, generate_response
from .errors import UpstreamError, error_status, from_payload, garbage

# (body, the credential's secrets) -> the parsed reply
Parser = Callable[[bytes, tuple[str, ...]], Any]


def any_json(raw: bytes, secrets: tuple[str, ...]) -> Any:
    """Any JSON value (token endpoints, Code Assist's set-up calls): their callers check the shape."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise garbage("not JSON") from None


def _failed(error: Any, raw: bytes, secrets: tuple[str, ...]) -> UpstreamError:
    """Google's error object inside a 200: a stream that broke after it began, or a wrapped reply.
    Its `code` is the status it stands for; one without a usable code is an answer that cannot be
    read, not a failure with a status the proxy would have to make up."""
    status = error_status(error)
    if status is None:
        return garbage("an error object without a valid code")
    return from_payload(status, {"error": error}, raw, secrets=secrets)


def _wrapped_error(raw: bytes, secrets: tuple[str, ...]) -> UpstreamError | None:
    """Code Assist may wrap an error in a JSON array, `[{"error": {...}}]`, even inside a 200."""
    if raw.lstrip()[:1] != b"[":
        return None
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if payload and isinstance(payload[0], dict) and isinstance(payload[0].get("error"), dict):
        return _failed(payload[0]["error"], raw, secrets)
    return None


def gemini_reply(raw: bytes, secrets: tuple[str, ...]) -> GenerateContentResponse:
    """An AI Studio or Vertex reply, or one event of their streams."""
    try:
        reply = generate_response(raw)
    except WrongShape as exc:
        raise _wrapped_error(raw, secrets) or garbage(f"not a GenerateContentResponse: {exc}") from None
    if "error" in reply:
        raise _failed(reply["error"], raw, secrets)
    return reply


def code_assist_reply_of(raw: bytes, secrets: tuple[str, ...]) -> GenerateContentResponse:
    """The GenerateContentResponse inside a Code Assist envelope (a reply or one stream event)."""
    try:
        envelope = code_assist_reply(raw)
    except WrongShape as exc:
        raise _wrapped_error(raw, secrets) or garbage(f"not a Code Assist reply: {exc}") from None
    if "error" in envelope:
        raise _failed(envelope["error"], raw, secrets)
    response = envelope.get("response")
    if response is None:
        raise garbage("a Code Assist reply without a 'response' object")
    if "error" in response:
        raise _failed(response["error"], raw, secrets)
    return response


def total_tokens(reply: Any) -> int:
    """countTokens' `totalTokens` (a count may come as a string, as protobuf's JSON allows)."""
    value = reply.get("totalTokens", 0) if isinstance(reply, dict) else None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise garbage("a countTokens reply without a valid totalTokens")
    return value
