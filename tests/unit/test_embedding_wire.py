"""Embeddings in Google's dialects (upstream/embedding.py) and the core's form (wire/gemini_embed.py):
the bodies each dialect gets and the checks every answer passes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.upstream.embedding import aistudio_reply, embed_on_vertex, vertex_calls
from gemini_cli_proxy.upstream.errors import UpstreamError, Verdict
from gemini_cli_proxy.upstream.replies import Parser
from gemini_cli_proxy.wire.gemini_embed import EmbedContentRequest, Embeddings, estimated_tokens


def text(value: str, **settings: Any) -> EmbedContentRequest:
    request: dict[str, Any] = {"content": {"parts": [{"text": value}]}, **settings}
    return request  # type: ignore[return-value]


def test_a_text_model_on_vertex_makes_one_predict_call_per_size_asked() -> None:
    requests = [
        text("a", outputDimensionality=8, taskType="RETRIEVAL_QUERY"),
        text("b"),
        text("c", outputDimensionality=8, title="T"),
    ]
    calls = vertex_calls("text-embedding-004", requests)
    assert [(call.method, call.indices) for call in calls] == [("predict", [0, 2]), ("predict", [1])]
    assert calls[0].body == {
        "instances": [{"content": "a", "task_type": "RETRIEVAL_QUERY"}, {"content": "c", "title": "T"}],
        "parameters": {"outputDimensionality": 8},
    }
    assert calls[1].body == {"instances": [{"content": "b"}]}


def test_a_gemini_model_on_vertex_is_one_batch_with_the_settings_under_embed_content_config() -> None:
    (call,) = vertex_calls(
        "gemini-embedding-001", [text("a", taskType="CLUSTERING", model="models/x"), text("b")]
    )
    assert call.method == "batchEmbedContents"
    assert call.body == {
        "requests": [
            {"content": {"parts": [{"text": "a"}]}, "embedContentConfig": {"taskType": "CLUSTERING"}},
            {"content": {"parts": [{"text": "b"}]}},
        ]
    }


def test_vertex_text_models_take_no_media() -> None:
    image: EmbedContentRequest = {
        "content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}
    }
    with pytest.raises(ProxyError) as refused:
        vertex_calls("text-embedding-004", [image])
    assert refused.value.status == 400


def test_predict_answers_come_back_in_the_batchs_order_with_their_tokens_summed() -> None:
    async def post(method: str, body: Mapping[str, Any], parse: Parser) -> Embeddings:
        size = body.get("parameters", {}).get("outputDimensionality", 2)
        predictions = [
            {"embeddings": {"values": [float(len(i["content"]))] * size, "statistics": {"token_count": "2"}}}
            for i in body["instances"]
        ]
        result: Embeddings = parse(orjson.dumps({"predictions": predictions}), ())
        return result

    requests = [text("a", outputDimensionality=1), text("bb"), text("ccc", outputDimensionality=1)]
    answer = asyncio.run(embed_on_vertex("text-embedding-004", requests, post))
    assert answer.vectors == [[1.0], [2.0, 2.0], [3.0]]
    assert answer.prompt_tokens == 6


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ({"embeddings": [{"values": [0.1]}]}, "1 embeddings for 2"),
        ({"embeddings": [{"values": [0.1]}, {"values": ["x"]}]}, "not numbers"),
        ({"embeddings": [{"values": [0.1]}, {"values": []}]}, "without values"),
        ({"embeddings": [{"values": [0.1]}, "x"]}, "without values"),
        ({"embedding": {"values": [0.1]}}, "'embeddings' list"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_an_answer_that_is_not_one_vector_per_request_is_garbage(reply: Any, why: str) -> None:
    with pytest.raises(UpstreamError) as failed:
        aistudio_reply(2)(orjson.dumps(reply), ())
    assert why in failed.value.message


def test_usage_is_googles_count_when_it_gives_one_and_none_when_not() -> None:
    two = {"embeddings": [{"values": [0.1]}, {"values": [0.2]}]}
    assert aistudio_reply(2)(orjson.dumps(two), ()).prompt_tokens is None
    counted = {**two, "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}
    assert aistudio_reply(2)(orjson.dumps(counted), ()).prompt_tokens == 7


def test_the_estimate_is_four_characters_a_token_and_at_least_one_a_text() -> None:
    assert estimated_tokens([text("x" * 9), text(""), text("abcd")]) == 3 + 1 + 1


def test_predict_calls_stay_under_vertexs_token_limit() -> None:
    # 30 texts of ~2,000 estimated tokens: 7 fit the 15,000 budget per call.
    requests = [text("x" * 8000) for _ in range(30)]
    calls = vertex_calls("text-embedding-004", requests)
    assert [len(call.indices) for call in calls] == [7, 7, 7, 7, 2]
    assert [i for call in calls for i in call.indices] == list(range(30))
    assert max(estimated_tokens([requests[i] for i in call.indices]) for call in calls) <= 15_000


def test_when_one_vertex_call_fails_the_others_are_cancelled_and_its_failure_is_raised() -> None:
    cancelled: list[str] = []

    async def post(method: str, body: Mapping[str, Any], parse: Parser) -> Embeddings:
        if body.get("parameters"):
            raise UpstreamError(Verdict.RATE_LIMITED, 429, "spent")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(method)
            raise
        raise AssertionError("not cancelled")

    requests = [text("a"), text("b", outputDimensionality=4)]
    with pytest.raises(UpstreamError) as failed:  # not an ExceptionGroup: the pool judges this one
        asyncio.run(embed_on_vertex("text-embedding-004", requests, post))
    assert failed.value.status == 429 and cancelled == ["predict"]
