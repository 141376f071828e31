"""OpenAI Chat Completions request -> Gemini GenerateContentRequest. Pure: no I/O, no settings.

Everything the proxy cannot express to Gemini is refused here with a 400 naming the parameter,
before any upstream call, rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..catalog import ModelInfo
from ..errors import invalid_request, unsupported_parameter
from ..wire.gemini_request import GenerateContentRequest, GenerationConfig
from ..wire.openai import ChatCompletionRequest
from ..wire.safety import SafetySetting
from .media import InlineData
from .messages import ContentsBuilder
from .output import logprobs_config, response_format_config
from .reasoning import thinking_config
from .tools import NameMap, declared_functions, function_declarations, tool_config

OPENAI_MAX_STOP = 4
INT32_LIMIT = 2**31


def _check_supported(req: ChatCompletionRequest) -> None:
    """Refuse parameters whose meaning the translation below cannot carry to Gemini."""
    if req.audio is not None or (req.modalities and req.modalities != ["text"]):
        raise unsupported_parameter("modalities" if req.modalities else "audio", "Audio output")
    if req.logit_bias:
        raise unsupported_parameter("logit_bias", "Gemini has no logit bias;")
    if req.prediction is not None:
        raise unsupported_parameter("prediction", "Predicted outputs")
    if req.web_search_options is not None:
        raise unsupported_parameter("web_search_options", "Web search")


def _check_penalty(model: ModelInfo, param: str) -> None:
    if not model.penalties:
        raise invalid_request(
            f"{model.id} does not support '{param}'; remove it or send 0.",
            param=param,
            code="unsupported_parameter",
        )


def _penalties(req: ChatCompletionRequest, model: ModelInfo) -> GenerationConfig:
    """Penalties, where the model takes them. 0 is OpenAI's default and means "none", so it is
    not sent (Gemini 2.5 refuses even a zero penalty); anything else on such a model is a 400."""
    config: GenerationConfig = {}
    if req.presence_penalty:
        _check_penalty(model, "presence_penalty")
        config["presencePenalty"] = req.presence_penalty
    if req.frequency_penalty:
        _check_penalty(model, "frequency_penalty")
        config["frequencyPenalty"] = req.frequency_penalty
    return config


def _generation_config(req: ChatCompletionRequest) -> GenerationConfig:
    config: GenerationConfig = {}
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
    if req.seed is not None:
        # Gemini's seed is a 32-bit int; OpenAI's is 64-bit. Folding keeps runs reproducible.
        config["seed"] = req.seed % INT32_LIMIT if not -INT32_LIMIT < req.seed < INT32_LIMIT else req.seed
    if req.n is not None and req.n > 1:
        config["candidateCount"] = req.n
    return config


def to_gemini_request(
    req: ChatCompletionRequest,
    model: ModelInfo,
    *,
    show_thoughts: bool = True,
    media: Mapping[str, InlineData] | None = None,
    safety: Sequence[SafetySetting] | None = None,
    known_signatures: Mapping[str, str] | None = None,
    max_media_bytes: int | None = None,
) -> tuple[GenerateContentRequest, NameMap]:
    """The GenerateContentRequest body for `req` (the model goes in the URL or envelope), and the
    function-name map its reply must be translated back with.

    `show_thoughts`: ask Gemini for thought summaries (they become reasoning_content). `media`: the
    images the proxy fetched, by URL. `safety`: safetySettings. `known_signatures`: signatures the
    proxy remembered (see translate.signatures), for calls and texts the client sent back bare.
    `max_media_bytes`: the most bytes an inline image, audio or file may decode to (None: no cap)."""
    _check_supported(req)
    functions = declared_functions(req.tools, req.functions)
    if functions and not model.tools:
        raise unsupported_parameter("tools", f"Tool calling with {model.id}")
    names = NameMap(function["name"] for function in functions)
    builder = ContentsBuilder(
        names,
        media=media or {},
        known_signatures=known_signatures or {},
        require_signatures=model.thinking == "level",
        max_media_bytes=max_media_bytes,
    )
    system_parts, contents = builder.build(req)
    if not contents and system_parts:
        # OpenAI answers a conversation of only instructions; Gemini needs a turn to answer.
        contents, system_parts = [{"role": "user", "parts": system_parts}], []
    if not contents:
        raise invalid_request(
            "'messages' must contain at least one message with content.",
            param="messages",
            code="invalid_value",
        )
    body: GenerateContentRequest = {"contents": contents}
    if system_parts:
        body["systemInstruction"] = {"parts": system_parts}
    if safety:
        body["safetySettings"] = list(safety)
    if functions:
        body["tools"] = [{"functionDeclarations": function_declarations(functions, names)}]
        legacy = req.tool_choice is None
        choice = req.function_call if legacy else req.tool_choice
        calling = tool_config(choice, names, "function_call" if legacy else "tool_choice")
        if calling is not None:
            body["toolConfig"] = calling
    config = _generation_config(req)
    config.update(_penalties(req, model))
    config.update(response_format_config(req.response_format))
    config.update(logprobs_config(req, model))
    thinking = thinking_config(req, model, show_thoughts=show_thoughts)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    return body, names
