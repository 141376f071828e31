"""Request validation: every bad input is one 400 naming the parameter."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.wire.openai import parse_chat_request

GOOD: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "x"}]}


def error_for(body: bytes | dict[str, Any]) -> ProxyError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(ProxyError) as caught:
        parse_chat_request(raw)
    assert caught.value.status == 400 and caught.value.type == "invalid_request_error"
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
