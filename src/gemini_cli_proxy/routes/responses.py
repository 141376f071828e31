"""OpenAI's Responses API (`/v1/responses`): the front door Codex CLI and the Agents SDK use.

A thin door over the core: the request becomes the core's chat form (translate/responses_in.py),
which the chat translators turn into a Gemini request and Gemini's answer back into chat objects;
translate/responses_out.py makes those a `Response` or its typed stream events. Stored responses
(`store`, true unless the client says false) live in the state store (stored_responses.py).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from .. import errors
from ..doors import RESPONSES_STREAM
from ..errors import ProxyError
from ..frontdoor import LOG_FIELDS, begin_stream, json_response
from ..pool.dispatch import GoogleStream
from ..runtime import Runtime, runtime_of
from ..stored_responses import StoredResponse
from ..translate.responses_in import to_chat_form
from ..translate.responses_out import ResponsesStream, to_response
from ..translate.signatures import conversation_digest
from ..translate.stream import StreamTranslator
from ..wire.responses import parse_responses_request
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

# Request fields a Response echoes back as they were sent.
_ECHOED = (
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "max_output_tokens",
    "text",
    "reasoning",
    "metadata",
    "store",
    "previous_response_id",
    "truncation",
    "user",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
)
ENCRYPTED_REASONING = "reasoning.encrypted_content"


def _not_found(response_id: str, param: str | None = None) -> ProxyError:
    return ProxyError(
        404,
        f"No response with id '{errors.shown(response_id)}' is stored (expired, deleted, or sent with "
        "store: false).",
        param=param,
        code="response_not_found" if param is None else "previous_response_not_found",
    )


def _input_items(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's input as items, as a later turn or `input_items` gives them back."""
    given = raw.get("input")
    if isinstance(given, str):
        given = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": given}]}]
    items = [dict(item) for item in given or () if isinstance(item, dict)]
    for item in items:
        item.setdefault("id", random_id("msg_" if item.get("type", "message") == "message" else "item_"))
    return items


