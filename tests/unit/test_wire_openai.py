"""Request validation: every bad input is one 400 naming the parameter."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.wire.openai import error_type, parse_chat_request

GOOD: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "x"}]}


def error_for(body: bytes | dict[str, Any]) -> ProxyError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(ProxyError) as caught:
        parse_chat_request(raw)
    assert caught.value.status == 400 and error_type(caught.value.status) == "invalid_request_error"
    return caught.value


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": None}, "messages"),
        ({"model": 5}, "model"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "0.5"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": -3}, "max_completion_tokens"),
        ({"n": 0}, "n"),
        ({"n": 9}, "n"),
        ({"stream": "yes"}, "stream"),
        ({"stop": [1]}, "stop[0]"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"seed": 1.5}, "seed"),
        ({"stream_options": {"include_usage": "true"}}, "stream_options.include_usage"),
    ],
)
def test_invalid_values_name_their_param(change: dict[str, Any], param: str) -> None:
    body = {**GOOD, **change}
    if change.get("messages") is None and "messages" in change:
        body.pop("messages")
    assert error_for(body).param == param


def test_missing_model() -> None:
    error = error_for({"messages": GOOD["messages"]})
    assert error.param == "model" and error.code == "missing_required_parameter"


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"[1,2]", b"null", b'"text"', b"{'model': 1}"])
def test_malformed_json_is_invalid_json(raw: bytes) -> None:
    assert error_for(raw).code == "invalid_json"


def test_unknown_fields_are_ignored() -> None:
    request = parse_chat_request(orjson.dumps({**GOOD, "frobnicate": True, "x_vendor": {"a": 1}}))
    assert request.model == "m"


def test_integral_floats_are_accepted_for_floats() -> None:
    assert parse_chat_request(orjson.dumps({**GOOD, "temperature": 1})).temperature == 1.0


def _tool(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


def _raw(extra: str) -> bytes:
    """A body with `extra` spliced in as text: orjson cannot write the values under test."""
    return b'{"model": "m", "messages": [{"role": "user", "content": "x"}], ' + extra.encode() + b"}"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"max_tokens": 2**64}, "max_tokens"),
        ({"max_tokens": 2**31}, "max_tokens"),
        ({"max_completion_tokens": 10**30}, "max_completion_tokens"),
        ({"thinking_budget": 2**64}, "thinking_budget"),
        ({"thinking_budget": -(2**70)}, "thinking_budget"),
        ({"seed": 2**64}, "seed"),
        ({"seed": -(2**63) - 1}, "seed"),
        ({"top_logprobs": 2**64}, "top_logprobs"),
        ({"n": 2**64}, "n"),
    ],
)
def test_integers_are_bounded_to_what_gemini_takes(change: dict[str, Any], param: str) -> None:
    # orjson cannot dump the huge values: build the body as text.
    ((key, value),) = change.items()
    assert error_for(_raw(f'"{key}": {value}')).param == param


def test_largest_sensible_integers_pass() -> None:
    request = parse_chat_request(
        _raw(f'"max_tokens": {2**31 - 1}, "seed": {2**63 - 1}, "thinking_budget": {-(2**31)}')
    )
    assert (request.max_tokens, request.seed, request.thinking_budget) == (2**31 - 1, 2**63 - 1, -(2**31))


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            '"tools": [{"type": "function", "function": {"name": "f", "parameters": '
            '{"type": "object", "properties": {"x": {"type": "integer", "maximum": 18446744073709551616}}}'
            "}}]",
            "tools[0].function.parameters.properties.x.maximum",
        ),
        (
            '"tools": [{"type": "function", "function": {"name": "f", "parameters": '
            '{"properties": {"x": {"enum": [1, -1180591620717411303424]}}}}}]',
            "tools[0].function.parameters.properties.x.enum[1]",
        ),
        (
            '"tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": 1e400}}}]',
            "tools[0].function.parameters.x",
        ),
        (
            '"tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": -1e400}}}]',
            "tools[0].function.parameters.x",
        ),
        (
            '"tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": NaN}}}]',
            "tools[0].function.parameters.x",
        ),
        (
            '"functions": [{"name": "f", "parameters": {"minimum": 100000000000000000000000000000}}]',
            "functions[0].parameters.minimum",
        ),
        (
            '"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": '
            '{"type": "integer", "maximum": 18446744073709551616}}}',
            "response_format.json_schema.schema.maximum",
        ),
        (
            '"tool_choice": {"type": "function", "function": {"name": "f", "x": 18446744073709551616}}',
            "tool_choice.function.x",
        ),
        ('"function_call": {"name": "f", "x": Infinity}', "function_call.x"),
        ('"metadata": {"k": 18446744073709551616}', "metadata.k"),
        (
            '"google": {"thinking_config": {"thinking_budget": 18446744073709551616}}',
            "google.thinking_config.thinking_budget",
        ),
        (
            '"extra_body": {"google": {"thinking_config": {"thinking_budget": -1e400}}}',
            "extra_body.google.thinking_config.thinking_budget",
        ),
        ('"logit_bias": {"50256": 18446744073709551616}', "logit_bias.50256"),
        ('"prediction": {"content": [NaN]}', "prediction.content[0]"),
        ('"tools": [18446744073709551616]', "tools[0]"),
    ],
)
def test_json_that_cannot_be_sent_on_is_refused_by_its_path(extra: str, param: str) -> None:
    error = error_for(_raw(extra))
    assert error.param == param and error.code == "invalid_value"
    assert param in error.message


def test_json_in_tool_call_extra_content_is_checked() -> None:
    body = (
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": '
        b'[{"id": "a", "function": {"name": "f", "arguments": "{}"}, "extra_content": {"n": 1e999}}]}]}'
    )
    assert error_for(body).param == "messages[1].tool_calls[0].extra_content.n"


def test_json_at_the_edges_of_the_encodable_passes() -> None:
    schema = {"a": 2**64 - 1, "b": -(2**63), "c": 1e308, "d": -1e308, "e": 5e-324, "f": [True, None, "s"]}
    request = parse_chat_request(orjson.dumps({**GOOD, "tools": [_tool(schema)], "metadata": {"k": 2**63}}))
    assert orjson.loads(orjson.dumps(request.tools)) == [_tool(schema)]


def test_a_long_wrong_value_is_not_echoed_whole() -> None:
    error = error_for({**GOOD, "messages": [{"role": "x" * 100_000, "content": "x"}]})
    assert error.param == "messages[0].role" and len(error.message) < 300


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("field", ["temperature", "top_p", "presence_penalty", "frequency_penalty"])
def test_non_finite_floats_are_refused_as_such(field: str, number: str) -> None:
    error = error_for(_raw(f'"{field}": {number}'))
    assert error.param == field and "finite" in error.message
