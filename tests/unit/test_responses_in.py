"""Responses API request -> the core's chat form -> Gemini request (wire/responses.py,
translate/responses_in.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from gemini_cli_proxy.catalog import Catalog
from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.testing.fake_validation import validate_generate_request
from gemini_cli_proxy.translate.request import to_gemini_request
from gemini_cli_proxy.translate.response import to_chat_completion
from gemini_cli_proxy.translate.responses_in import (
    CUSTOM_PARAMETERS,
    WEB_SEARCH_DROPPED,
    ChatForm,
    flat_name,
    to_chat_form,
)
from gemini_cli_proxy.translate.responses_tools import ToolOrigin
from gemini_cli_proxy.translate.sealed_signatures import seal
from gemini_cli_proxy.translate.signatures import call_key, conversation_digest, text_key
from gemini_cli_proxy.translate.tools import SKIP_SIGNATURE
from gemini_cli_proxy.wire.gemini_request import GenerateContentRequest
from gemini_cli_proxy.wire.openai import AssistantMessage, ToolMessage, UserMessage
from gemini_cli_proxy.wire.responses import parse_responses_request

CATALOG = Catalog.with_extras([])
# What Codex CLI 0.169.0 sent (structure only): the repository's copy when there is one, else the
# shared recordings'.
_CODEX_NAME = "codex-cli-0.169.0-responses.json"
CODEX = next(
    (
        path
        for path in (
            Path(__file__).parents[1] / "fixtures" / _CODEX_NAME,
            Path("/work/shared/client-recordings") / _CODEX_NAME,
        )
        if path.exists()
    ),
    Path("/work/shared/client-recordings") / _CODEX_NAME,
)
GEMINI_LEGAL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SHELL = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a command.",
    "strict": False,
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
}


def form_of(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> ChatForm:
    body = {"model": "gemini-2.5-flash", **body}
    return to_chat_form(parse_responses_request(orjson.dumps(body)), history or ())


def gemini(form: ChatForm, model: str = "gemini-2.5-flash") -> GenerateContentRequest:
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


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def said(text: str) -> dict[str, Any]:
    """An assistant message as a Response's output holds it."""
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def call(
    call_id: str, name: str = "exec_command", arguments: str = '{"cmd": "ls"}', **extra: Any
) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments, **extra}


def output(call_id: str, result: Any = "a.txt") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": result}


# --- Codex CLI's real request ---------------------------------------------------------------


def codex_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(CODEX.read_text())["body"]
    return body


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-3-pro-preview"])
def test_codex_request_converts_and_gemini_accepts_it(model: str) -> None:
    body = {**codex_body(), "model": model}
    req = parse_responses_request(orjson.dumps(body))
    assert req.include == ["reasoning.encrypted_content"] and req.store is False
    assert req.reasoning is not None and req.reasoning.summary == "auto"
    form = to_chat_form(req)
    assert [message.role for message in form.chat.messages] == ["developer", "developer", "user", "user"]
    declared = [tool["function"]["name"] for tool in form.chat.tools or ()]
    assert declared == [
        "exec_command",
        "write_stdin",
        "request_user_input",
        "view_image",
        "multi_agent_v1__close_agent",
        "multi_agent_v1__resume_agent",
        "multi_agent_v1__send_input",
        "multi_agent_v1__spawn_agent",
        "multi_agent_v1__wait_agent",
        "get_goal",
        "create_goal",
        "update_goal",
    ]
    assert form.tools["multi_agent_v1__spawn_agent"] == ToolOrigin(
        "function", "spawn_agent", "multi_agent_v1"
    )
    assert form.tools["exec_command"] == ToolOrigin("function", "exec_command")
    # Codex always sends web_search beside its functions: dropped, never a 400.
    assert form.web_search is False and form.notes == [WEB_SEARCH_DROPPED]
    assert form.chat.tool_choice == "auto" and form.chat.parallel_tool_calls is True
    assert form.chat.stream is True and form.known_signatures == {}
    request = gemini(form, model)
    # The two developer messages are the system instruction; the user turns one turn.
    assert request["systemInstruction"]["parts"] == [
        {"text": "<text: 16979 chars>"},
        {"text": "<text: 2129 chars><text: 341 chars>"},
    ]
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "<text: 407 chars>"}, {"text": "say hi"}]}
    ]
    assert len(request["tools"][0]["functionDeclarations"]) == 12


