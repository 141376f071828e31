"""Chat objects -> Anthropic Messages API objects: a `message` and its stream events. Pure.

The Messages door (what Claude Code speaks) runs on the chat core, as the Responses door does:
translate/response.py and translate/stream.py turn Gemini's answer into a `chat.completion` or
`chat.completion.chunk`s, and this module turns those into what an Anthropic client reads. The
content blocks, in Anthropic's order: a `thinking` block (the thought summary, and in its `signature`
the turn's thought signatures sealed into one opaque string, see sealed_signatures.py: Claude Code
sends thinking blocks back verbatim, signature included, which is how Gemini's signatures survive
the round trip), a `text` block, a second `text` block for a refusal's explanation, then one
`tool_use` block per call.

A stream is `event: <type>\\ndata: <json>\\n\\n` events: `message_start`, one `ping`, then each block
opened (`content_block_start`), filled (`content_block_delta`) and closed (`content_block_stop`)
before the next one opens, indexes 0, 1, ..., then `message_delta` (stop reason, usage) and
`message_stop`. The signatures of a streamed turn are known only at its end: they go into the
thinking block still open then (a `signature_delta` before its stop), or else into a thinking block
of their own (`thinking: ""`), the last of the content. A failure after the first byte is an `error`
event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from .chat_deltas import walk_deltas
from .sealed_signatures import seal

# Chat finish reasons -> Anthropic stop reasons (anything else ends the turn normally).
STOP_REASONS: Final = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# HTTP status -> Anthropic error type (https://docs.anthropic.com/en/api/errors); others: api_error.
ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_KNOWN_ERRORS: Final = frozenset(ERROR_TYPES.values()) | {"api_error"}


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    return ERROR_TYPES.get(status, "api_error")


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error response body for a status."""
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def stop_reason(finish: str | None) -> str:
    """The Anthropic stop reason for a chat finish reason."""
    return STOP_REASONS.get(finish or "", "end_turn")


