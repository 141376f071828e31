"""Google's embedding methods as the fake serves them: request checks, default replies and the vectors.

- AI Studio: ``:embedContent`` and ``:batchEmbedContents`` (at most 100 requests, each naming
  ``models/{the URL's model}``) for gemini-embedding-* and text-embedding-* models; the replies carry no
  usage, which is the documented AI Studio shape.
- Vertex AI: the same two methods for gemini-embedding-* models, with settings under
  ``embedContentConfig`` and ``usageMetadata`` in the reply; ``:predict`` (at most 250 instances of
  plain text) for text-embedding-* and text-multilingual-embedding-* models, and for gemini-embedding
  one instance at a time, as Vertex allowed it.

The checks are Google's 400s (what a proxy must never provoke), worded in Google's style. Vectors are
deterministic per (model, task type, text) so tests can compare them across calls: at the model's full
size they are L2-normalised as Google's are; a smaller ``outputDimensionality`` gives a prefix of the same
raw vector (Matryoshka truncation), not normalised, as Google's truncated ones are not.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from gemini_cli_proxy.testing.fake_replies import prompt_token_count
from gemini_cli_proxy.testing.fake_validation import unknown_name

EmbeddingApi = Literal["aistudio", "vertex"]

AISTUDIO_EMBED_ACTIONS = frozenset({"embedContent", "batchEmbedContents"})
VERTEX_EMBED_ACTIONS = AISTUDIO_EMBED_ACTIONS | {"predict"}
MAX_BATCH_REQUESTS = 100
MAX_PREDICT_INSTANCES = 250
GEMINI_EMBEDDING_DIMENSIONS = 3072
TEXT_EMBEDDING_DIMENSIONS = 768
DEFAULT_TASK_TYPE = "TASK_TYPE_UNSPECIFIED"
TASK_TYPES = frozenset(
    {
        DEFAULT_TASK_TYPE,
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)
GEMINI_VIA_PREDICT = (
    "Gemini cannot be accessed through Vertex Predict/RawPredict API. Please follow "
    "https://cloud.google.com/vertex-ai/docs/generative-ai/start/quickstarts/quickstart-multimodal for "
    "Gemini usage."
)

_GEMINI_PREFIX = "gemini-embedding"
_TEXT_PREFIXES = ("text-embedding-", "text-multilingual-embedding-")
_PACKAGES: Mapping[EmbeddingApi, str] = {
    "aistudio": "google.ai.generativelanguage.v1beta",
    "vertex": "google.cloud.aiplatform.v1",
}
# The settings one embedding request may carry, in the camelCase Google writes.
_OPTION_FIELDS = ("taskType", "title", "outputDimensionality")
_VERTEX_OPTION_FIELDS = (*_OPTION_FIELDS, "autoTruncate", "documentOcr", "audioTrackExtraction")
_PREDICT_INSTANCE_KEYS = frozenset({"content", "task_type", "title"})
_PREDICT_PARAMETER_KEYS = frozenset({"outputDimensionality", "autoTruncate"})


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _spellings(*names: str) -> frozenset[str]:
    """Google's JSON parser takes a proto field in camelCase or snake_case."""
    return frozenset(spelling for name in names for spelling in (name, _snake(name)))


_AISTUDIO_REQUEST_KEYS = _spellings("model", "content", *_OPTION_FIELDS)
_VERTEX_REQUEST_KEYS = _spellings("model", "content", "embedContentConfig", *_VERTEX_OPTION_FIELDS)
_VERTEX_CONFIG_KEYS = _spellings(*_VERTEX_OPTION_FIELDS)
_BATCH_KEYS = _spellings("model", "requests")
_CONTENT_KEYS = frozenset({"role", "parts"})


def is_embedding_model(model: str) -> bool:
    """gemini-embedding-* (AI Studio and Vertex) and Vertex's text-embedding-* / text-multilingual-*."""
    return model.startswith((_GEMINI_PREFIX, *_TEXT_PREFIXES))


def embedding_dimensions(model: str) -> int:
    """The model's full (default and largest) vector size."""
    if model.startswith(_GEMINI_PREFIX):
        return GEMINI_EMBEDDING_DIMENSIONS
    if model.startswith(_TEXT_PREFIXES):
        return TEXT_EMBEDDING_DIMENSIONS
    raise ValueError(f"{model} is not an embedding model")


def unsupported_method_message(name: str, action: str) -> str:
    """Vertex's 400 for a method the publisher model does not offer (generateContent on an embedder...)."""
    return f"Publisher Model `{name}` does not support the {action} method."


