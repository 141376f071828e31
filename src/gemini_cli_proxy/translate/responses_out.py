"""Chat objects -> OpenAI Responses API objects: a `Response` and its typed stream events. Pure.

The Responses door runs on the chat core: translate/response.py and translate/stream.py turn Gemini's
answer into a `chat.completion` or `chat.completion.chunk`s, and this module turns those into what a
Responses client reads. The output items, in OpenAI's order: a `reasoning` item (the thought summary,
and, when the request's `include` asks for `reasoning.encrypted_content`, the turn's thought
signatures sealed into `encrypted_content`, see sealed_signatures.py), a `message` (`output_text`
and `refusal` parts), then one `function_call` or `custom_tool_call` per call, named back as the
client declared it (responses_tools.py).

A stream is a sequence of `event: <type>\\ndata: <json>\\n\\n` events numbered from 0, each item opened
(`response.output_item.added`), filled by deltas, and closed (`response.output_item.done`) before the
next one opens, and ends with `response.completed` (or `.incomplete`, or `.failed`) carrying the
whole response; there is no `[DONE]` line. The signatures of a streamed turn are known only at its
end: they go into the reasoning item still open then, or else into a reasoning item of their own,
the last of the output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from .chat_deltas import walk_deltas
from .responses_tools import CUSTOM_INPUT, ToolNames
from .sealed_signatures import seal

# The codes a Response's `error` may have (OpenAI's ResponseErrorCode); any other is a server_error.
ERROR_CODES: Final = frozenset(
    {
        "server_error",
        "rate_limit_exceeded",
        "invalid_prompt",
        "data_residency_mismatch",
        "bio_policy",
        "vector_store_timeout",
        "invalid_image",
        "invalid_image_format",
        "invalid_base64_image",
        "invalid_image_url",
        "image_too_large",
        "image_too_small",
        "image_parse_error",
        "image_content_policy_violation",
        "invalid_image_mode",
        "image_file_too_large",
        "unsupported_image_media_type",
        "empty_image_file",
        "failed_to_download_image",
        "image_file_not_found",
    }
)
_ERROR_ALIASES: Final = {"insufficient_quota": "rate_limit_exceeded"}
# Chat finish reasons that leave a response incomplete, and the reason it gives.
_INCOMPLETE: Final = {"length": "max_output_tokens", "content_filter": "content_filter"}
# Response fields this module sets; an echoed request field of the same name never replaces them.
_OWN_FIELDS: Final = frozenset(
    {
        "id",
        "object",
        "created_at",
        "status",
        "error",
        "incomplete_details",
        "model",
        "output",
        "usage",
        "output_text",
        "completed_at",
    }
)


def _new_id(prefix: str) -> str:
    return prefix + os.urandom(16).hex()


def error_code(code: str) -> str:
    """`code` as one of the codes a Response's error may carry."""
    if code in ERROR_CODES:
        return code
    return _ERROR_ALIASES.get(code, "server_error")


def response_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """A Response's usage from a chat completion's."""
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
            "cache_write_tokens": 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def _echo_tools(tools: Any) -> list[Any]:
    """The request's tools as a Response lists them: a function tool always says `strict` and
    `parameters` (null when the request did not)."""
    if not isinstance(tools, list):
        return []
    return [
        {**tool, "strict": tool.get("strict"), "parameters": tool.get("parameters")}
        if isinstance(tool, dict)
        and tool.get("type") == "function"
        and ("strict" not in tool or "parameters" not in tool)
        else tool
        for tool in tools
    ]


def _echo_text(text: Any) -> dict[str, Any]:
    if not isinstance(text, dict):
        return {"format": {"type": "text"}}
    return text if "format" in text else {"format": {"type": "text"}, **text}


def _head(response_id: str, created_at: int, model: str, echo: Mapping[str, Any]) -> dict[str, Any]:
    """A Response without output or usage: its own fields and the echoed request settings (the
    fields the schema requires get OpenAI's defaults when the request left them out)."""

    def given(name: str, default: Any) -> Any:
        value = echo.get(name)
        return default if value is None else value

    head: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": given("parallel_tool_calls", True),
        "previous_response_id": echo.get("previous_response_id"),
        "reasoning": echo.get("reasoning"),
        "temperature": echo.get("temperature"),
        "text": _echo_text(echo.get("text")),
        "tool_choice": given("tool_choice", "auto"),
        "tools": _echo_tools(echo.get("tools")),
        "top_p": echo.get("top_p"),
        "truncation": given("truncation", "disabled"),
        "metadata": given("metadata", {}),
    }
    for name, value in echo.items():
        if name not in head and name not in _OWN_FIELDS:
            head[name] = value
    return head