def message_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """A message's usage from a chat completion's: Anthropic's input_tokens leave out the tokens read
    from the cache, which it counts apart."""
    prompt = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def _parse(arguments: str) -> tuple[dict[str, Any], bool]:
    """(a tool_use block's `input`, whether `arguments` are its JSON as they stand)."""
    if not arguments:
        return {}, False
    try:
        # The standard library's reader: orjson reads an integer beyond 64 bits as an inexact float.
        value = json.loads(arguments)
    except ValueError:
        return {"arguments": arguments}, False
    return (value, True) if isinstance(value, dict) else ({"arguments": value}, False)


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool_use block's `input` (an object) from a chat call's JSON arguments. Gemini's arguments
    are always an object; anything else (never seen) is kept whole under `arguments`."""
    return _parse(arguments)[0]


def _input_json(arguments: str) -> str:
    """The JSON text of a call's input: the arguments as they came when they are the object."""
    value, verbatim = _parse(arguments)
    if verbatim:
        return arguments
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _thinking(text: str, signature: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": signature}


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _tool_use(call_id: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": value}


def to_message(
    completion: dict[str, Any], *, message_id: str, model: str, signatures: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """The Anthropic message for a chat completion (its first choice: a message has one answer)."""
    choices = completion.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or ""
    if reasoning or signatures:
        content.append(_thinking(reasoning, seal(signatures) if signatures else ""))
    text = message.get("content")
    if text:
        content.append(_text(text))
    refusal = message.get("refusal")
    if refusal:
        content.append(_text(refusal))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        arguments = str(function.get("arguments") or "")
        content.append(
            _tool_use(str(call.get("id", "")), str(function.get("name", "")), tool_input(arguments))
        )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": message_usage(completion.get("usage") or {}),
    }


# `event: <type>\ndata: ` of each event type, made once.
_PREFIXES: dict[str, bytes] = {}


def _prefix(kind: str) -> bytes:
    prefix = _PREFIXES.get(kind)
    if prefix is None:
        prefix = _PREFIXES[kind] = b"event: " + kind.encode() + b"\ndata: "
    return prefix


class _Block:
    """The content block a stream is filling: its kind (thinking, text, refusal, tool_use), its
    index, and the text received (a call's arguments, sent whole when it closes)."""

    __slots__ = ("index", "kind", "texts")

    def __init__(self, kind: str, index: int) -> None:
        self.kind = kind
        self.index = index
        self.texts: list[str] = []


class MessagesStream:
    """One streamed message: feed it the chat chunks of the turn, in order; each call returns the
    bytes of the events they make."""

    __slots__ = ("_count", "_ended", "_finish", "_message_id", "_model", "_open", "_out")

    def __init__(self, *, message_id: str, model: str) -> None:
        self._message_id = message_id
        self._model = model
        self._out: list[bytes] = []
        self._open: _Block | None = None
        self._count = 0  # blocks opened so far
        self._finish: str | None = None
        self._ended = False

    def _emit(self, payload: dict[str, Any]) -> None:
        self._out.append(_prefix(payload["type"]) + orjson.dumps(payload) + b"\n\n")

    def _flush(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def start(self, input_tokens: int = 0) -> bytes:
        """`message_start` (the message without content) and one `ping`."""
        message: dict[str, Any] = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            },
        }
        self._emit({"type": "message_start", "message": message})
        self._emit({"type": "ping"})
        return self._flush()

    def on_reasoning(self, text: str) -> None:
        self._delta("thinking", {"type": "thinking_delta", "thinking": text})

    def on_content(self, text: str) -> None:
        self._delta("text", {"type": "text_delta", "text": text})

    def on_refusal(self, text: str) -> None:
        self._delta("refusal", {"type": "text_delta", "text": text})

    def on_tool_call(self, call: dict[str, Any]) -> None:
        self._call_delta(call)

    def feed(self, chunks: Sequence[dict[str, Any]]) -> bytes:
        """The events of these chat chunks (b"" when they carry nothing a message shows)."""
        if self._ended:
            return b""
        reason = walk_deltas(chunks, self)  # the usage chunk: finish() is given the usage
        if reason:
            self._finish = reason
        # Gemini sends each call whole (one chunk, one upstream event): closed at once, a client can
        # run it while the rest of the turn streams.
        if self._open is not None and self._open.kind == "tool_use":
            self._close()
        return self._flush()

    def _start_block(self, kind: str, block: dict[str, Any]) -> _Block:
        self._close()
        opened = self._open = _Block(kind, self._count)
        self._count += 1
        self._emit({"type": "content_block_start", "index": opened.index, "content_block": block})
        return opened

    def _delta(self, kind: str, delta: dict[str, Any]) -> None:
        opened = self._open
        if opened is None or opened.kind != kind:
            opened = self._start_block(kind, _thinking("", "") if kind == "thinking" else _text(""))
        self._emit({"type": "content_block_delta", "index": opened.index, "delta": delta})

    def _call_delta(self, call: dict[str, Any]) -> None:
        function = call.get("function") or {}
        opened = self._open
        if call.get("id") or opened is None or opened.kind != "tool_use":
            block = _tool_use(str(call.get("id") or ""), str(function.get("name") or ""), {})
            opened = self._start_block("tool_use", block)
        arguments = function.get("arguments")
        if arguments:
            opened.texts.append(arguments)

    def _close(self, signatures: Sequence[tuple[str, str]] = ()) -> None:
        """End the open block: a call's input (sent whole), a thinking block's signature."""
        opened = self._open
        if opened is None:
            return
        self._open = None
        if opened.kind == "tool_use":
            arguments = "".join(opened.texts)
            delta = {"type": "input_json_delta", "partial_json": _input_json(arguments)}
            self._emit({"type": "content_block_delta", "index": opened.index, "delta": delta})
        elif opened.kind == "thinking" and signatures:
            delta = {"type": "signature_delta", "signature": seal(signatures)}
            self._emit({"type": "content_block_delta", "index": opened.index, "delta": delta})
        self._emit({"type": "content_block_stop", "index": opened.index})

    def finish(self, usage: dict[str, Any], signatures: Sequence[tuple[str, str]]) -> bytes:
        """Close the open block, carry the turn's signatures, then `message_delta` (stop reason,
        usage) and `message_stop`."""
        if self._ended:
            return b""
        self._ended = True
        if self._open is not None and self._open.kind == "thinking":
            self._close(signatures)
        else:
            self._close()
            if signatures:
                self._start_block("thinking", _thinking("", ""))
                self._close(signatures)
        self._emit(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(self._finish), "stop_sequence": None},
                "usage": message_usage(usage),
            }
        )
        self._emit({"type": "message_stop"})
        return self._flush()

    def fail(self, error_type: str, message: str) -> bytes:
        """An `error` event (`error_type` made one Anthropic has, else api_error); the stream ends
        there, the open block unclosed, as Anthropic's own do."""
        if self._ended:
            return b""
        self._ended = True
        self._open = None
        kind = error_type if error_type in _KNOWN_ERRORS else "api_error"
        self._emit({"type": "error", "error": {"type": kind, "message": message}})
        return self._flush()