async def _with_references_resolved(runtime: Runtime, body: bytes) -> bytes:
    """The body with each `item_reference` input replaced by the stored item it names (an earlier
    response's output or input, kept with it): what the Vercel AI SDK sends for earlier turns."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body  # the parser words the error
    items = raw.get("input") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        return body
    wanted = [
        (index, item.get("id"))
        for index, item in enumerate(items)
        if isinstance(item, dict) and item.get("type") == "item_reference"
    ]
    if not wanted:
        return body
    for index, item_id in wanted:
        if not isinstance(item_id, str) or not item_id:
            raise errors.invalid_request(
                f"Missing required parameter: 'input[{index}].id'.", param=f"input[{index}].id"
            )
    found = await runtime.responses.items([str(item_id) for _, item_id in wanted])
    for (index, item_id), item in zip(wanted, found, strict=True):
        if item is None:
            raise errors.invalid_request(
                f"Item with id '{errors.shown(str(item_id))}' not found (expired, deleted, or its response "
                "was sent with store: false).",
                param=f"input[{index}]",
                code="item_not_found",
            )
        items[index] = item
    return orjson.dumps(raw)


async def create_response(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    check_content_type(request)
    body = await request.read()
    if b'"item_reference"' in body:
        body = await _with_references_resolved(runtime, body)
    req = parse_responses_request(body)
    raw: dict[str, Any] = orjson.loads(body)
    info = model_info(runtime, req.model)
    history: list[dict[str, Any]] = []
    if req.previous_response_id:
        previous = await runtime.responses.get(req.previous_response_id)
        if previous is None:
            raise _not_found(req.previous_response_id, param="previous_response_id")
        history = previous.conversation()
    form = to_chat_form(req, history)
    chat = form.chat
    try:
        gemini_request, names = await gemini_request_for(
            runtime, chat, info, show_thoughts=req.reasoning is not None, brought=form.known_signatures
        )
    except ProxyError as error:
        raise form.responses_error(error) from None  # named as the client wrote it: input[3], not messages[5]
    if form.web_search:
        ground_with_search(gemini_request)
    fields = request[LOG_FIELDS]
    fields["model"] = info.id
    fields["stream"] = "true" if req.stream else "false"
    if form.notes:
        fields["responses"] = repr("; ".join(form.notes))
    echo = {name: raw[name] for name in _ECHOED if name in raw}
    echo["model"] = req.model
    include_encrypted = ENCRYPTED_REASONING in (req.include or ())
    response_id = random_id("resp_")
    created = int(time.time())
    conversation = conversation_digest(chat.messages)
    store = req.store is not False
    gateway = runtime.gateway
    if not req.stream:
        translated = await generated_turn(
            runtime,
            fields,
            info,
            gemini_request,
            names,
            model=req.model,
            reply_id=response_id,
            created=created,
            conversation=conversation,
            reasoning_output="reasoning_content",
        )
        response = to_response(
            translated.completion,
            response_id=response_id,
            created_at=created,
            echo=echo,
            signatures=translated.signatures,
            include_encrypted=include_encrypted,
            tools=form.tools,
        )
        if store:
            await runtime.responses.put(StoredResponse(response, _input_items(raw), history))
        return json_response(response)
    first, events, cred = await gateway.open_stream(info.id, gemini_request)
    fields["credential"] = repr(cred.label)
    translator = StreamTranslator(
        model=req.model,
        completion_id=response_id,
        created=created,
        include_usage=True,
        names=names,
        reasoning_output="reasoning_content",
        conversation=conversation,
    )
    stream = ResponsesStream(
        response_id=response_id,
        created_at=created,
        model=req.model,
        echo=echo,
        include_encrypted=include_encrypted,
        tools=form.tools,
    )
    request[RESPONSES_STREAM] = stream
    input_items = _input_items(raw) if store else []
    del req, raw, chat, form, gemini_request  # an open stream holds only what it relays
    try:
        sent, finished = await _relay(request, stream, translator, first, events)
    finally:
        close_turn(runtime, cred, info.id, translator.usage(), translator.signatures)
        if translator.notes:
            fields["gemini"] = repr("; ".join(translator.notes))
    if finished and store:
        await runtime.responses.put(StoredResponse(stream.response(), input_items, history))
    return sent


async def _relay(
    request: web.Request,
    stream: ResponsesStream,
    translator: StreamTranslator,
    first: list[Any],
    events: GoogleStream,
) -> tuple[web.StreamResponse, bool]:
    """Send the stream; True once its last event is sent. A failure from here is a ProxyError the
    error middleware turns into this stream's `response.failed` event (doors.py)."""
    response = await begin_stream(request, SSE_HEADERS)
    try:
        # One write per upstream read, as the chat stream: back-pressure slows Google's read.
        await response.write(stream.start() + _feed(stream, translator, first))
        async for batch in events:
            payload = _feed(stream, translator, batch)
            if payload:
                await response.write(payload)
        tail = stream.feed(translator.finish())
        await response.write(tail + stream.finish(translator.usage(), translator.signatures))
        return response, True
    except ConnectionError:
        request[LOG_FIELDS]["client"] = "disconnected"
        return response, False
    finally:
        await events.aclose()  # releases the upstream connection, also when the client went away


def _feed(stream: ResponsesStream, translator: StreamTranslator, batch: list[Any]) -> bytes:
    return b"".join(stream.feed(translator.feed(event)) for event in batch)


async def get_response(request: web.Request) -> web.Response:
    stored = await _stored(runtime_of(request), request.match_info["response_id"])
    return json_response(stored.response)


async def input_items(request: web.Request) -> web.Response:
    stored = await _stored(runtime_of(request), request.match_info["response_id"])
    items = stored.input_items
    return json_response(
        {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
            "has_more": False,
        }
    )


async def delete_response(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    if not await runtime_of(request).responses.delete(response_id):
        raise _not_found(response_id)
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


async def _stored(runtime: Runtime, response_id: str) -> StoredResponse:
    stored = await runtime.responses.get(response_id)
    if stored is None:
        raise _not_found(response_id)
    return stored


def register(app: web.Application) -> None:
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/responses", create_response)
        app.router.add_get(prefix + "/responses/{response_id}", get_response)
        app.router.add_delete(prefix + "/responses/{response_id}", delete_response)
        app.router.add_get(prefix + "/responses/{response_id}/input_items", input_items)
