"""The OpenAI Chat Completions request, as typed models, and its validation into 400 errors.

Strict types: OpenAI itself refuses `"temperature": "0.5"`, so the proxy does too. Unknown fields
are ignored, since real clients send many (`x-stainless` SDK extras, vendor keys).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ProxyError
from .validation import check_sendable, empty_body, validation_error

# Gemini's token counts are int32; OpenAI's seed is int64.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class _Model(BaseModel):
    # allow_inf_nan: pydantic's JSON parser reads `NaN`, `Infinity` and `1e400` as floats.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)


class TextPart(_Model):
    type: Literal["text"]
    text: str


class ImageURL(_Model):
    url: str
    detail: str | None = None


class ImagePart(_Model):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Model):
    data: str
    format: str


class AudioPart(_Model):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileData(_Model):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Model):
    type: Literal["file"]
    file: FileData


class RefusalPart(_Model):
    type: Literal["refusal"]
    refusal: str


UserPart = Annotated[TextPart | ImagePart | AudioPart | FilePart, Field(discriminator="type")]
AssistantPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


class FunctionCall(_Model):
    name: str
    arguments: str


class ToolCall(_Model):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall
    extra_content: dict[str, Any] | None = None


class SystemMessage(_Model):
    role: Literal["system"]
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Model):
    role: Literal["developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Model):
    role: Literal["user"]
    content: str | list[UserPart]
    name: str | None = None


class AssistantMessage(_Model):
    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None
    reasoning_content: str | None = None


class ToolMessage(_Model):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str
    name: str | None = None


class FunctionMessage(_Model):
    role: Literal["function"]
    content: str | None
    name: str


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage,
    Field(discriminator="role"),
]


class StreamOptions(_Model):
    include_usage: bool | None = None


class ChatCompletionRequest(_Model):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=8)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = Field(None, ge=-INT64_MAX - 1, le=INT64_MAX)
    user: str | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None
    # Accepted and checked here; what the proxy cannot honour yet is refused in `unsupported()`.
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    logit_bias: dict[str, Any] | None = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None
    reasoning_effort: str | None = None
    thinking_budget: int | None = Field(None, ge=-INT32_MAX - 1, le=INT32_MAX)
    # Google's compat form of extra_body: merged to the top level by the SDKs, or sent literally.
    google: dict[str, Any] | None = None
    extra_body: dict[str, Any] | None = None

    def output_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


# The fields whose values are free JSON, unchecked by their type: each is walked when present.
_FREE_JSON_FIELDS = tuple(
    name for name, field in ChatCompletionRequest.model_fields.items() if "Any" in str(field.annotation)
)


def _check_free_json(req: ChatCompletionRequest) -> None:
    """Refuse what would fail (or change) on its way to Google, naming where it is."""
    for name in _FREE_JSON_FIELDS:
        value = getattr(req, name)
        if value is not None:
            check_sendable(value, name)
    for index, message in enumerate(req.messages):
        if isinstance(message, AssistantMessage) and message.tool_calls:
            for position, call in enumerate(message.tool_calls):
                if call.extra_content is not None:
                    check_sendable(
                        call.extra_content, f"messages[{index}].tool_calls[{position}].extra_content"
                    )


# Discriminated unions put the tag they chose into the error location; a client never wrote it.
_TAGS = frozenset(
    {
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "function",
        "text",
        "image_url",
        "input_audio",
        "file",
        "refusal",
    }
)


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    """Validate a raw request body; every problem becomes one 400 that names the field."""
    if not body.strip():
        raise empty_body()
    try:
        req = ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise chat_validation_error(exc) from None
    _check_free_json(req)
    return req


def chat_validation_error(exc: ValidationError) -> ProxyError:
    """The one 400 for a chat request that failed validation (also when a front door built it)."""
    return validation_error(
        exc,
        _TAGS,
        role_lists=frozenset({"messages"}),
        too_short={"messages": "'messages' must contain at least one message."},
    )


def error_type(status: int) -> str:
    """OpenAI's `type` for an error of this status (CONTRACT.md's table)."""
    if status == 403:
        return "permission_error"
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(error: ProxyError) -> dict[str, Any]:
    """`{"error": {message, type, param, code}}`: OpenAI's error, as a response and as a stream's
    last event."""
    return {
        "error": {
            "message": error.message,
            "type": error_type(error.status),
            "param": error.param,
            "code": error.code,
        }
    }
