"""OpenAI request -> Gemini request: roles, system instruction, parameters, refusals."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.translate.request import to_gemini_request
from gemini_cli_proxy.wire.openai import parse_chat_request


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "gemini-2.5-flash")
    return to_gemini_request(parse_chat_request(orjson.dumps(body)))[0]


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


def test_only_system_messages_is_a_clear_400() -> None:
    error = refused(messages=[{"role": "system", "content": "x"}])
    assert error.param == "messages"


def test_no_generation_config_when_nothing_set() -> None:
    assert "generationConfig" not in translate(messages=[{"role": "user", "content": "x"}])


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    config = translate(messages=[{"role": "user", "content": "x"}], max_tokens=5, max_completion_tokens=9)
    assert config["generationConfig"]["maxOutputTokens"] == 9


def test_n_of_one_sends_no_candidate_count() -> None:
    assert "generationConfig" not in translate(messages=[{"role": "user", "content": "x"}], n=1)


def test_more_than_four_stop_sequences_is_refused() -> None:
    error = refused(messages=[{"role": "user", "content": "x"}], stop=["a", "b", "c", "d", "e"])
    assert error.param == "stop"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"reasoning_effort": "low"}, "reasoning_effort"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ],
)
def test_parameters_not_carried_yet_are_refused_by_name(extra: dict[str, Any], param: str) -> None:
    error = refused(messages=[{"role": "user", "content": "x"}], **extra)
    assert error.param == param and error.code == "unsupported_parameter"


def test_image_parts_are_refused_by_position() -> None:
    error = refused(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": "data:,"}},
                ],
            }
        ]
    )
    assert error.param == "messages[0].content[1].type"


def test_text_response_format_and_auto_tool_choice_are_fine() -> None:
    translate(
        messages=[{"role": "user", "content": "x"}], response_format={"type": "text"}, tool_choice="auto"
    )
