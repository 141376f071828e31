"""An Anthropic Messages request -> the core's chat form (a ChatCompletionRequest). Pure: no I/O.

The Messages door is a thin front over the chat core, as the Responses door is
(translate/responses_in.py): this module rewrites the request as the chat request that means the
same, and translate/request.py turns that into Gemini's.

- `system` (a string, or text blocks: one system message each) comes first; `system` messages in
  `messages` (Claude Code's reminders) are system messages too. All of them are Gemini's
  systemInstruction.
- A user message's `tool_result` blocks become `tool` messages (an `is_error` result's text starts
  with `Error:`), in order; images and PDFs in a result cannot ride in a chat tool message: they
  follow as a user message. The message's other blocks become a user message after them.
- An assistant message's `text` blocks are its content, its `tool_use` blocks its `tool_calls`.
  `thinking` blocks carry nothing to Gemini but the thought signatures this proxy sealed into their
  `signature` (sealed_signatures.py): they come back as `known_signatures`. `redacted_thinking`
  and the records of server tools (`server_tool_use`, `web_search_tool_result`) are dropped.
- Client tools become chat functions (`input_schema` as their parameters). Of Anthropic's server
  tools, `web_search_*` is Google Search grounding, which Gemini refuses beside function
  declarations: kept only in a request without client tools; it and every other server tool
  (`bash_*`, `text_editor_*`, `computer_*`, `code_execution_*`, ...) are otherwise dropped with a note.
- `thinking` and `output_config.effort` -> the chat form's `thinking_budget` / `reasoning_effort`
  (see `_thinking`); `top_k`, which chat lacks, is returned beside the chat form.

Every problem is a 400 naming the Messages parameter (`messages[3].content[1].source.data`), never a
chat one: `MessagesForm.anthropic_error` renames the errors the chat translation raises later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from pydantic import ValidationError

from ..errors import ProxyError, invalid_value
from ..wire.anthropic import (
    Base64ImageSource,
    Base64PDFSource,
    ClientTool,
    CountTokensRequest,
    DocumentBlock,
    FileSource,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    OtherBlock,
    PlainTextSource,
    RedactedThinkingBlock,
    ServerTool,
    ServerToolUseBlock,
    TextBlock,
    ThinkingAdaptive,
    ThinkingBlock,
    ThinkingDisabled,
    ThinkingEnabled,
    ToolChoiceAny,
    ToolChoiceAuto,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
    URLSource,
)
from ..wire.openai import ChatCompletionRequest, chat_validation_error
from .param_names import EXACT, ParamNames
from .sealed_signatures import unseal

# Chat's (and Gemini's) limit on stop sequences.
MAX_STOP_SEQUENCES: Final = 4
# Anthropic's efforts beyond chat's: Gemini's highest is `high`.
_EFFORTS: Final = {"xhigh": "high", "max": "high"}
# The efforts that bound adaptive thinking; the others leave the model to decide.
_BOUNDING_EFFORTS: Final = frozenset({"low", "medium"})
# The dynamic thinking budget: the model decides how much to think (Anthropic's `adaptive`).
DYNAMIC_BUDGET: Final = -1
WEB_SEARCH_PREFIX: Final = "web_search"
# Anthropic's server tool types are `<name>_<YYYYMMDD>` (`bash_20250124`), and `mcp_toolset`.
_SERVER_TOOL_TYPE: Final = re.compile(r"[a-z][a-z0-9_]*_\d{8}")
_OTHER_SERVER_TOOLS: Final = frozenset({"mcp_toolset"})
ERROR_PREFIX: Final = "Error: "
WEB_SEARCH_DROPPED: Final = (
    "web_search dropped: Gemini cannot ground with Google Search beside function tools"
)
_BLOCK_KINDS: Final = {
    "user": "text, image, document, tool_result",
    "assistant": "text, tool_use, thinking, redacted_thinking, server_tool_use, web_search_tool_result",
    "system": "text",
}


@dataclass(frozen=True)
class MessagesForm:
    """A Messages request in the core's chat form, and what the chat form cannot say."""

    chat: ChatCompletionRequest  # what to_gemini_request translates
    known_signatures: dict[str, str]  # from thinking blocks' signature (sealed_signatures.unseal)
    web_search: bool  # the client asked for web search and it may be sent (no client tools)
    top_k: int | None  # generationConfig.topK, which chat cannot carry
    notes: list[str]  # what was dropped or changed, for the access log line
    # Chat param -> the Messages param it came from (see `anthropic_param`).
    origins: Mapping[str, str] = field(default_factory=dict)

    def anthropic_param(self, param: str) -> str:
        """The Messages param a chat param (`messages[3].tool_calls[0].function.arguments`) stands
        for (`messages[2].content[1].input`); a param of no known origin is returned as it is."""
        return _NAMES.rename(param, self.origins)

    def anthropic_error(self, error: ProxyError) -> ProxyError:
        """`error` (raised by the chat translation of `chat`) naming Messages params."""
        return _NAMES.renamed(error, self.origins)


