"""A Responses API request -> the core's chat form (a ChatCompletionRequest). Pure: no I/O.

The Responses door is a thin front over the chat core: this module rewrites its request as the
chat request that means the same, and translate/request.py turns that into Gemini's, reusing the
chat side's tools, reasoning mapping, media and thought signatures.

- `instructions` and `system` / `developer` messages become system messages (Gemini's
  systemInstruction); `user` and `assistant` messages stay what they are.
- An assistant message and the `function_call` / `custom_tool_call` items right after it become ONE
  assistant message with `tool_calls`; each `function_call_output` / `custom_tool_call_output` a
  `tool` message. Images and files in a tool's output cannot ride in a chat tool message: they
  follow the run of tool messages as a user message (Gemini sees them right after the results).
- `reasoning` items carry nothing to Gemini but the thought signatures this proxy sealed into their
  `encrypted_content` (sealed_signatures.py): they come back as `known_signatures`.
- Tools become chat functions: a `function` as itself, each member of a `namespace` under a flat
  name (`flat_name`), a `custom` tool as a function of one string parameter (`input`). `ToolNames`
  says which Responses tool each declared name stands for, so a call is named back.
- `web_search` is Google Search grounding, which Gemini refuses beside function declarations: it is
  kept only in a request without function tools, and dropped with a note otherwise.

Every problem is a 400 naming the Responses parameter (`input[3].content[0].image_url`), never a
chat one: `ChatForm.responses_error` renames the errors the chat translation raises later.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from pydantic import ValidationError

from ..errors import ProxyError, invalid_value
from ..wire.openai import ChatCompletionRequest, chat_validation_error
from ..wire.responses import (
    WEB_SEARCH_TYPES,
    CustomGrammarFormat,
    CustomTool,
    CustomToolCallItem,
    CustomToolCallOutputItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    HostedTool,
    InputFile,
    InputImage,
    InputItem,
    InputText,
    MessageItem,
    NamespaceTool,
    OtherItem,
    OutputText,
    ReasoningItem,
    Refusal,
    ResponsesRequest,
    TextFormatJsonObject,
    TextFormatJsonSchema,
    TextFormatText,
    WebSearchCallItem,
    WebSearchTool,
    parse_items,
)
from .param_names import EXACT, ParamNames
from .responses_tools import CUSTOM_INPUT, ToolNames, ToolOrigin
from .sealed_signatures import unseal

# Gemini's function names: a letter or `_`, then letters, digits, `_ . -` (and `:`), at most 64.
MAX_NAME: Final = 64
_LEGAL_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_ILLEGAL_CHAR: Final = re.compile(r"[^A-Za-z0-9_.\-]")
NAMESPACE_SEPARATOR: Final = "__"
CUSTOM_PARAMETERS: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {CUSTOM_INPUT: {"type": "string"}},
    "required": [CUSTOM_INPUT],
}
# OpenAI's efforts beyond chat's: Gemini's highest is `high`.
_EFFORTS: Final = {"xhigh": "high", "max": "high"}
# OpenAI's hosted tools and the items they leave in a conversation: nothing Gemini can run.
HOSTED_TOOLS: Final = frozenset(
    {
        "file_search",
        "code_interpreter",
        "computer",
        "computer_use",
        "computer_use_preview",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
        "programmatic_tool_calling",
    }
)
UNSUPPORTED_ITEMS: Final = frozenset(
    {
        "item_reference",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "image_generation_call",
        "code_interpreter_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "compaction",
        "tool_search_call",
        "tool_search_output",
        "additional_tools",
        "program",
        "program_output",
    }
)
_ITEM_KINDS: Final = (
    "message, function_call, function_call_output, custom_tool_call, custom_tool_call_output, "
    "reasoning, web_search_call"
)
_TOOL_KINDS: Final = "function, custom, namespace, web_search, web_search_preview"
HISTORY: Final = "previous_response_id"
WEB_SEARCH_DROPPED: Final = (
    "web_search dropped: Gemini cannot ground with Google Search beside function tools"
)


@dataclass(frozen=True)
class ChatForm:
    """A Responses request in the core's chat form, and what the chat form cannot say."""

    chat: ChatCompletionRequest  # what to_gemini_request translates
    known_signatures: dict[str, str]  # from reasoning items' encrypted_content (sealed_signatures.unseal)
    tools: ToolNames  # declared function name -> the Responses tool it stands for
    web_search: bool  # the client asked for web_search and it may be sent (no function tools)
    notes: list[str]  # what was dropped, for the access log line
    # Chat param -> the Responses param it came from (see `responses_param`).
    origins: Mapping[str, str] = field(default_factory=dict)

    def responses_param(self, param: str) -> str:
        """The Responses param a chat param (`messages[3].tool_calls[0].function.arguments`) stands
        for (`input[5].arguments`); a param of no known origin is returned as it is."""
        return _NAMES.rename(param, self.origins)

    def responses_error(self, error: ProxyError) -> ProxyError:
        """`error` (raised by the chat translation of `chat`) naming Responses params."""
        return _NAMES.renamed(error, self.origins)


