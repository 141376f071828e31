"""POST /v1/chat/completions: validate, translate, dispatch, translate back (JSON or SSE)."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from ..frontdoor import LOG_FIELDS, begin_stream, json_response
from ..pool.dispatch import GoogleStream
from ..runtime import runtime_of
from ..sse import DONE, encode_event
from ..translate.signatures import conversation_digest
from ..translate.stream import StreamTranslator
from ..wire.gemini import GenerateContentResponse
from ..wire.openai import parse_chat_request
from .turn import (
    SSE_HEADERS,
    check_content_type,
    close_turn,
    gemini_request_for,
    generated_turn,
    model_info,
    random_id,
)

log = logging.getLogger("gemini_cli_proxy.chat")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    check_content_type(request)
    req = parse_chat_request(await request.read())
    info = model_info(runtime, req.model)
    reasoning_output = runtime.settings.proxy_reasoning_output
    gemini_request, names = await gemini_request_for(
        runtime, req, info, show_thoughts=reasoning_output != "hidden"
    )
    stream = req.stream if req.stream is not None else runtime.settings.proxy_stream_default
    fields = request[LOG_FIELDS]
    fields["model"] = info.id
    fields["stream"] = "true" if stream else "false"
    gateway = runtime.gateway
    created = int(time.time())
    conversation = conversation_digest(req.messages)
    if not stream:
        translated = await generated_turn(
            runtime,
            fields,
            info,
            gemini_request,
            names,
            model=req.model,
            reply_id=random_id("chatcmpl-"),
            created=created,
            conversation=conversation,
            reasoning_output=reasoning_output,
        )
        return json_response(translated.completion)
    first, events, cred = await gateway.open_stream(info.id, gemini_request)
    fields["credential"] = repr(cred.label)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    translator = StreamTranslator(
        model=req.model,
        completion_id=random_id("chatcmpl-"),
        created=created,
        include_usage=include_usage,
        names=names,
        reasoning_output=reasoning_output,
        conversation=conversation,
    )
    # A stream may stay open for minutes: thousands of them should hold their translators, not every
    # request's parsed messages and Gemini request. (The raw body stays cached on aiohttp's request
    # object, which the stream holds anyway.)
    del req, gemini_request
    try:
        return await _relay(request, translator, first, events, fields)
    finally:
        close_turn(runtime, cred, info.id, translator.usage(), translator.signatures)


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