# --- params -----------------------------------------------------------------------------------

# Chat params that are Messages params under another name (the rest are set per request).
_NAMES: Final = ParamNames(
    {
        "max_completion_tokens": "max_tokens",
        "max_tokens": "max_tokens",
        "stop": "stop_sequences",
        "response_format": "output_config.format",
        "response_format.type": "output_config.format.type",
        "response_format.json_schema": "output_config.format",
        "response_format.json_schema.schema": "output_config.format.schema",
    }
)


def _unsupported(param: str, message: str) -> ProxyError:
    return invalid_value(param, message, "unsupported_parameter")


# --- tools ------------------------------------------------------------------------------------


@dataclass
class _Tools:
    declared: list[dict[str, Any]] = field(default_factory=list)  # chat `tools` entries
    names: set[str] = field(default_factory=set)
    web_search: list[str] = field(default_factory=list)  # the names of the web search tools
    dropped: list[str] = field(default_factory=list)  # the types of the server tools dropped
    params: dict[str, str] = field(default_factory=dict)  # chat param -> Messages param


def _build_tools(req: CountTokensRequest) -> _Tools:
    out = _Tools()
    seen: dict[str, str] = {}
    for index, tool in enumerate(req.tools or ()):
        where = f"tools[{index}]"
        if isinstance(tool, ServerTool):
            if tool.type.startswith(WEB_SEARCH_PREFIX):
                out.web_search.append(tool.name or WEB_SEARCH_PREFIX)
            elif _SERVER_TOOL_TYPE.fullmatch(tool.type) or tool.type in _OTHER_SERVER_TOOLS:
                out.dropped.append(tool.type)
            else:
                raise invalid_value(
                    f"{where}.type",
                    f"Invalid value {tool.type[:40]!r} for '{where}.type'. Supported values are: 'custom' "
                    "(or no type) for a client tool, or an Anthropic server tool type.",
                )
            continue
        assert isinstance(tool, ClientTool)
        if tool.name in seen:
            raise invalid_value(
                f"{where}.name", f"'{where}.name' repeats the name {tool.name[:64]!r} of '{seen[tool.name]}'."
            )
        seen[tool.name] = where
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
        if tool.description is not None:
            function["description"] = tool.description
        chat_param = f"tools[{len(out.declared)}]"
        out.params[chat_param] = where
        out.params[f"{chat_param}.function"] = where
        out.params[f"{chat_param}.function.parameters"] = f"{where}.input_schema"
        out.declared.append({"type": "function", "function": function})
        out.names.add(tool.name)
    return out


def _tool_choice(req: CountTokensRequest, tools: _Tools, notes: list[str]) -> tuple[Any, bool | None]:
    """(chat tool_choice or None to leave it out, parallel_tool_calls or None)."""
    choice = req.tool_choice
    if choice is None:
        return None, None
    parallel = None
    if not isinstance(choice, ToolChoiceNone) and choice.disable_parallel_tool_use:
        parallel = False
    if isinstance(choice, ToolChoiceAuto):
        return "auto", parallel
    if isinstance(choice, ToolChoiceAny):
        return "required", parallel
    if isinstance(choice, ToolChoiceNone):
        return "none", None
    assert isinstance(choice, ToolChoiceTool)
    if choice.name in tools.names:
        return {"type": "function", "function": {"name": choice.name}}, parallel
    if choice.name in tools.web_search and not tools.declared:
        notes.append("tool_choice of web search sent as auto: Gemini cannot be made to search")
        return None, parallel
    raise invalid_value(
        "tool_choice.name", f"'tool_choice.name' names no client tool of 'tools': {choice.name[:64]!r}."
    )


def _web_search(tools: _Tools, choice: Any, notes: list[str]) -> bool:
    for kind in tools.dropped:
        notes.append(f"server tool {kind} dropped: Gemini has no such tool")
    if not tools.web_search:
        return False
    if tools.declared:
        notes.append(WEB_SEARCH_DROPPED)
        return False
    if choice == "none":
        notes.append("web_search not used: tool_choice is none")
        return False
    return True


# --- messages ---------------------------------------------------------------------------------


