"""Chat objects (from the real translators, on recorded and hand-written Gemini replies) -> Anthropic
Messages API messages and stream events, each checked against the shapes Anthropic documents (the
`anthropic` SDK is not installed here: the shapes are written out below)."""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import orjson
import pytest

from gemini_cli_proxy.translate.anthropic_out import (
    MessagesStream,
    error_body,
    error_type,
    message_usage,
    stop_reason,
    to_message,
    tool_input,
)
from gemini_cli_proxy.translate.response import to_chat_completion
from gemini_cli_proxy.translate.sealed_signatures import unseal
from gemini_cli_proxy.translate.signatures import call_key
from gemini_cli_proxy.translate.stream import StreamTranslator

from support import recording

CREATED = 1_700_000_000
MODEL = "gemini-2.5-pro"
ALIAS = "claude-sonnet-4-5"  # the model the client asked for, named back to it
MESSAGE_ID = "msg_01"

# The shapes of Anthropic's objects (anthropic.types: Message, ContentBlock, RawMessageStreamEvent).
STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}
USAGE_KEYS = {"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"}
MESSAGE_KEYS = {"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"}
BLOCK_KEYS = {
    "thinking": {"type", "thinking", "signature"},
    "text": {"type", "text"},
    "tool_use": {"type", "id", "name", "input"},
}
DELTA_KEYS = {
    "thinking_delta": ({"type", "thinking"}, "thinking"),
    "signature_delta": ({"type", "signature"}, "thinking"),
    "text_delta": ({"type", "text"}, "text"),
    "input_json_delta": ({"type", "partial_json"}, "tool_use"),
}
EVENT_KEYS = {
    "message_start": {"type", "message"},
    "ping": {"type"},
    "content_block_start": {"type", "index", "content_block"},
    "content_block_delta": {"type", "index", "delta"},
    "content_block_stop": {"type", "index"},
    "message_delta": {"type", "delta", "usage"},
    "message_stop": {"type"},
    "error": {"type", "error"},
}
ERROR_TYPES = {
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "timeout_error",
    "api_error",
    "overloaded_error",
}


def check_usage(usage: dict[str, Any]) -> None:
    assert set(usage) == USAGE_KEYS
    assert all(type(value) is int and value >= 0 for value in usage.values()), usage


def check_block(block: dict[str, Any]) -> None:
    assert set(block) == BLOCK_KEYS[block["type"]], block
    if block["type"] == "tool_use":
        assert isinstance(block["input"], dict) and isinstance(block["id"], str) and block["name"]
    else:
        assert all(isinstance(block[key], str) for key in block), block


def check_message(message: dict[str, Any], *, streaming: bool = False) -> None:
    assert set(message) == MESSAGE_KEYS
    assert (message["type"], message["role"]) == ("message", "assistant")
    assert message["id"] == MESSAGE_ID and message["model"] == ALIAS
    assert message["stop_sequence"] is None
    if streaming:
        assert message["content"] == [] and message["stop_reason"] is None
    else:
        assert message["stop_reason"] in STOP_REASONS
    for block in message["content"]:
        check_block(block)
    check_usage(message["usage"])


# Gemini replies, written by hand where no recording has the shape.


