"""OpenAI Chat Completions request -> Gemini GenerateContentRequest. Pure: no I/O, no settings.

Everything the proxy cannot express to Gemini is refused here with a 400 naming the parameter,
before any upstream call, rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..catalog import ModelInfo
from ..errors import ProxyError, invalid_request
from ..wire.openai import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    FunctionMessage,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)
from .media import InlineData, media_part
from .output import logprobs_config, response_format_config
from .reasoning import thinking_config
from .tools import (
    SKIP_SIGNATURE,
    NameMap,
    declared_functions,
    function_declarations,
    signature_of,
    tool_config,
)

OPENAI_MAX_STOP = 4


def _unsupported(param: str, what: str) -> ProxyError:
    return invalid_request(
        f"{what} is not supported by this proxy yet; remove '{param}' from the request.",
        param=param,
        code="unsupported_parameter",
    )


def _check_supported(req: ChatCompletionRequest) -> None:
    """Refuse parameters whose meaning the translation below cannot carry to Gemini."""
    if req.audio is not None or (req.modalities and req.modalities != ["text"]):
        raise _unsupported("modalities" if req.modalities else "audio", "Audio output")
    if req.logit_bias:
        raise _unsupported("logit_bias", "Gemini has no logit bias;")
    if req.prediction is not None:
        raise _unsupported("prediction", "Predicted outputs")
    if req.web_search_options is not None:
        raise _unsupported("web_search_options", "Web search")


def _text_of(content: str | list[TextPart]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


def _user_parts(message: UserMessage, index: int, media: Mapping[str, InlineData]) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"text": message.content}] if message.content else []
    parts: list[dict[str, Any]] = []
    for position, part in enumerate(message.content):
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        else:
            parts.append(media_part(part, f"messages[{index}].content[{position}]", media))
    return parts


def _arguments(text: str, param: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError:
        raise invalid_request(f"'{param}' is not valid JSON.", param=param, code="invalid_value") from None
    if not isinstance(value, dict):
        raise invalid_request(f"'{param}' must be a JSON object.", param=param, code="invalid_value")
    return value


def _assistant_parts(
    message: AssistantMessage,
    index: int,
    names: NameMap,
    call_names: dict[str, str],
    require_signatures: bool,
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    content = message.content
    if isinstance(content, str):
        if content:
            parts.append({"text": content})
    elif content is not None:
        texts = [part.text if isinstance(part, TextPart) else part.refusal for part in content]
        parts.extend({"text": text} for text in texts if text)
    calls = [(call.id, call.function, call.extra_content) for call in message.tool_calls or ()]
    if message.function_call is not None:
        calls.append((f"legacy_{index}", message.function_call, None))
    for position, (call_id, function, extra) in enumerate(calls):
        call_names[call_id] = function.name
        param = f"messages[{index}].tool_calls[{position}].function.arguments"
        part: dict[str, Any] = {
            "functionCall": {
                "name": names.to_gemini(function.name),
                "args": _arguments(function.arguments, param),
            }
        }
        signature = signature_of(call_id, extra)
        if signature is None and position == 0 and require_signatures:
            signature = SKIP_SIGNATURE  # Gemini 3 refuses a replayed first call without one
        if signature is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _tool_result(text: str) -> dict[str, Any]:
    """Gemini wants an object; a client's result is usually a string, JSON or not."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"output": text}
    return value if isinstance(value, dict) else {"output": value}


def _tool_part(
    message: ToolMessage | FunctionMessage, index: int, names: NameMap, call_names: dict[str, str]
) -> dict[str, Any]:
    if isinstance(message, FunctionMessage):
        name, text = message.name, message.content or ""
    else:
        found = call_names.get(message.tool_call_id) or message.name
        if found is None:
            raise invalid_request(
                f"'messages[{index}].tool_call_id' matches no tool call of an earlier assistant message.",
                param=f"messages[{index}].tool_call_id",
                code="invalid_value",
            )
        name, text = found, _text_of(message.content)
    return {"functionResponse": {"name": names.to_gemini(name), "response": _tool_result(text)}}