def test_instructions_come_first_and_a_string_input_is_a_user_turn() -> None:
    form = form_of(
        {"instructions": "Be brief.", "input": [{"role": "system", "content": "Use metric."}, user("hi")]}
    )
    request = gemini(form)
    assert request["systemInstruction"]["parts"] == [{"text": "Be brief."}, {"text": "Use metric."}]
    assert gemini(form_of({"input": "hello"}))["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]


# --- function calls ---------------------------------------------------------------------------


def test_function_call_round_trip_becomes_assistant_and_tool_messages() -> None:
    form = form_of(
        {
            "tools": [SHELL],
            "input": [
                user("list files"),
                said("Looking."),
                call("call_1"),
                call("call_2", arguments='{"cmd": "pwd"}'),
                output("call_1"),
                output(
                    "call_2", [{"type": "input_text", "text": "/home"}, {"type": "input_text", "text": "!"}]
                ),
                user("thanks"),
            ],
        }
    )
    messages = form.chat.messages
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    assistant = messages[1]
    assert isinstance(assistant, AssistantMessage) and assistant.tool_calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in assistant.tool_calls] == [
        ("call_1", "exec_command", '{"cmd": "ls"}'),
        ("call_2", "exec_command", '{"cmd": "pwd"}'),
    ]
    tools = [m for m in messages if isinstance(m, ToolMessage)]
    assert [(m.tool_call_id, m.content) for m in tools] == [("call_1", "a.txt"), ("call_2", "/home!")]
    request = gemini(form)
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "list files"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Looking."},
                {"functionCall": {"name": "exec_command", "args": {"cmd": "ls"}}},
                {"functionCall": {"name": "exec_command", "args": {"cmd": "pwd"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "exec_command", "response": {"output": "a.txt"}}},
                {"functionResponse": {"name": "exec_command", "response": {"output": "/home!"}}},
            ],
        },
        {"role": "user", "parts": [{"text": "thanks"}]},
    ]


def test_a_reasoning_item_between_message_and_calls_keeps_them_one_turn() -> None:
    form = form_of(
        {
            "tools": [SHELL],
            "input": [
                user("go"),
                said("On it."),
                {"type": "reasoning", "summary": []},
                call("c1"),
                output("c1"),
            ],
        }
    )
    assert [m.role for m in form.chat.messages] == ["user", "assistant", "tool"]


def test_images_in_a_tool_output_follow_the_tool_turn() -> None:
    form = form_of(
        {
            "tools": [SHELL],
            "input": [
                user("show it"),
                call("c1"),
                call("c2"),
                output(
                    "c1", [{"type": "input_text", "text": "here"}, {"type": "input_image", "image_url": PNG}]
                ),
                output("c2"),
            ],
        }
    )
    assert [m.role for m in form.chat.messages] == ["user", "assistant", "tool", "tool", "user"]
    contents = gemini(form)["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user", "user"]
    assert [next(iter(p)) for p in contents[2]["parts"]] == ["functionResponse", "functionResponse"]
    assert contents[2]["parts"][0]["functionResponse"]["response"]["output"].startswith("here\n")
    assert contents[3]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": PNG.split(",", 1)[1]}}


# --- thought signatures -----------------------------------------------------------------------


