"""Gemini's embedding requests, the core's embedding form, and what an answer comes to. Pure.

Every door turns its request into a list of `EmbedContentRequest`s, AI Studio's own shape (its
batchEmbedContents takes them as they are; upstream/embedding.py writes Vertex's dialects from them),
and gets back `Embeddings`: one vector per request, in order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from typing_extensions import TypedDict

from ..errors import invalid_request
from .gemini_request import RequestContent

# Characters per token where Google's answer does not count them (AI Studio's batchEmbedContents):
# the rule of thumb Google gives for Gemini's tokenizer on English text.
CHARACTERS_PER_TOKEN = 4


class EmbedContentRequest(TypedDict, total=False):
    """One content to embed (the model goes in the URL; AI Studio wants it repeated here)."""

    model: str
    content: RequestContent
    taskType: str
    title: str
    outputDimensionality: int


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Google's vectors, one per request in order, and its count of the tokens embedded where its
    answer gives one (Vertex's does, AI Studio's batch answer does not)."""

    vectors: list[list[float]]
    prompt_tokens: int | None


def text_of(request: EmbedContentRequest) -> str:
    """The text of a request's parts, one after another (what Vertex's text models take)."""
    return "".join(part.get("text", "") for part in request.get("content", {}).get("parts", []))


def estimated_tokens(requests: Sequence[EmbedContentRequest]) -> int:
    """A count for usage where Google gave none: each text's characters over CHARACTERS_PER_TOKEN,
    rounded up (at least one token a request, as Google counts an empty text)."""
    return sum(max(1, math.ceil(len(text_of(request)) / CHARACTERS_PER_TOKEN)) for request in requests)


# Google's JSON takes a field in either spelling; the core reads the camelCase one. Vertex's form puts
# the settings under embedContentConfig, which AI Studio's refuses: both become the top-level fields.
_SETTINGS = {
    "taskType": "taskType",
    "task_type": "taskType",
    "title": "title",
    "outputDimensionality": "outputDimensionality",
    "output_dimensionality": "outputDimensionality",
}
_CONFIGS = ("embedContentConfig", "embed_content_config")


def checked_request(value: Any, where: str) -> EmbedContentRequest:
    """A Gemini door's request (one of a batch's, or embedContent's body), checked to be the shape
    the proxy reads (a content of text parts), with its settings spelled as the core reads them, and
    otherwise left as the client wrote it: Google judges the rest. `where`: its place in the body,
    for the error."""
    if not isinstance(value, dict):
        raise invalid_request(f"Invalid value at '{where}': expected an object.", param=where)
    content = value.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts or not all(isinstance(part, dict) for part in parts):
        raise invalid_request(
            f"Invalid value at '{where}content': expected a content with at least one part.",
            param=f"{where}content",
        )
    for index, part in enumerate(parts):
        if "text" in part and not isinstance(part["text"], str):
            param = f"{where}content.parts[{index}].text"
            raise invalid_request(f"Invalid value at '{param}': expected a string.", param=param)
    for key in _CONFIGS:
        if key in value and not isinstance(value[key], dict):
            raise invalid_request(f"Invalid value at '{where}{key}': expected an object.", param=where + key)
    request = {key: item for key, item in value.items() if key not in _SETTINGS and key not in _CONFIGS}
    for holder in (value, *(value[key] for key in _CONFIGS if isinstance(value.get(key), dict))):
        request.update((_SETTINGS[key], item) for key, item in holder.items() if key in _SETTINGS)
    for field in ("taskType", "title"):
        if field in request and not isinstance(request[field], str):
            raise invalid_request(
                f"Invalid value at '{where}{field}': expected a string.", param=where + field
            )
    return cast(EmbedContentRequest, request)


def check_dimensions(requests: Sequence[EmbedContentRequest], most: int, param: str) -> None:
    """Each request's outputDimensionality is a whole number Google can give (1 to the model's
    size), or absent; `param`: the door's name for it."""
    for request in requests:
        size: Any = request.get("outputDimensionality")
        if size is None:
            continue
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= most:
            raise invalid_request(
                f"Invalid value for '{param}': this model makes vectors of 1 to {most} numbers.",
                param=param,
                code="invalid_value",
            )