def embedding_values(
    model: str, text: str, task_type: str = DEFAULT_TASK_TYPE, dimensions: int | None = None
) -> list[float]:
    """The fake's vector for `text`: sha256 in counter mode, two bytes per value mapped onto [-1, 1]."""
    full = embedding_dimensions(model)
    raw = _raw_values(f"{model}\x00{task_type}\x00{text}".encode(), full)
    if dimensions is not None and dimensions < full:
        return raw[:dimensions]
    norm = math.sqrt(math.fsum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


def _raw_values(seed: bytes, count: int) -> list[float]:
    blocks = -(-2 * count // hashlib.sha256().digest_size)
    data = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(blocks))
    return [n / 32767.5 - 1.0 for n in struct.unpack_from(f">{count}H", data)]


def token_count(text: str) -> int:
    """Tokens of one embedded text, counted as the fake counts a prompt (so countTokens agrees)."""
    return prompt_token_count({"contents": [{"parts": [{"text": text}]}]})


def billable_characters(text: str) -> int:
    """Vertex bills text embeddings by character, whitespace excluded."""
    return sum(not c.isspace() for c in text)


@dataclass(frozen=True, slots=True)
class EmbedInput:
    """One text to embed, as a checked request asked for it."""

    text: str
    task_type: str = DEFAULT_TASK_TYPE
    dimensions: int | None = None  # None: the model's full size


@dataclass(frozen=True, slots=True)
class Refusal:
    """Google's 400 for a request it would not take."""

    message: str
    google_status: str = "INVALID_ARGUMENT"


class _Refused(Exception):
    """Raised deep in a check so that each check stays a short function; `parse_embedding_request`
    turns it into a `Refusal`."""

    def __init__(self, message: str, google_status: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.refusal = Refusal(message, google_status)


def _refuse(message: str, google_status: str = "INVALID_ARGUMENT") -> NoReturn:
    raise _Refused(message, google_status)


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a check is: the request's proto name, the field path inside it, and the API's package
    (for the `type.googleapis.com/...` part of Google's messages)."""

    proto: str
    path: str
    api: EmbeddingApi

    def at(self, field: str) -> _Where:
        return _Where(self.proto, f"{self.path}.{field}" if self.path else field, self.api)

    def item(self, index: int) -> _Where:
        return _Where(self.proto, f"{self.path}[{index}]", self.api)

    def problem(self, text: str) -> str:
        return f"* {self.proto}.{self.path}: {text}\n"

    def invalid(self, type_name: str, value: Any = None) -> str:
        shown = "" if value is None else f", {_shown(value)}"
        full_name = f"type.googleapis.com/{_PACKAGES[self.api]}.{type_name}"
        return f"Invalid value at '{self.path}' ({full_name}){shown}"

    def invalid_scalar(self, type_name: str, value: Any) -> str:
        return f"Invalid value at '{self.path}' ({type_name}), {_shown(value)}"


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _get(obj: Mapping[str, Any], camel: str) -> Any:
    value = obj.get(camel)
    return obj.get(_snake(camel)) if value is None else value


def _only(obj: Mapping[str, Any], allowed: frozenset[str], where: _Where) -> None:
    for key in obj:
        if key not in allowed:
            _refuse(unknown_name(key, where.path or None))


def parse_embedding_request(
    api: EmbeddingApi, action: str, body: Any, model: str
) -> list[EmbedInput] | Refusal:
    """The texts a call asks to embed, in order, or Google's 400 for it. `model` is the URL's, already
    known to be one the fake serves on this API."""
    try:
        if not isinstance(body, dict):
            _refuse("Invalid JSON payload received. Expected an object.")
        if api == "aistudio":
            return _parse_aistudio(action, body, model)
        return _parse_vertex(action, body, model)
    except _Refused as refused:
        return refused.refusal


def _parse_aistudio(action: str, body: dict[str, Any], model: str) -> list[EmbedInput]:
    if action == "embedContent":
        return [_aistudio_request(body, model, _Where("EmbedContentRequest", "", "aistudio"), False)]
    where = _Where("BatchEmbedContentsRequest", "", "aistudio")
    requests = _requests(body, where, "EmbedContentRequest")
    at = where.at("requests")
    return [_aistudio_request(r, model, at.item(i), True) for i, r in enumerate(requests)]


def _requests(body: dict[str, Any], where: _Where, type_name: str) -> list[Any]:
    _only(body, _BATCH_KEYS, where)
    requests = body.get("requests")
    at = where.at("requests")
    if not requests:
        _refuse(at.problem("requests must not be empty."))
    if not isinstance(requests, list):
        _refuse(at.invalid(type_name))
    if len(requests) > MAX_BATCH_REQUESTS:
        _refuse(at.problem(f"at most {MAX_BATCH_REQUESTS} requests can be in one batch."))
    return requests


def _aistudio_request(request: Any, model: str, where: _Where, model_required: bool) -> EmbedInput:
    """One EmbedContentRequest of AI Studio: model, content, taskType, title, outputDimensionality."""
    if not isinstance(request, dict):
        _refuse(where.invalid("EmbedContentRequest"))
    _only(request, _AISTUDIO_REQUEST_KEYS, where)
    _check_model(request.get("model"), model, where.at("model"), model_required)
    text = _text(_get(request, "content"), where.at("content"))
    task_type, dimensions = _options(request, model, where)
    return EmbedInput(text, task_type, dimensions)


def _check_model(named: Any, model: str, where: _Where, required: bool) -> None:
    if named is None and not required:
        return
    if named is None:
        _refuse(where.problem("model is not specified"))
    if not isinstance(named, str):
        _refuse(where.invalid_scalar("TYPE_STRING", named))
    if named != f"models/{model}":
        _refuse(
            where.problem(
                f"Model specified in the request ({named}) does not match model in the URL (models/{model})."
            )
        )


def _text(content: Any, where: _Where) -> str:
    """The text of a Content whose parts are all text (the only parts these models embed)."""
    if content is None:
        _refuse(where.problem("content is not specified"))
    if not isinstance(content, dict):
        _refuse(where.invalid("Content"))
    _only(content, _CONTENT_KEYS, where)
    parts = content.get("parts")
    at = where.at("parts")
    if not parts:
        _refuse(at.problem("content.parts must not be empty."))
    if not isinstance(parts, list):
        _refuse(at.invalid("Part"))
    texts: list[str] = []
    for i, part in enumerate(parts):
        text = part.get("text") if isinstance(part, dict) else None
        if not isinstance(text, str):
            _refuse(at.item(i).problem("only text parts can be embedded; this part has no text."))
        texts.append(text)
    # One line per part: the fake's word count of the whole is then the sum of the parts'.
    return "\n".join(texts)


def _options(holder: Mapping[str, Any], model: str, where: _Where) -> tuple[str, int | None]:
    """taskType, title, outputDimensionality and (Vertex) autoTruncate of one request or config."""
    task_type = _get(holder, "taskType")
    if task_type is not None and task_type not in TASK_TYPES:
        type_name = "TaskType" if where.api == "aistudio" else "EmbedContentRequest.EmbeddingTaskType"
        _refuse(where.at("task_type").invalid(type_name, task_type))
    title = _get(holder, "title")
    if title is not None and not isinstance(title, str):
        _refuse(where.at("title").invalid_scalar("TYPE_STRING", title))
    truncate = _get(holder, "autoTruncate")
    if truncate is not None and not isinstance(truncate, bool):
        _refuse(where.at("auto_truncate").invalid_scalar("TYPE_BOOL", truncate))
    dimensions = _dimensions(_get(holder, "outputDimensionality"), model, where.at("output_dimensionality"))
    return task_type or DEFAULT_TASK_TYPE, dimensions


def _dimensions(value: Any, model: str, where: _Where) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        _refuse(where.invalid_scalar("TYPE_INT32", value))
    most = embedding_dimensions(model)
    if not 1 <= value <= most:
        _refuse(where.problem(f"output_dimensionality must be in the range [1, {most}] for {model}."))
    return value


def _parse_vertex(action: str, body: dict[str, Any], model: str) -> list[EmbedInput]:
    if action == "predict":
        return _parse_predict(body, model)
    if not model.startswith(_GEMINI_PREFIX):
        hint = " Call :predict for text embedding models." if is_embedding_model(model) else ""
        _refuse(unsupported_method_message(f"publishers/google/models/{model}", action) + hint)
    if action == "embedContent":
        return [_vertex_request(body, model, _Where("EmbedContentRequest", "", "vertex"))]
    where = _Where("BatchEmbedContentsRequest", "", "vertex")
    requests = _requests(body, where, "EmbedContentRequest")
    at = where.at("requests")
    return [_vertex_request(r, model, at.item(i)) for i, r in enumerate(requests)]


def _vertex_request(request: Any, model: str, where: _Where) -> EmbedInput:
    """Vertex's EmbedContentRequest: content, with the settings under embedContentConfig (the older
    top-level spelling of the same settings is taken too; the config's win)."""
    if not isinstance(request, dict):
        _refuse(where.invalid("EmbedContentRequest"))
    _only(request, _VERTEX_REQUEST_KEYS, where)
    text = _text(_get(request, "content"), where.at("content"))
    config = _get(request, "embedContentConfig")
    if config is None:
        config = {}
    at = where.at("embed_content_config")
    if not isinstance(config, dict):
        _refuse(at.invalid("EmbedContentRequest.EmbedContentConfig"))
    _only(config, _VERTEX_CONFIG_KEYS, at)
    settings = {k: v for k, v in request.items() if k in _VERTEX_CONFIG_KEYS}
    task_type, dimensions = _options({**settings, **config}, model, at)
    return EmbedInput(text, task_type, dimensions)


def _parse_predict(body: dict[str, Any], model: str) -> list[EmbedInput]:
    """`{"instances": [{"content", "task_type"?, "title"?}], "parameters"?: {...}}`: Vertex's text models."""
    if not is_embedding_model(model):
        _refuse(GEMINI_VIA_PREDICT, "FAILED_PRECONDITION")
    _only(body, frozenset({"instances", "parameters"}), _Where("PredictRequest", "", "vertex"))
    instances = body.get("instances")
    if instances is not None and not isinstance(instances, list):
        _refuse("Unable to submit request because instances must be a list.")
    if not instances:
        _refuse("Unable to submit request because it has no instances: send at least one text.")
    most = 1 if model.startswith(_GEMINI_PREFIX) else MAX_PREDICT_INSTANCES
    if len(instances) > most:
        _refuse(
            f"Unable to submit request because {model} supports at most {most} instance"
            f"{'s' if most > 1 else ''} per request; this one has {len(instances)}."
        )
    dimensions = _predict_parameters(body.get("parameters"), model)
    return [_instance(instance, i, dimensions) for i, instance in enumerate(instances)]


def _predict_parameters(parameters: Any, model: str) -> int | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        _refuse("Unable to submit request because parameters must be an object.")
    for key in parameters:
        if key not in _PREDICT_PARAMETER_KEYS:
            _refuse(f"Unable to submit request because parameter {key!r} is not supported.")
    truncate = parameters.get("autoTruncate")
    if truncate is not None and not isinstance(truncate, bool):
        _refuse("Unable to submit request because parameters.autoTruncate must be a boolean.")
    value = parameters.get("outputDimensionality")
    if value is None:
        return None
    most = embedding_dimensions(model)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        _refuse(
            f"Unable to submit request because parameters.outputDimensionality must be an integer in "
            f"[1, {most}] for {model}, got {_shown(value)}."
        )
    return value


def _instance(instance: Any, index: int, dimensions: int | None) -> EmbedInput:
    where = f"instances[{index}]"
    if not isinstance(instance, dict):
        _refuse(f"Unable to submit request because {where} must be an object.")
    for key in instance:
        if key not in _PREDICT_INSTANCE_KEYS:
            _refuse(f"Unable to submit request because {where} has an unsupported field {key!r}.")
    content = instance.get("content")
    if not isinstance(content, str):
        _refuse(f"Unable to submit request because {where}.content must be a string.")
    task_type = instance.get("task_type")
    if task_type is not None and task_type not in TASK_TYPES:
        _refuse(f"Unable to submit request because {where}.task_type {_shown(task_type)} is not supported.")
    title = instance.get("title")
    if title is not None and not isinstance(title, str):
        _refuse(f"Unable to submit request because {where}.title must be a string.")
    return EmbedInput(content, task_type or DEFAULT_TASK_TYPE, dimensions)


def embedding_body(api: EmbeddingApi, action: str, model: str, inputs: list[EmbedInput]) -> dict[str, Any]:
    """The default 200 body for checked `inputs`, in the method's own shape."""
    vectors = [embedding_values(model, i.text, i.task_type, i.dimensions) for i in inputs]
    if action == "predict":
        return _predict_body(inputs, vectors)
    body: dict[str, Any] = (
        {"embedding": {"values": vectors[0]}}
        if action == "embedContent"
        else {"embeddings": [{"values": v} for v in vectors]}
    )
    if api == "vertex":
        tokens = sum(token_count(i.text) for i in inputs)
        body["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    return body


def _predict_body(inputs: list[EmbedInput], vectors: list[list[float]]) -> dict[str, Any]:
    predictions = [
        {
            "embeddings": {
                "values": vector,
                "statistics": {"truncated": False, "token_count": token_count(i.text)},
            }
        }
        for i, vector in zip(inputs, vectors, strict=True)
    ]
    characters = sum(billable_characters(i.text) for i in inputs)
    return {"predictions": predictions, "metadata": {"billableCharacterCount": characters}}