def _image(block: ImageBlock, where: str) -> tuple[dict[str, Any], str]:
    """The chat image part for an image block, and the Messages param its bytes are at."""
    source = block.source
    if isinstance(source, Base64ImageSource):
        url = f"data:{source.media_type};base64,{source.data}"
        return {"type": "image_url", "image_url": {"url": url}}, f"{where}.source.data"
    if isinstance(source, URLSource):
        return {"type": "image_url", "image_url": {"url": source.url}}, f"{where}.source.url"
    assert isinstance(source, FileSource)
    raise _no_file_store(f"{where}.source.file_id")


def _no_file_store(param: str) -> ProxyError:
    return _unsupported(
        param, f"'{param}' is not supported: this proxy has no file store; send the content inline (base64)."
    )


def _document(block: DocumentBlock, where: str) -> tuple[dict[str, Any], str]:
    """The chat part for a document block (a PDF file part, or the text), and where its data is."""
    source = block.source
    if isinstance(source, Base64PDFSource):
        file = {"file_data": f"data:application/pdf;base64,{source.data}"}
        if block.title is not None:
            file["filename"] = block.title
        return {"type": "file", "file": file}, f"{where}.source.data"
    if isinstance(source, PlainTextSource):
        heading = "\n".join(text for text in (block.title, block.context) if text)
        text = f"{heading}\n\n{source.data}" if heading else source.data
        return {"type": "text", "text": text}, f"{where}.source.data"
    if isinstance(source, FileSource):
        raise _no_file_store(f"{where}.source.file_id")
    if isinstance(source, URLSource):
        raise _unsupported(
            f"{where}.source.url",
            f"'{where}.source.url' is not supported: send the PDF inline as a base64 source.",
        )
    raise _unsupported(
        f"{where}.source.type",
        f"'{where}.source' of type 'content' is not supported: send the text as text blocks.",
    )


def _media_origins(origins: dict[str, str], chat_part: str, block_param: str, data_param: str) -> None:
    """Where the chat side's params of a part point: its data is the block's source data or url."""
    origins[chat_part] = block_param
    for sub in ("image_url", "image_url.url", "file.file_data"):
        origins[f"{chat_part}.{sub}"] = data_param
    origins[f"{chat_part}.file"] = block_param
    origins[f"{chat_part}.file.filename"] = f"{block_param}.title"
    origins[f"{chat_part}.text"] = data_param


def _refuse_block(block: Any, where: str, role: str) -> ProxyError:
    kind = block.type
    param = f"{where}.type"
    if isinstance(block, OtherBlock):
        return invalid_value(
            param,
            f"Invalid value {kind[:40]!r} for '{param}'. Supported values are: {_BLOCK_KINDS[role]}.",
        )
    return invalid_value(
        param, f"'{where}' is '{kind}': a {role} message holds only {_BLOCK_KINDS[role]} blocks."
    )


