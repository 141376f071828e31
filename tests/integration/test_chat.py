"""Chat completions end to end: openai SDK -> proxy -> fake Google, checking both ends."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest

from gemini_cli_proxy.testing import FakeGoogle, Reply

from conftest import Proxy, StartProxy
from support import assert_schema, recording

MODEL = "gemini-2.5-flash"


def _dump(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.model_dump(mode="json", exclude_unset=True)
    return data


def test_plain_completion_with_system_and_developer_messages(client: openai.OpenAI, fake: FakeGoogle) -> None:
    fake.push(
        Reply.text(
            "Paris is the capital.",
            usage={"promptTokenCount": 12, "candidatesTokenCount": 5, "totalTokenCount": 17},
        )
    )
    result = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "Capital of France?"},
        ],
    )
    assert_schema(_dump(result), "CreateChatCompletionResponse")
    assert result.id.startswith("chatcmpl-")
    assert result.object == "chat.completion"
    assert result.model == MODEL
    choice = result.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Paris is the capital."
    assert choice.message.refusal is None
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (
        12,
        5,
        17,
    )

    (sent,) = fake.generate_requests()
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.api_key == "test-key-0001" and not sent.key_in_query
    assert sent.request["systemInstruction"] == {
        "parts": [{"text": "You are terse."}, {"text": "Answer in English."}]
    }
    assert sent.request["contents"] == [{"role": "user", "parts": [{"text": "Capital of France?"}]}]


def test_conversation_roles_and_parameters_reach_gemini(client: openai.OpenAI, fake: FakeGoogle) -> None:
    client.chat.completions.create(
        model="gemini-2.0-flash",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi, "}, {"type": "text", "text": "there"}],
            },
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Tell me a joke"},
            {"role": "user", "content": "about cats"},
        ],
        max_tokens=100,
        temperature=0.3,
        top_p=0.9,
        stop=["END", "STOP"],
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        seed=42,
        user="someone",
        metadata={"trace": "x"},
    )
    request = fake.generate_requests()[0].request
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "Hi, "}, {"text": "there"}]},
        {"role": "model", "parts": [{"text": "Hello!"}]},
        {"role": "user", "parts": [{"text": "Tell me a joke"}, {"text": "about cats"}]},
    ]
    assert "systemInstruction" not in request
    assert request["generationConfig"] == {
        "maxOutputTokens": 100,
        "temperature": 0.3,
        "topP": 0.9,
        "stopSequences": ["END", "STOP"],
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "seed": 42,
    }


def test_penalties_zero_is_dropped_and_refused_where_gemini_refuses_them(
    client: openai.OpenAI, fake: FakeGoogle
) -> None:
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], presence_penalty=0, frequency_penalty=0.0
    )
    assert "presencePenalty" not in fake.generate_requests()[0].request["generationConfig"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], presence_penalty=0.5
        )
    assert (caught.value.body or {})["param"] == "presence_penalty"  # type: ignore[index]
    assert len(fake.generate_requests()) == 1


def test_only_instructions_still_get_an_answer(client: openai.OpenAI, fake: FakeGoogle) -> None:
    result = client.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "Say hi"}])
    assert result.choices[0].message.content == "Echo: Say hi"
    request = fake.generate_requests()[0].request
    assert request["contents"] == [{"role": "user", "parts": [{"text": "Say hi"}]}]
    assert "systemInstruction" not in request


def test_huge_seed_is_folded_into_geminis_range(client: openai.OpenAI, fake: FakeGoogle) -> None:
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], seed=2**40 + 5)
    assert fake.generate_requests()[0].request["generationConfig"]["seed"] == 5


@pytest.mark.parametrize("stream", [False, True])
def test_empty_malformed_function_call_is_an_error_not_an_answer(
    proxy: Proxy, fake: FakeGoogle, stream: bool
) -> None:
    body = {
        "candidates": [
            {"content": {}, "finishReason": "MALFORMED_FUNCTION_CALL", "finishMessage": "bad call"}
        ]
    }
    fake.push(Reply.response(body))
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "x"}]},
    )
    if stream:
        frames = response.text.split("\n\n")
        assert '"code":"upstream_error"' in frames[-3] and "MALFORMED_FUNCTION_CALL" in frames[-3]
        assert frames[-2] == "data: [DONE]"
    else:
        assert response.status_code == 502 and "bad call" in response.json()["error"]["message"]


def test_max_completion_tokens_and_single_stop_string(client: openai.OpenAI, fake: FakeGoogle) -> None:
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], max_completion_tokens=7, stop="\n\n"
    )
    config = fake.generate_requests()[0].request["generationConfig"]
    assert config == {
        "maxOutputTokens": 7,
        "stopSequences": ["\n\n"],
        "thinkingConfig": {"includeThoughts": True},
    }


def test_n_choices_map_to_candidate_count(client: openai.OpenAI, fake: FakeGoogle) -> None:
    result = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "pick"}], n=3)
    assert_schema(_dump(result), "CreateChatCompletionResponse")
    assert [c.index for c in result.choices] == [0, 1, 2]
    assert len({c.message.content for c in result.choices}) == 3
    assert fake.generate_requests()[0].request["generationConfig"]["candidateCount"] == 3


def test_streaming_with_usage(client: openai.OpenAI, fake: FakeGoogle) -> None:
    fake.push(Reply.text("one two three four", chunks=3))
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    for chunk in chunks:
        assert_schema(_dump(chunk), "CreateChatCompletionStreamResponse")
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert fake.generate_requests()[0].path.endswith(":streamGenerateContent")
    assert fake.generate_requests()[0].query.get("alt") == "sse"


def test_raw_stream_framing_is_exact(proxy: Proxy, fake: FakeGoogle) -> None:
    """What curl users see: `data: {...}` events, the finish chunk, then `data: [DONE]`."""
    fake.push(Reply.text("a b", chunks=2))
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(event.startswith("data: {") for event in events[:-2])
    assert '"finish_reason":"stop"' in events[-3]
    assert '"usage"' not in response.text  # no include_usage, no usage key


def test_stream_default_setting(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(proxy_stream_default=True)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    streamed = httpx.post(f"{proxy.url}/v1/chat/completions", json=body)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.endswith("data: [DONE]\n\n")
    explicit = httpx.post(f"{proxy.url}/v1/chat/completions", json={**body, "stream": False})
    assert explicit.headers["content-type"].startswith("application/json")
    assert_schema(explicit.json(), "CreateChatCompletionResponse")


def test_streaming_n_choices_each_finish(client: openai.OpenAI, fake: FakeGoogle) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x y"}], n=2, stream=True
        )
    )
    for chunk in chunks:
        assert_schema(_dump(chunk), "CreateChatCompletionStreamResponse")
    for index in (0, 1):
        mine = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == index]
        assert mine[0].delta.role == "assistant"
        assert [c.finish_reason for c in mine if c.finish_reason] == ["stop"]


def test_async_client_plain_and_stream(proxy: Proxy, fake: FakeGoogle) -> None:
    async def scenario() -> tuple[str | None, str]:
        async with proxy.async_client() as sdk:
            plain = await sdk.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}]
            )
            stream = await sdk.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi there"}], stream=True
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return plain.choices[0].message.content, "".join(parts)

    plain, streamed = asyncio.run(scenario())
    assert plain == "Echo: hi"
    assert streamed == "Echo: hi there"


def test_routes_without_v1_prefix(proxy: Proxy, fake: FakeGoogle) -> None:
    with openai.OpenAI(base_url=proxy.url, api_key="x", max_retries=0) as sdk:
        result = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "bare"}])
        assert result.choices[0].message.content == "Echo: bare"
        assert any(m.id == MODEL for m in sdk.models.list())


def test_unknown_extra_fields_and_sdk_headers_are_ignored(proxy: Proxy, fake: FakeGoogle) -> None:
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        headers={"x-stainless-lang": "python", "x-stainless-retry-count": "0", "accept-language": "*"},
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "x", "name": "bob"}],
            "zzz": 1,
            "store": False,
            "service_tier": "auto",
            "modalities": ["text"],
        },
    )
    assert response.status_code == 200, response.text


def test_models_prefix_spelling_is_accepted(client: openai.OpenAI, fake: FakeGoogle) -> None:
    result = client.chat.completions.create(
        model=f"models/{MODEL}", messages=[{"role": "user", "content": "x"}]
    )
    assert result.model == f"models/{MODEL}"
    assert fake.generate_requests()[0].model == MODEL


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_blocked_is_content_filter(client: openai.OpenAI, fake: FakeGoogle, stream: bool) -> None:
    fake.push(Reply.response(recording("aistudio-generate-prompt-blocked-1")["response_body"]))
    messages: Any = [{"role": "user", "content": "something bad"}]
    if not stream:
        result = client.chat.completions.create(model=MODEL, messages=messages)
        assert_schema(_dump(result), "CreateChatCompletionResponse")
        assert result.choices[0].finish_reason == "content_filter"
        assert result.choices[0].message.content == ""
        assert result.usage is not None and result.usage.prompt_tokens == 9
        return
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
    for chunk in chunks:
        assert_schema(_dump(chunk), "CreateChatCompletionStreamResponse")
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["content_filter"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""


def test_recorded_max_tokens_without_parts_is_length(client: openai.OpenAI, fake: FakeGoogle) -> None:
    fake.push(Reply.response(recording("aistudio-generate-max-tokens-2")["response_body"]))
    result = client.chat.completions.create(
        model="gemini-2.5-pro", messages=[{"role": "user", "content": "x"}]
    )
    assert_schema(_dump(result), "CreateChatCompletionResponse")
    assert result.choices[0].finish_reason == "length"
    assert result.choices[0].message.content == ""
    meta = recording("aistudio-generate-max-tokens-2")["response_body"]["usageMetadata"]
    assert result.usage is not None
    assert result.usage.completion_tokens == meta.get("candidatesTokenCount", 0) + meta["thoughtsTokenCount"]
    assert result.usage.completion_tokens_details is not None
    assert result.usage.completion_tokens_details.reasoning_tokens == meta["thoughtsTokenCount"]


def test_recorded_safety_block_is_content_filter(client: openai.OpenAI, fake: FakeGoogle) -> None:
    fake.push(Reply.response(recording("aistudio-generate-safety-1")["response_body"]))
    result = client.chat.completions.create(
        model="gemini-1.5-flash", messages=[{"role": "user", "content": "x"}]
    )
    assert result.choices[0].finish_reason == "content_filter"
    assert result.choices[0].message.content == ""


def test_recorded_sse_stream_replayed_byte_exact(client: openai.OpenAI, fake: FakeGoogle) -> None:
    rec = recording("aistudio-stream-sse-text-1")
    fake.push(Reply.raw(200, rec["response_raw"].encode(), content_type="text/event-stream"))
    chunks = list(
        client.chat.completions.create(
            model="gemini-2.0-flash-exp",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    for chunk in chunks:
        assert_schema(_dump(chunk), "CreateChatCompletionStreamResponse")
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "The capital of France is Paris.\n"
    )
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        13,
        8,
        21,
    )


def test_recorded_thinking_stream_keeps_thoughts_out_of_content(
    client: openai.OpenAI, fake: FakeGoogle
) -> None:
    rec = recording("aistudio-stream-sse-thinking-1")
    fake.push(Reply.raw(200, rec["response_raw"].encode(), content_type="text/event-stream"))
    chunks = list(
        client.chat.completions.create(
            model="gemini-2.5-pro", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks)
    thought_text = "".join(
        p["text"]
        for e in rec["response_events"]
        for p in e["candidates"][0]["content"].get("parts", [])
        if p.get("thought")
    )
    assert reasoning == thought_text and thought_text
    assert "Clarifying User Goals" not in content and content
