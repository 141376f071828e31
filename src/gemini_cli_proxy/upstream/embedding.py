"""Embeddings in Google's two dialects: AI Studio's batchEmbedContents, and Vertex AI's, which is
batchEmbedContents with the settings under `embedContentConfig` for Gemini's embedding models and the
older `:predict` (instances of plain text) for its text-embedding models. Pure but for `embed_on_vertex`
running the calls a client makes.

Every reply is checked at the boundary: one vector per request, each a non-empty list of numbers, or
the answer is garbage (UpstreamError), as a generate reply would be.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import errors
from ..wire.gemini_embed import EmbedContentRequest, Embeddings, estimated_tokens, text_of
from .errors import garbage
from .replies import Parser, any_json

# The most requests one batchEmbedContents call may carry (AI Studio refuses more); Vertex's :predict
# takes up to 250 instances, so a chunk is one call everywhere but for predict's token limit below.
EMBED_BATCH_LIMIT = 100
# Vertex's :predict refuses more than 20,000 input tokens in one call: a chunk is split below that, by
# the proxy's estimate (4 characters a token), with room for the estimate being low.
PREDICT_TOKEN_BUDGET = 15_000


@dataclass(frozen=True, slots=True)
class EmbedCall:
    """One call to Google for some of a batch's requests (`indices`, in the batch's order)."""

    method: str
    body: dict[str, Any]
    indices: list[int]
    parse: Parser


_CONFIG_KEYS = frozenset({"taskType", "title", "outputDimensionality"})

# (method, body, parser) -> the parsed reply: how a client posts to the model's URL.
Post = Callable[[str, Mapping[str, Any], Parser], Coroutine[Any, Any, Embeddings]]


def aistudio_body(model: str, requests: Sequence[EmbedContentRequest]) -> dict[str, Any]:
    """AI Studio's batchEmbedContents body: the requests as they are, each naming the URL's model."""
    name = f"models/{model}"
    return {"requests": [{**request, "model": name} for request in requests]}


def aistudio_reply(expected: int) -> Parser:
    """The parser of a batchEmbedContents answer for `expected` requests."""

    def parse(raw: bytes, secrets: tuple[str, ...]) -> Embeddings:
        reply = _json_object(raw, secrets)
        embeddings = reply.get("embeddings")
        if not isinstance(embeddings, list):
            raise garbage("an embedding answer without an 'embeddings' list")
        vectors = [_values(item.get("values") if isinstance(item, dict) else None) for item in embeddings]
        return Embeddings(_counted(vectors, expected), _prompt_tokens(reply.get("usageMetadata")))

    return parse


def vertex_calls(model: str, requests: Sequence[EmbedContentRequest]) -> list[EmbedCall]:
    """The calls that embed `requests` on Vertex: one batchEmbedContents for a Gemini model; for a
    text-embedding model :predict calls, one per output size asked (a parameter of the whole call)
    and more where the texts' tokens would pass PREDICT_TOKEN_BUDGET."""
    if model.startswith("gemini-"):
        batch = {"requests": [_vertex_request(request) for request in requests]}
        everything = list(range(len(requests)))
        return [EmbedCall("batchEmbedContents", batch, everything, aistudio_reply(len(requests)))]
    by_size: dict[int | None, list[int]] = {}
    for index, request in enumerate(requests):
        by_size.setdefault(request.get("outputDimensionality"), []).append(index)
    calls = []
    for size, same_size in by_size.items():
        for indices in _within_budget(requests, same_size):
            body: dict[str, Any] = {"instances": [_instance(requests[i]) for i in indices]}
            if size is not None:
                body["parameters"] = {"outputDimensionality": size}
            calls.append(EmbedCall("predict", body, indices, _predict_reply(len(indices))))
    return calls


def _within_budget(requests: Sequence[EmbedContentRequest], indices: list[int]) -> list[list[int]]:
    """`indices` in runs whose estimated tokens stay within PREDICT_TOKEN_BUDGET (a text over it
    alone goes alone: Google truncates or refuses it, as it would without the proxy)."""
    runs: list[list[int]] = [[]]
    spent = 0
    for index in indices:
        tokens = estimated_tokens([requests[index]])
        if runs[-1] and spent + tokens > PREDICT_TOKEN_BUDGET:
            runs.append([])
            spent = 0
        runs[-1].append(index)
        spent += tokens
    return runs