def test_sealed_signatures_arrive_and_land_on_their_parts() -> None:
    conversation = conversation_digest([UserMessage(role="user", content="list files")])
    sealed = seal([(call_key("call_1"), "SIG_CALL"), (text_key("Looking.", conversation), "SIG_TEXT")])
    items = [
        user("list files"),
        {
            "id": "rs_1",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "t"}],
            "encrypted_content": sealed,
        },
        said("Looking."),
        call("call_1"),
        output("call_1"),
    ]
    form = form_of({"model": "gemini-3-pro-preview", "tools": [SHELL], "input": items})
    assert form.known_signatures == {
        call_key("call_1"): "SIG_CALL",
        text_key("Looking.", conversation): "SIG_TEXT",
    }
    model_turn = gemini(form, "gemini-3-pro-preview")["contents"][1]
    assert model_turn["parts"] == [
        {"text": "Looking.", "thoughtSignature": "SIG_TEXT"},
        {"functionCall": {"name": "exec_command", "args": {"cmd": "ls"}}, "thoughtSignature": "SIG_CALL"},
    ]
    # Without the reasoning item nothing carries them: the call goes with Gemini's bypass value.
    bare = form_of(
        {
            "model": "gemini-3-pro-preview",
            "tools": [SHELL],
            "input": [i for i in items if i["type"] != "reasoning"],
        }
    )
    assert bare.known_signatures == {}
    assert (
        gemini(bare, "gemini-3-pro-preview")["contents"][1]["parts"][1]["thoughtSignature"] == SKIP_SIGNATURE
    )


def test_signatures_of_a_gemini_reply_come_back_through_the_next_turn() -> None:
    """The keys the chat core remembers a reply's signatures under are the keys the next turn's
    chat form looks up: the reply text, and the call id without its signature suffix."""
    first = form_of({"model": "gemini-3-pro-preview", "tools": [SHELL], "input": [user("list files")]})
    reply = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Looking.", "thoughtSignature": "SIG_TEXT"},
                        {
                            "functionCall": {"name": "exec_command", "args": {"cmd": "ls"}},
                            "thoughtSignature": "SIG_CALL",
                        },
                    ],
                },
                "finishReason": "STOP",
            }
        ]
    }
    translated = to_chat_completion(
        reply, model="m", completion_id="r", created=1, conversation=conversation_digest(first.chat.messages)
    )
    call_id = translated.completion["choices"][0]["message"]["tool_calls"][0]["id"]
    bare_id = call_id.partition(".sig.")[0]  # a client that sanitised the id
    second = form_of(
        {
            "model": "gemini-3-pro-preview",
            "tools": [SHELL],
            "input": [
                user("list files"),
                {"type": "reasoning", "summary": [], "encrypted_content": seal(translated.signatures)},
                said("Looking."),
                call(bare_id),
                output(bare_id),
            ],
        }
    )
    parts = gemini(second, "gemini-3-pro-preview")["contents"][1]["parts"]
    assert [part.get("thoughtSignature") for part in parts] == ["SIG_TEXT", "SIG_CALL"]


# --- tools ------------------------------------------------------------------------------------

NAMESPACE = {
    "type": "namespace",
    "name": "agents",
    "description": "Sub-agents.",
    "tools": [
        {
            "type": "function",
            "name": "spawn",
            "description": "Spawn one.",
            "strict": False,
            "parameters": {"type": "object"},
        },
        {"type": "custom", "name": "script", "description": "A script."},
    ],
}
PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch"'},
}


def test_namespace_and_custom_tools_are_declared_under_flat_names() -> None:
    form = form_of({"tools": [SHELL, NAMESPACE, PATCH], "input": "hi"})
    functions = [tool["function"] for tool in form.chat.tools or ()]
    assert [f["name"] for f in functions] == [
        "exec_command",
        "agents__spawn",
        "agents__script",
        "apply_patch",
    ]
    assert functions[1]["description"] == "Spawn one." and functions[1]["parameters"] == {"type": "object"}
    assert functions[2]["parameters"] == CUSTOM_PARAMETERS == functions[3]["parameters"]
    assert functions[3]["description"].startswith("Edit files.\n\n")
    assert 'lark grammar:\nstart: "*** Begin Patch"' in functions[3]["description"]
    assert dict(form.tools) == {
        "exec_command": ToolOrigin("function", "exec_command"),
        "agents__spawn": ToolOrigin("function", "spawn", "agents"),
        "agents__script": ToolOrigin("custom", "script", "agents"),
        "apply_patch": ToolOrigin("custom", "apply_patch"),
    }
    declarations = gemini(form)["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == [
        "exec_command",
        "agents__spawn",
        "agents__script",
        "apply_patch",
    ]


