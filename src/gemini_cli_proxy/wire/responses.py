"""The OpenAI Responses API request (`POST /v1/responses`), as typed models, and its validation
into 400 errors. Pure.

The conventions of wire/openai.py: strict types, unknown fields ignored, every problem one 400 that
names the parameter (`input[1].content[0].text`). Field names follow OpenAI's schemas
(`EasyInputMessage`, `FunctionToolCall`, `FunctionCallOutputItemParam`, `ReasoningItem`,
`FunctionTool`, `NamespaceToolParam`, `CustomToolParam`, ...). Item and tool types the proxy
knows but cannot serve parse into `OtherItem` / `HostedTool`, so that translation
(translate/responses_in.py) refuses them by name rather than as a mere unknown tag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from ..errors import ProxyError, invalid_request, unsupported_parameter
from .openai import INT32_MAX
from .validation import check_sendable, empty_body, validation_error


class _Model(BaseModel):
    # allow_inf_nan: pydantic's JSON parser reads `NaN`, `Infinity` and `1e400` as floats.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)


# --- content parts --------------------------------------------------------------------------


class InputText(_Model):
    type: Literal["input_text"]
    text: str


class OutputText(_Model):
    """Assistant history; `annotations` and `logprobs` are ignored."""

    type: Literal["output_text"]
    text: str


class Refusal(_Model):
    type: Literal["refusal"]
    refusal: str


class InputImage(_Model):
    type: Literal["input_image"]
    image_url: str | None = None  # an http(s) URL or a data: URI
    file_id: str | None = None  # refused in translation: the proxy has no file store
    detail: str | None = None


class InputFile(_Model):
    type: Literal["input_file"]
    file_data: str | None = None  # base64 (or a data: URI) of a PDF
    file_id: str | None = None
    file_url: str | None = None
    filename: str | None = None


ContentPart = Annotated[
    InputText | OutputText | Refusal | InputImage | InputFile, Field(discriminator="type")
]
# What a function_call_output / custom_tool_call_output may hold besides a string.
OutputPart = Annotated[InputText | InputImage | InputFile, Field(discriminator="type")]


# --- input items ----------------------------------------------------------------------------


class MessageItem(_Model):
    type: Literal["message"] = "message"  # optional in OpenAI's EasyInputMessage
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]


class FunctionCallItem(_Model):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    namespace: str | None = None


class FunctionCallOutputItem(_Model):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[OutputPart]


class CustomToolCallItem(_Model):
    type: Literal["custom_tool_call"]
    call_id: str
    name: str
    input: str
    namespace: str | None = None


class CustomToolCallOutputItem(_Model):
    type: Literal["custom_tool_call_output"]
    call_id: str
    output: str | list[OutputPart]


class SummaryText(_Model):
    type: Literal["summary_text"]
    text: str


class ReasoningText(_Model):
    type: Literal["reasoning_text"]
    text: str


class ReasoningItem(_Model):
    type: Literal["reasoning"]
    id: str | None = None
    summary: list[SummaryText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None
    # What this proxy sealed into it (translate/sealed_signatures.py), sent back verbatim.
    encrypted_content: str | None = None


class WebSearchCallItem(_Model):
    """A record of a hosted web search in the history: nothing in it goes to Gemini."""

    type: Literal["web_search_call"]
    id: str | None = None


class OtherItem(_Model):
    """Any other item type: refused in translation, naming it."""

    type: str


ITEM_TYPES: Final = (
    "message",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "reasoning",
    "web_search_call",
)
_OTHER_ITEM: Final = "other_item"


def _item_tag(value: Any) -> str | None:
    if not isinstance(value, dict):
        return getattr(value, "type", None) if isinstance(value, BaseModel) else _OTHER_ITEM
    kind = value.get("type")
    if kind is None:
        # EasyInputMessage: `{"role": ..., "content": ...}` without a type is a message.
        return "message" if "role" in value else None
    return kind if kind in ITEM_TYPES else _OTHER_ITEM


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[CustomToolCallItem, Tag("custom_tool_call")]
    | Annotated[CustomToolCallOutputItem, Tag("custom_tool_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[WebSearchCallItem, Tag("web_search_call")]
    | Annotated[OtherItem, Tag(_OTHER_ITEM)],
    Discriminator(_item_tag),
]


# --- tools ----------------------------------------------------------------------------------


class FunctionTool(_Model):
    type: Literal["function"]
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CustomTextFormat(_Model):
    type: Literal["text"]


class CustomGrammarFormat(_Model):
    type: Literal["grammar"]
    syntax: str
    definition: str


class CustomTool(_Model):
    """A tool whose input is free text (Codex's `apply_patch`, with a Lark grammar)."""

    type: Literal["custom"]
    name: str = Field(min_length=1)
    description: str | None = None
    format: Annotated[CustomTextFormat | CustomGrammarFormat, Field(discriminator="type")] | None = None


NamespaceMember = Annotated[FunctionTool | CustomTool, Field(discriminator="type")]


class NamespaceTool(_Model):
    """A named group of tools (Codex's `multi_agent_v1`)."""

    type: Literal["namespace"]
    name: str = Field(min_length=1)
    description: str | None = None
    tools: list[NamespaceMember] = Field(min_length=1)


WEB_SEARCH_TYPES: Final = frozenset(
    {"web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"}
)


class WebSearchTool(_Model):
    type: Literal[
        "web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"
    ]
    filters: dict[str, Any] | None = None  # allowed_domains: Google Search grounding has no such filter
    search_context_size: str | None = None
    user_location: dict[str, Any] | None = None
    external_web_access: bool | None = None


class HostedTool(_Model):
    """Any other tool type (file_search, code_interpreter, mcp, ...): refused in translation."""

    type: str


_WEB_SEARCH: Final = "web_search"
_HOSTED: Final = "hosted_tool"


def _tool_tag(value: Any) -> str | None:
    if not isinstance(value, dict):
        return getattr(value, "type", None) if isinstance(value, BaseModel) else _HOSTED
    kind = value.get("type")
    if kind is None:
        return None
    if kind in WEB_SEARCH_TYPES:
        return _WEB_SEARCH
    return kind if kind in {"function", "custom", "namespace"} else _HOSTED


ResponsesTool = Annotated[
    Annotated[FunctionTool, Tag("function")]
    | Annotated[CustomTool, Tag("custom")]
    | Annotated[NamespaceTool, Tag("namespace")]
    | Annotated[WebSearchTool, Tag(_WEB_SEARCH)]
    | Annotated[HostedTool, Tag(_HOSTED)],
    Discriminator(_tool_tag),
]


# --- the rest of the request ----------------------------------------------------------------


class Reasoning(_Model):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    # Whether thought summaries are shown; Gemini's are always of one kind.
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None  # its deprecated name


class TextFormatText(_Model):
    type: Literal["text"]


class TextFormatJsonObject(_Model):
    type: Literal["json_object"]


class TextFormatJsonSchema(_Model):
    type: Literal["json_schema"]
    name: str
    json_schema: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Model):
    format: (
        Annotated[TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")]
        | None
    ) = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(_Model):
    model: str = Field(min_length=1)
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    tools: list[ResponsesTool] | None = None
    # `auto` / `none` / `required` or an object ({type: function, name}, {type: custom, name}, ...);
    # checked in translation, as the chat side checks its own.
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: Reasoning | None = None
    include: list[str] | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    stream: bool | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    # Accepted and ignored.
    user: str | None = None
    prompt_cache_key: str | None = None
    client_metadata: dict[str, Any] | None = None
    service_tier: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    safety_identifier: str | None = None
    stream_options: dict[str, Any] | None = None
    max_tool_calls: int | None = Field(None, ge=1)
    # Server features the proxy does not have: refused when set.
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None


# Discriminated unions put the tag they chose into the error location; a client never wrote it.
_TAGS: Final = frozenset(
    {
        *ITEM_TYPES,
        _OTHER_ITEM,
        "input_text",
        "output_text",
        "refusal",
        "input_image",
        "input_file",
        "summary_text",
        "reasoning_text",
        "function",
        "custom",
        "namespace",
        _WEB_SEARCH,
        _HOSTED,
    }
)
# Fields whose value (not a list item) is a discriminated union: `text.format`, a custom tool's format.
_TAGGED_FIELDS: Final = {"format": frozenset({"text", "grammar", "json_object", "json_schema"})}


def _error(exc: ValidationError) -> ProxyError:
    return validation_error(exc, _TAGS, tagged_fields=_TAGGED_FIELDS)


def _check(req: ResponsesRequest) -> None:
    """Free JSON that would not survive the way to Google, and server features the proxy lacks."""
    for index, tool in enumerate(req.tools or ()):
        if isinstance(tool, FunctionTool) and tool.parameters is not None:
            check_sendable(tool.parameters, f"tools[{index}].parameters")
        elif isinstance(tool, NamespaceTool):
            for position, member in enumerate(tool.tools):
                if isinstance(member, FunctionTool) and member.parameters is not None:
                    check_sendable(member.parameters, f"tools[{index}].tools[{position}].parameters")
    if req.text is not None and isinstance(req.text.format, TextFormatJsonSchema):
        check_sendable(req.text.format.json_schema, "text.format.schema")
    if req.background:
        raise unsupported_parameter("background", "Background mode")
    if req.conversation is not None:
        raise unsupported_parameter("conversation", "Conversations (use 'previous_response_id')")
    if req.prompt is not None:
        raise unsupported_parameter("prompt", "Stored prompt templates")


def parse_responses_request(body: bytes) -> ResponsesRequest:
    """Validate a raw request body; every problem becomes one 400 that names the field."""
    if not body.strip():
        raise empty_body()
    try:
        req = ResponsesRequest.model_validate_json(body)
    except ValidationError as exc:
        raise _error(exc) from None
    _check(req)
    return req


_ITEMS: Final = TypeAdapter(list[InputItem])


def parse_items(items: Sequence[Mapping[str, Any]], param: str) -> list[InputItem]:
    """Items kept from earlier responses (plain JSON dicts of input and output items), parsed
    as `input` items are; a problem is a 400 naming `param` (where they came from)."""
    try:
        return _ITEMS.validate_python([dict(item) for item in items])
    except ValidationError as exc:
        error = _error(exc)
        raise invalid_request(
            f"The conversation of '{param}' could not be read: {error.message}",
            param=param,
            code="invalid_value",
        ) from None
