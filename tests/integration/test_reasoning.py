"""Reasoning: controls reach Gemini as thinkingConfig; thoughts come back where configured."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from gemini_cli_proxy.testing import FakeGoogle, Reply

from conftest import StartProxy
from support import assert_schema, recording

THOUGHTFUL = recording("aistudio-generate-thinking-3")["response_body"]
THOUGHT = "".join(p["text"] for p in THOUGHTFUL["candidates"][0]["content"]["parts"] if p.get("thought"))
ANSWER = "".join(p["text"] for p in THOUGHTFUL["candidates"][0]["content"]["parts"] if not p.get("thought"))
STREAM = [
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me think. ", "thought": True}]}}]},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Still thinking.", "thought": True}]}}]},
    {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "The answer", "thoughtSignature": "c2ln"}]}}
        ]
    },
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": " is 4."}]}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 5,
            "candidatesTokenCount": 4,
            "thoughtsTokenCount": 30,
            "totalTokenCount": 39,
        },
    },
]


def dump(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.model_dump(mode="json", exclude_unset=True)
    return data


def test_reasoning_effort_and_thought_summaries(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    with start_proxy().client() as client:
        fake.push(Reply.response(THOUGHTFUL))
        result = client.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "2+2?"}], reasoning_effort="low"
        )
        assert_schema(dump(result), "CreateChatCompletionResponse")
        assert fake.generate_requests()[0].request["generationConfig"]["thinkingConfig"] == {
            "thinkingBudget": 1024,
            "includeThoughts": True,
        }
        message = result.choices[0].message
        assert message.content == ANSWER and THOUGHT not in (message.content or "")
        assert (message.model_extra or {})["reasoning_content"] == THOUGHT
        assert result.usage is not None and result.usage.completion_tokens_details is not None
        meta = THOUGHTFUL["usageMetadata"]
        assert result.usage.completion_tokens_details.reasoning_tokens == meta["thoughtsTokenCount"]
        assert result.usage.completion_tokens == meta["candidatesTokenCount"] + meta["thoughtsTokenCount"]


def test_google_extra_body_and_levels_for_gemini3(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    with start_proxy().client() as client:
        client.chat.completions.create(
            model="gemini-3-pro-preview",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"google": {"thinking_config": {"thinking_level": "high", "include_thoughts": False}}},
        )
        client.chat.completions.create(
            model="gemini-3-pro-preview", messages=[{"role": "user", "content": "x"}], reasoning_effort="low"
        )
    first, second = (r.request["generationConfig"]["thinkingConfig"] for r in fake.generate_requests())
    assert first == {"thinkingLevel": "HIGH", "includeThoughts": False}
    assert second == {"thinkingLevel": "LOW", "includeThoughts": True}


@pytest.mark.parametrize("stream", [False, True])
def test_think_tags_mode(start_proxy: StartProxy, fake: FakeGoogle, stream: bool) -> None:
    with start_proxy(proxy_reasoning_output="think_tags").client() as client:
        messages: Any = [{"role": "user", "content": "2+2?"}]
        if stream:
            fake.push(Reply.stream(STREAM))
            chunks = list(
                client.chat.completions.create(model="gemini-2.5-flash", messages=messages, stream=True)
            )
            for chunk in chunks:
                assert_schema(dump(chunk), "CreateChatCompletionStreamResponse")
                assert "reasoning_content" not in (chunk.choices[0].delta.model_extra or {})
            content = "".join(c.choices[0].delta.content or "" for c in chunks)
            assert content == "<think>\nLet me think. Still thinking.\n</think>\n\nThe answer is 4."
        else:
            fake.push(Reply.response(THOUGHTFUL))
            message = (
                client.chat.completions.create(model="gemini-2.5-flash", messages=messages).choices[0].message
            )
            assert message.content == f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}"
            assert "reasoning_content" not in (message.model_extra or {})


def test_hidden_mode_asks_for_no_thoughts(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    with start_proxy(proxy_reasoning_output="hidden").client() as client:
        fake.push(Reply.stream(STREAM))
        chunks = list(
            client.chat.completions.create(
                model="gemini-2.5-flash",
                messages=[{"role": "user", "content": "x"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert "generationConfig" not in fake.generate_requests()[0].request
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "The answer is 4."
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 34


def test_streamed_reasoning_content(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    with start_proxy().client() as client:
        fake.push(Reply.stream(STREAM))
        chunks = list(
            client.chat.completions.create(
                model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks)
    assert reasoning == "Let me think. Still thinking."
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The answer is 4."


def test_invalid_reasoning_values_are_400(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    with start_proxy().client() as client:
        for model, extra, code in [
            ("gemini-2.5-pro", {"thinking_budget": 0}, "invalid_value"),
            ("gemini-2.5-flash", {"reasoning_effort": "max"}, "invalid_value"),
            ("gemini-2.0-flash", {"reasoning_effort": "low"}, "unsupported_parameter"),
        ]:
            with pytest.raises(openai.BadRequestError) as caught:
                client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "x"}], extra_body=extra
                )
            # The parameter at fault, named, and why.
            assert (caught.value.param, caught.value.code) == (next(iter(extra)), code), model
            body = caught.value.body
            assert isinstance(body, dict) and f"'{next(iter(extra))}'" in body["message"], body
    assert fake.generate_requests() == []