def test_namespaced_and_custom_calls_come_back_under_their_flat_names() -> None:
    form = form_of(
        {
            "tools": [NAMESPACE, PATCH],
            "input": [
                user("go"),
                call("c1", name="spawn", arguments='{"task": "x"}', namespace="agents"),
                {
                    "type": "custom_tool_call",
                    "call_id": "c2",
                    "name": "apply_patch",
                    "input": "*** Begin Patch",
                },
                output("c1", "spawned"),
                {
                    "type": "custom_tool_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "ok"}],
                },
            ],
        }
    )
    assistant = form.chat.messages[1]
    assert isinstance(assistant, AssistantMessage) and assistant.tool_calls is not None
    assert [(c.function.name, json.loads(c.function.arguments)) for c in assistant.tool_calls] == [
        ("agents__spawn", {"task": "x"}),
        ("apply_patch", {"input": "*** Begin Patch"}),
    ]
    contents = gemini(form)["contents"]
    assert [p["functionCall"]["name"] for p in contents[1]["parts"]] == ["agents__spawn", "apply_patch"]
    assert [p["functionResponse"]["response"] for p in contents[2]["parts"]] == [
        {"output": "spawned"},
        {"output": "ok"},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "function", "name": "spawn", "namespace": "agents"}, "agents__spawn"),
        ({"type": "function", "name": "spawn"}, "agents__spawn"),
        ({"type": "function", "name": "agents__spawn"}, "agents__spawn"),
        ({"type": "custom", "name": "apply_patch"}, "apply_patch"),
        ({"type": "function", "name": "exec_command"}, "exec_command"),
    ],
)
def test_a_named_tool_choice_names_the_flat_function(choice: dict[str, Any], expected: str) -> None:
    form = form_of({"tools": [SHELL, NAMESPACE, PATCH], "tool_choice": choice, "input": "hi"})
    assert form.chat.tool_choice == {"type": "function", "function": {"name": expected}}
    config = gemini(form)["toolConfig"]["functionCallingConfig"]
    assert config == {"mode": "ANY", "allowedFunctionNames": [expected]}


@pytest.mark.parametrize(
    ("choice", "param"),
    [
        ({"type": "function", "name": "nope"}, "tool_choice.name"),
        ({"type": "custom", "name": "exec_command"}, "tool_choice.name"),
        ({"type": "function"}, "tool_choice.name"),
        ({"type": "allowed_tools", "mode": "auto", "tools": []}, "tool_choice.type"),
        ({"type": "file_search"}, "tool_choice.type"),
        ("sometimes", "tool_choice"),
    ],
)
def test_a_tool_choice_gemini_cannot_honour_is_refused(choice: Any, param: str) -> None:
    assert refused({"tools": [SHELL, PATCH], "tool_choice": choice, "input": "hi"}).param == param


def test_flat_names_are_legal_unique_and_short_enough() -> None:
    assert flat_name("multi_agent_v1", "spawn_agent") == "multi_agent_v1__spawn_agent"
    assert flat_name("my ns!", "do:it") == "my_ns___do_it"
    assert flat_name("1ns", "x") == "_1ns__x"
    long = flat_name("n" * 40, "t" * 40)
    assert len(long) == 64 and GEMINI_LEGAL.match(long)
    assert long != flat_name("n" * 40, "t" * 41)
    taken = {"a__b"}
    other = flat_name("a", "b", taken)
    assert other != "a__b" and GEMINI_LEGAL.match(other)
    assert flat_name("a", "b", {*taken, other}) not in {*taken, other}


def test_a_flat_name_never_takes_a_top_level_name() -> None:
    tools = [{**SHELL, "name": "agents__spawn"}, NAMESPACE]
    form = form_of({"tools": tools, "input": "hi"})
    names = [tool["function"]["name"] for tool in form.chat.tools or ()]
    assert names[0] == "agents__spawn" and names[1] != "agents__spawn" and len(set(names)) == 3
    assert form.tools[names[1]] == ToolOrigin("function", "spawn", "agents")
    assert form.tools["agents__spawn"] == ToolOrigin("function", "agents__spawn")


