"""Gemini's GenerateContentRequest, as the translators build it: TypedDicts only. Pure.

Only the fields the proxy sends are declared (Google takes many more). Every field is optional, as
in Google's schema. A request part is a reply part (text, thought, signature, function call: see
`wire.gemini`) plus what only a request carries: inline media and function responses; it is a type
of its own so that replies are not validated against fields the proxy never reads in them.
Free-form JSON the client wrote (a JSON Schema, a tool's result) stays `dict[str, Any]`.
"""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import TypedDict  # as wire.gemini, whose Part a RequestPart extends

from .gemini import Part
from .safety import SafetySetting


class Blob(TypedDict, total=False):
    """Inline media: standard base64 of the bytes."""

    mimeType: str
    data: str


class FunctionResponse(TypedDict, total=False):
    name: str
    # A tool's result: any JSON object the client's tool produced.
    response: dict[str, Any]
    id: str


class RequestPart(Part, total=False):
    inlineData: Blob
    functionResponse: FunctionResponse


class RequestContent(TypedDict, total=False):
    role: str  # "user" or "model"; absent in systemInstruction
    parts: list[RequestPart]


class FunctionDeclaration(TypedDict, total=False):
    name: str
    description: str
    # The client's JSON Schema (full JSON Schema, not the OpenAPI subset `parameters` takes).
    parametersJsonSchema: dict[str, Any]


class GoogleSearch(TypedDict, total=False):
    """Grounding with Google Search (the Responses API's web_search): no settings sent."""


class Tool(TypedDict, total=False):
    functionDeclarations: list[FunctionDeclaration]
    googleSearch: GoogleSearch


FunctionCallingMode = Literal["AUTO", "ANY", "NONE"]


class FunctionCallingConfig(TypedDict, total=False):
    mode: FunctionCallingMode
    allowedFunctionNames: list[str]


class ToolConfig(TypedDict, total=False):
    functionCallingConfig: FunctionCallingConfig


class ThinkingConfig(TypedDict, total=False):
    # Gemini 2.5 takes a budget, Gemini 3 a level; never both (see translate.reasoning).
    thinkingBudget: int
    thinkingLevel: str
    includeThoughts: bool


class GenerationConfig(TypedDict, total=False):
    maxOutputTokens: int
    temperature: float
    topP: float
    topK: int  # from Anthropic's top_k (chat has none)
    stopSequences: list[str]
    seed: int
    candidateCount: int
    presencePenalty: float
    frequencyPenalty: float
    responseMimeType: str
    # The client's JSON Schema for structured output.
    responseJsonSchema: dict[str, Any]
    responseLogprobs: bool
    logprobs: int
    thinkingConfig: ThinkingConfig


class GenerateContentRequest(TypedDict, total=False):
    """The body of generateContent / streamGenerateContent (the model goes in the URL)."""

    contents: list[RequestContent]
    systemInstruction: RequestContent
    safetySettings: list[SafetySetting]
    tools: list[Tool]
    toolConfig: ToolConfig
    generationConfig: GenerationConfig


class CodeAssistRequest(TypedDict, total=False):
    """Code Assist's envelope around a GenerateContentRequest."""

    model: str
    project: str
    user_prompt_id: str
    request: GenerateContentRequest