def reply(
    parts: list[dict[str, Any]], finish: str = "STOP", usage: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage or {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
    }


TEXT = reply([{"text": "Paris."}])
TOOL_TURN = reply(
    [
        {"text": "**Reading**\n\nThe file first, then the listing.", "thought": True},
        {"functionCall": {"name": "read_file", "args": {"path": "a.txt"}}, "thoughtSignature": "sig-A"},
        {"functionCall": {"name": "list_dir", "args": {"path": ".", "depth": 2, "all": True}}},
        {"functionCall": {"name": "now", "args": {}}},
    ],
    usage={
        "promptTokenCount": 100,
        "cachedContentTokenCount": 40,
        "candidatesTokenCount": 20,
        "thoughtsTokenCount": 7,
        "totalTokenCount": 127,
    },
)
SIGNED_THINKING = reply(
    [
        {"text": "Thinking it over.", "thought": True},
        {"text": "The answer is 4.", "thoughtSignature": "sig-T"},
    ]
)
CUT_TEXT = reply([{"text": "The first half of a long"}, {"text": " answer that"}], finish="MAX_TOKENS")
THINKING_ONLY = reply([{"text": "Only thinking.", "thought": True}])
TEXT_THEN_FILTER = reply([{"text": "Here is the start"}], finish="SAFETY")


def as_events(whole: dict[str, Any]) -> list[dict[str, Any]]:
    """`whole` as a stream sends it: one part an event, the finish reason and usage on the last."""
    candidate = whole["candidates"][0]
    parts = (candidate.get("content") or {}).get("parts") or [{"text": ""}]
    events = [{"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}]} for part in parts]
    events[-1]["candidates"][0]["finishReason"] = candidate["finishReason"]
    events[-1]["usageMetadata"] = whole["usageMetadata"]
    return events


def body(name: str) -> dict[str, Any]:
    data: dict[str, Any] = recording(name)["response_body"]
    return data


# Non-streamed.


class Converted(NamedTuple):
    message: dict[str, Any]
    completion: dict[str, Any]
    signatures: list[tuple[str, str]]


def convert(gemini: dict[str, Any]) -> Converted:
    translated = to_chat_completion(gemini, model=MODEL, completion_id="c", created=CREATED)
    message = to_message(
        translated.completion, message_id=MESSAGE_ID, model=ALIAS, signatures=translated.signatures
    )
    check_message(message)
    return Converted(message, translated.completion, translated.signatures)


def test_text_reply_is_one_text_block() -> None:
    converted = convert(TEXT)
    assert converted.signatures == []
    assert converted.message == {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": ALIAS,
        "content": [{"type": "text", "text": "Paris."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 5,
            "output_tokens": 3,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
    }


def test_signed_text_reply_carries_its_signature_in_a_thinking_block_first() -> None:
    gemini = body("aistudio-generate-gemini3-text-signature-1")
    converted = convert(gemini)
    assert converted.signatures  # Gemini 3 signs its text reply
    thinking, text = converted.message["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == ""
    assert unseal(thinking["signature"]) == converted.signatures
    assert text == {"type": "text", "text": gemini["candidates"][0]["content"]["parts"][0]["text"]}


def test_thinking_comes_before_the_text() -> None:
    converted = convert(body("aistudio-generate-thinking-3"))
    chat = converted.completion["choices"][0]["message"]
    assert converted.signatures == []
    assert converted.message["content"] == [
        {"type": "thinking", "thinking": chat["reasoning_content"], "signature": ""},
        {"type": "text", "text": "2 + 2 = 4"},
    ]
    assert chat["reasoning_content"].startswith("**Calculating")


def test_thinking_and_text_signature_share_the_block() -> None:
    converted = convert(SIGNED_THINKING)
    thinking, text = converted.message["content"]
    assert thinking["thinking"] == "Thinking it over." and text["text"] == "The answer is 4."
    ((key, signature),) = unseal(thinking["signature"])
    assert key.startswith("text:") and signature == "sig-T"


def test_tool_turn() -> None:
    converted = convert(TOOL_TURN)
    calls = converted.completion["choices"][0]["message"]["tool_calls"]
    thinking, read, listing, now = converted.message["content"]
    assert thinking["thinking"] == "**Reading**\n\nThe file first, then the listing."
    assert unseal(thinking["signature"]) == [(call_key(calls[0]["id"]), "sig-A")]
    assert read == {"type": "tool_use", "id": calls[0]["id"], "name": "read_file", "input": {"path": "a.txt"}}
    assert listing["input"] == {"path": ".", "depth": 2, "all": True} and listing["id"] == calls[1]["id"]
    assert now["input"] == {} and now["name"] == "now"
    assert len({block["id"] for block in (read, listing, now)}) == 3
    assert converted.message["stop_reason"] == "tool_use"
    assert converted.message["usage"] == {
        "input_tokens": 60,
        "output_tokens": 27,
        "cache_read_input_tokens": 40,
        "cache_creation_input_tokens": 0,
    }


def test_a_reply_cut_by_max_tokens() -> None:
    message = convert(CUT_TEXT).message
    assert message["stop_reason"] == "max_tokens"
    assert message["content"] == [{"type": "text", "text": "The first half of a long answer that"}]


def test_max_tokens_spent_on_thinking() -> None:
    message = convert(body("aistudio-generate-max-tokens-2")).message
    assert message["stop_reason"] == "max_tokens"
    assert all(block["type"] == "thinking" for block in message["content"])


@pytest.mark.parametrize(
    "name",
    ["aistudio-generate-safety-1", "aistudio-generate-prompt-blocked-1", "vertex-generate-prompt-blocked-1"],
)
def test_refusals_are_a_text_block(name: str) -> None:
    converted = convert(body(name))
    refusal = converted.completion["choices"][0]["message"]["refusal"]
    assert refusal
    assert converted.message["stop_reason"] == "refusal"
    assert [block for block in converted.message["content"] if block["type"] != "thinking"] == [
        {"type": "text", "text": refusal}
    ]


def test_text_then_filter_is_two_text_blocks() -> None:
    converted = convert(TEXT_THEN_FILTER)
    refusal = converted.completion["choices"][0]["message"]["refusal"]
    assert converted.message["content"] == [
        {"type": "text", "text": "Here is the start"},
        {"type": "text", "text": refusal},
    ]
    assert converted.message["stop_reason"] == "refusal"


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("something_new", "end_turn"),
    ],
)
def test_stop_reasons(finish: str | None, expected: str) -> None:
    assert stop_reason(finish) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
        (418, "api_error"),
    ],
)
def test_error_types(status: int, expected: str) -> None:
    assert error_type(status) == expected
    assert error_body(status, "Nope.") == {"type": "error", "error": {"type": expected, "message": "Nope."}}


def test_usage_without_details() -> None:
    assert message_usage({"prompt_tokens": 3, "completion_tokens": 4}) == {
        "input_tokens": 3,
        "output_tokens": 4,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }
    assert message_usage({})["input_tokens"] == 0


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a":[1,2]}', {"a": [1, 2]}),
        ("", {}),
        ("{}", {}),
        ("[1]", {"arguments": [1]}),
        ("not json", {"arguments": "not json"}),
        ('{"n":123456789012345678901234567890}', {"n": 123456789012345678901234567890}),
    ],
)
def test_tool_input(arguments: str, expected: dict[str, Any]) -> None:
    assert tool_input(arguments) == expected


