"""The Anthropic Messages API request (`POST /v1/messages`, and `POST /v1/messages/count_tokens`), as
typed models, and its validation into 400 errors. Pure.

The conventions of wire/openai.py and wire/responses.py: strict types, unknown fields ignored
(`cache_control` on any block, `citations`, beta extras), every problem one 400 that names the
parameter (`messages[2].content[0].text`). Field names follow Anthropic's schemas (`MessageParam`,
`TextBlockParam`, `ImageBlockParam`, `DocumentBlockParam`, `ToolUseBlockParam`,
`ToolResultBlockParam`, `ThinkingBlockParam`, `Tool`, `ToolChoice*`, `ThinkingConfig*`). Blocks and
tools the proxy knows but cannot serve parse into `OtherBlock` / `ServerTool`, so that translation
(translate/anthropic_in.py) refuses or drops them by name rather than as a mere unknown tag.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from ..errors import ProxyError, unsupported_parameter
from .openai import INT32_MAX
from .validation import check_sendable, empty_body, validation_error


class _Model(BaseModel):
    # allow_inf_nan: pydantic's JSON parser reads `NaN`, `Infinity` and `1e400` as floats.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)


# --- sources of images and documents ----------------------------------------------------------


class Base64ImageSource(_Model):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class URLSource(_Model):
    type: Literal["url"]
    url: str


class FileSource(_Model):
    """A Files API id: refused in translation (the proxy has no file store)."""

    type: Literal["file"]
    file_id: str


class Base64PDFSource(_Model):
    type: Literal["base64"]
    media_type: Literal["application/pdf"]
    data: str


class PlainTextSource(_Model):
    type: Literal["text"]
    media_type: Literal["text/plain"]
    data: str


class ContentSource(_Model):
    """A document given as content blocks: refused in translation."""

    type: Literal["content"]


ImageSource = Annotated[Base64ImageSource | URLSource | FileSource, Field(discriminator="type")]
DocumentSource = Annotated[
    Base64PDFSource | PlainTextSource | URLSource | FileSource | ContentSource, Field(discriminator="type")
]


# --- content blocks ---------------------------------------------------------------------------


class TextBlock(_Model):
    type: Literal["text"]
    text: str


class ImageBlock(_Model):
    type: Literal["image"]
    source: ImageSource


class DocumentBlock(_Model):
    type: Literal["document"]
    source: DocumentSource
    title: str | None = None
    context: str | None = None


class ToolUseBlock(_Model):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class OtherBlock(_Model):
    """Any other block type: refused in translation, naming it."""

    type: str


BLOCK_TYPES: Final = (
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
)
SERVER_BLOCK_TYPES: Final = ("server_tool_use", "web_search_tool_result")
_OTHER_BLOCK: Final = "other_block"
_SERVER_BLOCK: Final = "server_block"


def _block_tag(value: Any, known: tuple[str, ...]) -> str | None:
    if not isinstance(value, dict):
        return getattr(value, "type", None) if isinstance(value, BaseModel) else _OTHER_BLOCK
    kind = value.get("type")
    if kind is None:
        return None
    if kind in known:
        return str(kind)
    return _SERVER_BLOCK if kind in SERVER_BLOCK_TYPES and known == BLOCK_TYPES else _OTHER_BLOCK


# What a tool_result's content may hold besides a string (other kinds parse into OtherBlock).
ToolResultPart = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[DocumentBlock, Tag("document")]
    | Annotated[OtherBlock, Tag(_OTHER_BLOCK)],
    Discriminator(lambda value: _block_tag(value, ("text", "image", "document"))),
]


# What `system` may hold: text blocks (other kinds parse into OtherBlock, refused in translation).
SystemBlock = Annotated[
    Annotated[TextBlock, Tag("text")] | Annotated[OtherBlock, Tag(_OTHER_BLOCK)],
    Discriminator(lambda value: _block_tag(value, ("text",))),
]


class ToolResultBlock(_Model):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[ToolResultPart] | None = None
    is_error: bool | None = None


class ThinkingBlock(_Model):
    type: Literal["thinking"]
    thinking: str
    # What this proxy sealed into it (translate/sealed_signatures.py), sent back verbatim.
    signature: str | None = None


class RedactedThinkingBlock(_Model):
    type: Literal["redacted_thinking"]
    data: str


class ServerToolUseBlock(_Model):
    """A record of a server tool's use (a web search) in the history: nothing goes to Gemini."""

    type: Literal["server_tool_use", "web_search_tool_result"]


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[DocumentBlock, Tag("document")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[RedactedThinkingBlock, Tag("redacted_thinking")]
    | Annotated[ServerToolUseBlock, Tag(_SERVER_BLOCK)]
    | Annotated[OtherBlock, Tag(_OTHER_BLOCK)],
    Discriminator(lambda value: _block_tag(value, BLOCK_TYPES)),
]


class MessageParam(_Model):
    # `system` mid-conversation is what Claude Code sends (its reminders); the API documents two.
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


# --- tools ------------------------------------------------------------------------------------


