"""Tools between OpenAI and Gemini: declarations, tool_choice, names, call ids. Pure.

Gemini function names must start with a letter or underscore, then letters, digits, `_ . : -`, at
most 64 characters; OpenAI allows more. Illegal names are mapped to legal ones per request and
back, so the client only ever sees its own names.

A Gemini function call may carry a `thoughtSignature` that must come back on the same part in the
next turn. It travels through the client statelessly inside the tool call id (and as
`extra_content.google.thought_signature`, Google's own compat field).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from typing import Any, Final

from ..errors import invalid_request
from ..wire.gemini import Part
from ..wire.gemini_request import FunctionCallingMode, FunctionDeclaration, ToolConfig

_LEGAL_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,63}$")
_ILLEGAL_CHAR: Final = re.compile(r"[^A-Za-z0-9_.:\-]")
SIGNATURE_MARK: Final = ".sig."
GOOGLE_ID_PREFIX: Final = "gcall_"
_GOOGLE_ID: Final = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
# Gemini's documented value for "no signature available": accepted instead of a real one.
SKIP_SIGNATURE: Final = "skip_thought_signature_validator"
_CHOICE_MODES: Final[dict[str, FunctionCallingMode]] = {"none": "NONE", "auto": "AUTO", "required": "ANY"}


class NameMap:
    """Client function names <-> names Gemini accepts, for one request."""

    __slots__ = ("_to_client", "_to_gemini")

    def __init__(self, client_names: Iterable[str]) -> None:
        self._to_gemini: dict[str, str] = {}
        self._to_client: dict[str, str] = {}
        for name in client_names:
            legal = name if _LEGAL_NAME.match(name) else _legalise(name)
            self._to_gemini[name] = legal
            self._to_client[legal] = name

    def to_gemini(self, name: str) -> str:
        return self._to_gemini.get(name) or (name if _LEGAL_NAME.match(name) else _legalise(name))

    def to_client(self, name: str) -> str:
        return self._to_client.get(name, name)


def _legalise(name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    body = _ILLEGAL_CHAR.sub("_", name)[:50]
    return f"_{body}_{digest}"


def clean_schema(schema: Any) -> Any:
    """The client's JSON Schema, minus the keys Gemini's parametersJsonSchema refuses."""
    if isinstance(schema, dict):
        return {key: clean_schema(value) for key, value in schema.items() if key != "$schema"}
    if isinstance(schema, list):
        return [clean_schema(item) for item in schema]
    return schema


def _function_of(tool: Any, index: int, param: str) -> dict[str, Any]:
    if isinstance(tool, dict) and tool.get("type", "function") == "function" and "function" in tool:
        function, where = tool["function"], f"{param}[{index}].function"
    elif isinstance(tool, dict) and param == "functions":
        function, where = tool, f"{param}[{index}]"  # the legacy list holds the functions themselves
    else:
        raise invalid_request(
            f"Only function tools are supported; '{param}[{index}]' is not one.",
            param=f"{param}[{index}]",
            code="unsupported_parameter",
        )
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        raise invalid_request(
            f"'{param}[{index}]' needs a function name.", param=f"{where}.name", code="invalid_value"
        )
    _check_type(function, "description", str, "a string", where)
    # Dropped, a schema of the wrong type would let the model call the tool with made-up arguments.
    _check_type(function, "parameters", dict, "a JSON Schema object", where)
    return function


def _check_type(function: dict[str, Any], key: str, kind: type, what: str, where: str) -> None:
    """`function[key]`, when present and not null, must be of `kind`."""
    value = function.get(key)
    if value is not None and not isinstance(value, kind):
        raise invalid_request(
            f"'{where}.{key}' must be {what}.", param=f"{where}.{key}", code="invalid_value"
        )


def declared_functions(tools: list[Any] | None, functions: list[Any] | None) -> list[dict[str, Any]]:
    """The OpenAI function objects from `tools` (or the legacy `functions`)."""
    if tools:
        return [_function_of(tool, i, "tools") for i, tool in enumerate(tools)]
    return [_function_of(fn, i, "functions") for i, fn in enumerate(functions or ())]


def function_declarations(functions: list[dict[str, Any]], names: NameMap) -> list[FunctionDeclaration]:
    declarations = []
    for function in functions:
        declaration: FunctionDeclaration = {"name": names.to_gemini(function["name"])}
        if isinstance(function.get("description"), str):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if isinstance(parameters, dict) and parameters:
            declaration["parametersJsonSchema"] = clean_schema(parameters)
        declarations.append(declaration)
    return declarations


def tool_config(choice: Any, names: NameMap, param: str = "tool_choice") -> ToolConfig | None:
    """OpenAI tool_choice (or legacy function_call) -> Gemini toolConfig."""
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _CHOICE_MODES:
        return {"functionCallingConfig": {"mode": _CHOICE_MODES[choice]}}
    name = None
    if isinstance(choice, dict):
        function = choice.get("function") if "function" in choice else choice
        name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise invalid_request(
            f"Invalid '{param}': use none, auto, required, or "
            '{"type": "function", "function": {"name": ...}}.',
            param=param,
            code="invalid_value",
        )
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [names.to_gemini(name)]}}


def new_call_id(signature: str | None, google_id: str | None = None) -> str:
    """A unique tool call id; Google's own call id, when it sent one, is kept inside it so that it
    can be echoed on the call and its response next turn."""
    call_id = f"{GOOGLE_ID_PREFIX}{google_id}" if google_id else f"call_{uuid.uuid4().hex[:24]}"
    return f"{call_id}{SIGNATURE_MARK}{signature}" if signature else call_id


def google_id_of(call_id: str) -> str | None:
    base = call_id.partition(SIGNATURE_MARK)[0]
    return base.removeprefix(GOOGLE_ID_PREFIX) if base.startswith(GOOGLE_ID_PREFIX) else None


def signature_of(call_id: str, extra_content: dict[str, Any] | None) -> str | None:
    """The thought signature a client sent back with a tool call, wherever it kept it."""
    google = (extra_content or {}).get("google")
    if isinstance(google, dict) and isinstance(google.get("thought_signature"), str):
        return str(google["thought_signature"])
    _, mark, signature = call_id.partition(SIGNATURE_MARK)
    return signature if mark and signature else None


def tool_call(part: Part, names: NameMap, arguments_json: str) -> dict[str, Any]:
    """An OpenAI tool call for a Gemini functionCall part (arguments already JSON-encoded)."""
    signature = part.get("thoughtSignature")
    google_id = part["functionCall"].get("id")
    safe_id = google_id if isinstance(google_id, str) and _GOOGLE_ID.match(google_id) else None
    call: dict[str, Any] = {
        "id": new_call_id(signature if isinstance(signature, str) else None, safe_id),
        "type": "function",
        "function": {
            "name": names.to_client(str(part["functionCall"].get("name", ""))),
            "arguments": arguments_json,
        },
    }
    if isinstance(signature, str):
        call["extra_content"] = {"google": {"thought_signature": signature}}
    return call