def test_repeated_tool_names_are_refused() -> None:
    assert (
        refused({"tools": [SHELL, {**PATCH, "name": "exec_command"}], "input": "hi"}).param == "tools[1].name"
    )


@pytest.mark.parametrize(
    "kind",
    [
        "file_search",
        "code_interpreter",
        "computer_use_preview",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
    ],
)
def test_hosted_tools_are_refused_naming_their_type(kind: str) -> None:
    error = refused({"tools": [SHELL, {"type": kind}], "input": "hi"})
    assert error.param == "tools[1].type" and error.code == "unsupported_parameter"
    assert f"'{kind}'" in error.message


def test_an_unknown_tool_type_is_an_invalid_value() -> None:
    error = refused({"tools": [{"type": "telepathy"}], "input": "hi"})
    assert error.param == "tools[0].type" and error.code == "invalid_value"


@pytest.mark.parametrize("kind", ["web_search", "web_search_preview", "web_search_2025_08_26"])
def test_web_search_alone_is_grounding(kind: str) -> None:
    form = form_of({"tools": [{"type": kind}], "input": "news?"})
    assert form.web_search is True and form.notes == [] and form.chat.tools is None
    assert "tools" not in gemini(form)


def test_web_search_beside_functions_is_dropped_with_a_note() -> None:
    form = form_of({"tools": [{"type": "web_search_preview"}, SHELL], "input": "news?"})
    assert form.web_search is False and form.notes == [WEB_SEARCH_DROPPED]
    assert [d["name"] for d in gemini(form)["tools"][0]["functionDeclarations"]] == ["exec_command"]


def test_web_search_is_not_used_when_tool_choice_is_none() -> None:
    form = form_of({"tools": [{"type": "web_search"}], "tool_choice": "none", "input": "hi"})
    assert form.web_search is False and form.notes


# --- parameters -----------------------------------------------------------------------------


def test_generation_parameters_map_to_the_chat_ones() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    form = form_of(
        {
            "input": "weather?",
            "max_output_tokens": 300,
            "temperature": 0.2,
            "top_p": 0.9,
            "reasoning": {"effort": "high", "summary": "detailed"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": schema, "strict": True}},
            "metadata": {"k": "v"},
            "user": "u",
            "prompt_cache_key": "p",
            "safety_identifier": "s",
            "service_tier": "auto",
            "truncation": "auto",
            "client_metadata": {"a": "b"},
            "store": True,
        }
    )
    chat = form.chat
    assert (chat.max_completion_tokens, chat.temperature, chat.top_p) == (300, 0.2, 0.9)
    assert chat.reasoning_effort == "high" and chat.metadata is None and chat.user is None
    assert chat.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "w", "schema": schema, "strict": True},
    }
    config = gemini(form)["generationConfig"]
    assert config["maxOutputTokens"] == 300 and config["responseJsonSchema"] == schema
    assert config["thinkingConfig"]["thinkingBudget"] == 24576
    assert form.notes == []


def test_efforts_beyond_high_are_sent_as_high_with_a_note() -> None:
    form = form_of({"input": "x", "reasoning": {"effort": "xhigh"}, "text": {"verbosity": "low"}})
    assert form.chat.reasoning_effort == "high"
    assert form.notes == [
        "reasoning.effort xhigh sent as high",
        "text.verbosity ignored: Gemini has no verbosity control",
    ]
    assert (
        gemini(form, "gemini-3-pro-preview")["generationConfig"]["thinkingConfig"]["thinkingLevel"] == "HIGH"
    )


def test_json_object_format() -> None:
    form = form_of({"input": "json please", "text": {"format": {"type": "json_object"}}})
    assert gemini(form)["generationConfig"]["responseMimeType"] == "application/json"


# --- refusals -------------------------------------------------------------------------------