# Streamed.


def parse(raw: bytes) -> list[dict[str, Any]]:
    """The events of a stream's bytes, each `event: <type>\\ndata: <json>\\n\\n`."""
    assert b"[DONE]" not in raw
    assert raw.endswith(b"\n\n")
    events = []
    for block in raw[:-2].split(b"\n\n"):
        head, data = block.split(b"\n")
        assert head.startswith(b"event: ") and data.startswith(b"data: "), block[:80]
        event = orjson.loads(data[len(b"data: ") :])
        assert event["type"] == head[len(b"event: ") :].decode()
        events.append(event)
    return events


def check_events(events: list[dict[str, Any]]) -> None:
    """Each event of its documented shape; message_start and one ping first; each block started,
    filled with deltas of its kind and stopped before the next one starts, indexes 0, 1, ...; then
    message_delta and message_stop (or an error, last)."""
    for event in events:
        assert set(event) == EVENT_KEYS[event["type"]], event
    assert [event["type"] for event in events[:2]] == ["message_start", "ping"]
    check_message(events[0]["message"], streaming=True)
    failed = events[-1]["type"] == "error"
    body = events[2:-1] if failed else events[2:-2]
    if failed:
        assert set(events[-1]["error"]) == {"type", "message"}
        assert events[-1]["error"]["type"] in ERROR_TYPES
    else:
        assert [event["type"] for event in events[-2:]] == ["message_delta", "message_stop"]
        delta = events[-2]
        assert set(delta["delta"]) == {"stop_reason", "stop_sequence"}
        assert delta["delta"]["stop_reason"] in STOP_REASONS and delta["delta"]["stop_sequence"] is None
        check_usage(delta["usage"])
    open_kind: str | None = None
    count = 0
    for event in body:
        kind = event["type"]
        if kind == "content_block_start":
            assert open_kind is None and event["index"] == count
            block = event["content_block"]
            check_block(block)
            empty = {"thinking": ("", ""), "text": ("",), "tool_use": ({},)}[block["type"]]
            assert (
                tuple(v for k, v in block.items() if k in ("thinking", "signature", "text", "input")) == empty
            )
            open_kind = block["type"]
        elif kind == "content_block_delta":
            keys, block_kind = DELTA_KEYS[event["delta"]["type"]]
            assert set(event["delta"]) == keys and block_kind == open_kind and event["index"] == count
        elif kind == "content_block_stop":
            assert open_kind is not None and event["index"] == count
            open_kind = None
            count += 1
        else:
            raise AssertionError(f"{kind} between the blocks")
    if not failed:
        assert open_kind is None