class ClientTool(_Model):
    """A tool the client runs: `type` is absent or `custom`."""

    type: Literal["custom"] | None = None
    name: str = Field(min_length=1)
    description: str | None = None
    input_schema: dict[str, Any]


class ServerTool(_Model):
    """An Anthropic-defined tool (`web_search_20250305`, `bash_20250124`, `text_editor_*`, ...):
    web search may become Google Search grounding, the others are dropped (translation)."""

    type: str
    name: str | None = None


_CLIENT_TOOL: Final = "client_tool"
_SERVER_TOOL: Final = "server_tool"


def _tool_tag(value: Any) -> str | None:
    if not isinstance(value, dict):
        return getattr(value, "type", None) if isinstance(value, BaseModel) else _SERVER_TOOL
    kind = value.get("type")
    return _CLIENT_TOOL if kind is None or kind == "custom" else _SERVER_TOOL


MessagesTool = Annotated[
    Annotated[ClientTool, Tag(_CLIENT_TOOL)] | Annotated[ServerTool, Tag(_SERVER_TOOL)],
    Discriminator(_tool_tag),
]


class ToolChoiceAuto(_Model):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_Model):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_Model):
    type: Literal["tool"]
    name: str = Field(min_length=1)
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_Model):
    type: Literal["none"]


ToolChoice = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")
]


# --- thinking and output ----------------------------------------------------------------------


class ThinkingEnabled(_Model):
    type: Literal["enabled"]
    budget_tokens: int = Field(ge=1, le=INT32_MAX)


class ThinkingAdaptive(_Model):
    type: Literal["adaptive"]


class ThinkingDisabled(_Model):
    type: Literal["disabled"]


Thinking = Annotated[ThinkingEnabled | ThinkingAdaptive | ThinkingDisabled, Field(discriminator="type")]


class JsonSchemaFormat(_Model):
    type: Literal["json_schema"]
    json_schema: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Model):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: JsonSchemaFormat | None = None


# --- the requests -----------------------------------------------------------------------------


class CountTokensRequest(_Model):
    """`POST /v1/messages/count_tokens`: the conversation, without the generation parameters."""

    model: str = Field(min_length=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[SystemBlock] | None = None
    tools: list[MessagesTool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    # Accepted and ignored.
    cache_control: dict[str, Any] | None = None
    context_management: dict[str, Any] | None = None
    # The MCP connector (Anthropic's servers call MCP servers): refused when set.
    mcp_servers: list[dict[str, Any]] | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1, le=INT32_MAX)
    stream: bool | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=1, le=INT32_MAX)
    stop_sequences: list[str] | None = None
    # Accepted and ignored.
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None
    container: str | dict[str, Any] | None = None
    inference_geo: str | None = None


# Discriminated unions put the tag they chose into the error location; a client never wrote it.
_TAGS: Final = frozenset(
    {
        *BLOCK_TYPES,
        _OTHER_BLOCK,
        _SERVER_BLOCK,
        _CLIENT_TOOL,
        _SERVER_TOOL,
    }
)
# Fields whose value (not a list item) is a discriminated union.
_TAGGED_FIELDS: Final = {
    "source": frozenset({"base64", "url", "file", "text", "content"}),
    "tool_choice": frozenset({"auto", "any", "tool", "none"}),
    "thinking": frozenset({"enabled", "adaptive", "disabled"}),
}
_TOO_SHORT: Final = {"messages": "'messages' must contain at least one message."}


def _error(exc: ValidationError) -> ProxyError:
    return validation_error(exc, _TAGS, tagged_fields=_TAGGED_FIELDS, too_short=_TOO_SHORT)


def _check(req: CountTokensRequest) -> None:
    """Free JSON that would not survive the way to Google, and server features the proxy lacks."""
    for index, tool in enumerate(req.tools or ()):
        if isinstance(tool, ClientTool):
            check_sendable(tool.input_schema, f"tools[{index}].input_schema")
    for index, message in enumerate(req.messages):
        if isinstance(message.content, str):
            continue
        for position, block in enumerate(message.content):
            if isinstance(block, ToolUseBlock):
                check_sendable(block.input, f"messages[{index}].content[{position}].input")
    if req.output_config is not None and req.output_config.format is not None:
        check_sendable(req.output_config.format.json_schema, "output_config.format.schema")
    if req.mcp_servers:
        raise unsupported_parameter("mcp_servers", "The MCP connector (give the MCP tools as 'tools')")


def parse_messages_request(body: bytes) -> MessagesRequest:
    """Validate a raw `POST /v1/messages` body; every problem becomes one 400 that names the field."""
    if not body.strip():
        raise empty_body()
    try:
        req = MessagesRequest.model_validate_json(body)
    except ValidationError as exc:
        raise _error(exc) from None
    _check(req)
    return req


def parse_count_tokens_request(body: bytes) -> CountTokensRequest:
    """Validate a raw `POST /v1/messages/count_tokens` body, as `parse_messages_request` does."""
    if not body.strip():
        raise empty_body()
    try:
        req = CountTokensRequest.model_validate_json(body)
    except ValidationError as exc:
        raise _error(exc) from None
    _check(req)
    return req
