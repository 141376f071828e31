"""Anthropic's Messages API (`/v1/messages`): the front door Claude Code and Anthropic's SDKs use.

A thin door over the core, as the Responses door: the request becomes the core's chat form
(translate/anthropic_in.py), the chat translators do the Gemini side, and translate/anthropic_out.py
makes a Message or its stream events of the chat output. A turn's thought signatures travel in its
thinking block's `signature`, which Claude Code sends back on the next turn.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..doors import MESSAGES_STREAM
from ..errors import ProxyError
from ..frontdoor import LOG_FIELDS, begin_stream, json_response
from ..pool.dispatch import GoogleStream
from ..runtime import runtime_of
from ..translate.anthropic_in import MessagesForm, to_chat_form
from ..translate.anthropic_out import MessagesStream, to_message
from ..translate.signatures import conversation_digest
from ..translate.stream import StreamTranslator
from ..wire.anthropic import parse_count_tokens_request, parse_messages_request
from ..wire.gemini_request import GenerateContentRequest
from .turn import (
    SSE_HEADERS,
    check_content_type,
    close_turn,
    gemini_request_for,
    generated_turn,
    ground_with_search,
    model_info,
    random_id,
)


def _adjust(request: GenerateContentRequest, form: MessagesForm) -> None:
    """What the chat form cannot say: top_k, and web search grounding."""
    if form.top_k is not None:
        request.setdefault("generationConfig", {})["topK"] = form.top_k
    if form.web_search:
        ground_with_search(request)


async def create_message(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    check_content_type(request)
    req = parse_messages_request(await request.read())
    info = model_info(runtime, req.model)
    form = to_chat_form(req)
    chat = form.chat
    try:
        gemini_request, names = await gemini_request_for(
            runtime, chat, info, show_thoughts=True, brought=form.known_signatures
        )
    except ProxyError as error:
        raise form.anthropic_error(error) from None  # named as the client wrote it
    _adjust(gemini_request, form)
    fields = request[LOG_FIELDS]
    fields["model"] = info.id
    fields["stream"] = "true" if req.stream else "false"
    if form.notes:
        fields["messages"] = repr("; ".join(form.notes))
    message_id = random_id("msg_")
    conversation = conversation_digest(chat.messages)
    gateway = runtime.gateway
    if not req.stream:
        translated = await generated_turn(
            runtime,
            fields,
            info,
            gemini_request,
            names,
            model=req.model,
            reply_id=message_id,
            created=int(time.time()),
            conversation=conversation,
            reasoning_output="reasoning_content",
        )
        return json_response(
            to_message(
                translated.completion,
                message_id=message_id,
                model=req.model,
                signatures=translated.signatures,
            )
        )
    first, events, cred = await gateway.open_stream(info.id, gemini_request)
    fields["credential"] = repr(cred.label)
    translator = StreamTranslator(
        model=req.model,
        completion_id=message_id,
        created=int(time.time()),
        include_usage=True,
        names=names,
        reasoning_output="reasoning_content",
        conversation=conversation,
    )
    stream = MessagesStream(message_id=message_id, model=req.model)
    request[MESSAGES_STREAM] = stream
    del req, chat, form, gemini_request  # an open stream holds only what it relays
    try:
        return await _relay(request, stream, translator, first, events)
    finally:
        close_turn(runtime, cred, info.id, translator.usage(), translator.signatures)
        if translator.notes:
            fields["gemini"] = repr("; ".join(translator.notes))


async def _relay(
    request: web.Request,
    stream: MessagesStream,
    translator: StreamTranslator,
    first: list[Any],
    events: GoogleStream,
) -> web.StreamResponse:
    """Send the stream. A failure from here is a ProxyError the error middleware turns into this
    stream's `event: error` (doors.py)."""
    response = await begin_stream(request, SSE_HEADERS)
    try:
        # One write per upstream read, as the other doors: back-pressure slows Google's read.
        chunks = [chunk for event in first for chunk in translator.feed(event)]
        await response.write(stream.start(translator.usage().get("prompt_tokens", 0)) + stream.feed(chunks))
        async for batch in events:
            payload = stream.feed([chunk for event in batch for chunk in translator.feed(event)])
            if payload:
                await response.write(payload)
        tail = stream.feed(translator.finish())
        await response.write(tail + stream.finish(translator.usage(), translator.signatures))
    except ConnectionError:
        request[LOG_FIELDS]["client"] = "disconnected"
    finally:
        await events.aclose()  # releases the upstream connection, also when the client went away
    return response


async def count_tokens(request: web.Request) -> web.Response:
    """`{"input_tokens": N}`: Google's count (countTokens) of the prompt the request would send."""
    runtime = runtime_of(request)
    check_content_type(request)
    req = parse_count_tokens_request(await request.read())
    info = model_info(runtime, req.model)
    form = to_chat_form(req)
    try:
        gemini_request, _ = await gemini_request_for(
            runtime, form.chat, info, show_thoughts=False, brought=form.known_signatures
        )
    except ProxyError as error:
        raise form.anthropic_error(error) from None
    request[LOG_FIELDS]["model"] = info.id
    # Only what the prompt holds: generation settings are not part of a count.
    gemini_request.pop("generationConfig", None)
    return json_response({"input_tokens": await runtime.gateway.count_tokens(info.id, gemini_request)})


def register(app: web.Application) -> None:
    for prefix in ("/v1", ""):
        # Claude Code calls /v1/messages?beta=true: the query string changes nothing here.
        app.router.add_post(f"{prefix}/messages", create_message)
        app.router.add_post(f"{prefix}/messages/count_tokens", count_tokens)
