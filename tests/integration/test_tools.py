"""Tool calling end to end, with thought signatures carried through the client."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import openai
import pytest

from gemini_cli_proxy.testing import FakeGoogle, Reply
from gemini_cli_proxy.translate.tools import SKIP_SIGNATURE

from conftest import Proxy
from support import assert_schema, recording

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "strict": True,
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f", None]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}


def calls_reply(
    *calls: tuple[str, dict[str, Any]], signature: str | None = "c2lnLW9uZQ==", text: str = ""
) -> Reply:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    for position, (name, args) in enumerate(calls):
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        if position == 0 and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return Reply.response(
        {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 10, "totalTokenCount": 30},
        }
    )


def dump(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.model_dump(mode="json", exclude_unset=True)
    return data


def test_declarations_and_tool_choice_reach_gemini(client: openai.OpenAI, fake: FakeGoogle) -> None:
    for choice, expected in [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
        ),
    ]:
        fake.reset()
        client.chat.completions.create(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER_TOOL, TIME_TOOL],
            tool_choice=choice,  # type: ignore[arg-type]
            parallel_tool_calls=False,
        )
        request = fake.generate_requests()[0].request
        assert request["toolConfig"] == {"functionCallingConfig": expected}
    declarations = request["tools"][0]["functionDeclarations"]
    schema = dict(WEATHER_TOOL["function"]["parameters"])
    del schema["$schema"]
    assert declarations[0] == {
        "name": "get_weather",
        "description": "Weather for a city",
        "parametersJsonSchema": schema,
    }
    assert declarations[1]["name"] == "get_time" and "parameters" not in declarations[1]


def test_recorded_function_call_becomes_tool_calls(client: openai.OpenAI, fake: FakeGoogle) -> None:
    body = recording("aistudio-generate-function-call-1")  # gemini-2.5-pro, one signed call
    fake.push(Reply.response(body["response_body"]))
    gemini_call = body["response_body"]["candidates"][0]["content"]["parts"][0]
    result = client.chat.completions.create(
        model="gemini-2.5-pro",
        messages=[{"role": "user", "content": "x"}],
        tools=[
            {"type": "function", "function": {"name": gemini_call["functionCall"]["name"], "parameters": {}}}
        ],
    )
    assert_schema(dump(result), "CreateChatCompletionResponse")
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == gemini_call["functionCall"]["name"]
    assert json.loads(call.function.arguments) == gemini_call["functionCall"].get("args", {})
    extra = (call.model_extra or {}).get("extra_content")
    assert extra == {"google": {"thought_signature": gemini_call["thoughtSignature"]}}


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-3-pro-preview"])
def test_three_turn_agent_with_parallel_calls_and_signatures(
    client: openai.OpenAI, fake: FakeGoogle, model: str
) -> None:
    tools: Any = [WEATHER_TOOL, TIME_TOOL]
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and time in Tokyo?"}]
    fake.push(
        calls_reply(
            ("get_weather", {"city": "Paris", "unit": "c"}),
            ("get_time", {"zone": "Asia/Tokyo"}),
            signature="Zmlyc3Qtc2ln",
        )
    )
    first = client.chat.completions.create(model=model, messages=messages, tools=tools)
    calls = first.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert len({c.id for c in calls}) == 2
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp": 12}'})
    messages.append({"role": "tool", "tool_call_id": calls[1].id, "name": "get_time", "content": "09:30"})
    fake.push(calls_reply(("get_weather", {"city": "Tokyo", "unit": "c"}), signature="c2Vjb25kLXNpZw=="))
    second = client.chat.completions.create(model=model, messages=messages, tools=tools)
    sent = fake.generate_requests()[1].request["contents"]
    assert sent[1]["role"] == "model"
    assert sent[1]["parts"][0]["thoughtSignature"] == "Zmlyc3Qtc2ln"
    assert "thoughtSignature" not in sent[1]["parts"][1]
    assert sent[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 12}}},
            {"functionResponse": {"name": "get_time", "response": {"output": "09:30"}}},
        ],
    }
    (call,) = second.choices[0].message.tool_calls or []
    messages.append(second.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
    fake.push(Reply.text("Paris 12C; Tokyo sunny; 09:30 there."))
    third = client.chat.completions.create(model=model, messages=messages, tools=tools)
    assert third.choices[0].finish_reason == "stop"
    assert third.choices[0].message.content == "Paris 12C; Tokyo sunny; 09:30 there."
    contents = fake.generate_requests()[2].request["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user", "model", "user"]
    assert contents[3]["parts"][0]["thoughtSignature"] == "c2Vjb25kLXNpZw=="


def test_signature_survives_in_extra_content_when_client_rewrites_ids(
    client: openai.OpenAI, fake: FakeGoogle
) -> None:
    fake.push(calls_reply(("get_weather", {"city": "Oslo", "unit": "c"}), signature="a2VlcC1tZQ=="))
    first = client.chat.completions.create(
        model="gemini-3-pro-preview", messages=[{"role": "user", "content": "Oslo?"}], tools=[WEATHER_TOOL]
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    replay = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_rewritten",
                "type": "function",
                "function": call.function.model_dump(),
                "extra_content": {"google": {"thought_signature": "a2VlcC1tZQ=="}},
            }
        ],
    }
    client.chat.completions.create(
        model="gemini-3-pro-preview",
        messages=[
            {"role": "user", "content": "Oslo?"},
            replay,
            {"role": "tool", "tool_call_id": "call_rewritten", "content": "cold"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert (
        fake.generate_requests()[1].request["contents"][1]["parts"][0]["thoughtSignature"] == "a2VlcC1tZQ=="
    )


def test_lost_signature_on_gemini3_sends_the_skip_value(client: openai.OpenAI, fake: FakeGoogle) -> None:
    messages: Any = [
        {"role": "user", "content": "Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_plain",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_plain", "content": "cold"},
    ]
    result = client.chat.completions.create(
        model="gemini-3-pro-preview", messages=messages, tools=[WEATHER_TOOL]
    )
    assert result.choices[0].message.content
    part = fake.generate_requests()[0].request["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == SKIP_SIGNATURE
    # Gemini 2.5 does not enforce signatures: nothing is invented for it.
    client.chat.completions.create(model="gemini-2.5-flash", messages=messages, tools=[WEATHER_TOOL])
    assert "thoughtSignature" not in fake.generate_requests()[1].request["contents"][1]["parts"][0]


def test_streamed_tool_calls(client: openai.OpenAI, fake: FakeGoogle) -> None:
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Checking. "}]}, "index": 0}]},
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {
                                "functionCall": {
                                    "name": "get_weather",
                                    "args": {"city": "Rome", "unit": "c"},
                                },
                                "thoughtSignature": "c2ln",
                            },
                            {"functionCall": {"name": "get_time", "args": {"zone": "Europe/Rome"}}},
                        ],
                    },
                    "index": 0,
                }
            ]
        },
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}
            ]
        },
    ]
    fake.push(Reply.stream(events))
    chunks = list(
        client.chat.completions.create(
            model="gemini-3-pro-preview",
            messages=[{"role": "user", "content": "Rome?"}],
            tools=[WEATHER_TOOL, TIME_TOOL],
            stream=True,
        )
    )
    for chunk in chunks:
        assert_schema(dump(chunk), "CreateChatCompletionStreamResponse")
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert [d.index for d in deltas] == [0, 1]
    assert all(d.id and d.type == "function" and d.function and d.function.name for d in deltas)
    assert [json.loads(d.function.arguments or "") for d in deltas if d.function] == [
        {"city": "Rome", "unit": "c"},
        {"zone": "Europe/Rome"},
    ]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Checking. "
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]
    assert deltas[0].id and ".sig.c2ln" in deltas[0].id and ".sig." not in (deltas[1].id or "")


def test_illegal_function_names_are_mapped_both_ways(client: openai.OpenAI, fake: FakeGoogle) -> None:
    odd = {"type": "function", "function": {"name": "9lives/search", "parameters": {"type": "object"}}}
    client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}], tools=[odd]
    )
    gemini_name = fake.generate_requests()[0].request["tools"][0]["functionDeclarations"][0]["name"]
    assert (
        gemini_name != "9lives/search"
        and gemini_name[0] in "_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    )
    fake.push(calls_reply((gemini_name, {}), signature=None))
    result = client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}], tools=[odd]
    )
    call = (result.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "9lives/search"
    history: Any = [
        {"role": "user", "content": "x"},
        result.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "found"},
    ]
    client.chat.completions.create(model="gemini-2.5-flash", messages=history, tools=[odd])
    contents = fake.generate_requests()[2].request["contents"]
    assert contents[1]["parts"][0]["functionCall"]["name"] == gemini_name
    assert contents[2]["parts"][0]["functionResponse"]["name"] == gemini_name


def test_legacy_functions_and_function_call(proxy: Proxy, fake: FakeGoogle) -> None:
    body = {
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": "x"}],
        "functions": [{"name": "lookup", "parameters": {"type": "object"}}],
        "function_call": {"name": "lookup"},
    }
    assert httpx.post(f"{proxy.url}/v1/chat/completions", json=body).status_code == 200
    request = fake.generate_requests()[0].request
    assert request["tools"][0]["functionDeclarations"][0]["name"] == "lookup"
    assert request["toolConfig"]["functionCallingConfig"] == {
        "mode": "ANY",
        "allowedFunctionNames": ["lookup"],
    }


@pytest.mark.parametrize(
    ("messages", "extra", "param"),
    [
        ([{"role": "tool", "tool_call_id": "nope", "content": "x"}], {}, "messages[0].tool_call_id"),
        ([{"role": "user", "content": "x"}], {"tool_choice": {"type": "function"}}, "tool_choice"),
        ([{"role": "user", "content": "x"}], {"tools": [{"type": "code_interpreter"}]}, "tools[0]"),
        (
            [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{oops"},
                        }
                    ],
                },
            ],
            {},
            "messages[1].tool_calls[0].function.arguments",
        ),
    ],
)
def test_bad_tool_input_is_400(
    proxy: Proxy, fake: FakeGoogle, messages: Any, extra: dict[str, Any], param: str
) -> None:
    body = {"model": "gemini-2.5-flash", "messages": messages, "tools": [WEATHER_TOOL], **extra}
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert fake.generate_requests() == []


def test_signatures_remembered_for_clients_that_strip_them(client: openai.OpenAI, fake: FakeGoogle) -> None:
    """A client that drops extra_content and sanitises ids still gets Gemini 3 multi-turn right."""
    fake.push(calls_reply(("get_weather", {"city": "Lima", "unit": "c"}), signature="cmVtZW1iZXJlZA=="))
    first = client.chat.completions.create(
        model="gemini-3-pro-preview", messages=[{"role": "user", "content": "Lima?"}], tools=[WEATHER_TOOL]
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    bare_id = call.id.split(".")[0]  # what an id sanitiser leaves
    replay: Any = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": bare_id, "type": "function", "function": call.function.model_dump()}],
    }
    history: Any = [
        {"role": "user", "content": "Lima?"},
        replay,
        {"role": "tool", "tool_call_id": bare_id, "content": "warm"},
    ]
    fake.push(
        Reply.response(
            {
                "candidates": [
                    {
                        "content": {
                            "role": "model",
                            "parts": [{"text": "Warm in Lima.", "thoughtSignature": "dGV4dA=="}],
                        },
                        "finishReason": "STOP",
                    }
                ]
            }
        )
    )
    second = client.chat.completions.create(
        model="gemini-3-pro-preview", messages=history, tools=[WEATHER_TOOL]
    )
    assert (
        fake.generate_requests()[1].request["contents"][1]["parts"][0]["thoughtSignature"]
        == "cmVtZW1iZXJlZA=="
    )
    # Gemini 3's signature on a text reply comes back on that text when the conversation goes on.
    history += [
        {"role": "assistant", "content": second.choices[0].message.content},
        {"role": "user", "content": "And?"},
    ]
    client.chat.completions.create(model="gemini-3-pro-preview", messages=history, tools=[WEATHER_TOOL])
    text_turn = fake.generate_requests()[2].request["contents"][3]
    assert text_turn == {
        "role": "model",
        "parts": [{"text": "Warm in Lima.", "thoughtSignature": "dGV4dA=="}],
    }


def test_streamed_text_signature_is_remembered(client: openai.OpenAI, fake: FakeGoogle) -> None:
    rec = recording("aistudio-stream-sse-function-call-1")  # Gemini 3: signature on the first event
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello "}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "there."}]}}]},
        rec["response_events"][-1],  # an empty text part, finishReason STOP
    ]
    events[-1] = json.loads(json.dumps(events[-1]))
    events[-1]["candidates"][0]["content"]["parts"][0]["thoughtSignature"] = "ZW5kLXNpZw=="
    fake.push(Reply.stream(events))
    chunks = list(
        client.chat.completions.create(
            model="gemini-3-pro-preview", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Hello there."
    client.chat.completions.create(
        model="gemini-3-pro-preview",
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": text},
            {"role": "user", "content": "again"},
        ],
    )
    assert (
        fake.generate_requests()[1].request["contents"][1]["parts"][-1]["thoughtSignature"] == "ZW5kLXNpZw=="
    )


def test_googles_call_ids_are_echoed_on_call_and_response(client: openai.OpenAI, fake: FakeGoogle) -> None:
    body = recording("aistudio-stream-sse-structured-function-call-1")
    call_event = next(
        e
        for e in body["response_events"]
        if any("functionCall" in p for p in e["candidates"][0]["content"]["parts"])
    )
    part = next(p for p in call_event["candidates"][0]["content"]["parts"] if "functionCall" in p)
    google_id = part["functionCall"]["id"]
    fake.push(Reply.response({"candidates": [{**call_event["candidates"][0], "finishReason": "STOP"}]}))
    tool = {
        "type": "function",
        "function": {"name": part["functionCall"]["name"], "parameters": {"type": "object"}},
    }
    first = client.chat.completions.create(
        model="gemini-3-flash-preview", messages=[{"role": "user", "content": "go"}], tools=[tool]
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    history: Any = [
        {"role": "user", "content": "go"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "done"},
    ]
    client.chat.completions.create(model="gemini-3-flash-preview", messages=history, tools=[tool])
    contents = fake.generate_requests()[1].request["contents"]
    assert contents[1]["parts"][0]["functionCall"]["id"] == google_id
    assert contents[1]["parts"][0]["thoughtSignature"] == part["thoughtSignature"]
    assert contents[2]["parts"][0]["functionResponse"]["id"] == google_id


def _post_raw(proxy: Proxy, body: str) -> httpx.Response:
    """Posts `body` as written: orjson (and json) cannot write some of the numbers under test."""
    return httpx.post(
        f"{proxy.url}/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
    )


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert bad == [], [r.getMessage() for r in bad]


HUGE = "18446744073709551616"  # 2**64: one more than orjson can write


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            '"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", '
            f'"properties": {{"x": {{"type": "integer", "maximum": {HUGE}}}}}}}}}}}]',
            "tools[0].function.parameters.properties.x.maximum",
        ),
        (
            f'"functions": [{{"name": "f", "parameters": {{"minimum": -{HUGE}{HUGE}}}}}]',
            "functions[0].parameters.minimum",
        ),
        (f'"max_tokens": {HUGE}', "max_tokens"),
        (
            '"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": '
            '{"type": "number", "maximum": 1e400}}}',
            "response_format.json_schema.schema.maximum",
        ),
    ],
)
@pytest.mark.parametrize("stream", ["false", "true"])
def test_numbers_google_cannot_be_sent_are_400_not_500(
    proxy: Proxy, fake: FakeGoogle, caplog: pytest.LogCaptureFixture, extra: str, param: str, stream: str
) -> None:
    body = (
        f'{{"model": "gemini-2.5-flash", "stream": {stream}, '
        f'"messages": [{{"role": "user", "content": "x"}}], {extra}}}'
    )
    response = _post_raw(proxy, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert fake.generate_requests() == []
    _no_errors_logged(caplog)


def _call_history(arguments: str, result: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": result},
    ]


DEEP_OBJECT = '{"a":' * 300 + "1" + "}" * 300  # orjson reads 1024 levels, writes only 255


@pytest.mark.parametrize("arguments", [DEEP_OBJECT, '{"a": ' + "[" * 300 + "]" * 300 + "}"])
def test_tool_call_arguments_nested_too_deep_are_400(
    proxy: Proxy, fake: FakeGoogle, caplog: pytest.LogCaptureFixture, arguments: str
) -> None:
    body = {"model": "gemini-2.5-flash", "messages": _call_history(arguments, "ok"), "tools": [WEATHER_TOOL]}
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "messages[1].tool_calls[0].function.arguments"
    assert "deeper than 128 levels" in error["message"]
    assert fake.generate_requests() == []
    _no_errors_logged(caplog)


@pytest.mark.parametrize("result", [DEEP_OBJECT, "[" * 300 + "]" * 300, '{"x": 1e400}', '{"x": NaN}'])
def test_tool_results_gemini_cannot_take_as_json_go_as_text(
    proxy: Proxy, fake: FakeGoogle, caplog: pytest.LogCaptureFixture, result: str
) -> None:
    body = {"model": "gemini-2.5-flash", "messages": _call_history("{}", result), "tools": [WEATHER_TOOL]}
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    (sent,) = fake.generate_requests()
    answer = sent.request["contents"][2]["parts"][0]["functionResponse"]["response"]
    assert answer == {"output": result}  # the exact text: nothing rounded or lost
    _no_errors_logged(caplog)


def test_integers_beyond_64_bits_in_tool_json_go_as_numbers(
    proxy: Proxy, fake: FakeGoogle, caplog: pytest.LogCaptureFixture
) -> None:
    """orjson reads them as floats: the double Google's Struct would have made of them anyway."""
    history = _call_history(f'{{"city": {HUGE}}}', f'{{"id": -{HUGE}}}')
    body = {"model": "gemini-2.5-flash", "messages": history, "tools": [WEATHER_TOOL]}
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    (sent,) = fake.generate_requests()
    contents = sent.request["contents"]
    assert contents[1]["parts"][0]["functionCall"]["args"] == {"city": float(2**64)}
    assert contents[2]["parts"][0]["functionResponse"]["response"] == {"id": -float(2**64)}
    _no_errors_logged(caplog)
