"""The fake's copy of Google's request checks: whatever Google rejects with 400, the fake rejects too.

The point is to catch proxy bugs in tests (an `assistant` role, a part with two data fields, a snake/camel
typo) the way production would. Messages mimic Google's (`Invalid JSON payload received. Unknown name ...`).
Each check is a dict lookup or a short loop, because the fake also serves benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_PREFIX = "* GenerateContentRequest."


def _camel_to_snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _both_spellings(names: Iterable[str]) -> frozenset[str]:
    """Google's JSON parser takes a proto field in camelCase or snake_case."""
    return frozenset(spelling for name in names for spelling in (name, _camel_to_snake(name)))


TOP_LEVEL_KEYS = _both_spellings(
    [
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "safetySettings",
        "generationConfig",
        "cachedContent",
        "labels",
    ]
)
CODE_ASSIST_TOP_LEVEL_KEYS = TOP_LEVEL_KEYS | {"session_id", "sessionId"}
CODE_ASSIST_ENVELOPE_KEYS = frozenset({"model", "project", "user_prompt_id", "userPromptId", "request"})
GENERATION_CONFIG_KEYS = _both_spellings(
    [
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "_responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "mediaResolution",
        "imageConfig",
    ]
)
PART_DATA_FIELDS = _both_spellings(
    [
        "text",
        "inlineData",
        "functionCall",
        "functionResponse",
        "fileData",
        "executableCode",
        "codeExecutionResult",
    ]
)
PART_MODIFIERS = _both_spellings(
    ["thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"]
)
_PART_KEYS = PART_DATA_FIELDS | PART_MODIFIERS
_CONTENT_KEYS = frozenset({"role", "parts"})
_ROLES = frozenset({"user", "model"})
# (camelCase, snake_case, low, high) for the numeric ranges Google enforces on generationConfig.
_RANGES: tuple[tuple[str, str, float, float], ...] = (
    ("temperature", "temperature", 0.0, 2.0),
    ("topP", "top_p", 0.0, 1.0),
    ("candidateCount", "candidate_count", 1, 8),
)


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _invalid_value(where: str, type_name: str) -> str:
    return f"Invalid value at '{where}' (type.googleapis.com/google.ai.generativelanguage.v1beta.{type_name})"


def unknown_name(name: str, where: str | None = None) -> str:
    at = f" at '{where}'" if where else ""
    return f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'


def validate_envelope(body: Any) -> str | None:
    """Code Assist's outer `{model, project, user_prompt_id?, request}`; None when acceptable."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received. Expected an object."
    for key in body:
        if key not in CODE_ASSIST_ENVELOPE_KEYS:
            return unknown_name(key)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "Request contains an invalid argument."
    if not isinstance(body.get("request"), dict):
        return "Request contains an invalid argument."
    return None


def validate_generate_request(request: Any, *, code_assist: bool = False, model: str = "") -> str | None:
    """Google's 400 message for a GenerateContentRequest, or None when Google would accept it."""
    if not isinstance(request, dict):
        return "Invalid JSON payload received. Expected an object."
    allowed = CODE_ASSIST_TOP_LEVEL_KEYS if code_assist else TOP_LEVEL_KEYS
    for key in request:
        if key not in allowed:
            return unknown_name(key)
    message = _check_contents(request.get("contents"))
    if message is None:
        message = check_function_turns(request["contents"], model)
    if message is None:
        config = _get(request, "generationConfig", "generation_config")
        if config is not None:
            message = _check_generation_config(config)
    if message is None:
        tools = request.get("tools")
        if tools is not None:
            message = _check_tools(tools)
    return message


FUNCTION_RESPONSE_COUNT = (
    "Please ensure that the number of function response parts is equal to the number of function call "
    "parts of the function call turn."
)
MISSING_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to "
    "work correctly, and missing thought_signature may lead to degraded model performance. Additional "
    "data, function call `default_api:{name}` , position {position}. Please refer to "
    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)


def _calls(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in content.get("parts") or () if isinstance(p, dict) and "functionCall" in p]


def check_function_turns(contents: list[dict[str, Any]], model: str) -> str | None:
    """Google's rules for tool turns: a model turn of N calls is answered by one turn of N
    responses; Gemini 3 also wants the current step's first call of each turn to be signed."""
    for i, content in enumerate(contents):
        calls = _calls(content)
        if not calls or i + 1 >= len(contents):
            continue
        answers = [
            p for p in contents[i + 1].get("parts") or () if isinstance(p, dict) and "functionResponse" in p
        ]
        if len(answers) != len(calls):
            return FUNCTION_RESPONSE_COUNT
    if not model.startswith("gemini-3"):
        return None
    # The current step starts after the last user turn that is not just function responses.
    start = 0
    for i, content in enumerate(contents):
        parts = content.get("parts") or ()
        if content.get("role") == "user" and any(
            isinstance(p, dict) and "functionResponse" not in p for p in parts
        ):
            start = i + 1
    for i in range(start, len(contents)):
        calls = _calls(contents[i])
        if calls and "thoughtSignature" not in calls[0]:
            name = (
                calls[0]["functionCall"].get("name", "") if isinstance(calls[0]["functionCall"], dict) else ""
            )
            return MISSING_SIGNATURE.format(name=name, position=i + 1)
    return None


