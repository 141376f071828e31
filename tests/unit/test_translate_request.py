"""OpenAI request -> Gemini request: roles, system instruction, parameters, refusals."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gemini_cli_proxy.catalog import Catalog
from gemini_cli_proxy.errors import ProxyError
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
    translate(
        messages=[{"role": "user", "content": "x"}], response_format={"type": "text"}, tool_choice="auto"
    )