def _contents(
    req: ChatCompletionRequest, names: NameMap, require_signatures: bool, media: Mapping[str, InlineData]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents), with consecutive turns of one kind merged: all the
    results of one step's tool calls must arrive in ONE user turn, apart from any user text."""
    system_parts: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    kinds: list[str] = []
    call_names: dict[str, str] = {}
    for index, message in enumerate(req.messages):
        if isinstance(message, SystemMessage | DeveloperMessage):
            text = _text_of(message.content)
            if text:
                system_parts.append({"text": text})
            continue
        if isinstance(message, UserMessage):
            kind, role, parts = "user", "user", _user_parts(message, index, media)
        elif isinstance(message, AssistantMessage):
            kind, role = "model", "model"
            parts = _assistant_parts(message, index, names, call_names, require_signatures)
        else:
            kind, role, parts = "tool", "user", [_tool_part(message, index, names, call_names)]
        if not parts:
            continue  # Gemini rejects empty turns; an empty message carries nothing anyway.
        if kinds and kinds[-1] == kind:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
            kinds.append(kind)
    return system_parts, contents


def _generation_config(req: ChatCompletionRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    limit = req.output_limit()
    if limit is not None:
        config["maxOutputTokens"] = limit
    if req.temperature is not None:
        config["temperature"] = req.temperature
    if req.top_p is not None:
        config["topP"] = req.top_p
    stops = req.stop_list()
    if len(stops) > OPENAI_MAX_STOP:
        raise invalid_request(
            f"'stop' may hold at most {OPENAI_MAX_STOP} sequences; got {len(stops)}.",
            param="stop",
            code="invalid_value",
        )
    stops = [stop for stop in stops if stop]
    if stops:
        config["stopSequences"] = stops
    if req.presence_penalty is not None:
        config["presencePenalty"] = req.presence_penalty
    if req.frequency_penalty is not None:
        config["frequencyPenalty"] = req.frequency_penalty
    if req.seed is not None:
        config["seed"] = req.seed
    if req.n is not None and req.n > 1:
        config["candidateCount"] = req.n
    return config


def to_gemini_request(
    req: ChatCompletionRequest,
    model: ModelInfo,
    *,
    show_thoughts: bool = True,
    media: Mapping[str, InlineData] | None = None,
    safety: list[dict[str, str]] | None = None,
) -> tuple[dict[str, Any], NameMap]:
    """The GenerateContentRequest body for `req` (the model goes in the URL or envelope), and the
    function-name map its reply must be translated back with. `show_thoughts`: ask Gemini for
    thought summaries (they become reasoning_content)."""
    _check_supported(req)
    functions = declared_functions(req.tools, req.functions)
    names = NameMap(function["name"] for function in functions)
    # Gemini 3 refuses a replayed function call without its thought signature.
    system_parts, contents = _contents(
        req, names, require_signatures=model.thinking == "level", media=media or {}
    )
    if not contents:
        raise invalid_request(
            "'messages' must contain at least one user or assistant message with content.",
            param="messages",
            code="invalid_value",
        )
    body: dict[str, Any] = {"contents": contents}
    if system_parts:
        body["systemInstruction"] = {"parts": system_parts}
    if safety:
        body["safetySettings"] = safety
    if functions:
        body["tools"] = [{"functionDeclarations": function_declarations(functions, names)}]
        legacy = req.tool_choice is None
        choice = req.function_call if legacy else req.tool_choice
        config = tool_config(choice, names, "function_call" if legacy else "tool_choice")
        if config is not None:
            body["toolConfig"] = config
    config = _generation_config(req)
    config.update(response_format_config(req.response_format))
    config.update(logprobs_config(req, model))
    thinking = thinking_config(req, model, show_thoughts=show_thoughts)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    return body, names