def reassemble(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The message a client builds from the events (as the anthropic SDK's accumulator does)."""
    message: dict[str, Any] = copy.deepcopy(events[0]["message"])
    partial: dict[int, str] = {}
    for event in events[1:]:
        kind = event["type"]
        if kind == "content_block_start":
            message["content"].append(copy.deepcopy(event["content_block"]))
        elif kind == "content_block_delta":
            block = message["content"][event["index"]]
            delta = event["delta"]
            if delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop":
            if event["index"] in partial:
                message["content"][event["index"]]["input"] = orjson.loads(partial[event["index"]])
        elif kind == "message_delta":
            message.update(event["delta"])
            message["usage"].update(event["usage"])
    return message


def deltas(events: list[dict[str, Any]], kind: str, field: str) -> str:
    return "".join(
        event["delta"][field]
        for event in events
        if event["type"] == "content_block_delta" and event["delta"]["type"] == kind
    )


def types(events: list[dict[str, Any]]) -> list[str]:
    """The event types, a delta named by its delta's type."""
    return [
        event["delta"]["type"] if event["type"] == "content_block_delta" else event["type"]
        for event in events
    ]


class Streamed(NamedTuple):
    events: list[dict[str, Any]]
    translator: StreamTranslator


def run_stream(
    gemini_events: list[dict[str, Any]], *, signatures: list[tuple[str, str]] | None = None
) -> Streamed:
    """The stream of these Gemini events; the translator's signatures unless `signatures` given."""
    translator = StreamTranslator(model=MODEL, completion_id="c", created=CREATED, include_usage=True)
    stream = MessagesStream(message_id=MESSAGE_ID, model=ALIAS)
    raw = stream.start()
    for event in gemini_events:
        raw += stream.feed(translator.feed(event))
    raw += stream.feed(translator.finish())
    raw += stream.finish(translator.usage(), translator.signatures if signatures is None else signatures)
    events = parse(raw)
    check_events(events)
    check_message(reassemble(events))
    return Streamed(events, translator)


def test_stream_text_turn() -> None:
    gemini_events = recording("aistudio-stream-sse-text-1")["response_events"]
    streamed = run_stream(gemini_events)
    events = streamed.events
    assert streamed.translator.signatures == []
    assert types(events) == [
        "message_start",
        "ping",
        "content_block_start",
        "text_delta",
        "text_delta",
        "text_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    expected = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in gemini_events)
    assert deltas(events, "text_delta", "text") == expected
    assert events[2]["content_block"] == {"type": "text", "text": ""}
    assert events[0]["message"]["usage"]["input_tokens"] == 0
    final = events[-2]
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert final["usage"] == message_usage(streamed.translator.usage())
    assert final["usage"]["output_tokens"] > 0
    assert reassemble(events)["content"] == [{"type": "text", "text": expected}]


def test_start_carries_the_input_tokens_given() -> None:
    stream = MessagesStream(message_id=MESSAGE_ID, model=ALIAS)
    events = parse(stream.start(input_tokens=1234))
    assert events[0]["message"]["usage"] == {
        "input_tokens": 1234,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }
    assert events[1] == {"type": "ping"}


def test_stream_thinking_then_text_carries_the_signature_in_a_last_thinking_block() -> None:
    gemini_events = recording("aistudio-stream-sse-thinking-1")["response_events"]
    streamed = run_stream(gemini_events)
    events = streamed.events
    collapsed = [t for i, t in enumerate(types(events)) if i == 0 or types(events)[i - 1] != t]
    assert collapsed == [
        "message_start",
        "ping",
        "content_block_start",
        "thinking_delta",
        "content_block_stop",
        "content_block_start",
        "text_delta",
        "content_block_stop",
        "content_block_start",  # the thinking block of the signatures, known at the end
        "signature_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    parts = [p for e in gemini_events for p in e["candidates"][0]["content"]["parts"]]
    thoughts = "".join(p["text"] for p in parts if p.get("thought"))
    answer = "".join(p["text"] for p in parts if not p.get("thought"))
    assert deltas(events, "thinking_delta", "thinking") == thoughts
    assert deltas(events, "text_delta", "text") == answer
    summary, text, signed = reassemble(events)["content"]
    assert summary == {"type": "thinking", "thinking": thoughts, "signature": ""}
    assert text == {"type": "text", "text": answer}
    assert signed["type"] == "thinking" and signed["thinking"] == ""
    signatures = streamed.translator.signatures
    assert signatures and unseal(signed["signature"]) == signatures


def test_stream_signatures_go_into_the_thinking_block_still_open() -> None:
    signatures = [("call:call_1", "sig-1"), ("text:abc", "sig-2")]
    events = run_stream(as_events(THINKING_ONLY), signatures=signatures).events
    assert types(events) == [
        "message_start",
        "ping",
        "content_block_start",
        "thinking_delta",
        "signature_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    (block,) = reassemble(events)["content"]
    assert block["thinking"] == "Only thinking."
    assert unseal(block["signature"]) == signatures


def test_stream_tool_call_turn() -> None:
    gemini_events = recording("aistudio-stream-sse-function-call-1")["response_events"]
    streamed = run_stream(gemini_events)
    events = streamed.events
    assert types(events) == [
        "message_start",
        "ping",
        "content_block_start",
        "input_json_delta",
        "content_block_stop",
        "content_block_start",
        "signature_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[2]["content_block"]
    assert start["type"] == "tool_use" and start["name"] == "get_country" and start["input"] == {}
    assert events[3]["delta"]["partial_json"] == "{}"
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    call, signed = reassemble(events)["content"]
    assert call == {"type": "tool_use", "id": start["id"], "name": "get_country", "input": {}}
    signature = gemini_events[0]["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    assert unseal(signed["signature"]) == [(call_key(call["id"]), signature)]


def test_stream_input_json_is_the_arguments() -> None:
    translator = StreamTranslator(model=MODEL, completion_id="c", created=CREATED, include_usage=True)
    stream = MessagesStream(message_id=MESSAGE_ID, model=ALIAS)
    raw = stream.start()
    chunks = [chunk for event in as_events(TOOL_TURN) for chunk in translator.feed(event)]
    raw += stream.feed(chunks) + stream.feed(translator.finish())
    events = parse(raw + stream.finish(translator.usage(), translator.signatures))
    check_events(events)
    calls = [
        c for chunk in chunks for c in (chunk["choices"] or [{}])[0].get("delta", {}).get("tool_calls") or ()
    ]
    by_index: dict[int, str] = {}
    for event in events:
        if event["type"] == "content_block_delta" and event["delta"]["type"] == "input_json_delta":
            by_index[event["index"]] = by_index.get(event["index"], "") + event["delta"]["partial_json"]
    assert list(by_index.values()) == [call["function"]["arguments"] for call in calls]
    assert list(by_index) == [1, 2, 3]  # after the thinking block
    assert events[-2]["usage"]["cache_read_input_tokens"] == 40 and events[-2]["usage"]["input_tokens"] == 60


def test_a_call_is_closed_in_the_feed_that_brought_it() -> None:
    translator = StreamTranslator(model=MODEL, completion_id="c", created=CREATED, include_usage=True)
    stream = MessagesStream(message_id=MESSAGE_ID, model=ALIAS)
    stream.start()
    first = as_events(TOOL_TURN)[1]  # a call, alone in its upstream event
    events = parse(stream.feed(translator.feed(first)))
    assert types(events) == ["content_block_start", "input_json_delta", "content_block_stop"]
    assert events[0]["index"] == 0 and events[1]["delta"]["partial_json"] == '{"path":"a.txt"}'


def settled(message: dict[str, Any]) -> dict[str, Any]:
    """A streamed message with the signature-only thinking block that ends it moved where `to_message`
    puts the signatures: into the first thinking block, or a thinking block of its own first."""
    content = message["content"]
    if content and content[-1]["type"] == "thinking" and content[-1]["thinking"] == "":
        last = content.pop()
        if content and content[0]["type"] == "thinking":
            assert content[0]["signature"] == ""
            content[0]["signature"] = last["signature"]
        else:
            content.insert(0, last)
    return message


def normalized(message: dict[str, Any]) -> dict[str, Any]:
    """`message` with the call ids (the translators make them at random) numbered in order, in its
    tool_use blocks and in the keys of the signatures its thinking blocks carry (unsealed)."""
    ids = {
        block["id"]: f"call_{n}"
        for n, block in enumerate(b for b in message["content"] if b["type"] == "tool_use")
    }
    keys = {call_key(old): call_key(new) for old, new in ids.items()}
    content = []
    for block in message["content"]:
        if block["type"] == "tool_use":
            block = {**block, "id": ids[block["id"]]}
        elif block["type"] == "thinking":
            pairs = [(keys.get(key, key), value) for key, value in unseal(block["signature"])]
            block = {**block, "signature": pairs}
        content.append(block)
    return {**message, "content": content}


@pytest.mark.parametrize(
    "gemini",
    [
        pytest.param(TEXT, id="text"),
        pytest.param(TOOL_TURN, id="tools"),
        pytest.param(SIGNED_THINKING, id="signed-thinking"),
        pytest.param(CUT_TEXT, id="max-tokens"),
        pytest.param(THINKING_ONLY, id="thinking-only"),
        pytest.param(TEXT_THEN_FILTER, id="text-then-filter"),
        pytest.param(body("aistudio-generate-thinking-3"), id="thinking-3"),
        pytest.param(body("aistudio-generate-function-call-parallel-1"), id="parallel-calls"),
        pytest.param(body("aistudio-generate-gemini3-text-signature-1"), id="signed-text"),
        pytest.param(body("aistudio-generate-safety-1"), id="safety"),
        pytest.param(body("aistudio-generate-prompt-blocked-1"), id="blocked"),
        pytest.param(body("aistudio-generate-max-tokens-2"), id="max-tokens-thinking"),
    ],
)
@pytest.mark.parametrize("split", [False, True], ids=["one-event", "event-a-part"])
def test_streamed_and_whole_messages_agree(gemini: dict[str, Any], split: bool) -> None:
    """The same reply, streamed or not, makes the same message (the streamed one's signatures, known
    only at the end, in a thinking block of their own when the one that had the thinking is closed)."""
    translated = to_chat_completion(copy.deepcopy(gemini), model=MODEL, completion_id="c", created=CREATED)
    whole = to_message(
        translated.completion, message_id=MESSAGE_ID, model=ALIAS, signatures=translated.signatures
    )
    gemini_events = as_events(copy.deepcopy(gemini)) if split and gemini.get("candidates") else [gemini]
    streamed = run_stream(copy.deepcopy(gemini_events))
    reassembled = reassemble(streamed.events)
    assert normalized(settled(reassembled)) == normalized(whole)
    assert len(streamed.translator.signatures) == len(translated.signatures)
    # Without signatures, no moving needed: equal as they stand.
    bare = reassemble(run_stream(copy.deepcopy(gemini_events), signatures=[]).events)
    plain = to_message(translated.completion, message_id=MESSAGE_ID, model=ALIAS, signatures=[])
    assert normalized(bare) == normalized(plain)


def test_stream_blocked_prompt_is_a_refusal() -> None:
    gemini = body("aistudio-generate-prompt-blocked-1")
    events = run_stream([gemini]).events
    assert types(events) == [
        "message_start",
        "ping",
        "content_block_start",
        "text_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert "PROHIBITED_CONTENT" in events[3]["delta"]["text"]
    assert events[-2]["delta"]["stop_reason"] == "refusal"


def test_stream_text_then_filter_has_two_text_blocks() -> None:
    events = run_stream(as_events(TEXT_THEN_FILTER)).events
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [(e["index"], e["content_block"]["type"]) for e in starts] == [(0, "text"), (1, "text")]
    assert events[-2]["delta"]["stop_reason"] == "refusal"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("overloaded_error", "overloaded_error"),
        ("rate_limit_error", "rate_limit_error"),
        ("upstream", "api_error"),
    ],
)
def test_stream_failure_after_the_first_byte(given: str, shown: str) -> None:
    translator = StreamTranslator(model=MODEL, completion_id="c", created=CREATED, include_usage=True)
    stream = MessagesStream(message_id=MESSAGE_ID, model=ALIAS)
    raw = stream.start()
    for event in recording("aistudio-stream-sse-text-1")["response_events"][:2]:
        raw += stream.feed(translator.feed(event))
    raw += stream.fail(given, "Google stopped answering.")
    events = parse(raw)
    check_events(events)
    assert types(events) == [
        "message_start",
        "ping",
        "content_block_start",
        "text_delta",
        "text_delta",
        "error",
    ]
    error = {"type": "error", "error": {"type": shown, "message": "Google stopped answering."}}
    assert events[-1] == error and raw.endswith(b"\n\nevent: error\ndata: " + orjson.dumps(error) + b"\n\n")
    assert stream.finish(translator.usage(), []) == b"" and stream.fail(given, "again") == b""
    assert stream.feed(translator.finish()) == b""


def test_stream_failure_before_any_output() -> None:
    stream = MessagesStream(message_id=MESSAGE_ID, model=ALIAS)
    events = parse(stream.start() + stream.fail(error_type(529), "Busy."))
    check_events(events)
    assert types(events) == ["message_start", "ping", "error"]
    assert events[-1]["error"] == {"type": "overloaded_error", "message": "Busy."}


def test_chunks_without_output_make_no_events() -> None:
    translator = StreamTranslator(model=MODEL, completion_id="c", created=CREATED, include_usage=True)
    stream = MessagesStream(message_id=MESSAGE_ID, model=ALIAS)
    stream.start()
    role_only = translator.feed({"candidates": [{"content": {"parts": [{"text": ""}]}, "index": 0}]})
    assert role_only and stream.feed(role_only) == b""
    close = translator.feed({"candidates": [{"content": {"parts": []}, "finishReason": "STOP", "index": 0}]})
    assert close and stream.feed(close) == b""
    usage_chunk = translator.finish()
    assert usage_chunk[-1]["choices"] == [] and stream.feed(usage_chunk) == b""
    events = parse(stream.finish(translator.usage(), []))
    assert types(events) == ["message_delta", "message_stop"]
    assert events[0]["delta"]["stop_reason"] == "end_turn"
    assert stream.finish(translator.usage(), []) == b""