def _error(body: dict[str, Any]) -> ProxyError:
    with pytest.raises(ProxyError) as caught:
        parse_responses_request(orjson.dumps({"model": "m", **body}))
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"input": [user("a"), {"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
            "input[1].content[0].text",
        ),
        ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"input": [{"content": "x"}]}, "input[0].type"),
        ({"input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": [{"type": "input_video"}]}]}, "input[0].content[0].type"),
        ({"input": [{"type": "function_call", "call_id": "a", "name": "f"}]}, "input[0].arguments"),
        ({"input": [{"type": "function_call_output", "call_id": "a", "output": 5}]}, "input[0].output"),
        (
            {"input": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": 1}]}]},
            "input[0].summary[0].text",
        ),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "max_output_tokens": "100"}, "max_output_tokens"),
        ({"input": "x", "temperature": 2.5}, "temperature"),
        ({"input": "x", "top_p": "1"}, "top_p"),
        ({"input": "x", "stream": "yes"}, "stream"),
        ({"input": "x", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"input": "x", "text": {"format": {"type": "json_schema", "name": "s"}}}, "text.format.schema"),
        ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": "x", "tools": [{"name": "f"}]}, "tools[0].type"),
        (
            {
                "input": "x",
                "tools": [{**NAMESPACE, "tools": [{"type": "function", "name": "f", "parameters": []}]}],
            },
            "tools[0].tools[0].parameters",
        ),
        (
            {"input": "x", "tools": [{**PATCH, "format": {"type": "grammar", "syntax": "lark"}}]},
            "tools[0].format.definition",
        ),
        ({"input": "x", "metadata": {"k": 1}}, "metadata.k"),
        ({"input": "x", "background": True}, "background"),
        ({"input": 5}, "input"),
        ({"input": "x", "model": ""}, "model"),
    ],
)
def test_bad_values_name_their_path(body: dict[str, Any], param: str) -> None:
    assert _error(body).param == param


def test_free_json_that_cannot_reach_google_is_refused_by_its_path() -> None:
    body = (
        b'{"model": "m", "input": "x", '
        b'"tools": [{"type": "function", "name": "f", "parameters": {"x": NaN}}]}'
    )
    with pytest.raises(ProxyError) as caught:
        parse_responses_request(body)
    assert caught.value.param == "tools[0].parameters.x"


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "input_image", "file_id": "file-1"}, "input[0].content[1].file_id"),
        ({"type": "input_file", "file_id": "file-1"}, "input[0].content[1].file_id"),
        ({"type": "input_file", "file_url": "https://x/a.pdf"}, "input[0].content[1].file_url"),
        ({"type": "input_image"}, "input[0].content[1].image_url"),
    ],
)
def test_files_by_id_are_refused(part: dict[str, Any], param: str) -> None:
    error = refused({"input": [{"role": "user", "content": [{"type": "input_text", "text": "see"}, part]}]})
    assert error.param == param


def test_images_and_pdfs_inline_are_sent() -> None:
    pdf = "data:application/pdf;base64,JVBERi0xLjQK"
    content = [
        {"type": "input_text", "text": "compare"},
        {"type": "input_image", "image_url": PNG, "detail": "high"},
        {"type": "input_file", "file_data": pdf, "filename": "a.pdf"},
    ]
    parts = gemini(form_of({"input": [{"role": "user", "content": content}]}))["contents"][0]["parts"]
    assert [next(iter(p)) for p in parts] == ["text", "inlineData", "inlineData"]
    assert parts[2]["inlineData"]["mimeType"] == "application/pdf"


@pytest.mark.parametrize(
    ("item", "code"),
    [
        ({"type": "item_reference", "id": "msg_1"}, "unsupported_parameter"),
        ({"type": "local_shell_call", "call_id": "x"}, "unsupported_parameter"),
        ({"type": "compaction", "encrypted_content": "x"}, "unsupported_parameter"),
        ({"type": "hologram"}, "invalid_value"),
    ],
)
def test_items_gemini_cannot_take_are_refused_naming_their_type(item: dict[str, Any], code: str) -> None:
    error = refused({"input": [user("a"), item]})
    assert (error.param, error.code) == ("input[1].type", code)


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            {"role": "assistant", "content": [{"type": "input_image", "image_url": PNG}]},
            "input[0].content[0].type",
        ),
        (
            {"role": "developer", "content": [{"type": "input_image", "image_url": PNG}]},
            "input[0].content[0].type",
        ),
        ({"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}, "input[0].content[0].type"),
    ],
)
def test_parts_a_role_cannot_hold_are_refused(message: dict[str, Any], param: str) -> None:
    assert refused({"input": [message]}).param == param


