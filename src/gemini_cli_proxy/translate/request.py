"""OpenAI Chat Completions request -> Gemini GenerateContentRequest. Pure: no I/O, no settings.

Everything the proxy cannot express to Gemini is refused here with a 400 naming the parameter,
before any upstream call, rather than silently dropped.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProxyError, invalid_request
from ..wire.openai import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    SystemMessage,
    TextPart,
    UserMessage,
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
    if req.tools:
        raise _unsupported("tools", "Tool calling")
    if req.functions:
        raise _unsupported("functions", "Function calling")
    if req.tool_choice not in (None, "none", "auto"):
        raise _unsupported("tool_choice", "Forcing a tool call")
    if req.function_call not in (None, "none", "auto"):
        raise _unsupported("function_call", "Forcing a function call")
    if req.response_format is not None and req.response_format.get("type") != "text":
        raise _unsupported("response_format", "Structured output")
    if req.logprobs:
        raise _unsupported("logprobs", "Log probabilities")
    if req.audio is not None or (req.modalities and req.modalities != ["text"]):
        raise _unsupported("modalities" if req.modalities else "audio", "Audio output")
    if req.logit_bias:
        raise _unsupported("logit_bias", "Gemini has no logit bias;")
    if req.prediction is not None:
        raise _unsupported("prediction", "Predicted outputs")
    if req.web_search_options is not None:
        raise _unsupported("web_search_options", "Web search")
    if req.reasoning_effort is not None:
        raise _unsupported("reasoning_effort", "Reasoning control")
    if req.thinking_budget is not None:
        raise _unsupported("thinking_budget", "Reasoning control")


def _text_of(content: str | list[TextPart]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


def _user_parts(message: UserMessage, index: int) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"text": message.content}] if message.content else []
    parts: list[dict[str, Any]] = []
    for position, part in enumerate(message.content):
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        else:
            raise _unsupported(f"messages[{index}].content[{position}].type", f"A '{part.type}' content part")
    return parts


def _assistant_parts(message: AssistantMessage, index: int) -> list[dict[str, Any]]:
    if message.tool_calls or message.function_call:
        raise _unsupported(f"messages[{index}].tool_calls", "Replaying tool calls")
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    texts = [part.text if isinstance(part, TextPart) else part.refusal for part in content]
    return [{"text": text} for text in texts if text]


def _contents(req: ChatCompletionRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents), with consecutive turns of one role merged."""
    system_parts: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    for index, message in enumerate(req.messages):
        if isinstance(message, SystemMessage | DeveloperMessage):
            text = _text_of(message.content)
            if text:
                system_parts.append({"text": text})
            continue
        if isinstance(message, UserMessage):
            role, parts = "user", _user_parts(message, index)
        elif isinstance(message, AssistantMessage):
            role, parts = "model", _assistant_parts(message, index)
        else:
            raise _unsupported(f"messages[{index}].role", f"A '{message.role}' message (tool results)")
        if not parts:
            continue  # Gemini rejects empty turns; an empty message carries nothing anyway.
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
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


def to_gemini_request(req: ChatCompletionRequest) -> dict[str, Any]:
    """The GenerateContentRequest body for `req` (the model goes in the URL or envelope)."""
    _check_supported(req)
    system_parts, contents = _contents(req)
    if not contents:
        raise invalid_request(
            "'messages' must contain at least one user or assistant message with content.",
            param="messages",
            code="invalid_value",
        )
    body: dict[str, Any] = {"contents": contents}
    if system_parts:
        body["systemInstruction"] = {"parts": system_parts}
    config = _generation_config(req)
    if config:
        body["generationConfig"] = config
    return body