class _Messages:
    """Builds the chat messages from the Messages ones, in order, and the params they came from."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.origins: dict[str, str] = {}
        self.known: dict[str, str] = {}
        self.notes: list[str] = []

    def _emit(self, message: dict[str, Any], origin: str) -> str:
        key = f"messages[{len(self.messages)}]"
        self.messages.append(message)
        self.origins[key] = origin
        return key

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    def system(self, system: str | list[TextBlock | OtherBlock] | None) -> None:
        if isinstance(system, str):
            key = self._emit({"role": "system", "content": system}, "system" + EXACT)
            self.origins[f"{key}.content"] = "system" + EXACT
            return
        for index, block in enumerate(system or ()):
            if not isinstance(block, TextBlock):
                raise _refuse_block(block, f"system[{index}]", "system")
            key = self._emit({"role": "system", "content": block.text}, f"system[{index}]{EXACT}")
            self.origins[f"{key}.content"] = f"system[{index}].text{EXACT}"

    def message(self, message: MessageParam, index: int) -> None:
        where = f"messages[{index}]"
        if message.role == "system":
            self._system_message(message, where)
        elif message.role == "assistant":
            self._assistant(message, where)
        else:
            self._user(message, where)

    def _system_message(self, message: MessageParam, where: str) -> None:
        if isinstance(message.content, str):
            key = self._emit({"role": "system", "content": message.content}, where)
            self.origins[f"{key}.content"] = f"{where}.content{EXACT}"
            return
        for position, block in enumerate(message.content):
            param = f"{where}.content[{position}]"
            if not isinstance(block, TextBlock):
                raise _refuse_block(block, param, "system")
            key = self._emit({"role": "system", "content": block.text}, param + EXACT)
            self.origins[f"{key}.content"] = f"{param}.text{EXACT}"

    def _user(self, message: MessageParam, where: str) -> None:
        if isinstance(message.content, str):
            key = self._emit({"role": "user", "content": message.content}, where)
            self.origins[f"{key}.content"] = f"{where}.content{EXACT}"
            return
        parts: list[tuple[dict[str, Any], str, str]] = []  # (chat part, block param, data param)
        for position, block in enumerate(message.content):
            param = f"{where}.content[{position}]"
            if isinstance(block, ToolResultBlock):
                self._tool_result(block, param)
            elif isinstance(block, TextBlock):
                parts.append(({"type": "text", "text": block.text}, param, f"{param}.text"))
            elif isinstance(block, ImageBlock):
                part, data = _image(block, param)
                parts.append((part, param, data))
            elif isinstance(block, DocumentBlock):
                part, data = _document(block, param)
                parts.append((part, param, data))
            else:
                raise _refuse_block(block, param, "user")
        if parts:
            self._user_parts(parts, where)

    def _user_parts(self, parts: list[tuple[dict[str, Any], str, str]], origin: str) -> None:
        key = f"messages[{len(self.messages)}]"
        for position, (_, block_param, data_param) in enumerate(parts):
            _media_origins(self.origins, f"{key}.content[{position}]", block_param, data_param)
        self._emit({"role": "user", "content": [part for part, _, _ in parts]}, origin)

    def _tool_result(self, block: ToolResultBlock, where: str) -> None:
        content = block.content
        media: list[tuple[dict[str, Any], str, str]] = []
        if content is None or isinstance(content, str):
            text = content or ""
        else:
            texts: list[str] = []
            for position, part in enumerate(content):
                param = f"{where}.content[{position}]"
                if isinstance(part, TextBlock):
                    texts.append(part.text)
                elif isinstance(part, ImageBlock):
                    chat_part, data = _image(part, param)
                    media.append((chat_part, param, data))
                elif isinstance(part, DocumentBlock):
                    chat_part, data = _document(part, param)
                    if chat_part["type"] == "text":
                        texts.append(chat_part["text"])
                    else:
                        media.append((chat_part, param, data))
                else:
                    raise invalid_value(
                        f"{param}.type",
                        f"Invalid value {part.type[:40]!r} for '{param}.type'. Supported values are: text, "
                        "image, document.",
                    )
            text = "\n".join(texts)
        if media:
            note = f"({len(media)} image(s) or file(s) of this result follow in the next user message.)"
            text = f"{text}\n{note}" if text else note
        if block.is_error:
            text = f"{ERROR_PREFIX}{text}" if text else ERROR_PREFIX.rstrip(": ")
        key = self._emit({"role": "tool", "tool_call_id": block.tool_use_id, "content": text}, where)
        self.origins[f"{key}.tool_call_id"] = f"{where}.tool_use_id"
        self.origins[f"{key}.content"] = f"{where}.content"
        if media:
            intro = f"Attached output of the tool call {block.tool_use_id}:"
            self._user_parts([({"type": "text", "text": intro}, where, where), *media], where)

    def _assistant(self, message: MessageParam, where: str) -> None:
        if isinstance(message.content, str):
            key = self._emit({"role": "assistant", "content": message.content}, where)
            self.origins[f"{key}.content"] = f"{where}.content{EXACT}"
            return
        key = f"messages[{len(self.messages)}]"
        texts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for position, block in enumerate(message.content):
            param = f"{where}.content[{position}]"
            if isinstance(block, TextBlock):
                self.origins[f"{key}.content[{len(texts)}]"] = param
                texts.append({"type": "text", "text": block.text})
            elif isinstance(block, ToolUseBlock):
                call_key = f"{key}.tool_calls[{len(calls)}]"
                calls.append(
                    {
                        "id": block.id,
                        "type": "function",
                        "function": {"name": block.name, "arguments": orjson.dumps(block.input).decode()},
                    }
                )
                self.origins[call_key] = param
                self.origins[f"{call_key}.id"] = f"{param}.id"
                self.origins[f"{call_key}.function"] = param
                self.origins[f"{call_key}.function.name"] = f"{param}.name"
                self.origins[f"{call_key}.function.arguments"] = f"{param}.input"
            elif isinstance(block, ThinkingBlock):
                # The thinking text is Gemini's summary of its thoughts: not sent back. Signatures are.
                self.known.update(unseal(block.signature))
            elif isinstance(block, RedactedThinkingBlock):
                self._note("redacted_thinking blocks dropped")
            elif isinstance(block, ServerToolUseBlock):
                self._note(f"{block.type} blocks dropped")
            else:
                raise _refuse_block(block, param, "assistant")
        assistant: dict[str, Any] = {"role": "assistant", "content": texts or None}
        if calls:
            assistant["tool_calls"] = calls
        self._emit(assistant, where)
        self.origins[f"{key}.content"] = f"{where}.content"


# --- the rest of the request --------------------------------------------------------------------


def _thinking(
    req: CountTokensRequest, chat: dict[str, Any], origins: dict[str, str], notes: list[str]
) -> None:
    """`thinking` and `output_config.effort` -> chat's `thinking_budget` / `reasoning_effort`.

    - `enabled`: its `budget_tokens` as the thinking budget (an effort beside it is ignored).
    - `disabled`: effort `none`: no thinking where the model can stop, else its least.
    - `adaptive`: the model decides (the dynamic budget; Gemini 3's highest level), but a `low` or
      `medium` effort bounds it as that effort. `high` is Anthropic's default effort (and `xhigh` /
      `max` ask for no less): each leaves the model to decide.
    - no `thinking`: the effort when one is given (`xhigh` / `max` as `high`), else the model's default.
    """
    thinking = req.thinking
    effort = req.output_config.effort if req.output_config is not None else None
    if isinstance(thinking, ThinkingEnabled):
        chat["thinking_budget"] = thinking.budget_tokens
        origins["thinking_budget"] = "thinking.budget_tokens"
        if effort is not None:
            notes.append("output_config.effort ignored: thinking.budget_tokens sets the thinking budget")
        return
    if isinstance(thinking, ThinkingDisabled):
        chat["reasoning_effort"] = "none"
        origins["reasoning_effort"] = "thinking"
        if effort is not None:
            notes.append("output_config.effort ignored: thinking is disabled")
        return
    if isinstance(thinking, ThinkingAdaptive) and effort not in _BOUNDING_EFFORTS:
        chat["thinking_budget"] = DYNAMIC_BUDGET
        origins["thinking_budget"] = "thinking"
        return
    if effort is not None:
        chat["reasoning_effort"] = _EFFORTS.get(effort, effort)
        origins["reasoning_effort"] = "output_config.effort"
        if effort in _EFFORTS:
            notes.append(f"output_config.effort {effort} sent as {_EFFORTS[effort]}")


def _generation(req: MessagesRequest, chat: dict[str, Any], notes: list[str]) -> None:
    chat["max_completion_tokens"] = req.max_tokens
    for name in ("stream", "temperature", "top_p"):
        value = getattr(req, name)
        if value is not None:
            chat[name] = value
    if req.stop_sequences is not None:
        if len(req.stop_sequences) > MAX_STOP_SEQUENCES:
            raise invalid_value(
                "stop_sequences",
                f"'stop_sequences' may hold at most {MAX_STOP_SEQUENCES} sequences for Gemini; got "
                f"{len(req.stop_sequences)}.",
            )
        if req.stop_sequences:
            chat["stop"] = list(req.stop_sequences)
    if req.container is not None:
        notes.append("container ignored: this proxy runs no code")


def to_chat_form(req: MessagesRequest | CountTokensRequest) -> MessagesForm:
    """The chat request `req` means (a count_tokens request: the same, without generation params)."""
    tools = _build_tools(req)
    notes: list[str] = []
    builder = _Messages()
    builder.system(req.system)
    for index, message in enumerate(req.messages):
        builder.message(message, index)
    notes.extend(builder.notes)
    chat: dict[str, Any] = {"model": req.model, "messages": builder.messages}
    origins: dict[str, str] = dict(tools.params)
    if tools.declared:
        chat["tools"] = tools.declared
    choice, parallel = _tool_choice(req, tools, notes)
    if choice is not None:
        chat["tool_choice"] = choice
        origins["tool_choice"] = "tool_choice"
    if parallel is not None:
        chat["parallel_tool_calls"] = parallel
    web_search = _web_search(tools, choice, notes)
    _thinking(req, chat, origins, notes)
    output = req.output_config
    if output is not None and output.format is not None:
        schema = {"name": "output", "schema": output.format.json_schema}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    top_k = None
    if isinstance(req, MessagesRequest):
        _generation(req, chat, notes)
        top_k = req.top_k
    origins.update(builder.origins)
    try:
        parsed = ChatCompletionRequest.model_validate(chat)
    except ValidationError as exc:
        raise _NAMES.renamed(chat_validation_error(exc), origins) from None
    return MessagesForm(
        chat=parsed,
        known_signatures=builder.known,
        web_search=web_search,
        top_k=top_k,
        notes=notes,
        origins=origins,
    )
