"""Anthropic Messages request -> the core's chat form -> Gemini request (wire/anthropic.py,
translate/anthropic_in.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from gemini_cli_proxy.catalog import Catalog
from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.testing.fake_validation import validate_generate_request
from gemini_cli_proxy.translate.anthropic_in import (
    WEB_SEARCH_DROPPED,
    MessagesForm,
    to_chat_form,
)
from gemini_cli_proxy.translate.request import to_gemini_request
from gemini_cli_proxy.translate.sealed_signatures import seal
from gemini_cli_proxy.translate.signatures import call_key, conversation_digest, text_key
from gemini_cli_proxy.translate.tools import SKIP_SIGNATURE
from gemini_cli_proxy.wire.anthropic import (
    ClientTool,
    MessagesRequest,
    parse_count_tokens_request,
    parse_messages_request,
)
from gemini_cli_proxy.wire.gemini_request import GenerateContentRequest
from gemini_cli_proxy.wire.openai import AssistantMessage, ToolMessage, UserMessage

CATALOG = Catalog.with_extras([])
RECORDING = Path(__file__).parents[1] / "fixtures" / "claude-code-2.1.197-messages.json"
PNG_DATA = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PNG: dict[str, Any] = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": PNG_DATA},
}
BASH = {
    "name": "Bash",
    "description": "Run a command.",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
READ = {"type": "custom", "name": "Read", "input_schema": {"type": "object", "properties": {}}}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(call_id: str, command: str = "ls") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "Bash", "input": {"command": command}}


def tool_result(call_id: str, content: Any = "a.txt", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content, **extra}


def request_of(body: dict[str, Any]) -> MessagesRequest:
    return parse_messages_request(orjson.dumps({"model": "gemini-2.5-flash", "max_tokens": 1024, **body}))


def form_of(body: dict[str, Any]) -> MessagesForm:
    return to_chat_form(request_of(body))


def gemini(form: MessagesForm, model: str = "gemini-2.5-flash") -> GenerateContentRequest:
    info = CATALOG.get(model)
    assert info is not None
    request, _ = to_gemini_request(form.chat, info, known_signatures=form.known_signatures)
    assert validate_generate_request(request, code_assist=False, model=model) is None
    return request


def refused(body: dict[str, Any]) -> ProxyError:
    with pytest.raises(ProxyError) as caught:
        form_of(body)
    assert caught.value.status == 400
    return caught.value


def recorded_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(RECORDING.read_text())["body"]
    return body


# --- what Claude Code sends -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "thinking"),
    [
        ("gemini-2.5-pro", {"thinkingBudget": -1, "includeThoughts": True}),
        ("gemini-2.5-flash", {"thinkingBudget": -1, "includeThoughts": True}),
        ("gemini-3-pro-preview", {"thinkingLevel": "HIGH", "includeThoughts": True}),
    ],
)
def test_claude_code_request_converts_and_gemini_accepts_it(model: str, thinking: dict[str, Any]) -> None:
    body = {**recorded_body(), "model": model}
    req = parse_messages_request(orjson.dumps(body))
    tools = req.tools or []
    assert all(isinstance(tool, ClientTool) for tool in tools) and len(tools) == 25
    form = to_chat_form(req)
    # Three system blocks, then the user turn and Claude Code's mid-conversation system message.
    assert [m.role for m in form.chat.messages] == ["system", "system", "system", "user", "system"]
    assert form.notes == [] and form.web_search is False and form.top_k is None
    assert form.known_signatures == {}
    assert form.chat.stream is True and form.chat.max_completion_tokens == 32000
    # adaptive thinking with Anthropic's default effort (high): the model decides.
    assert form.chat.thinking_budget == -1 and form.chat.reasoning_effort is None
    request = gemini(form, model)
    assert request["systemInstruction"]["parts"] == [
        {"text": "<text: 74 chars>"},
        {"text": "<text: 62 chars>"},
        {"text": "<text: 5581 chars>"},
        {"text": "<text: 6062 chars>"},
    ]
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "<text: 306 chars>"}, {"text": "say hi"}]}
    ]
    declarations = request["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == [tool.name for tool in tools if isinstance(tool, ClientTool)]
    assert "$schema" not in json.dumps(declarations)
    assert request["generationConfig"] == {"maxOutputTokens": 32000, "thinkingConfig": thinking}


def test_count_tokens_takes_the_conversation_without_generation_params() -> None:
    body = recorded_body()
    for name in ("max_tokens", "stream", "metadata"):
        body.pop(name)
    form = to_chat_form(parse_count_tokens_request(orjson.dumps(body)))
    assert len(form.chat.messages) == 5 and form.chat.max_completion_tokens is None
    assert form.top_k is None and form.chat.stream is None
    # /v1/messages itself needs max_tokens.
    with pytest.raises(ProxyError) as caught:
        parse_messages_request(orjson.dumps(body))
    assert caught.value.param == "max_tokens"


def test_a_string_system_and_string_contents() -> None:
    form = form_of(
        {"system": "Be brief.", "messages": [user("hi"), {"role": "assistant", "content": "Hello."}]}
    )
    request = gemini(form)
    assert request["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "Hello."}]},
    ]


# --- tool use -----------------------------------------------------------------------------------


def test_tool_use_round_trip_becomes_function_call_and_response() -> None:
    form = form_of(
        {
            "tools": [BASH],
            "messages": [
                user("list files"),
                assistant(
                    {"type": "thinking", "thinking": "hmm", "signature": "foreign"},
                    text("Looking."),
                    tool_use("toolu_1"),
                    tool_use("toolu_2", "pwd"),
                ),
                user(
                    [
                        tool_result("toolu_1"),
                        tool_result("toolu_2", [text("no such"), text("dir")], is_error=True),
                        text("thanks"),
                    ]
                ),
            ],
        }
    )
    messages = form.chat.messages
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    call = messages[1]
    assert isinstance(call, AssistantMessage) and call.tool_calls is not None
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in call.tool_calls] == [
        ("toolu_1", "Bash", {"command": "ls"}),
        ("toolu_2", "Bash", {"command": "pwd"}),
    ]
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert [(m.tool_call_id, m.content) for m in results] == [
        ("toolu_1", "a.txt"),
        ("toolu_2", "Error: no such\ndir"),
    ]
    assert form.known_signatures == {}  # a signature this proxy did not seal carries nothing
    assert gemini(form)["contents"] == [
        {"role": "user", "parts": [{"text": "list files"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Looking."},
                {"functionCall": {"name": "Bash", "args": {"command": "ls"}}},
                {"functionCall": {"name": "Bash", "args": {"command": "pwd"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "Bash", "response": {"output": "a.txt"}}},
                {"functionResponse": {"name": "Bash", "response": {"output": "Error: no such\ndir"}}},
            ],
        },
        {"role": "user", "parts": [{"text": "thanks"}]},
    ]


def test_images_in_a_tool_result_follow_the_tool_turn() -> None:
    form = form_of(
        {
            "tools": [BASH],
            "messages": [
                user("show it"),
                assistant(tool_use("t1")),
                user([tool_result("t1", [text("here"), PNG])]),
            ],
        }
    )
    assert [m.role for m in form.chat.messages] == ["user", "assistant", "tool", "user"]
    contents = gemini(form)["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user", "user"]
    assert contents[2]["parts"][0]["functionResponse"]["response"]["output"].startswith("here\n")
    assert contents[3]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": PNG_DATA}}


def test_images_and_documents_in_a_user_message() -> None:
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
        "title": "a.pdf",
    }
    notes = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x = 1"}}
    url = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    form = form_of({"messages": [user([text("compare"), PNG, pdf, notes, url])]})
    message = form.chat.messages[0]
    assert isinstance(message, UserMessage) and not isinstance(message.content, str)
    assert [part.type for part in message.content] == ["text", "image_url", "file", "text", "image_url"]
    assert (
        form.chat.model_dump()["messages"][0]["content"][4]["image_url"]["url"] == "https://example.com/a.png"
    )
    without_url = form_of({"messages": [user([text("compare"), PNG, pdf, notes])]})
    parts = gemini(without_url)["contents"][0]["parts"]
    assert [next(iter(p)) for p in parts] == ["text", "inlineData", "inlineData", "text"]
    assert parts[2]["inlineData"]["mimeType"] == "application/pdf"
    assert parts[3] == {"text": "x = 1"}


# --- thought signatures -----------------------------------------------------------------------


def test_sealed_signatures_in_a_thinking_block_land_on_their_parts() -> None:
    conversation = conversation_digest([UserMessage(role="user", content="list files")])
    sealed = seal([(call_key("toolu_1"), "SIG_CALL"), (text_key("Looking.", conversation), "SIG_TEXT")])
    messages = [
        user("list files"),
        assistant(
            {"type": "thinking", "thinking": "I should list.", "signature": sealed},
            {"type": "redacted_thinking", "data": "opaque"},
            text("Looking."),
            tool_use("toolu_1"),
        ),
        user([tool_result("toolu_1")]),
    ]
    form = form_of({"model": "gemini-3-pro-preview", "tools": [BASH], "messages": messages})
    assert form.known_signatures == {
        call_key("toolu_1"): "SIG_CALL",
        text_key("Looking.", conversation): "SIG_TEXT",
    }
    assert form.notes == ["redacted_thinking blocks dropped"]
    model_turn = gemini(form, "gemini-3-pro-preview")["contents"][1]
    # The thinking text itself is not sent.
    assert model_turn["parts"] == [
        {"text": "Looking.", "thoughtSignature": "SIG_TEXT"},
        {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "SIG_CALL"},
    ]
    # Without the thinking block nothing carries them: the call goes with Gemini's bypass value.
    messages[1] = assistant(text("Looking."), tool_use("toolu_1"))
    bare = form_of({"model": "gemini-3-pro-preview", "tools": [BASH], "messages": messages})
    parts = gemini(bare, "gemini-3-pro-preview")["contents"][1]["parts"]
    assert "thoughtSignature" not in parts[0] and parts[1]["thoughtSignature"] == SKIP_SIGNATURE


# --- thinking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "model", "config"),
    [
        ({"thinking": {"type": "adaptive"}}, "gemini-2.5-flash", {"thinkingBudget": -1}),
        ({"thinking": {"type": "adaptive"}}, "gemini-3-flash-preview", {"thinkingLevel": "HIGH"}),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}},
            "gemini-2.5-flash",
            {"thinkingBudget": 1024},
        ),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}},
            "gemini-3-flash-preview",
            {"thinkingLevel": "MEDIUM"},
        ),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
            "gemini-2.5-pro",
            {"thinkingBudget": -1},
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            "gemini-2.5-pro",
            {"thinkingBudget": 2048},
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 10000}},
            "gemini-3-pro-preview",
            {"thinkingLevel": "HIGH"},
        ),
        ({"thinking": {"type": "disabled"}}, "gemini-2.5-flash", {"thinkingBudget": 0}),
        # 2.5 Pro cannot stop thinking: its least budget.
        ({"thinking": {"type": "disabled"}}, "gemini-2.5-pro", {"thinkingBudget": 128}),
        ({"thinking": {"type": "disabled"}}, "gemini-3-flash-preview", {"thinkingLevel": "MINIMAL"}),
        ({"output_config": {"effort": "high"}}, "gemini-2.5-flash", {"thinkingBudget": 24576}),
        ({"output_config": {"effort": "max"}}, "gemini-3-pro-preview", {"thinkingLevel": "HIGH"}),
        ({}, "gemini-2.5-flash", None),
    ],
)
def test_thinking_maps_to_gemini_thinking_config(
    extra: dict[str, Any], model: str, config: dict[str, Any] | None
) -> None:
    form = form_of({"model": model, "messages": [user("hi")], **extra})
    info = CATALOG.get(model)
    assert info is not None
    request, _ = to_gemini_request(form.chat, info, show_thoughts=False)
    assert request.get("generationConfig", {}).get("thinkingConfig") == config


def test_effort_notes() -> None:
    assert form_of({"messages": [user("hi")], "output_config": {"effort": "max"}}).notes == [
        "output_config.effort max sent as high"
    ]
    enabled = form_of(
        {
            "messages": [user("hi")],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "output_config": {"effort": "low"},
        }
    )
    assert enabled.chat.thinking_budget == 2048 and enabled.chat.reasoning_effort is None
    assert enabled.notes == ["output_config.effort ignored: thinking.budget_tokens sets the thinking budget"]


# --- tool_choice and server tools -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "calling", "parallel"),
    [
        ({"type": "auto"}, {"mode": "AUTO"}, None),
        ({"type": "any"}, {"mode": "ANY"}, None),
        ({"type": "none"}, {"mode": "NONE"}, None),
        ({"type": "tool", "name": "Read"}, {"mode": "ANY", "allowedFunctionNames": ["Read"]}, None),
        ({"type": "auto", "disable_parallel_tool_use": True}, {"mode": "AUTO"}, False),
        ({"type": "any", "disable_parallel_tool_use": False}, {"mode": "ANY"}, None),
        (
            {"type": "tool", "name": "Bash", "disable_parallel_tool_use": True},
            {"mode": "ANY", "allowedFunctionNames": ["Bash"]},
            False,
        ),
    ],
)
def test_tool_choice_variants(choice: dict[str, Any], calling: dict[str, Any], parallel: bool | None) -> None:
    form = form_of({"tools": [BASH, READ], "tool_choice": choice, "messages": [user("hi")]})
    assert form.chat.parallel_tool_calls is parallel
    assert gemini(form)["toolConfig"] == {"functionCallingConfig": calling}


def test_a_tool_choice_naming_no_client_tool_is_refused() -> None:
    error = refused(
        {"tools": [BASH], "tool_choice": {"type": "tool", "name": "Nope"}, "messages": [user("x")]}
    )
    assert error.param == "tool_choice.name"


def test_web_search_alone_is_grounding() -> None:
    form = form_of({"tools": [WEB_SEARCH], "messages": [user("news?")]})
    assert form.web_search is True and form.notes == [] and form.chat.tools is None
    named = form_of(
        {
            "tools": [WEB_SEARCH],
            "tool_choice": {"type": "tool", "name": "web_search"},
            "messages": [user("x")],
        }
    )
    assert named.web_search is True and named.chat.tool_choice is None
    off = form_of({"tools": [WEB_SEARCH], "tool_choice": {"type": "none"}, "messages": [user("x")]})
    assert off.web_search is False


def test_web_search_beside_client_tools_is_dropped_with_a_note() -> None:
    form = form_of({"tools": [BASH, WEB_SEARCH], "messages": [user("news?")]})
    assert form.web_search is False and form.notes == [WEB_SEARCH_DROPPED]
    assert [tool["function"]["name"] for tool in form.chat.tools or ()] == ["Bash"]


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
        {"type": "computer_20250124", "name": "computer", "display_width_px": 1024},
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"type": "web_fetch_20250910", "name": "web_fetch"},
        {"type": "memory_20250818", "name": "memory"},
    ],
)
def test_other_server_tools_are_dropped_with_a_note(tool: dict[str, Any]) -> None:
    form = form_of({"tools": [READ, tool], "messages": [user("x")]})
    assert form.notes == [f"server tool {tool['type']} dropped: Gemini has no such tool"]
    assert [t["function"]["name"] for t in form.chat.tools or ()] == ["Read"]
    gemini(form)


def test_an_unknown_tool_type_is_an_invalid_value() -> None:
    assert refused({"tools": [READ, {"type": "hologram"}], "messages": [user("x")]}).param == "tools[1].type"


def test_a_tool_name_given_twice_is_refused() -> None:
    assert refused({"tools": [BASH, WEB_SEARCH, BASH], "messages": [user("x")]}).param == "tools[2].name"


# --- generation parameters --------------------------------------------------------------------


def test_generation_parameters_map_to_the_chat_ones_and_top_k_comes_apart() -> None:
    form = form_of(
        {
            "messages": [user("hi")],
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "stop_sequences": ["END", "STOP"],
            "metadata": {"user_id": "u"},
            "service_tier": "auto",
            "context_management": {"edits": []},
            "cache_control": {"type": "ephemeral"},
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        }
    )
    assert form.top_k == 40
    config = dict(gemini(form)["generationConfig"])
    assert config.pop("thinkingConfig") == {"includeThoughts": True}  # the model's default thinking
    assert config == {
        "maxOutputTokens": 1024,
        "temperature": 0.5,
        "topP": 0.9,
        "stopSequences": ["END", "STOP"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }


# --- 400s -------------------------------------------------------------------------------------


def _error(body: dict[str, Any]) -> ProxyError:
    with pytest.raises(ProxyError) as caught:
        form_of(body)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"messages": [user("a"), assistant(text("b")), user([{"type": "text"}])]},
            "messages[2].content[0].text",
        ),
        ({"messages": [user("a")], "max_tokens": 0}, "max_tokens"),
        ({"messages": [user("a")], "tools": [BASH, {"name": "Read"}]}, "tools[1].input_schema"),
        (
            {"messages": [user("a")], "tools": [BASH, {"name": "Read", "input_schema": 5}]},
            "tools[1].input_schema",
        ),
        ({"messages": [user("a")], "stop_sequences": ["1", "2", "3", "4", "5"]}, "stop_sequences"),
        ({"messages": [user("a")], "temperature": 1.5}, "temperature"),
        ({"messages": [user("a")], "top_k": 0}, "top_k"),
        ({"messages": [user("a")], "thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"messages": [user("a")], "thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"messages": [user("a")], "output_config": {"effort": "huge"}}, "output_config.effort"),
        ({"messages": [user("a")], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({"messages": [user("a")], "mcp_servers": [{"type": "url", "url": "https://x"}]}, "mcp_servers"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [user([{"type": "hologram"}])]}, "messages[0].content[0].type"),
        ({"messages": [user([tool_use("t")])]}, "messages[0].content[0].type"),
        ({"messages": [user("a"), assistant(PNG)]}, "messages[1].content[0].type"),
        ({"messages": [{"role": "system", "content": [PNG]}]}, "messages[0].content[0].type"),
        (
            {"messages": [user([{**PNG, "source": {**PNG["source"], "media_type": "image/tiff"}}])]},
            "messages[0].content[0].source.media_type",
        ),
        (
            {"messages": [user([{"type": "image", "source": {"type": "file", "file_id": "f"}}])]},
            "messages[0].content[0].source.file_id",
        ),
        (
            {"messages": [user([{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}])]},
            "messages[0].content[0].source.url",
        ),
        (
            {"messages": [user([tool_result("t", [{"type": "search_result"}])])]},
            "messages[0].content[0].content[0].type",
        ),
        ({"messages": [user("a")], "system": [{"type": "text", "text": 1}]}, "system[0].text"),
        ({"messages": [user("a")], "system": [text("a"), PNG]}, "system[1].type"),
        ({"messages": [user("a")], "model": ""}, "model"),
    ],
)
def test_bad_values_name_their_path(body: dict[str, Any], param: str) -> None:
    assert _error(body).param == param


def test_free_json_that_cannot_reach_google_is_refused_by_its_path() -> None:
    body = b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], '
    with pytest.raises(ProxyError) as caught:
        parse_messages_request(body + b'"tools": [{"name": "f", "input_schema": {"x": NaN}}]}')
    assert caught.value.param == "tools[0].input_schema.x"
    call = b'{"type": "tool_use", "id": "t", "name": "f", "input": {"n": 123456789012345678901234567890}}'
    with pytest.raises(ProxyError) as caught:
        parse_messages_request(
            b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}, '
            b'{"role": "assistant", "content": [' + call + b"]}]}"
        )
    assert caught.value.param == "messages[1].content[0].input.n"


def test_an_empty_body_is_refused() -> None:
    with pytest.raises(ProxyError) as caught:
        parse_messages_request(b" ")
    assert caught.value.code == "invalid_json"


# --- errors of the chat translation, renamed ----------------------------------------------------


def _chat_error(form: MessagesForm, model: str = "gemini-2.5-flash") -> ProxyError:
    info = CATALOG.get(model)
    assert info is not None
    with pytest.raises(ProxyError) as caught:
        to_gemini_request(form.chat, info)
    return form.anthropic_error(caught.value)


def test_chat_errors_name_the_messages_param() -> None:
    unanswered = form_of(
        {"tools": [BASH], "messages": [user("a"), assistant(text("b"), tool_use("t1")), user("next")]}
    )
    error = _chat_error(unanswered)
    assert error.param == "messages[1].content[1]" and "'messages[1].content[1]'" in error.message

    bad_image = {**PNG, "source": {**PNG["source"], "data": "@@"}}
    broken = form_of(
        {"system": "s", "messages": [user("a"), assistant(text("b")), user([text("c"), bad_image])]}
    )
    assert _chat_error(broken).param == "messages[2].content[1].source.data"

    bad_tool_image = form_of(
        {
            "tools": [BASH],
            "messages": [
                user("a"),
                assistant(tool_use("t1")),
                user([tool_result("t1", [text("x"), bad_image])]),
            ],
        }
    )
    assert _chat_error(bad_tool_image).param == "messages[2].content[0].content[1].source.data"

    too_big = form_of({"messages": [user("a")], "thinking": {"type": "enabled", "budget_tokens": 30000}})
    error = _chat_error(too_big)
    assert error.param == "thinking.budget_tokens" and "'thinking.budget_tokens'" in error.message

    no_reasoning = form_of({"messages": [user("a")], "output_config": {"effort": "low"}})
    assert _chat_error(no_reasoning, "gemini-2.0-flash").param == "output_config.effort"

    off = form_of({"messages": [user("a")], "thinking": {"type": "disabled"}})
    assert _chat_error(off, "gemini-2.0-flash").param == "thinking"

    with_server_tool = form_of({"tools": [WEB_SEARCH, BASH], "messages": [user("a")]})
    assert with_server_tool.anthropic_param("tools[0].function.parameters") == "tools[1].input_schema"
