"""OpenAI's embeddings request to the core's embedding form, and Google's vectors to OpenAI's
CreateEmbeddingResponse. Pure."""

from __future__ import annotations

import base64
import math
import sys
from array import array
from collections.abc import Sequence
from typing import Any

from ..wire.embeddings import EmbeddingRequest
from ..wire.gemini_embed import EmbedContentRequest


def to_embed_requests(req: EmbeddingRequest) -> list[EmbedContentRequest]:
    """One request per text, each with the call's settings (Google takes them per request)."""
    settings: EmbedContentRequest = {}
    if req.dimensions is not None:
        settings["outputDimensionality"] = req.dimensions
    if req.task_type is not None:
        settings["taskType"] = req.task_type
    return [{"content": {"parts": [{"text": text}]}, **settings} for text in req.texts()]


def to_openai_embeddings(
    vectors: Sequence[list[float]],
    *,
    model: str,
    prompt_tokens: int,
    base64_encoded: bool,
    normalise: bool = False,
) -> dict[str, Any]:
    """CreateEmbeddingResponse. `base64_encoded`: each vector as OpenAI's base64 form, the bytes of
    little-endian float32s (what the openai SDKs ask for by default, and decode themselves).
    `normalise`: scaled to unit length, as OpenAI's shortened vectors are (clients compare them by
    dot product); Google returns a shortened gemini-embedding-001 vector as it is."""
    encode = _base64 if base64_encoded else list
    shaped = [_unit(vector) for vector in vectors] if normalise else vectors
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode(vector)}
            for index, vector in enumerate(shaped)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _unit(vector: list[float]) -> list[float]:
    length = math.sqrt(math.fsum(value * value for value in vector))
    return vector if length == 0 else [value / length for value in vector]


def _base64(vector: list[float]) -> str:
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")
