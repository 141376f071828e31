"""Gemini responses (real recordings) -> OpenAI chat.completion and chunks, schema-valid."""

from __future__ import annotations

from typing import Any

import pytest

from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.translate.response import finish_reason, to_chat_completion, usage
from gemini_cli_proxy.translate.stream import StreamTranslator

from support import assert_schema, recording


def complete(response: dict[str, Any]) -> dict[str, Any]:
    completion = to_chat_completion(response, model="m", completion_id="chatcmpl-1", created=1).completion
    assert_schema(completion, "CreateChatCompletionResponse")
    return completion


@pytest.mark.parametrize(
    ("name", "finish", "content"),
    [
        ("aistudio-generate-prompt-blocked-1", "content_filter", ""),
        ("vertex-generate-prompt-blocked-1", "content_filter", ""),
        ("aistudio-generate-max-tokens-2", "length", ""),
        ("aistudio-generate-safety-1", "content_filter", ""),
    ],
)
def test_ragged_recordings(name: str, finish: str, content: str) -> None:
    choice = complete(recording(name)["response_body"])["choices"][0]
    assert choice["finish_reason"] == finish and choice["message"]["content"] == content


def test_gemini3_signed_text_part_is_plain_content() -> None:
    body = recording("aistudio-generate-gemini3-text-signature-1")["response_body"]
    message = complete(body)["choices"][0]["message"]
    assert message["content"] == body["candidates"][0]["content"]["parts"][0]["text"]


def test_thought_parts_go_to_reasoning_content() -> None:
    body = recording("aistudio-generate-thinking-3")["response_body"]
    message = complete(body)["choices"][0]["message"]
    parts = body["candidates"][0]["content"]["parts"]
    assert message["reasoning_content"] == "".join(p["text"] for p in parts if p.get("thought"))
    assert message["content"] == "".join(p["text"] for p in parts if not p.get("thought"))


def test_usage_mapping() -> None:
    meta = {
        "promptTokenCount": 10,
        "toolUsePromptTokenCount": 3,
        "candidatesTokenCount": 7,
        "thoughtsTokenCount": 20,
        "cachedContentTokenCount": 4,
        "totalTokenCount": 40,
    }
    assert usage(meta) == {
        "prompt_tokens": 13,
        "completion_tokens": 27,
        "total_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }


@pytest.mark.parametrize(
    ("gemini", "openai"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
        ("SOMETHING_NEW", "stop"),
    ],
)
def test_finish_reasons(gemini: str, openai: str) -> None:
    assert finish_reason(gemini) == openai


def test_no_candidates_and_no_block_is_a_bad_gateway() -> None:
    with pytest.raises(ProxyError) as caught:
        to_chat_completion({"usageMetadata": {}}, model="m", completion_id="c", created=1)
    assert caught.value.status == 502


def run_stream(events: list[dict[str, Any]], include_usage: bool = True) -> list[dict[str, Any]]:
    translator = StreamTranslator(
        model="m", completion_id="chatcmpl-1", created=1, include_usage=include_usage
    )
    chunks = [chunk for event in events for chunk in translator.feed(event)] + translator.finish()
    for chunk in chunks:
        assert_schema(chunk, "CreateChatCompletionStreamResponse")
    return chunks


@pytest.mark.parametrize(
    "name",
    [
        "aistudio-stream-sse-text-1",
        "aistudio-stream-sse-thinking-1",
        "aistudio-stream-sse-usage-1",
    ],
)
def test_recorded_streams_translate_to_valid_chunk_sequences(name: str) -> None:
    rec = recording(name)
    chunks = run_stream(rec["response_events"])
    with_choices = [c for c in chunks if c["choices"]]
    assert with_choices[0]["choices"][0]["delta"]["role"] == "assistant"
    finals = [c for c in with_choices if c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0] is with_choices[-1] and finals[0]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage(
        rec["response_events"][-1]["usageMetadata"]
    )
    answer = "".join(
        p.get("text", "")
        for e in rec["response_events"]
        for p in e["candidates"][0]["content"].get("parts", [])
        if not p.get("thought")
    )
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in with_choices) == answer


def test_stream_ending_with_empty_signed_text_part() -> None:
    events = recording("aistudio-stream-sse-function-call-1")["response_events"]
    last = events[-1]
    assert last["candidates"][0]["content"]["parts"][0]["text"] == ""
    chunks = run_stream(
        [{"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}}]}, last],
        include_usage=False,
    )
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": "", "refusal": None},
        {"content": "hi"},
        {},
    ]
    assert "usage" not in chunks[0]


def test_stream_without_finish_reason_is_closed_with_stop() -> None:
    chunks = run_stream([{"candidates": [{"content": {"parts": [{"text": "a"}]}}]}], include_usage=False)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