def _check_contents(contents: Any) -> str | None:
    if not contents:
        return f"{_PREFIX}contents: contents is not specified\n"
    if not isinstance(contents, list):
        return _invalid_value("contents", "Content")
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            return _invalid_value(f"contents[{i}]", "Content")
        for key in content:
            if key not in _CONTENT_KEYS:
                return unknown_name(key, f"contents[{i}]")
        role = content.get("role")
        if role and (not isinstance(role, str) or role not in _ROLES):
            return "Please use a valid role: user, model."
        parts = content.get("parts")
        if not parts:
            return f"{_PREFIX}contents[{i}].parts: contents.parts must not be empty.\n"
        if not isinstance(parts, list):
            return _invalid_value(f"contents[{i}].parts", "Part")
        for j, part in enumerate(parts):
            message = _check_part(part, f"contents[{i}].parts[{j}]")
            if message is not None:
                return message
    return None


def _check_part(part: Any, where: str) -> str | None:
    if not isinstance(part, dict):
        return _invalid_value(where, "Part")
    data_field: str | None = None
    for key in part:
        if key in PART_DATA_FIELDS:
            if data_field is not None:
                return (
                    f"Invalid value at '{where}' (oneof), oneof field 'data' is already set. "
                    f"Cannot set '{key}'"
                )
            data_field = key
        elif key not in _PART_KEYS:
            return unknown_name(key, where)
    if data_field is None:
        return f"{_PREFIX}{where}.data: required oneof field 'data' must have one initialized field\n"
    return None


def _check_generation_config(config: Any) -> str | None:
    if not isinstance(config, dict):
        return _invalid_value("generation_config", "GenerationConfig")
    for key in config:
        if key not in GENERATION_CONFIG_KEYS:
            return unknown_name(key, "generation_config")
    stops = _get(config, "stopSequences", "stop_sequences")
    if isinstance(stops, list) and len(stops) > 5:
        return f"{_PREFIX}generation_config.stop_sequences: exceeded maximum of 5 stop sequences\n"
    for camel, snake, low, high in _RANGES:
        value = _get(config, camel, snake)
        if value is None:
            continue
        if not _is_number(value):
            return f"Invalid value at 'generation_config.{snake}' (TYPE_NUMBER), {value!r}"
        if not low <= value <= high:
            return f"{_PREFIX}generation_config.{snake}: must be in the range [{low:g}, {high:g}]\n"
    thinking = _get(config, "thinkingConfig", "thinking_config")
    if isinstance(thinking, dict):
        budget = _get(thinking, "thinkingBudget", "thinking_budget")
        level = _get(thinking, "thinkingLevel", "thinking_level")
        if budget is not None and level is not None:
            # Verbatim from Google, doubled "only" included (aistudio-error-400-2.json).
            return "You can only set only one of thinking budget and thinking level."
    has_schema = _get(config, "responseSchema", "response_schema") is not None
    has_json_schema = (
        _get(config, "responseJsonSchema", "response_json_schema") is not None
        or _get(config, "_responseJsonSchema", "_response_json_schema") is not None
    )
    if has_schema and has_json_schema:
        return (
            f"{_PREFIX}generation_config.response_json_schema: response_schema and response_json_schema "
            "cannot both be set.\n"
        )
    return None


def _check_tools(tools: Any) -> str | None:
    if isinstance(tools, dict):
        # Google takes a lone object for a repeated field (see aistudio-generate-skip-signature-1.json).
        tools = [tools]
    if not isinstance(tools, list):
        return _invalid_value("tools", "Tool")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return _invalid_value(f"tools[{i}]", "Tool")
        declarations = _get(tool, "functionDeclarations", "function_declarations")
        if not isinstance(declarations, list):
            continue
        for j, decl in enumerate(declarations):
            if not isinstance(decl, dict):
                continue
            has_json = _get(decl, "parametersJsonSchema", "parameters_json_schema") is not None
            if has_json and decl.get("parameters") is not None:
                return (
                    f"{_PREFIX}tools[{i}].function_declarations[{j}].parameters_json_schema: parameters and "
                    "parameters_json_schema cannot both be set.\n"
                )
    return None
