"""Chat objects (from the real translators, on recorded and hand-written Gemini replies) -> Responses API
objects and stream events, each checked against OpenAI's published schemas."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any, NamedTuple

import orjson
import pytest

from gemini_cli_proxy.translate.response import to_chat_completion
from gemini_cli_proxy.translate.responses_out import (
    ResponsesStream,
    custom_input,
    error_code,
    response_usage,
    to_response,
)
from gemini_cli_proxy.translate.responses_tools import ToolNames, ToolOrigin
from gemini_cli_proxy.translate.sealed_signatures import unseal
from gemini_cli_proxy.translate.signatures import call_key
from gemini_cli_proxy.translate.stream import StreamTranslator

from support import FIXTURES, assert_schema, recording

CREATED = 1_700_000_000
MODEL = "gemini-2.5-pro"
TOOLS: ToolNames = {
    "fs__read_file": ToolOrigin("function", "read_file", "fs"),
    "apply_patch": ToolOrigin("custom", "apply_patch"),
    "shell": ToolOrigin("function", "shell"),
}
OBJECT = {"type": "object", "properties": {"path": {"type": "string"}}}
ECHO: dict[str, Any] = {
    "model": MODEL,
    "instructions": "Be brief.",
    "tools": [
        {"type": "function", "name": "shell", "parameters": OBJECT, "strict": False},
        {"type": "custom", "name": "apply_patch", "description": "Edit files."},
        {
            "type": "namespace",
            "name": "fs",
            "description": "Files.",
            "tools": [{"type": "function", "name": "read_file", "parameters": {}}],
        },
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "temperature": 0.5,
    "max_output_tokens": 4096,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "metadata": {"run": "7"},
    "store": False,
}
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


# Gemini replies, written by hand where no recording has the shape.


def reply(
    parts: list[dict[str, Any]], finish: str = "STOP", usage: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage or {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
    }


PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"
TOOL_TURN = reply(
    [
        {"text": "**Reading**\n\nThe file first, then the patch.", "thought": True},
        {"functionCall": {"name": "fs__read_file", "args": {"path": "a.txt"}}, "thoughtSignature": "sig-A"},
        {"functionCall": {"name": "apply_patch", "args": {"input": PATCH}}},
        {"functionCall": {"name": "not_declared", "args": {"x": 1}}},
    ],
    usage={
        "promptTokenCount": 100,
        "cachedContentTokenCount": 40,
        "candidatesTokenCount": 20,
        "thoughtsTokenCount": 7,
        "totalTokenCount": 127,
    },
)
CUT_TEXT = reply([{"text": "The first half of a long"}, {"text": " answer that"}], finish="MAX_TOKENS")
THINKING_ONLY = reply([{"text": "Only thinking.", "thought": True}])


def as_events(whole: dict[str, Any]) -> list[dict[str, Any]]:
    """`whole` as a stream sends it: one part an event, the finish reason and usage on the last."""
    candidate = whole["candidates"][0]
    parts = candidate["content"]["parts"] or [{"text": ""}]
    events = [{"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}]} for part in parts]
    events[-1]["candidates"][0]["finishReason"] = candidate["finishReason"]
    events[-1]["usageMetadata"] = whole["usageMetadata"]
    return events


# Non-streamed.


class Converted(NamedTuple):
    response: dict[str, Any]
    completion: dict[str, Any]
    signatures: list[tuple[str, str]]


def convert(
    gemini: dict[str, Any], *, include_encrypted: bool = False, echo: dict[str, Any] | None = None
) -> Converted:
    translated = to_chat_completion(gemini, model=MODEL, completion_id="resp_1", created=CREATED)
    response = to_response(
        translated.completion,
        response_id="resp_1",
        created_at=CREATED,
        echo=ECHO if echo is None else echo,
        signatures=translated.signatures,
        include_encrypted=include_encrypted,
        tools=TOOLS,
    )
    assert_schema(response, "Response")
    return Converted(response, translated.completion, translated.signatures)


def body(name: str) -> dict[str, Any]:
    data: dict[str, Any] = recording(name)["response_body"]
    return data


def test_text_reply_is_one_message_with_usage_and_echo() -> None:
    gemini = body("aistudio-generate-gemini3-text-signature-1")
    response = convert(gemini).response
    text = gemini["candidates"][0]["content"]["parts"][0]["text"]
    assert [item["type"] for item in response["output"]] == ["message"]  # signed, but not asked for
    message = response["output"][0]
    assert message["id"].startswith("msg_") and message["status"] == "completed"
    assert message["content"] == [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    assert (response["id"], response["object"], response["created_at"], response["model"]) == (
        "resp_1",
        "response",
        CREATED,
        MODEL,
    )
    assert response["status"] == "completed" and response["incomplete_details"] is None
    assert response["error"] is None
    assert response["usage"] == {
        "input_tokens": 2,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 222,
        "output_tokens_details": {"reasoning_tokens": 213},
        "total_tokens": 224,
    }
    for name in ("instructions", "tool_choice", "parallel_tool_calls", "temperature", "max_output_tokens"):
        assert response[name] == ECHO[name], name
    assert response["reasoning"] == ECHO["reasoning"] and response["metadata"] == {"run": "7"}
    assert response["store"] is False and response["text"] == {"format": {"type": "text"}}


def test_signatures_ride_in_a_reasoning_item_when_asked() -> None:
    converted = convert(body("aistudio-generate-gemini3-text-signature-1"), include_encrypted=True)
    assert converted.signatures  # Gemini 3 signs its text reply
    reasoning, message = converted.response["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == []
    assert unseal(reasoning["encrypted_content"]) == converted.signatures
    assert message["type"] == "message"


def test_reasoning_item_comes_before_the_message() -> None:
    converted = convert(body("aistudio-generate-thinking-3"))
    chat = converted.completion["choices"][0]["message"]
    reasoning, message = converted.response["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": chat["reasoning_content"]}]
    assert "encrypted_content" not in reasoning
    assert message["content"][0]["text"] == chat["content"]


def test_asked_for_without_signatures_encrypted_content_is_null() -> None:
    reasoning, _ = convert(body("aistudio-generate-thinking-3"), include_encrypted=True).response["output"]
    assert reasoning["summary"] and reasoning["encrypted_content"] is None


def test_calls_are_named_back_as_their_tools() -> None:
    converted = convert(TOOL_TURN, include_encrypted=True)
    calls = converted.completion["choices"][0]["message"]["tool_calls"]
    reasoning, read, patch, other = converted.response["output"]
    assert reasoning["summary"][0]["text"] == "**Reading**\n\nThe file first, then the patch."
    assert unseal(reasoning["encrypted_content"]) == [(call_key(calls[0]["id"]), "sig-A")]
    assert read == {
        "id": read["id"],
        "type": "function_call",
        "status": "completed",
        "arguments": '{"path":"a.txt"}',
        "call_id": calls[0]["id"],
        "name": "read_file",
        "namespace": "fs",
    }
    assert read["id"].startswith("fc_")
    assert patch == {
        "id": patch["id"],
        "type": "custom_tool_call",
        "call_id": calls[1]["id"],
        "name": "apply_patch",
        "input": PATCH,
    }
    assert patch["id"].startswith("ctc_")
    assert other["type"] == "function_call" and other["name"] == "not_declared" and "namespace" not in other
    assert other["arguments"] == '{"x":1}' and other["call_id"] == calls[2]["id"]
    assert len({item["id"] for item in converted.response["output"]}) == 4
    assert converted.response["usage"] == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 0},
        "output_tokens": 27,
        "output_tokens_details": {"reasoning_tokens": 7},
        "total_tokens": 127,
    }


@pytest.mark.parametrize(
    ("name", "reason", "refused"),
    [
        ("aistudio-generate-max-tokens-2", "max_output_tokens", False),
        ("aistudio-generate-safety-1", "content_filter", True),
        ("aistudio-generate-prompt-blocked-1", "content_filter", True),
        ("vertex-generate-prompt-blocked-1", "content_filter", True),
    ],
)
def test_incomplete_reasons(name: str, reason: str, refused: bool) -> None:
    converted = convert(body(name))
    response = converted.response
    assert response["status"] == "incomplete" and response["incomplete_details"] == {"reason": reason}
    if refused:
        (message,) = response["output"]
        refusal = converted.completion["choices"][0]["message"]["refusal"]
        assert message["status"] == "incomplete"
        assert message["content"] == [{"type": "refusal", "refusal": refusal}]
    else:
        assert response["output"] == []  # the budget went on thinking: nothing to show


def test_a_message_cut_by_max_tokens_is_incomplete() -> None:
    response = convert(CUT_TEXT).response
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    (message,) = response["output"]
    assert message["status"] == "incomplete"
    assert message["content"][0]["text"] == "The first half of a long answer that"


def test_echo_defaults_what_the_schema_requires() -> None:
    response = convert(body("aistudio-generate-thinking-3"), echo={}).response
    assert response["model"] == MODEL
    unset = ("instructions", "temperature", "top_p", "max_output_tokens", "previous_response_id", "reasoning")
    assert [response[name] for name in unset] == [None] * len(unset)
    assert response["tools"] == [] and response["tool_choice"] == "auto"
    assert response["parallel_tool_calls"] is True and response["metadata"] == {}
    assert response["text"] == {"format": {"type": "text"}} and "store" not in response


def test_echo_completes_function_tools_and_cannot_replace_own_fields() -> None:
    echo = {
        **ECHO,
        "tools": [{"type": "function", "name": "shell"}],
        "text": {"verbosity": "low"},
        "id": "resp_other",
        "model": "alias",
        "status": "queued",
        "output": [1],
        "usage": None,
        "completed_at": 5,
        "output_text": "made up",
        "user": "someone",
    }
    response = convert(body("aistudio-generate-thinking-3"), echo=echo).response
    assert response["tools"] == [{"type": "function", "name": "shell", "strict": None, "parameters": None}]
    assert echo["tools"] == [{"type": "function", "name": "shell"}]  # the request's own is left as it was
    assert response["text"] == {"format": {"type": "text"}, "verbosity": "low"}
    assert (response["id"], response["model"], response["status"]) == ("resp_1", MODEL, "completed")
    assert response["output"][0]["type"] == "reasoning" and response["usage"]["total_tokens"] == 32
    assert response["user"] == "someone" and "completed_at" not in response and "output_text" not in response
    for event in parse(new_stream(echo=echo).start()):
        assert_schema(event, "ResponseStreamEvent")
        started = event["response"]
        assert (started["id"], started["model"], started["status"]) == ("resp_1", MODEL, "in_progress")
        assert started["output"] == [] and not {"usage", "completed_at", "output_text"} & started.keys()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"input":"x = 1\\n"}', "x = 1\n"),
        ("{}", ""),
        ('{"input":{"a":[1,2]}}', '{"a":[1,2]}'),
        ('{"other":1}', '{"other":1}'),
        ("not json", "not json"),
        ("[1]", "[1]"),
    ],
)
def test_custom_input(arguments: str, expected: str) -> None:
    assert custom_input(arguments) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("rate_limit_exceeded", "rate_limit_exceeded"),
        ("insufficient_quota", "rate_limit_exceeded"),
        ("server_error", "server_error"),
        ("upstream_error", "server_error"),
        ("upstream_timeout", "server_error"),
    ],
)
def test_error_codes(code: str, expected: str) -> None:
    assert error_code(code) == expected


def test_usage_without_details() -> None:
    assert response_usage({"prompt_tokens": 3, "completion_tokens": 4}) == {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 7,
    }


# Streamed.


@cache
def event_roots() -> dict[str, str]:
    """Each stream event type -> the name of its own schema (for errors more precise than the union's)."""
    defs = orjson.loads((FIXTURES / "openai_schemas.json").read_bytes())["$defs"]
    names = [ref["$ref"].rsplit("/", 1)[1] for ref in defs["ResponseStreamEvent"]["anyOf"]]
    return {defs[name]["properties"]["type"]["enum"][0]: name for name in names}


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
    """Schema-valid, numbered from 0, created/in_progress first, one terminal event last, and each
    item added, filled and done before the next one is added, every event naming the open item."""
    for event in events:
        assert_schema(event, event_roots()[event["type"]])
        assert_schema(event, "ResponseStreamEvent")
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert [event["type"] for event in events[:2]] == ["response.created", "response.in_progress"]
    for event in events[:2]:
        assert event["response"]["status"] == "in_progress" and event["response"]["output"] == []
        assert "usage" not in event["response"]
    assert events[-1]["type"] in TERMINAL
    assert not any(event["type"] in TERMINAL for event in events[:-1])
    final = events[-1]["response"]
    open_item: dict[str, Any] | None = None
    done: list[dict[str, Any]] = []
    for event in events[2:-1]:
        kind = event["type"]
        if kind == "response.output_item.added":
            assert open_item is None and event["output_index"] == len(done)
            open_item = event["item"]
        elif kind == "response.output_item.done":
            assert open_item is not None and event["item"]["id"] == open_item["id"]
            assert event["output_index"] == len(done)
            done.append(event["item"])
            open_item = None
        else:
            assert open_item is not None, kind
            assert event["item_id"] == open_item["id"] and event["output_index"] == len(done), kind
    if events[-1]["type"] != "response.failed":
        assert open_item is None
        assert final["output"] == done


def part_text(events: list[dict[str, Any]], kind: str, field: str = "delta") -> str:
    return "".join(event[field] for event in events if event["type"] == kind)


def collapsed(events: list[dict[str, Any]]) -> list[str]:
    """The event types, each run of one type as one."""
    types: list[str] = []
    for event in events:
        if not types or types[-1] != event["type"]:
            types.append(event["type"])
    return types


class Streamed(NamedTuple):
    events: list[dict[str, Any]]
    stream: ResponsesStream
    translator: StreamTranslator


def new_stream(include_encrypted: bool = False, echo: dict[str, Any] | None = None) -> ResponsesStream:
    return ResponsesStream(
        response_id="resp_1",
        created_at=CREATED,
        model=MODEL,
        echo=ECHO if echo is None else echo,
        include_encrypted=include_encrypted,
        tools=TOOLS,
    )


def run_stream(gemini_events: list[dict[str, Any]], *, include_encrypted: bool = False) -> Streamed:
    translator = StreamTranslator(model=MODEL, completion_id="resp_1", created=CREATED, include_usage=True)
    stream = new_stream(include_encrypted)
    raw = stream.start()
    for event in gemini_events:
        raw += stream.feed(translator.feed(event))
    raw += stream.feed(translator.finish())
    raw += stream.finish(translator.usage(), translator.signatures)
    events = parse(raw)
    check_events(events)
    assert stream.response() == events[-1]["response"]
    return Streamed(events, stream, translator)


def test_stream_text_turn() -> None:
    gemini_events = recording("aistudio-stream-sse-text-1")["response_events"]
    events = run_stream(gemini_events).events
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    expected = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in gemini_events)
    assert part_text(events, "response.output_text.delta") == expected
    assert events[7]["text"] == expected
    assert events[3]["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == expected
    assert final["output"][0]["status"] == "completed" and final["output"][0]["id"].startswith("msg_")
    assert final["usage"] == response_usage(usage_of(gemini_events))


def usage_of(gemini_events: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat usage of a Gemini stream."""
    translator = StreamTranslator(model=MODEL, completion_id="c", created=CREATED, include_usage=True)
    for event in gemini_events:
        translator.feed(event)
    return translator.usage()


def test_stream_reasoning_then_text_carries_the_text_signature_last() -> None:
    gemini_events = recording("aistudio-stream-sse-thinking-1")["response_events"]
    streamed = run_stream(gemini_events, include_encrypted=True)
    events = streamed.events
    assert collapsed(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",  # the reasoning item of the signatures, known at the end
        "response.output_item.done",
        "response.completed",
    ]
    parts = [p for e in gemini_events for p in e["candidates"][0]["content"]["parts"]]
    thoughts = "".join(p["text"] for p in parts if p.get("thought"))
    answer = "".join(p["text"] for p in parts if not p.get("thought"))
    assert part_text(events, "response.reasoning_summary_text.delta") == thoughts
    assert part_text(events, "response.reasoning_summary_text.done", "text") == thoughts
    assert part_text(events, "response.output_text.delta") == answer
    summary, message, signed = events[-1]["response"]["output"]
    assert summary["summary"] == [{"type": "summary_text", "text": thoughts}]
    assert summary["encrypted_content"] is None  # closed before the signatures were known
    assert message["content"][0]["text"] == answer
    assert signed["type"] == "reasoning" and signed["summary"] == []
    signatures = streamed.translator.signatures
    assert signatures and unseal(signed["encrypted_content"]) == signatures


def test_stream_signatures_go_into_the_reasoning_item_still_open() -> None:
    translator = StreamTranslator(model=MODEL, completion_id="c", created=CREATED, include_usage=True)
    stream = new_stream(include_encrypted=True)
    raw = stream.start() + b"".join(stream.feed(translator.feed(e)) for e in as_events(THINKING_ONLY))
    raw += stream.feed(translator.finish())
    signatures = [("call:call_1", "sig-1"), ("text:abc", "sig-2")]
    events = parse(raw + stream.finish(translator.usage(), signatures))
    check_events(events)
    (item,) = events[-1]["response"]["output"]
    assert item["summary"] == [{"type": "summary_text", "text": "Only thinking."}]
    assert unseal(item["encrypted_content"]) == signatures


def test_stream_signatures_not_asked_for_stay_out() -> None:
    gemini_events = recording("aistudio-stream-sse-thinking-1")["response_events"]
    streamed = run_stream(gemini_events)
    assert streamed.translator.signatures
    output = streamed.events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["reasoning", "message"]
    assert "encrypted_content" not in output[0]


def test_stream_tool_call_turn() -> None:
    gemini_events = recording("aistudio-stream-sse-function-call-1")["response_events"]
    streamed = run_stream(gemini_events, include_encrypted=True)
    events = streamed.events
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    call, signed = events[-1]["response"]["output"]
    assert events[2]["item"]["status"] == "in_progress" and events[2]["item"]["arguments"] == ""
    assert call["type"] == "function_call" and call["name"] == "get_country" and call["status"] == "completed"
    assert events[3]["delta"] == events[4]["arguments"] == call["arguments"] == "{}"
    assert events[4]["name"] == "get_country"
    signature = gemini_events[0]["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    assert unseal(signed["encrypted_content"]) == [(call_key(call["call_id"]), signature)]


def test_stream_namespace_and_custom_tools() -> None:
    streamed = run_stream(as_events(TOOL_TURN))
    events = streamed.events
    reasoning, read, patch, other = events[-1]["response"]["output"]
    assert reasoning["type"] == "reasoning"
    assert (read["type"], read["name"], read["namespace"]) == ("function_call", "read_file", "fs")
    assert (patch["type"], patch["name"], patch["input"]) == ("custom_tool_call", "apply_patch", PATCH)
    assert (other["type"], other["name"]) == ("function_call", "not_declared") and "namespace" not in other
    patch_events = [e for e in events if e.get("item_id") == patch["id"]]
    assert [e["type"] for e in patch_events] == [
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
    ]
    assert patch_events[0]["delta"] == patch_events[1]["input"] == PATCH
    for item in (read, other):
        deltas = [e for e in events if e.get("item_id") == item["id"]]
        assert "".join(e["delta"] for e in deltas if e["type"].endswith(".delta")) == item["arguments"]
        assert deltas[-1]["type"] == "response.function_call_arguments.done"
        assert deltas[-1]["arguments"] == item["arguments"] and deltas[-1]["name"] == item["name"]
    assert read["arguments"] == '{"path":"a.txt"}' and other["arguments"] == '{"x":1}'
    assert events[-1]["response"]["usage"]["input_tokens_details"]["cached_tokens"] == 40


def test_a_call_is_done_in_the_feed_that_brought_it() -> None:
    translator = StreamTranslator(model=MODEL, completion_id="c", created=CREATED, include_usage=True)
    stream = new_stream()
    start = parse(stream.start())
    first = as_events(TOOL_TURN)[1]  # the namespaced call, alone in its upstream event
    events = parse(stream.feed(translator.feed(first)))
    assert [e["sequence_number"] for e in events] == list(range(len(start), len(start) + len(events)))
    assert [e["type"] for e in events] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]


def strip_ids(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items without their random ids (the translators make call ids at random too)."""
    return [{k: v for k, v in item.items() if k not in ("id", "call_id")} for item in output]


@pytest.mark.parametrize(
    "gemini",
    [
        pytest.param(TOOL_TURN, id="tools"),
        pytest.param(CUT_TEXT, id="max-tokens"),
        pytest.param(THINKING_ONLY, id="thinking-only"),
        pytest.param(body("aistudio-generate-thinking-3"), id="thinking-3"),
        pytest.param(body("aistudio-generate-function-call-parallel-1"), id="parallel-calls"),
        pytest.param(body("aistudio-generate-gemini3-text-signature-1"), id="signed-text"),
        pytest.param(body("aistudio-generate-safety-1"), id="safety"),
        pytest.param(body("aistudio-generate-prompt-blocked-1"), id="blocked"),
        pytest.param(body("aistudio-generate-max-tokens-2"), id="max-tokens-thinking"),
    ],
)
def test_streamed_and_whole_responses_agree(gemini: dict[str, Any]) -> None:
    """The same reply, streamed (one event, as the whole reply is) or not, makes the same Response."""
    whole = convert(copy.deepcopy(gemini)).response
    streamed = run_stream([copy.deepcopy(gemini)]).events[-1]["response"]
    assert strip_ids(streamed["output"]) == strip_ids(whole["output"])
    for name in ("status", "incomplete_details", "usage", "tools", "instructions", "text", "metadata"):
        assert streamed[name] == whole[name], name


def test_stream_cut_by_max_tokens_is_incomplete() -> None:
    events = run_stream(as_events(CUT_TEXT)).events
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["status"] == "incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["output"][0]["status"] == "incomplete"
    assert part_text(events, "response.output_text.delta") == "The first half of a long answer that"


def test_stream_blocked_prompt_is_a_refusal() -> None:
    gemini = body("aistudio-generate-prompt-blocked-1")
    events = run_stream([gemini]).events
    assert [event["type"] for event in events[2:]] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert events[3]["part"] == {"type": "refusal", "refusal": ""}
    refusal = events[5]["refusal"]
    assert refusal == events[4]["delta"] and "PROHIBITED_CONTENT" in refusal
    final = events[-1]["response"]
    assert final["incomplete_details"] == {"reason": "content_filter"}
    assert final["output"][0]["content"] == [{"type": "refusal", "refusal": refusal}]


def test_stream_text_then_filter_has_two_parts() -> None:
    gemini = reply([{"text": "Here is the start"}], finish="SAFETY")
    events = run_stream(as_events(gemini)).events
    (message,) = events[-1]["response"]["output"]
    assert [part["type"] for part in message["content"]] == ["output_text", "refusal"]
    indexes = [e["content_index"] for e in events if e["type"] == "response.content_part.added"]
    assert indexes == [0, 1]
    assert events[-1]["type"] == "response.incomplete" and message["status"] == "incomplete"


@pytest.mark.parametrize(
    ("code", "shown"),
    [("upstream_error", "server_error"), ("rate_limit_exceeded", "rate_limit_exceeded")],
)
def test_stream_failure_after_the_first_byte(code: str, shown: str) -> None:
    translator = StreamTranslator(model=MODEL, completion_id="c", created=CREATED, include_usage=True)
    stream = new_stream()
    raw = stream.start()
    for event in recording("aistudio-stream-sse-text-1")["response_events"][:2]:
        raw += stream.feed(translator.feed(event))
    raw += stream.fail(code, "Google stopped answering.")
    events = parse(raw)
    check_events(events)
    assert collapsed(events)[-3:] == [
        "response.content_part.added",
        "response.output_text.delta",
        "response.failed",
    ]
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": shown, "message": "Google stopped answering."}
    (message,) = failed["output"]
    assert message["status"] == "incomplete" and message["content"][0]["text"] == "The capital of France"
    assert "usage" not in failed
    assert stream.response() == failed
    assert stream.finish(translator.usage(), []) == b"" and stream.fail(code, "again") == b""


def test_stream_failure_before_any_output() -> None:
    stream = new_stream()
    events = parse(stream.start() + stream.fail("upstream_timeout", "No answer."))
    check_events(events)
    assert [e["sequence_number"] for e in events] == [0, 1, 2]
    failed = events[-1]["response"]
    assert failed["output"] == [] and failed["error"]["code"] == "server_error"


def test_chunks_without_output_make_no_events() -> None:
    translator = StreamTranslator(model=MODEL, completion_id="c", created=CREATED, include_usage=True)
    stream = new_stream()
    stream.start()
    gemini = recording("aistudio-stream-sse-function-call-1")["response_events"][1]  # an empty text part
    role_only = translator.feed({"candidates": [{"content": {"parts": [{"text": ""}]}, "index": 0}]})
    assert role_only and stream.feed(role_only) == b""
    assert stream.feed(translator.feed(gemini)) == b""  # the close chunk: a finish reason
    usage_chunk = translator.finish()
    assert usage_chunk[-1]["choices"] == [] and stream.feed(usage_chunk) == b""
    events = parse(stream.finish(translator.usage(), []))
    assert [e["type"] for e in events] == ["response.completed"] and events[0]["sequence_number"] == 2
    assert events[0]["response"]["output"] == []
