"""OpenAI request -> Gemini request: roles, system instruction, parameters, refusals."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gemini_cli_proxy.catalog import Catalog
from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.testing.fake_validation import validate_generate_request
from gemini_cli_proxy.translate.media import InlineData
from gemini_cli_proxy.translate.request import to_gemini_request
from gemini_cli_proxy.wire.openai import parse_chat_request

CATALOG = Catalog.with_extras(["gemini-3-flash-preview"])


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "gemini-2.5-flash")
    model = CATALOG.get(body["model"])
    assert model is not None
    return to_gemini_request(parse_chat_request(orjson.dumps(body)), model)[0]


def refused(**body: Any) -> ProxyError:
    with pytest.raises(ProxyError) as caught:
        translate(**body)
    assert caught.value.status == 400
    return caught.value


def test_system_messages_never_become_turns() -> None:
    request = translate(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "system", "content": "late system"},
            {"role": "assistant", "content": "b"},
        ]
    )
    assert request["systemInstruction"] == {"parts": [{"text": "late system"}]}
    assert [c["role"] for c in request["contents"]] == ["user", "model"]


def test_roles_are_only_user_and_model_and_same_roles_merge() -> None:
    request = translate(
        messages=[
            {"role": "user", "content": "1"},
            {"role": "user", "content": "2"},
            {"role": "assistant", "content": [{"type": "text", "text": "3"}]},
            {"role": "assistant", "content": None},
            {"role": "assistant", "content": "4"},
        ]
    )
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "1"}, {"text": "2"}]},
        {"role": "model", "parts": [{"text": "3"}, {"text": "4"}]},
    ]


def test_empty_texts_are_dropped_not_sent() -> None:
    request = translate(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}])
    assert request["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]


def test_only_system_messages_become_the_user_turn() -> None:
    request = translate(messages=[{"role": "system", "content": "x"}])
    assert request["contents"] == [{"role": "user", "parts": [{"text": "x"}]}]
    assert refused(messages=[{"role": "user", "content": ""}]).param == "messages"


def test_no_generation_config_when_nothing_set() -> None:
    assert "generationConfig" not in translate(
        model="gemini-2.0-flash", messages=[{"role": "user", "content": "x"}]
    )


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    config = translate(messages=[{"role": "user", "content": "x"}], max_tokens=5, max_completion_tokens=9)
    assert config["generationConfig"]["maxOutputTokens"] == 9


def test_n_of_one_sends_no_candidate_count() -> None:
    config = translate(messages=[{"role": "user", "content": "x"}], n=1)["generationConfig"]
    assert config == {"thinkingConfig": {"includeThoughts": True}}


def test_more_than_four_stop_sequences_is_refused() -> None:
    error = refused(messages=[{"role": "user", "content": "x"}], stop=["a", "b", "c", "d", "e"])
    assert error.param == "stop"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"model": "gemini-3-pro-preview", "logprobs": True}, "logprobs"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"web_search_options": {}}, "web_search_options"),
    ],
)
def test_parameters_gemini_cannot_honour_are_refused_by_name(extra: dict[str, Any], param: str) -> None:
    error = refused(messages=[{"role": "user", "content": "x"}], **extra)
    assert error.param == param and error.code == "unsupported_parameter"


def test_media_parts_become_inline_data_and_unsupported_ones_are_refused_by_position() -> None:
    request = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "see"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                    },
                ],
            }
        ]
    )
    assert request["contents"] == [
        {
            "role": "user",
            "parts": [{"text": "see"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}],
        }
    ]
    error = refused(
        messages=[
            {"role": "user", "content": "first"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "read"},
                    {"type": "file", "file": {"file_id": "file-abc123"}},
                ],
            },
        ]
    )
    assert error.param == "messages[1].content[1].file.file_id"
    assert error.code == "unsupported_parameter"


def test_fetched_image_urls_are_taken_from_the_media_map() -> None:
    body = {
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}]}
        ],
    }
    model = CATALOG.get("gemini-2.5-flash")
    assert model is not None
    media = {"https://x.test/a.jpg": InlineData("image/jpeg", "/9j/4A==")}
    request, _ = to_gemini_request(parse_chat_request(orjson.dumps(body)), model, media=media)
    assert request["contents"][0]["parts"] == [{"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4A=="}}]


def test_text_response_format_and_auto_tool_choice_are_fine() -> None:
    """Both are Gemini's defaults: accepted, and sent as nothing (no responseMimeType, no toolConfig),
    where a JSON format and a tool choice with tools are sent."""
    messages = [{"role": "user", "content": "x"}]
    plain = translate(messages=messages)
    assert translate(messages=messages, response_format={"type": "text"}, tool_choice="auto") == plain
    assert "responseMimeType" not in plain["generationConfig"] and "toolConfig" not in plain
    as_json = translate(messages=messages, response_format={"type": "json_object"})
    assert as_json["generationConfig"]["responseMimeType"] == "application/json"
    with_tools = translate(messages=messages, tools=TOOLS, tool_choice="auto")
    assert with_tools["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


@pytest.mark.parametrize("seed", [2**63 - 1, -(2**63), 2**31, -(2**31), 2**31 - 1, 7, -7])
def test_any_openai_seed_is_folded_into_geminis_int32(seed: int) -> None:
    config = translate(messages=[{"role": "user", "content": "x"}], seed=seed)["generationConfig"]
    assert -(2**31) <= config["seed"] < 2**31
    if -(2**31) < seed < 2**31:
        assert config["seed"] == seed  # a seed Gemini can take goes as it is
    # The same seed folds the same way every time: runs stay reproducible.
    again = translate(messages=[{"role": "user", "content": "y"}], seed=seed)["generationConfig"]
    assert again["seed"] == config["seed"]


def test_tool_call_arguments_too_deep_for_gemini_are_refused_and_results_go_as_text() -> None:
    deep = '{"a":' * 200 + "1" + "}" * 200

    def history(arguments: str) -> list[dict[str, Any]]:
        call = {"id": "a", "type": "function", "function": {"name": "f", "arguments": arguments}}
        return [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "a", "content": deep},
        ]

    tools = [{"type": "function", "function": {"name": "f"}}]
    error = refused(messages=history(deep), tools=tools)
    assert error.param == "messages[1].tool_calls[0].function.arguments"
    sent = orjson.loads(orjson.dumps(translate(messages=history("{}"), tools=tools)))
    assert sent["contents"][2]["parts"][0]["functionResponse"]["response"] == {"output": deep}


def _call(call_id: str, name: str = "f") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


def _answer(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "ok"}


USER = {"role": "user", "content": "x"}
TOOLS = [{"type": "function", "function": {"name": "f"}}]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        # One of two calls answered, then the user speaks: Google counts 1 answer for 2 calls.
        (
            [USER, {"role": "assistant", "tool_calls": [_call("a"), _call("b")]}, _answer("a"), USER],
            "messages[1].tool_calls[1]",
        ),
        ([USER, {"role": "assistant", "tool_calls": [_call("a")]}, USER], "messages[1].tool_calls[0]"),
        (
            [USER, {"role": "assistant", "tool_calls": [_call("a")]}, _answer("a"), _answer("a")],
            "messages[3].tool_call_id",
        ),
        # An answer to an older turn's call, slipped into a later turn.
        (
            [
                USER,
                {"role": "assistant", "tool_calls": [_call("a")]},
                _answer("a"),
                {"role": "assistant", "tool_calls": [_call("b")]},
                _answer("b"),
                _answer("a"),
            ],
            "messages[5].tool_call_id",
        ),
        (
            [
                USER,
                {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
                {"role": "user", "content": "no answer"},
            ],
            "messages[1].function_call",
        ),
    ],
)
def test_tool_calls_need_exactly_one_answer_each_before_the_next_turn(
    messages: list[dict[str, Any]], param: str
) -> None:
    """What Google refuses with a 400 that names nothing, refused first with the call or answer named."""
    error = refused(messages=messages, tools=TOOLS)
    assert (error.param, error.code) == (param, "invalid_value")
    assert param in error.message


@pytest.mark.parametrize(
    "messages",
    [
        [
            USER,
            {"role": "assistant", "tool_calls": [_call("a"), _call("b")]},
            _answer("b"),
            _answer("a"),
            USER,
        ],
        [USER, {"role": "assistant", "tool_calls": [_call("a")]}],  # the last turn: nothing answers yet
        # Calls of consecutive assistant messages form one turn, answered together.
        [
            USER,
            {"role": "assistant", "tool_calls": [_call("a")]},
            {"role": "assistant", "content": "and", "tool_calls": [_call("b")]},
            _answer("a"),
            _answer("b"),
        ],
        # An answer that follows no calls is Google's to judge, as before.
        [USER, {"role": "tool", "tool_call_id": "zz", "name": "f", "content": "ok"}],
    ],
)
def test_well_answered_tool_calls_pass(messages: list[dict[str, Any]]) -> None:
    sent = translate(messages=messages, tools=TOOLS)
    assert validate_generate_request(sent, model="gemini-2.5-flash") is None  # nor does Google refuse it


@pytest.mark.parametrize(
    ("tools", "functions", "param"),
    [
        (
            [{"type": "function", "function": {"name": "f", "parameters": "object"}}],
            None,
            "tools[0].function.parameters",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": [{"type": "object"}]}}],
            None,
            "tools[0].function.parameters",
        ),
        (
            [{"type": "function", "function": {"name": "f", "description": 5}}],
            None,
            "tools[0].function.description",
        ),
        (None, [{"name": "f", "parameters": True}], "functions[0].parameters"),
        (None, [{"name": "f", "description": ["d"]}], "functions[0].description"),
    ],
)
def test_tool_fields_of_the_wrong_type_are_refused_not_dropped(
    tools: Any, functions: Any, param: str
) -> None:
    """A schema silently dropped would let the model call the tool with arguments of its own making."""
    extra = {"tools": tools} if tools is not None else {"functions": functions}
    error = refused(messages=[{"role": "user", "content": "x"}], **extra)
    assert (error.param, error.code) == (param, "invalid_value")


def test_null_tool_fields_count_as_absent() -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": None, "parameters": None}}]
    sent = translate(messages=[{"role": "user", "content": "x"}], tools=tools)
    assert sent["tools"] == [{"functionDeclarations": [{"name": "f"}]}]


def test_a_legacy_function_without_a_name_is_named_where_it_is() -> None:
    # The legacy list holds the functions themselves: no `.function` in the path.
    error = refused(messages=[{"role": "user", "content": "x"}], functions=[{"parameters": {}}])
    assert error.param == "functions[0].name"
    error = refused(messages=[{"role": "user", "content": "x"}], tools=[{"type": "function", "function": {}}])
    assert error.param == "tools[0].function.name"


def test_legacy_function_call_arguments_are_named_where_they_are() -> None:
    messages = [
        USER,
        {"role": "assistant", "function_call": {"name": "f", "arguments": "{oops"}},
        {"role": "function", "name": "f", "content": "ok"},
    ]
    assert (
        refused(messages=messages, functions=[{"name": "f"}]).param == "messages[1].function_call.arguments"
    )
