"""The OpenAI embeddings request (`POST /v1/embeddings`), as a typed model, and its 400s. Pure.

Strict types, unknown fields ignored, as for Chat Completions. OpenAI's input may be text or token
ids; Gemini embeds text only, so token ids are refused with a 400 that says so rather than decoded
with a tokenizer that is not Gemini's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import invalid_request, invalid_value
from .validation import empty_body, validation_error

# OpenAI's own limit on the inputs of one request.
MAX_INPUTS = 2048


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None  # None: float
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    # Google's taskType (RETRIEVAL_QUERY, SEMANTIC_SIMILARITY, ...): not OpenAI's, but what gateways
    # in front of Gemini take, sent in the SDKs' extra_body.
    task_type: str | None = None

    def texts(self) -> list[str]:
        """The input as a list of texts (validated: see parse_embedding_request)."""
        return [self.input] if isinstance(self.input, str) else self.input  # type: ignore[return-value]


def parse_embedding_request(body: bytes) -> EmbeddingRequest:
    """Validate a raw request body; every problem becomes one 400 that names the field."""
    if not body.strip():
        raise empty_body()
    try:
        req = EmbeddingRequest.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc, frozenset()) from None
    _check_input(req.input)
    return req


def _check_input(value: str | list[str] | list[int] | list[list[int]]) -> None:
    if isinstance(value, str):
        if not value:
            raise invalid_value("input", "'input' must not be an empty string.")
        return
    if not value:
        raise invalid_value("input", "'input' must not be an empty array.")
    if not isinstance(value[0], str):
        raise invalid_request(
            "'input' holds token ids: Gemini embeds text, and its tokenizer is not OpenAI's. "
            "Send the text (a string or an array of strings); LangChain's OpenAIEmbeddings sends "
            "token ids unless it is given check_embedding_ctx_length=False.",
            param="input",
            code="unsupported_value",
        )
    if len(value) > MAX_INPUTS:
        raise invalid_value(
            "input", f"'input' holds {len(value)} texts; at most {MAX_INPUTS} may be sent at once."
        )
    for index, text in enumerate(value):
        if not text:
            raise invalid_value(f"input[{index}]", f"'input[{index}]' must not be an empty string.")
