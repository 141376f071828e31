"""What every front door does with one conversation turn once it is in the core's chat form: fetch
the media it names, find the thought signatures it did not bring back, translate it for Gemini; and
after Google's answer, remember the new signatures and count the credential's usage."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from .. import errors
from ..catalog import ModelInfo
from ..credentials import Credential
from ..runtime import Runtime
from ..translate.media import media_urls
from ..translate.request import to_gemini_request
from ..translate.response import ReasoningOutput, Translated, to_chat_completion
from ..translate.signatures import wanted_keys
from ..translate.tools import NameMap
from ..wire.gemini_request import GenerateContentRequest
from ..wire.openai import ChatCompletionRequest

_JSON_TYPES = frozenset({"application/json", ""})
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    # nginx and friends buffer responses unless told not to; a buffered stream is no stream.
    "X-Accel-Buffering": "no",
}


def check_content_type(request: web.Request) -> None:
    content_type = request.content_type
    # aiohttp reports a missing header as application/octet-stream.
    if "Content-Type" not in request.headers or content_type in _JSON_TYPES or content_type.endswith("+json"):
        return
    raise errors.invalid_request(
        f"Unsupported Content-Type '{content_type}': send the body as JSON with "
        "'Content-Type: application/json'.",
        code="invalid_content_type",
    )


def model_info(runtime: Runtime, model: str, *, embedding: bool = False) -> ModelInfo:
    """The catalog's model for a client's id, of the kind the method needs (`embedding`: an
    embedding model, else one that generates)."""
    info = runtime.catalog.get(model)
    if info is None:
        raise errors.model_not_found(model)
    if info.embeds != embedding:
        raise errors.wrong_model_kind(model, embedding_wanted=embedding)
    return info


def random_id(prefix: str) -> str:
    return f"{prefix}{os.urandom(16).hex()}"  # as random as uuid4().hex, at a fifth of the cost


async def gemini_request_for(
    runtime: Runtime,
    req: ChatCompletionRequest,
    info: ModelInfo,
    *,
    show_thoughts: bool,
    brought: Mapping[str, str] | None = None,
) -> tuple[GenerateContentRequest, NameMap]:
    """The Gemini request for a turn in chat form. `brought`: signatures the client carried in a
    form of its door's (a Responses reasoning item); the signature store is asked for the rest."""
    urls = media_urls(req)
    fetched = await runtime.media.fetch_all(urls) if urls else {}
    keys = [key for key in wanted_keys(req) if not brought or key not in brought]
    known: dict[str, str] = dict(brought or {})
    if keys:
        # Only Gemini 3 refuses a turn without its signature: only then is a store round trip worth it.
        known.update(await runtime.signatures.lookup(keys, shared=info.thinking == "level"))
    return to_gemini_request(
        req,
        info,
        show_thoughts=show_thoughts,
        media=fetched,
        safety=runtime.settings.proxy_safety_settings,
        known_signatures=known or None,
        max_media_bytes=runtime.settings.proxy_max_image_bytes,
    )


def ground_with_search(request: GenerateContentRequest) -> None:
    """Add Google Search grounding (a door's web search tool), unless the request declares functions:
    Gemini 2.5 refuses the two together."""
    if not any(tool.get("functionDeclarations") for tool in request.get("tools", ())):
        request.setdefault("tools", []).append({"googleSearch": {}})


def close_turn(
    runtime: Runtime,
    cred: Credential,
    model_id: str,
    usage: Mapping[str, Any],
    signatures: Sequence[tuple[str, str]],
) -> None:
    """After Google's answer: its signatures remembered, its tokens counted (chat usage counts)."""
    runtime.signatures.put_many(signatures)
    runtime.gateway.record(
        cred,
        model_id,
        tokens_in=usage.get("prompt_tokens", 0),
        tokens_out=usage.get("completion_tokens", 0),
        reasoning=(usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0),
    )


async def generated_turn(
    runtime: Runtime,
    fields: dict[str, Any],
    info: ModelInfo,
    request: GenerateContentRequest,
    names: NameMap,
    *,
    model: str,
    reply_id: str,
    created: int,
    conversation: str,
    reasoning_output: ReasoningOutput = "reasoning_content",
) -> Translated:
    """One non-streamed turn through the pool, as a chat completion (what each door then reshapes):
    the credential and Google's notes go in the access line, the signatures and usage are kept."""
    reply, cred = await runtime.gateway.generate(info.id, request)
    fields["credential"] = repr(cred.label)
    translated = to_chat_completion(
        reply,
        model=model,
        completion_id=reply_id,
        created=created,
        names=names,
        reasoning_output=reasoning_output,
        conversation=conversation,
    )
    close_turn(runtime, cred, info.id, translated.completion["usage"], translated.signatures)
    if translated.notes:
        fields["gemini"] = repr("; ".join(translated.notes))
    return translated