async def embed_on_vertex(model: str, requests: Sequence[EmbedContentRequest], post: Post) -> Embeddings:
    """`requests` embedded through Vertex's calls for `model` (mostly one), their answers in order."""
    calls = vertex_calls(model, requests)
    if len(calls) == 1:
        return await post(calls[0].method, calls[0].body, calls[0].parse)
    # A TaskGroup: when one call fails, the others are cancelled rather than left spending quota.
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(post(call.method, call.body, call.parse)) for call in calls]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None  # the pool judges the credential by the first failure
    answers = [task.result() for task in tasks]
    vectors: list[list[float]] = [[] for _ in requests]
    tokens: int | None = 0
    for call, answer in zip(calls, answers, strict=True):
        for index, vector in zip(call.indices, answer.vectors, strict=True):
            vectors[index] = vector
        tokens = None if tokens is None or answer.prompt_tokens is None else tokens + answer.prompt_tokens
    return Embeddings(vectors, tokens)


def _vertex_request(request: EmbedContentRequest) -> dict[str, Any]:
    """One request of Vertex's batchEmbedContents: the settings move under embedContentConfig."""
    config = {key: value for key, value in request.items() if key in _CONFIG_KEYS}
    out: dict[str, Any] = {"content": request.get("content", {})}
    if config:
        out["embedContentConfig"] = config
    return out


def _instance(request: EmbedContentRequest) -> dict[str, Any]:
    """One :predict instance: Vertex's text models take plain text, so other parts cannot go."""
    parts = request.get("content", {}).get("parts", [])
    if any(set(part) - {"text"} for part in parts):
        raise errors.invalid_request(
            "Vertex AI's text-embedding models embed text only: send text parts, or use gemini-embedding-001."
        )
    instance: dict[str, Any] = {"content": text_of(request)}
    if "taskType" in request:
        instance["task_type"] = request["taskType"]
    if "title" in request:
        instance["title"] = request["title"]
    return instance


def _predict_reply(expected: int) -> Parser:
    def parse(raw: bytes, secrets: tuple[str, ...]) -> Embeddings:
        reply = _json_object(raw, secrets)
        predictions = reply.get("predictions")
        if not isinstance(predictions, list):
            raise garbage("a :predict answer without a 'predictions' list")
        vectors: list[list[float]] = []
        tokens: int | None = 0
        for prediction in predictions:
            embedding = prediction.get("embeddings") if isinstance(prediction, dict) else None
            if not isinstance(embedding, dict):
                raise garbage("a prediction without 'embeddings'")
            vectors.append(_values(embedding.get("values")))
            statistics = embedding.get("statistics")
            count = statistics.get("token_count") if isinstance(statistics, dict) else None
            tokens = _plus(tokens, count)
        return Embeddings(_counted(vectors, expected), tokens)

    return parse


def _json_object(raw: bytes, secrets: tuple[str, ...]) -> dict[str, Any]:
    reply = any_json(raw, secrets)
    if not isinstance(reply, dict):
        raise garbage("an embedding answer that is not a JSON object")
    return reply


def _values(values: Any) -> list[float]:
    """A vector as Google sent it, checked to be numbers (array() refuses anything else, at C speed:
    a batch is up to 100 x 3072 of them)."""
    if not isinstance(values, list) or not values:
        raise garbage("an embedding without values")
    try:
        array("d", values)
    except TypeError:
        raise garbage("an embedding with values that are not numbers") from None
    return values


def _counted(vectors: list[list[float]], expected: int) -> list[list[float]]:
    if len(vectors) != expected:
        raise garbage(f"{len(vectors)} embeddings for {expected} inputs")
    return vectors


def _prompt_tokens(usage: Any) -> int | None:
    count = usage.get("promptTokenCount") if isinstance(usage, dict) else None
    return _plus(0, count)


def _plus(total: int | None, count: Any) -> int | None:
    """`total` plus one count of Google's (protobuf's JSON may send it as a string); None once any
    count is missing, since a sum of some would be wrong."""
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if total is None or not isinstance(count, int) or isinstance(count, bool):
        return None
    return total + count