def _ending(finish: str | None) -> tuple[str, dict[str, Any] | None]:
    """(status, incomplete_details) for the chat finish reason."""
    reason = _INCOMPLETE.get(finish or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def custom_input(arguments: str) -> str:
    """A custom tool's freeform input from the arguments of the one-parameter function it was
    declared to Gemini as (`{"input": "..."}`); arguments of another shape are given whole."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if not isinstance(value, dict):
        return arguments
    found = value.get(CUSTOM_INPUT)
    if isinstance(found, str):
        return found
    if found is None:
        return "" if not value else arguments
    try:
        return orjson.dumps(found).decode()
    except orjson.JSONEncodeError:
        return json.dumps(found, ensure_ascii=False, separators=(",", ":"))


def _call_item(call_id: str, name: str, tools: ToolNames) -> dict[str, Any]:
    """A call's output item before its arguments: a function_call, or a custom_tool_call when the
    function stands for a custom tool. A name not in `tools` is a plain function of that name."""
    origin = tools.get(name)
    item: dict[str, Any]
    if origin is not None and origin.kind == "custom":
        item = {
            "id": _new_id("ctc_"),
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": origin.name,
            "input": "",
        }
    else:
        item = {
            "id": _new_id("fc_"),
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": call_id,
            "name": origin.name if origin is not None else name,
        }
    if origin is not None and origin.namespace is not None:
        item["namespace"] = origin.namespace
    return item


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _refusal_part(refusal: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": refusal}


def _summary(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def to_response(
    completion: dict[str, Any],
    *,
    response_id: str,
    created_at: int,
    echo: Mapping[str, Any],
    signatures: Sequence[tuple[str, str]],
    include_encrypted: bool,
    tools: ToolNames,
) -> dict[str, Any]:
    """The Response for a chat completion (its first choice: a Response has one output)."""
    choices = completion.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    status, incomplete = _ending(choice.get("finish_reason"))
    output: list[dict[str, Any]] = []
    summary = message.get("reasoning_content")
    carried = include_encrypted and bool(signatures)
    if summary or carried:
        reasoning: dict[str, Any] = {
            "id": _new_id("rs_"),
            "type": "reasoning",
            "summary": [_summary(summary)] if summary else [],
        }
        if include_encrypted:
            reasoning["encrypted_content"] = seal(signatures) if signatures else None
        output.append(reasoning)
    content = message.get("content")
    refusal = message.get("refusal")
    if content or refusal:
        parts = []
        if content:
            parts.append(_text_part(content))
        if refusal:
            parts.append(_refusal_part(refusal))
        output.append(
            {
                "id": _new_id("msg_"),
                "type": "message",
                "status": "incomplete" if status == "incomplete" else "completed",
                "role": "assistant",
                "content": parts,
            }
        )
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        item = _call_item(str(call.get("id", "")), str(function.get("name", "")), tools)
        arguments = str(function.get("arguments") or "")
        if item["type"] == "custom_tool_call":
            item["input"] = custom_input(arguments)
        else:
            item["arguments"] = arguments
            item["status"] = "completed"
        output.append(item)
    response = _head(response_id, created_at, str(completion.get("model", "")), echo)
    response["status"] = status
    response["incomplete_details"] = incomplete
    response["output"] = output
    response["usage"] = response_usage(completion.get("usage") or {})
    return response


# `event: <type>\ndata: ` of each event type, made once.
_PREFIXES: dict[str, bytes] = {}


def _prefix(kind: str) -> bytes:
    prefix = _PREFIXES.get(kind)
    if prefix is None:
        prefix = _PREFIXES[kind] = b"event: " + kind.encode() + b"\ndata: "
    return prefix


class _Open:
    """The output item a stream is filling: its dict (in the output list already), its position,
    and the text of the part it is receiving (summary text, content part, or call arguments)."""

    __slots__ = ("index", "item", "kind", "part", "texts")

    def __init__(self, kind: str, item: dict[str, Any], index: int) -> None:
        self.kind = kind  # reasoning, message, function_call, custom_tool_call
        self.item = item
        self.index = index
        self.part: str | None = None  # a message's open part: output_text or refusal
        self.texts: list[str] = []


class ResponsesStream:
    """One streamed Response: feed it the chat chunks of the turn, in order; each call returns the
    bytes of the events they make."""

    __slots__ = (
        "_ended",
        "_finish",
        "_include_encrypted",
        "_items",
        "_open",
        "_out",
        "_quiet",
        "_response",
        "_seq",
        "_tools",
    )

    def __init__(
        self,
        *,
        response_id: str,
        created_at: int,
        model: str,
        echo: Mapping[str, Any],
        include_encrypted: bool,
        tools: ToolNames,
    ) -> None:
        self._response = _head(response_id, created_at, model, echo)
        self._items: list[dict[str, Any]] = []
        self._response["output"] = self._items
        self._include_encrypted = include_encrypted
        self._tools = tools
        self._seq = 0
        self._out: list[bytes] = []
        self._open: _Open | None = None
        self._finish: str | None = None
        self._ended = False
        self._quiet = False  # closing items without telling (a failed stream's partial item)

    def _emit(self, payload: dict[str, Any]) -> None:
        if self._quiet:
            return
        payload["sequence_number"] = self._seq
        self._seq += 1
        self._out.append(_prefix(payload["type"]) + orjson.dumps(payload) + b"\n\n")

    def _flush(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def start(self) -> bytes:
        """`response.created` and `response.in_progress`."""
        self._emit({"type": "response.created", "response": self._response})
        self._emit({"type": "response.in_progress", "response": self._response})
        return self._flush()

    def on_reasoning(self, text: str) -> None:
        self._summary_delta(text)

    def on_content(self, text: str) -> None:
        self._part_delta("output_text", text)

    def on_refusal(self, text: str) -> None:
        self._part_delta("refusal", text)

    def on_tool_call(self, call: dict[str, Any]) -> None:
        self._call_delta(call)

    def feed(self, chunks: Sequence[dict[str, Any]]) -> bytes:
        """The events of these chat chunks (b"" when they carry nothing a Response shows)."""
        if self._ended:
            return b""
        reason = walk_deltas(chunks, self)  # the usage chunk: finish() is given the usage
        if reason:
            self._finish = reason
        # Gemini sends each call whole (one chunk, one upstream event): done at once, a client can
        # run it while the rest of the turn streams.
        if self._open is not None and self._open.kind in ("function_call", "custom_tool_call"):
            self._close("completed")
        return self._flush()

    def _start_item(self, kind: str, item: dict[str, Any]) -> _Open:
        if self._open is not None:
            self._close("completed")
        opened = self._open = _Open(kind, item, len(self._items))
        self._items.append(item)
        self._emit({"type": "response.output_item.added", "output_index": opened.index, "item": item})
        return opened

    def _summary_delta(self, text: str) -> None:
        opened = self._open
        if opened is None or opened.kind != "reasoning":
            opened = self._start_item("reasoning", {"id": _new_id("rs_"), "type": "reasoning", "summary": []})
        item_id = opened.item["id"]
        if opened.part is None:
            opened.part = "summary_text"
            self._emit(
                {
                    "type": "response.reasoning_summary_part.added",
                    "item_id": item_id,
                    "output_index": opened.index,
                    "summary_index": 0,
                    "part": _summary(""),
                }
            )
        opened.texts.append(text)
        self._emit(
            {
                "type": "response.reasoning_summary_text.delta",
                "item_id": item_id,
                "output_index": opened.index,
                "summary_index": 0,
                "delta": text,
            }
        )

    def _part_delta(self, kind: str, text: str) -> None:
        opened = self._open
        if opened is None or opened.kind != "message":
            item = {
                "id": _new_id("msg_"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            opened = self._start_item("message", item)
        item_id = opened.item["id"]
        content_index = len(opened.item["content"])
        if opened.part != kind:
            if opened.part is not None:
                self._close_part(opened)
                content_index += 1
            opened.part = kind
            self._emit(
                {
                    "type": "response.content_part.added",
                    "item_id": item_id,
                    "output_index": opened.index,
                    "content_index": content_index,
                    "part": _text_part("") if kind == "output_text" else _refusal_part(""),
                }
            )
        opened.texts.append(text)
        if kind == "output_text":
            self._emit(
                {
                    "type": "response.output_text.delta",
                    "item_id": item_id,
                    "output_index": opened.index,
                    "content_index": content_index,
                    "delta": text,
                    "logprobs": [],
                }
            )
        else:
            self._emit(
                {
                    "type": "response.refusal.delta",
                    "item_id": item_id,
                    "output_index": opened.index,
                    "content_index": content_index,
                    "delta": text,
                }
            )

    def _close_part(self, opened: _Open) -> None:
        """End a message's open content part: its `.done` events, and the part into the item."""
        text = "".join(opened.texts)
        opened.texts = []
        item_id = opened.item["id"]
        content = opened.item["content"]
        content_index = len(content)
        if opened.part == "output_text":
            part = _text_part(text)
            self._emit(
                {
                    "type": "response.output_text.done",
                    "item_id": item_id,
                    "output_index": opened.index,
                    "content_index": content_index,
                    "text": text,
                    "logprobs": [],
                }
            )
        else:
            part = _refusal_part(text)
            self._emit(
                {
                    "type": "response.refusal.done",
                    "item_id": item_id,
                    "output_index": opened.index,
                    "content_index": content_index,
                    "refusal": text,
                }
            )
        content.append(part)
        opened.part = None
        self._emit(
            {
                "type": "response.content_part.done",
                "item_id": item_id,
                "output_index": opened.index,
                "content_index": content_index,
                "part": part,
            }
        )

    def _call_delta(self, call: dict[str, Any]) -> None:
        function = call.get("function") or {}
        arguments = function.get("arguments") or ""
        opened = self._open
        if call.get("id") or opened is None or opened.kind not in ("function_call", "custom_tool_call"):
            item = _call_item(str(call.get("id") or ""), str(function.get("name") or ""), self._tools)
            opened = self._start_item(item["type"], item)
        if not arguments:
            return
        opened.texts.append(arguments)
        if opened.kind == "function_call":
            self._emit(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": opened.item["id"],
                    "output_index": opened.index,
                    "delta": arguments,
                }
            )
        # A custom tool's input is inside the JSON arguments: it is sent whole when the call ends.

    def _close(self, status: str, signatures: Sequence[tuple[str, str]] = ()) -> None:
        """End the open item: its `.done` events; `status` for a message (and a function call that
        did not end). The reasoning item open at the end of a turn carries its `signatures`."""
        opened = self._open
        if opened is None:
            return
        self._open = None
        item = opened.item
        item_id = item["id"]
        if opened.kind == "reasoning":
            if opened.part is not None:
                text = "".join(opened.texts)
                self._emit(
                    {
                        "type": "response.reasoning_summary_text.done",
                        "item_id": item_id,
                        "output_index": opened.index,
                        "summary_index": 0,
                        "text": text,
                    }
                )
                part = _summary(text)
                item["summary"] = [part]
                self._emit(
                    {
                        "type": "response.reasoning_summary_part.done",
                        "item_id": item_id,
                        "output_index": opened.index,
                        "summary_index": 0,
                        "part": part,
                    }
                )
            if self._include_encrypted:
                item["encrypted_content"] = seal(signatures) if signatures else None
        elif opened.kind == "message":
            if opened.part is not None:
                self._close_part(opened)
            item["status"] = status
        elif opened.kind == "function_call":
            arguments = "".join(opened.texts)
            item["arguments"] = arguments
            item["status"] = status
            self._emit(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item_id,
                    "output_index": opened.index,
                    "name": item["name"],
                    "arguments": arguments,
                }
            )
        else:
            text = custom_input("".join(opened.texts))
            item["input"] = text
            if text:
                self._emit(
                    {
                        "type": "response.custom_tool_call_input.delta",
                        "output_index": opened.index,
                        "item_id": item_id,
                        "delta": text,
                    }
                )
            self._emit(
                {
                    "type": "response.custom_tool_call_input.done",
                    "output_index": opened.index,
                    "item_id": item_id,
                    "input": text,
                }
            )
        self._emit({"type": "response.output_item.done", "output_index": opened.index, "item": item})

    def finish(self, usage: dict[str, Any], signatures: Sequence[tuple[str, str]]) -> bytes:
        """Close the open item, carry the turn's signatures, then `response.completed` (or
        `response.incomplete`, for a turn cut by max_output_tokens or a content filter)."""
        if self._ended:
            return b""
        self._ended = True
        status, incomplete = _ending(self._finish)
        message_status = "incomplete" if status == "incomplete" else "completed"
        carry = signatures if self._include_encrypted else ()
        if self._open is not None and self._open.kind == "reasoning":
            self._close(message_status, carry)
            carry = ()
        else:
            self._close(message_status)
        if carry:
            item = {"id": _new_id("rs_"), "type": "reasoning", "summary": []}
            self._start_item("reasoning", item)
            self._close(message_status, carry)
        response = self._response
        response["status"] = status
        response["incomplete_details"] = incomplete
        response["usage"] = response_usage(usage)
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        self._emit({"type": kind, "response": response})
        return self._flush()

    def fail(self, code: str, message: str) -> bytes:
        """`response.failed`: the response so far (an item cut short marked incomplete) with
        `error`; `code` is made one a Response's error may have (else server_error)."""
        if self._ended:
            return b""
        self._ended = True
        if self._open is not None:
            self._quiet = True  # its text goes into the response, no `.done` events go out
            try:
                self._close("incomplete")
            finally:
                self._quiet = False
        response = self._response
        response["status"] = "failed"
        response["error"] = {"code": error_code(code), "message": message}
        self._emit({"type": "response.failed", "response": response})
        return self._flush()

    def response(self) -> dict[str, Any]:
        """The Response as it stands (the whole of it once finished): the object to store. Not a
        copy: it changes as the stream goes on."""
        return self._response