def test_no_input_at_all_is_refused() -> None:
    assert refused({"input": []}).param == "input"
    assert refused({}).param == "input"


# --- errors of the chat translation, renamed -------------------------------------------------


def _chat_error(form: ChatForm, model: str = "gemini-2.5-flash") -> ProxyError:
    info = CATALOG.get(model)
    assert info is not None
    with pytest.raises(ProxyError) as caught:
        to_gemini_request(form.chat, info)
    return form.responses_error(caught.value)


def test_chat_errors_name_the_responses_item() -> None:
    bad_arguments = form_of(
        {"tools": [SHELL], "input": [user("a"), call("c1", arguments="{oops"), output("c1")]}
    )
    error = _chat_error(bad_arguments)
    assert error.param == "input[1].arguments" and "'input[1].arguments'" in error.message
    assert "messages" not in error.message

    unanswered = form_of({"tools": [SHELL], "input": [user("a"), said("b"), call("c1"), user("next")]})
    assert _chat_error(unanswered).param == "input[2]"

    bad_image = form_of(
        {"input": [user("a"), {"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x"}]}]}
    )
    assert _chat_error(bad_image).param == "input[1].content[0].image_url"

    bad_tool_image = form_of(
        {
            "tools": [SHELL],
            "input": [
                user("a"),
                call("c1"),
                output("c1", [{"type": "input_image", "image_url": "data:image/png;base64,@@"}]),
            ],
        }
    )
    assert _chat_error(bad_tool_image).param == "input[2].output[0].image_url"

    no_reasoning = form_of({"input": "x", "reasoning": {"effort": "low"}})
    error = _chat_error(no_reasoning, "gemini-2.0-flash")
    assert error.param == "reasoning.effort" and "'reasoning.effort'" in error.message

    bad_schema = form_of(
        {"tools": [{**SHELL, "parameters": None, "description": None}, NAMESPACE], "input": "x"}
    )
    assert bad_schema.responses_param("tools[1].function.parameters") == "tools[1].tools[0].parameters"
    assert bad_schema.responses_param("tools[2].function.parameters") == "tools[1].tools[1]"


# --- previous_response_id -------------------------------------------------------------------


def test_history_of_previous_responses_comes_first() -> None:
    conversation = conversation_digest([UserMessage(role="user", content="first")])
    history = [
        user("first"),
        {
            "id": "rs_1",
            "type": "reasoning",
            "summary": [],
            "encrypted_content": seal([(text_key("answer", conversation), "SIG")]),
        },
        said("answer"),
    ]
    form = form_of({"model": "gemini-3-pro-preview", "instructions": "sys", "input": "second"}, history)
    assert [m.role for m in form.chat.messages] == ["system", "user", "assistant", "user"]
    assert form.known_signatures == {text_key("answer", conversation): "SIG"}
    contents = gemini(form, "gemini-3-pro-preview")["contents"]
    assert contents == [
        {"role": "user", "parts": [{"text": "first"}]},
        {"role": "model", "parts": [{"text": "answer", "thoughtSignature": "SIG"}]},
        {"role": "user", "parts": [{"text": "second"}]},
    ]


def test_a_history_that_cannot_be_read_names_previous_response_id() -> None:
    with pytest.raises(ProxyError) as caught:
        form_of({"input": "x"}, [{"type": "message", "role": "user", "content": 5}])
    assert caught.value.param == "previous_response_id"
    with pytest.raises(ProxyError) as caught:
        form_of(
            {"input": "x"},
            [{"type": "message", "role": "user", "content": [{"type": "input_image", "file_id": "f"}]}],
        )
    assert caught.value.param == "previous_response_id"
