"""What the client asks of the output: structured JSON, log probabilities, safety. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..catalog import ModelInfo
from ..errors import invalid_request
from ..wire.gemini import LogprobsResult, LogprobToken
from ..wire.gemini_request import GenerationConfig
from ..wire.openai import ChatCompletionRequest
from .tools import clean_schema


def response_format_config(response_format: Mapping[str, Any] | None) -> GenerationConfig:
    """generationConfig entries for OpenAI's response_format."""
    if response_format is None:
        return {}
    kind = response_format.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise invalid_request(
                "'response_format.json_schema.schema' must be a JSON Schema object.",
                param="response_format.json_schema.schema",
                code="invalid_value",
            )
        # responseJsonSchema takes full JSON Schema ($defs, $ref, anyOf, additionalProperties);
        # the older responseSchema (an OpenAPI subset) is never sent beside it.
        return {"responseMimeType": "application/json", "responseJsonSchema": clean_schema(schema)}
    raise invalid_request(
        "'response_format.type' must be one of text, json_object, json_schema.",
        param="response_format.type",
        code="invalid_value",
    )


def logprobs_config(req: ChatCompletionRequest, model: ModelInfo) -> GenerationConfig:
    if not req.logprobs:
        if req.top_logprobs:
            raise invalid_request(
                "'top_logprobs' needs 'logprobs': true.", param="top_logprobs", code="invalid_value"
            )
        return {}
    if not model.logprobs:
        raise invalid_request(
            f"{model.id} does not return log probabilities; remove 'logprobs'.",
            param="logprobs",
            code="unsupported_parameter",
        )
    config: GenerationConfig = {"responseLogprobs": True}
    if req.top_logprobs:
        config["logprobs"] = req.top_logprobs
    return config


def openai_logprobs(result: LogprobsResult | None) -> dict[str, Any] | None:
    """Gemini's logprobsResult -> OpenAI's choice.logprobs."""
    if not isinstance(result, dict):
        return None
    chosen = result.get("chosenCandidates") or []
    tops = result.get("topCandidates") or []
    content = []
    for position, token in enumerate(chosen):
        if not isinstance(token, dict):
            continue
        alternatives = tops[position].get("candidates", []) if position < len(tops) else []
        content.append(
            {
                **_token(token),
                "top_logprobs": [_token(alt) for alt in alternatives if isinstance(alt, dict)],
            }
        )
    return {"content": content, "refusal": None}


def _token(token: LogprobToken) -> dict[str, Any]:
    text = str(token.get("token", ""))
    return {
        "token": text,
        "logprob": float(token.get("logProbability", 0.0)),
        "bytes": list(text.encode()),
    }
