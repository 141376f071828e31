"""POST /v1/chat/completions: validate, translate, dispatch, translate back (JSON or SSE)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from aiohttp import web

from .. import errors
from ..frontdoor import LOG_FIELDS, begin_stream, json_response
from ..pool.dispatch import GoogleStream
from ..runtime import runtime_of
from ..sse import DONE, encode_event
from ..translate.media import media_urls
from ..translate.request import to_gemini_request
from ..translate.response import to_chat_completion
from ..translate.signatures import conversation_digest, wanted_keys
from ..translate.stream import StreamTranslator
from ..wire.gemini import GenerateContentResponse
from ..wire.openai import parse_chat_request

log = logging.getLogger("gemini_cli_proxy.chat")

_JSON_TYPES = frozenset({"application/json", ""})
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    # nginx and friends buffer responses unless told not to; a buffered stream is no stream.
    "X-Accel-Buffering": "no",
}


def _check_content_type(request: web.Request) -> None:
    content_type = request.content_type
    # aiohttp reports a missing header as application/octet-stream.
    if "Content-Type" not in request.headers or content_type in _JSON_TYPES or content_type.endswith("+json"):
        return
    raise errors.invalid_request(
        f"Unsupported Content-Type '{content_type}': send the body as JSON with "
        "'Content-Type: application/json'.",
        code="invalid_content_type",
    )


def _completion_id() -> str:
    return f"chatcmpl-{os.urandom(16).hex()}"  # as random as uuid4().hex, at a fifth of the cost


async def chat_completions(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    _check_content_type(request)
    body = await request.read()
    req = parse_chat_request(body)
    info = runtime.catalog.get(req.model)
    if info is None:
        raise errors.model_not_found(req.model)
    reasoning_output = runtime.settings.proxy_reasoning_output
    urls = media_urls(req)
    fetched = await runtime.media.fetch_all(urls) if urls else {}
    keys = wanted_keys(req)
    gemini_request, names = to_gemini_request(
        req,
        info,
        show_thoughts=reasoning_output != "hidden",
        media=fetched,
        safety=runtime.settings.proxy_safety_settings,
        # Only Gemini 3 refuses a turn without its signature: only then is a store round trip worth it.
        known_signatures=await runtime.signatures.lookup(keys, shared=info.thinking == "level")
        if keys
        else None,
        max_media_bytes=runtime.settings.proxy_max_image_bytes,
    )
    stream = req.stream if req.stream is not None else runtime.settings.proxy_stream_default
    fields = request[LOG_FIELDS]
    fields["model"] = info.id
    fields["stream"] = "true" if stream else "false"
    gateway = runtime.gateway
    created = int(time.time())
    if not stream:
        reply, cred = await gateway.generate(info.id, gemini_request)
        fields["credential"] = repr(cred.label)
        translated = to_chat_completion(
            reply,
            model=req.model,
            completion_id=_completion_id(),
            created=created,
            names=names,
            reasoning_output=reasoning_output,
            conversation=conversation_digest(req.messages),
        )
        runtime.signatures.put_many(translated.signatures)
        counts = translated.completion["usage"]
        gateway.record(
            cred, info.id, tokens_in=counts["prompt_tokens"], tokens_out=counts["completion_tokens"]
        )
        if translated.notes:
            fields["gemini"] = repr("; ".join(translated.notes))
        return json_response(translated.completion)
    first, events, cred = await gateway.open_stream(info.id, gemini_request)
    fields["credential"] = repr(cred.label)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    translator = StreamTranslator(
        model=req.model,
        completion_id=_completion_id(),
        created=created,
        include_usage=include_usage,
        names=names,
        reasoning_output=reasoning_output,
        conversation=conversation_digest(req.messages),
    )
    # A stream may stay open for minutes: thousands of them should hold their translators, not every
    # request's parsed messages, Gemini request and fetched images. (The raw body stays cached on
    # aiohttp's request object, which the stream holds anyway.)
    del req, gemini_request, fetched
    try:
        return await _relay(request, translator, first, events, fields)
    finally:
        runtime.signatures.put_many(translator.signatures)
        counts = translator.usage()
        gateway.record(
            cred, info.id, tokens_in=counts["prompt_tokens"], tokens_out=counts["completion_tokens"]
        )


def _encode(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(encode_event(chunk) for chunk in chunks)


def _translate(translator: StreamTranslator, batch: list[GenerateContentResponse]) -> bytes:
    return b"".join(_encode(translator.feed(event)) for event in batch)


async def _relay(
    request: web.Request,
    translator: StreamTranslator,
    first: list[GenerateContentResponse],
    events: GoogleStream,
    fields: dict[str, Any],
) -> web.StreamResponse:
    """Send the stream. Past this point nothing is retried: the client has bytes already. A failure
    from here (Google's stream breaking is a ProxyError too) ends the stream in the error middleware,
    with an error event, never with a second response."""
    response = await begin_stream(request, SSE_HEADERS)
    try:
        # One write per upstream read: few syscalls, and aiohttp's write applies back-pressure,
        # so a slow client slows the upstream read instead of making the proxy buffer.
        await response.write(_translate(translator, first))
        async for batch in events:
            payload = _translate(translator, batch)
            if payload:
                await response.write(payload)
        await response.write(_encode(translator.finish()) + DONE)
    except ConnectionError:
        fields["client"] = "disconnected"
    finally:
        await events.aclose()  # releases the upstream connection, also when the client went away
        if translator.notes:
            fields["gemini"] = repr("; ".join(translator.notes))
    return response


def register(app: web.Application) -> None:
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/chat/completions", chat_completions)
