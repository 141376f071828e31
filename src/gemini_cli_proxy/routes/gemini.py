"""Google's own Gemini API (`/v1beta/models/...`, also under `/v1/`): the front door gemini-cli and the
google-genai SDKs use.

It translates nothing: the body is checked to be a JSON object and goes to the pool as it came, so
every Gemini feature, thought signatures included, passes untouched; the pool's credential decides
where it goes (AI Studio, Code Assist's envelope, Vertex). Errors are Google's shape (doors.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson
from aiohttp import web

from .. import errors
from ..catalog import ModelInfo
from ..credentials import Credential
from ..doors import GEMINI_STREAM, GeminiStreamMode
from ..frontdoor import LOG_FIELDS, begin_stream, json_response
from ..pool.dispatch import Gateway
from ..runtime import Runtime, runtime_of
from ..wire.gemini_embed import checked_request
from ..wire.gemini_request import GenerateContentRequest
from .embedding import embedded
from .turn import SSE_HEADERS, check_content_type, model_info

_ARRAY_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-cache"}
_EMBED_METHODS = ("embedContent", "batchEmbedContents")
_GENERATE_METHODS = ("generateContent", "streamGenerateContent", "countTokens")


def _model_and_method(request: web.Request) -> tuple[str, str]:
    model, _, method = request.match_info["target"].rpartition(":")
    return model.removeprefix("models/"), method


async def _body(request: web.Request) -> GenerateContentRequest:
    check_content_type(request)
    try:
        body: Any = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise errors.invalid_request("Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise errors.invalid_request("Invalid JSON payload received. Expected an object.")
    # Forwarded as it came: Google checks what it takes, and answers in its own words.
    return cast(GenerateContentRequest, body)


async def model_action(request: web.Request) -> web.StreamResponse:
    """`POST /v1beta/models/{model}:{method}`: generateContent, streamGenerateContent, countTokens,
    embedContent, batchEmbedContents."""
    runtime = runtime_of(request)
    model, method = _model_and_method(request)
    info = model_info(runtime, model, embedding=method in _EMBED_METHODS)
    fields = request[LOG_FIELDS]
    fields["model"] = info.id
    body = await _body(request)
    if method in _EMBED_METHODS:
        return await _embed(request, info, method, body)
    gateway = runtime.gateway
    if method == "generateContent":
        reply, cred = await gateway.generate(info.id, body)
        fields["credential"] = repr(cred.label)
        _record(gateway, cred, info.id, reply.get("usageMetadata", {}))
        return json_response(reply)
    if method == "countTokens":
        # A countTokens body is a request's contents (or the request under generateContentRequest).
        inner = body.get("generateContentRequest", body)
        counted = await gateway.count_tokens(info.id, cast(GenerateContentRequest, inner))
        return json_response({"totalTokens": counted})
    if method != "streamGenerateContent":
        raise errors.ProxyError(404, f"Unknown method '{errors.shown(method)}'.", code="not_found")
    mode: GeminiStreamMode = "sse" if request.query.get("alt") == "sse" else "array"
    first, events, cred = await gateway.open_stream(info.id, body)
    fields["credential"] = repr(cred.label)
    fields["stream"] = mode
    request[GEMINI_STREAM] = mode
    del body
    response = await begin_stream(request, SSE_HEADERS if mode == "sse" else _ARRAY_HEADERS)
    usage: Mapping[str, Any] = {}
    try:
        written = 0
        batches = [first]
        while True:
            payload = b""
            for batch in batches:
                for event in batch:
                    usage = event.get("usageMetadata", usage)
                    payload += _frame(event, mode, written)
                    written += 1
            if payload:
                await response.write(payload)
            try:
                batches = [await anext(events)]
            except StopAsyncIteration:
                break
        if mode == "array":
            await response.write(b"]" if written else b"[]")
    except ConnectionError:
        fields["client"] = "disconnected"
    finally:
        await events.aclose()
        _record(gateway, cred, info.id, usage)
    return response


def _record(gateway: Gateway, cred: Credential, model: str, usage: Mapping[str, Any]) -> None:
    """Google's usageMetadata counted for the credential: its output includes the thoughts, as the
    other doors' completion tokens do."""
    thoughts = usage.get("thoughtsTokenCount", 0)
    gateway.record(
        cred,
        model,
        tokens_in=usage.get("promptTokenCount", 0),
        tokens_out=usage.get("candidatesTokenCount", 0) + thoughts,
        reasoning=thoughts,
    )


async def _embed(request: web.Request, info: ModelInfo, method: str, body: Mapping[str, Any]) -> web.Response:
    """embedContent (one content) or batchEmbedContents (`requests`, any number: the core splits
    them at Google's limit); Google's answer shapes, with its usageMetadata where it counted."""
    if method == "embedContent":
        requests = [checked_request(body, "")]
    else:
        listed = body.get("requests")
        if not isinstance(listed, list) or not listed:
            raise errors.invalid_request(
                "Invalid value at 'requests': expected a list of at least one request."
            )
        requests = [checked_request(item, f"requests[{index}].") for index, item in enumerate(listed)]
    answer = await embedded(
        runtime_of(request), request[LOG_FIELDS], info, requests, dimensions_param="outputDimensionality"
    )
    reply: dict[str, Any] = (
        {"embedding": {"values": answer.vectors[0]}}
        if method == "embedContent"
        else {"embeddings": [{"values": vector} for vector in answer.vectors]}
    )
    if answer.counted:
        reply["usageMetadata"] = {"promptTokenCount": answer.tokens, "totalTokenCount": answer.tokens}
    return json_response(reply)


def _frame(event: Any, mode: GeminiStreamMode, index: int) -> bytes:
    """One event as Google frames it: an SSE `data:` line, or an element of a JSON array."""
    data = orjson.dumps(event)
    if mode == "sse":
        return b"data: " + data + b"\r\n\r\n"
    return (b"[" if index == 0 else b",\r\n") + data


async def list_models(request: web.Request) -> web.Response:
    catalog = runtime_of(request).catalog
    listed = [(model["id"], catalog.get(model["id"])) for model in catalog.listing()["data"]]
    return json_response({"models": [_google_model(name, info) for name, info in listed if info is not None]})


async def get_model(request: web.Request) -> web.Response:
    return google_model(runtime_of(request), request.match_info["model"])


def google_model(runtime: Runtime, name: str) -> web.Response:
    """One model as Google describes it; `name` as the client wrote it (`models/` may lead)."""
    info = runtime.catalog.get(name.removeprefix("models/"))
    if info is None:
        raise errors.model_not_found(name)
    return json_response(_google_model(info.id, info))


def _google_model(name: str, info: ModelInfo) -> dict[str, Any]:
    """A Model as Google lists it; `name`: the model's id or an alias of it."""
    return {
        "name": f"models/{name}",
        "displayName": name,
        "supportedGenerationMethods": list(_EMBED_METHODS if info.embeds else _GENERATE_METHODS),
    }


def register(app: web.Application) -> None:
    for prefix in ("/v1beta", "/v1", ""):
        app.router.add_post(prefix + "/models/{target:[^/]+:[A-Za-z]+}", model_action)
    # /v1/models is OpenAI's listing; Google's own is under /v1beta only.
    app.router.add_get("/v1beta/models", list_models)
    app.router.add_get("/v1beta/models/{model:[^:/]+}", get_model)