# --- params -----------------------------------------------------------------------------------

# Chat params that are Responses params under another name; a trailing `=` keeps no sub-path.
_NAMES: Final = ParamNames(
    {
        "messages": "input",
        "max_completion_tokens": "max_output_tokens",
        "max_tokens": "max_output_tokens",
        "reasoning_effort": "reasoning.effort",
        "response_format": "text.format",
        "response_format.type": "text.format.type",
        "response_format.json_schema": "text.format",
        "response_format.json_schema.schema": "text.format.schema",
    }
)


# --- tools ------------------------------------------------------------------------------------


def _legal(name: str) -> str:
    name = _ILLEGAL_CHAR.sub("_", name)
    return name if name[:1].isascii() and (name[:1].isalpha() or name[:1] == "_") else f"_{name}"


def flat_name(namespace: str, name: str, taken: Container[str] = ()) -> str:
    """The name a namespace member is declared to Gemini under: `{namespace}__{name}`, with every
    character Gemini refuses made `_` (and a leading `_` if it would not start with a letter or
    `_`); when that is longer than 64 characters or already `taken`, cut to fit an `_` and 8 hex
    digits of a hash of (namespace, name), and a counter if even that is taken."""
    base = _legal(f"{namespace}{NAMESPACE_SEPARATOR}{name}")
    if len(base) <= MAX_NAME and base not in taken:
        return base
    digest = hashlib.sha256(f"{namespace}\0{name}".encode()).hexdigest()[:8]
    counter = 0
    while True:
        suffix = f"_{digest}" + (str(counter) if counter else "")
        candidate = base[: MAX_NAME - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        counter += 1


@dataclass
class _Tools:
    """The request's tools in chat form, and how to name its calls."""

    declared: list[dict[str, Any]] = field(default_factory=list)  # chat `tools` entries
    origins: dict[str, ToolOrigin] = field(default_factory=dict)  # declared name -> Responses tool
    by_origin: dict[tuple[str | None, str], str] = field(
        default_factory=dict
    )  # (namespace, name) -> declared
    params: dict[str, str] = field(default_factory=dict)  # chat param -> Responses param
    web_search: list[WebSearchTool] = field(default_factory=list)

    def call_name(self, namespace: str | None, name: str) -> str:
        """The declared name of a call in the history, also of a tool not declared this turn."""
        found = self.by_origin.get((namespace, name))
        if found is not None:
            return found
        return name if namespace is None else flat_name(namespace, name)


def _function(name: str, description: str | None, parameters: Any, strict: bool | None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if description is not None:
        function["description"] = description
    if parameters is not None:
        function["parameters"] = parameters
    if strict is not None:
        function["strict"] = strict
    return {"type": "function", "function": function}


def _custom_description(tool: CustomTool) -> str | None:
    """The tool's description, and the grammar its input must follow (Gemini takes no grammar)."""
    if not isinstance(tool.format, CustomGrammarFormat):
        return tool.description
    grammar = (
        f"The `{CUSTOM_INPUT}` argument is the tool's whole input: text that must follow this "
        f"{tool.format.syntax} grammar:\n{tool.format.definition}"
    )
    return f"{tool.description}\n\n{grammar}" if tool.description else grammar


def _refuse_tool(tool: HostedTool, param: str) -> ProxyError:
    if tool.type in HOSTED_TOOLS:
        return invalid_value(
            f"{param}.type",
            f"The hosted tool '{tool.type}' ('{param}.type') is not supported by this proxy: Gemini has "
            f"no such tool. Supported tool types: {_TOOL_KINDS}.",
            "unsupported_parameter",
        )
    return invalid_value(
        f"{param}.type",
        f"Invalid value {tool.type[:40]!r} for '{param}.type'. Supported values are: {_TOOL_KINDS}.",
    )


def _build_tools(req: ResponsesRequest) -> _Tools:
    out = _Tools()
    tools = req.tools or []
    # Top-level names are the client's own: reserved first, so no flat name can take one.
    taken: dict[str, str] = {}
    for index, tool in enumerate(tools):
        if isinstance(tool, FunctionTool | CustomTool):
            if tool.name in taken:
                raise invalid_value(
                    f"tools[{index}].name",
                    f"'tools[{index}].name' repeats the name {tool.name[:64]!r} of '{taken[tool.name]}'.",
                )
            taken[tool.name] = f"tools[{index}]"
        elif isinstance(tool, HostedTool):
            raise _refuse_tool(tool, f"tools[{index}]")
    for index, tool in enumerate(tools):
        if isinstance(tool, WebSearchTool):
            out.web_search.append(tool)
        elif isinstance(tool, FunctionTool | CustomTool):
            _declare(out, tool, tool.name, None, f"tools[{index}]")
        elif isinstance(tool, NamespaceTool):
            for position, member in enumerate(tool.tools):
                where = f"tools[{index}].tools[{position}]"
                if (tool.name, member.name) in out.by_origin:
                    raise invalid_value(
                        f"{where}.name",
                        f"'{where}.name' repeats {member.name[:64]!r} in the namespace {tool.name[:64]!r}.",
                    )
                name = flat_name(tool.name, member.name, taken.keys() | out.origins.keys())
                _declare(out, member, name, tool.name, where)
    return out


def _declare(
    out: _Tools, tool: FunctionTool | CustomTool, name: str, namespace: str | None, where: str
) -> None:
    chat_param = f"tools[{len(out.declared)}]"
    out.params[chat_param] = where
    out.params[f"{chat_param}.function"] = where
    if isinstance(tool, FunctionTool):
        out.declared.append(_function(name, tool.description, tool.parameters, tool.strict))
        out.origins[name] = ToolOrigin("function", tool.name, namespace)
    else:
        parameters = orjson.loads(orjson.dumps(CUSTOM_PARAMETERS))  # a request's own copy
        out.declared.append(_function(name, _custom_description(tool), parameters, None))
        out.origins[name] = ToolOrigin("custom", tool.name, namespace)
        out.params[f"{chat_param}.function.parameters"] = f"{where}{EXACT}"
    out.by_origin[(namespace, tool.name)] = name


def _tool_choice(choice: str | dict[str, Any] | None, tools: _Tools, notes: list[str]) -> Any:
    """Responses tool_choice -> chat tool_choice (None: leave it out)."""
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in {"auto", "none", "required"}:
            raise invalid_value(
                "tool_choice",
                f"Invalid value {choice[:40]!r} for 'tool_choice'. Supported values are: 'auto', 'none', "
                "'required', or an object naming a function or custom tool.",
            )
        return choice
    kind = choice.get("type")
    if kind in {"function", "custom"}:
        name = choice.get("name")
        namespace = choice.get("namespace")
        if not isinstance(name, str) or not name:
            raise invalid_value("tool_choice.name", "Missing required parameter: 'tool_choice.name'.")
        declared = _chosen(tools, kind, name, namespace if isinstance(namespace, str) else None)
        if declared is None:
            raise invalid_value(
                "tool_choice.name",
                f"'tool_choice.name' names no {kind} tool of 'tools': {name[:64]!r}.",
            )
        return {"type": "function", "function": {"name": declared}}
    if isinstance(kind, str) and kind in WEB_SEARCH_TYPES:
        if not tools.web_search:
            raise invalid_value(
                "tool_choice", f"'tool_choice' names the tool '{kind}', which 'tools' does not hold."
            )
        notes.append(f"tool_choice {kind} sent as auto: Gemini cannot be made to search")
        return None
    if kind == "allowed_tools":
        raise invalid_value(
            "tool_choice.type",
            "'tool_choice' of type 'allowed_tools' is not supported by this proxy; send 'auto' or "
            "'required' with only the allowed tools in 'tools'.",
            "unsupported_parameter",
        )
    if isinstance(kind, str) and kind in HOSTED_TOOLS:
        raise invalid_value(
            "tool_choice.type",
            f"'tool_choice' names the hosted tool '{kind}', which this proxy does not support.",
            "unsupported_parameter",
        )
    raise invalid_value(
        "tool_choice.type",
        "Invalid 'tool_choice': use 'auto', 'none', 'required', {\"type\": \"function\", \"name\": ...} or "
        '{"type": "custom", "name": ...}.',
    )


def _chosen(tools: _Tools, kind: str, name: str, namespace: str | None) -> str | None:
    """The declared name of the tool a named tool_choice means: by (namespace, name), by its
    declared (flat) name, or by a namespace member's own name when only one member has it."""
    found = tools.by_origin.get((namespace, name))
    if found is None and name in tools.origins:
        found = name
    if found is None and namespace is None:
        members = [declared for (_, own), declared in tools.by_origin.items() if own == name]
        found = members[0] if len(members) == 1 else None
    if found is None or tools.origins[found].kind != kind:
        return None
    return found


# --- items ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    """Where an item came from: `input[3]`, or the stored conversation (all of it one param)."""

    base: str
    exact: bool = False

    def at(self, sub: str = "") -> str:
        return self.base if self.exact else self.base + sub

    def origin(self, sub: str = "") -> str:
        """The origin a chat param maps to: the exact ones take no sub-path of the chat param."""
        return self.base + EXACT if self.exact else self.base + sub


class _Messages:
    """Builds the chat messages from the items, in order, and the params they came from."""

    def __init__(self, tools: _Tools) -> None:
        self._tools = tools
        self.messages: list[dict[str, Any]] = []
        self.origins: dict[str, str] = {}
        self.known: dict[str, str] = {}
        self.notes: list[str] = []
        self._assistant: dict[str, Any] | None = None  # the assistant message calls still join
        self._media: list[tuple[dict[str, Any], str, _Place]] = []  # (part, output param, place)
        self._media_calls: list[str] = []

    def _emit(self, message: dict[str, Any], place: _Place) -> str:
        key = f"messages[{len(self.messages)}]"
        self.messages.append(message)
        self.origins[key] = place.origin()
        return key

    def _flush(self) -> None:
        """End the assistant message calls were joining, and the run of tool outputs."""
        self._assistant = None
        if not self._media:
            return
        calls = ", ".join(self._media_calls)
        parts: list[dict[str, Any]] = [
            {"type": "text", "text": f"Attached output of the tool call(s) {calls}:"}
        ]
        key = f"messages[{len(self.messages)}]"
        for part, output_param, place in self._media:
            _media_origins(self.origins, f"{key}.content[{len(parts)}]", place, output_param)
            parts.append(part)
        self.messages.append({"role": "user", "content": parts})
        self.origins[key] = self._media[0][2].origin()
        self._media, self._media_calls = [], []

    def system(self, text: str, param: str) -> None:
        self._flush()
        self._emit({"role": "system", "content": text}, _Place(param, exact=True))

    def user_text(self, text: str, param: str) -> None:
        self._flush()
        self._emit({"role": "user", "content": text}, _Place(param, exact=True))

    def item(self, item: InputItem, place: _Place) -> None:
        if isinstance(item, MessageItem):
            self._message(item, place)
        elif isinstance(item, FunctionCallItem | CustomToolCallItem):
            self._call(item, place)
        elif isinstance(item, FunctionCallOutputItem | CustomToolCallOutputItem):
            self._output(item, place)
        elif isinstance(item, ReasoningItem):
            # Summaries are Gemini's own words about its thinking: not sent back. Signatures are.
            self.known.update(unseal(item.encrypted_content))
        elif isinstance(item, WebSearchCallItem):
            if "web_search_call items dropped" not in self.notes:
                self.notes.append("web_search_call items dropped")
        else:
            raise _refuse_item(item, place)

    def _message(self, item: MessageItem, place: _Place) -> None:
        self._flush()
        if item.role == "assistant":
            content: Any = item.content
            if not isinstance(content, str):
                content = [
                    _assistant_part(part, place.at(f".content[{j}]")) for j, part in enumerate(content)
                ]
            self._assistant = {"role": "assistant", "content": content}
            key = self._emit(self._assistant, place)
        elif item.role == "user":
            key = self._emit({"role": "user", "content": self._user_content(item, place)}, place)
        else:
            content = item.content
            if not isinstance(content, str):
                content = [
                    _system_part(part, place.at(f".content[{j}]"), item.role)
                    for j, part in enumerate(content)
                ]
            key = self._emit({"role": item.role, "content": content}, place)
        self.origins[f"{key}.content"] = place.origin(".content")

    def _user_content(self, item: MessageItem, place: _Place) -> str | list[dict[str, Any]]:
        if isinstance(item.content, str):
            return item.content
        key = f"messages[{len(self.messages)}]"
        parts: list[dict[str, Any]] = []
        for j, part in enumerate(item.content):
            param = f".content[{j}]"
            if isinstance(part, InputText | OutputText):
                parts.append({"type": "text", "text": part.text})
            elif isinstance(part, Refusal):
                raise invalid_value(
                    place.at(f"{param}.type"), f"'{place.at(param)}': a user message holds no refusal."
                )
            else:
                parts.append(_media(part, place, param))
                _media_origins(self.origins, f"{key}.content[{j}]", place, param)
        return parts

    def _call(self, item: FunctionCallItem | CustomToolCallItem, place: _Place) -> None:
        if self._media:
            self._flush()
        if self._assistant is None:
            self._assistant = {"role": "assistant", "content": None}
            self._emit(self._assistant, place)
        key = f"messages[{len(self.messages) - 1}]"
        calls = self._assistant.setdefault("tool_calls", [])
        if isinstance(item, FunctionCallItem):
            arguments, argument_param = item.arguments, ".arguments"
        else:
            arguments, argument_param = orjson.dumps({CUSTOM_INPUT: item.input}).decode(), ".input"
        call_key = f"{key}.tool_calls[{len(calls)}]"
        calls.append(
            {
                "id": item.call_id,
                "type": "function",
                "function": {
                    "name": self._tools.call_name(item.namespace, item.name),
                    "arguments": arguments,
                },
            }
        )
        self.origins[call_key] = place.origin()
        self.origins[f"{call_key}.id"] = place.origin(".call_id")
        self.origins[f"{call_key}.function"] = place.origin()
        self.origins[f"{call_key}.function.name"] = place.origin(".name")
        self.origins[f"{call_key}.function.arguments"] = place.origin(argument_param)

    def _output(self, item: FunctionCallOutputItem | CustomToolCallOutputItem, place: _Place) -> None:
        self._assistant = None  # the calls' assistant message is complete; the media wait
        output = item.output
        if isinstance(output, str):
            text = output
        else:
            text = "".join(part.text for part in output if isinstance(part, InputText))
            media = 0
            for j, part in enumerate(output):
                if not isinstance(part, InputText):
                    self._media.append((_media(part, place, f".output[{j}]"), f".output[{j}]", place))
                    media += 1
            if media:
                self._media_calls.append(item.call_id)
                note = f"({media} image(s) or file(s) of this output follow in the next user message.)"
                text = f"{text}\n{note}" if text else note
        key = self._emit({"role": "tool", "tool_call_id": item.call_id, "content": text}, place)
        self.origins[f"{key}.tool_call_id"] = place.origin(".call_id")
        self.origins[f"{key}.content"] = place.origin(".output")

    def finish(self) -> None:
        self._flush()


def _refuse_item(item: OtherItem, place: _Place) -> ProxyError:
    param = place.at(".type")
    if item.type in UNSUPPORTED_ITEMS:
        return invalid_value(
            param,
            f"Input items of type '{item.type}' ('{param}') are not supported by this proxy. Supported: "
            f"{_ITEM_KINDS}.",
            "unsupported_parameter",
        )
    return invalid_value(
        param, f"Invalid value {item.type[:40]!r} for '{param}'. Supported values are: {_ITEM_KINDS}."
    )


def _assistant_part(part: Any, param: str) -> dict[str, Any]:
    if isinstance(part, InputText | OutputText):
        return {"type": "text", "text": part.text}
    if isinstance(part, Refusal):
        return {"type": "refusal", "refusal": part.refusal}
    raise invalid_value(
        f"{param}.type",
        f"'{param}' is '{part.type}': an assistant message holds only output_text and refusal parts.",
    )


def _system_part(part: Any, param: str, role: str) -> dict[str, Any]:
    if isinstance(part, InputText | OutputText):
        return {"type": "text", "text": part.text}
    raise invalid_value(
        f"{param}.type", f"'{param}' is '{part.type}': a {role} message holds only text parts."
    )


def _no_file_store(param: str, inline: str) -> ProxyError:
    return invalid_value(
        param,
        f"'{param}' is not supported: this proxy has no file store; send the content inline as '{inline}'.",
        "unsupported_parameter",
    )


def _media(part: InputImage | InputFile, place: _Place, sub: str) -> dict[str, Any]:
    """The chat media part for an input_image / input_file (its bytes are checked by the chat side)."""
    if isinstance(part, InputImage):
        if part.image_url is None:
            if part.file_id is not None:
                raise _no_file_store(place.at(f"{sub}.file_id"), "image_url (a URL or a data: URI)")
            param = place.at(f"{sub}.image_url")
            raise invalid_value(
                param, f"Missing required parameter: '{param}'.", "missing_required_parameter"
            )
        image: dict[str, Any] = {"url": part.image_url}
        if part.detail is not None:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if part.file_data is None:
        if part.file_id is not None:
            raise _no_file_store(place.at(f"{sub}.file_id"), "file_data")
        if part.file_url is not None:
            raise _no_file_store(place.at(f"{sub}.file_url"), "file_data")
        param = place.at(f"{sub}.file_data")
        raise invalid_value(param, f"Missing required parameter: '{param}'.", "missing_required_parameter")
    file: dict[str, Any] = {"file_data": part.file_data}
    if part.filename is not None:
        file["filename"] = part.filename
    return {"type": "file", "file": file}


def _media_origins(origins: dict[str, str], chat_part: str, place: _Place, sub: str) -> None:
    """Where the chat side's media params point: `...image_url.url` is the part's `image_url`."""
    origins[chat_part] = place.origin(sub)
    origins[f"{chat_part}.image_url"] = place.origin(f"{sub}.image_url")
    origins[f"{chat_part}.image_url.url"] = place.origin(f"{sub}.image_url")
    origins[f"{chat_part}.file"] = place.origin(sub)
    origins[f"{chat_part}.file.file_data"] = place.origin(f"{sub}.file_data")
    origins[f"{chat_part}.file.filename"] = place.origin(f"{sub}.filename")


# --- the rest of the request --------------------------------------------------------------------


def _response_format(req: ResponsesRequest) -> dict[str, Any] | None:
    text = req.text
    if text is None or text.format is None:
        return None
    form = text.format
    if isinstance(form, TextFormatText):
        return {"type": "text"}
    if isinstance(form, TextFormatJsonObject):
        return {"type": "json_object"}
    assert isinstance(form, TextFormatJsonSchema)
    spec: dict[str, Any] = {"name": form.name, "schema": form.json_schema}
    if form.description is not None:
        spec["description"] = form.description
    if form.strict is not None:
        spec["strict"] = form.strict
    return {"type": "json_schema", "json_schema": spec}


def _web_search(tools: _Tools, choice: Any, notes: list[str]) -> bool:
    if not tools.web_search:
        return False
    if tools.declared:
        notes.append(WEB_SEARCH_DROPPED)
        return False
    if choice == "none":
        notes.append("web_search not used: tool_choice is none")
        return False
    if any((tool.filters or {}).get("allowed_domains") for tool in tools.web_search):
        notes.append("web_search filters.allowed_domains ignored: Google Search takes no domain filter")
    return True


def to_chat_form(req: ResponsesRequest, history: Sequence[Mapping[str, Any]] = ()) -> ChatForm:
    """The chat request `req` means. `history`: the input and output items of the earlier
    responses of a `previous_response_id` chain, oldest first, as JSON dicts in the Responses item
    shapes; they come before `req.input`."""
    tools = _build_tools(req)
    notes: list[str] = []
    builder = _Messages(tools)
    if req.instructions is not None:
        builder.system(req.instructions, "instructions")
    for item in parse_items(history, HISTORY) if history else ():
        builder.item(item, _Place(HISTORY, exact=True))
    if isinstance(req.input, str):
        builder.user_text(req.input, "input")
    else:
        for index, item in enumerate(req.input or ()):
            builder.item(item, _Place(f"input[{index}]"))
    builder.finish()
    notes.extend(builder.notes)
    if not builder.messages:
        raise invalid_value("input", "Missing required parameter: 'input'.", "missing_required_parameter")
    chat: dict[str, Any] = {"model": req.model, "messages": builder.messages}
    if tools.declared:
        chat["tools"] = tools.declared
    choice = _tool_choice(req.tool_choice, tools, notes)
    if choice is not None:
        chat["tool_choice"] = choice
    for name in ("parallel_tool_calls", "stream", "temperature", "top_p"):
        value = getattr(req, name)
        if value is not None:
            chat[name] = value
    if req.max_output_tokens is not None:
        chat["max_completion_tokens"] = req.max_output_tokens
    effort = req.reasoning.effort if req.reasoning is not None else None
    if effort is not None:
        chat["reasoning_effort"] = _EFFORTS.get(effort, effort)
        if effort in _EFFORTS:
            notes.append(f"reasoning.effort {effort} sent as {_EFFORTS[effort]}")
    response_format = _response_format(req)
    if response_format is not None:
        chat["response_format"] = response_format
    if req.text is not None and req.text.verbosity is not None:
        notes.append("text.verbosity ignored: Gemini has no verbosity control")
    web_search = _web_search(tools, req.tool_choice, notes)
    origins = {**tools.params, **builder.origins}
    try:
        parsed = ChatCompletionRequest.model_validate(chat)
    except ValidationError as exc:
        raise _NAMES.renamed(chat_validation_error(exc), origins) from None
    return ChatForm(
        chat=parsed,
        known_signatures=builder.known,
        tools=dict(tools.origins),
        web_search=web_search,
        notes=notes,
        origins=origins,
    )
