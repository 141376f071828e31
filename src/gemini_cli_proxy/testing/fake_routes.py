"""HTTP side of the fake Google: routes, authentication answers and the SSE / JSON-array stream writers."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from gemini_cli_proxy.testing.fake_embeddings import (
    AISTUDIO_EMBED_ACTIONS,
    VERTEX_EMBED_ACTIONS,
    EmbeddingApi,
    Refusal,
    embedding_body,
    is_embedding_model,
    parse_embedding_request,
    unsupported_method_message,
)
from gemini_cli_proxy.testing.fake_errors import (
    INVALID_JSON,
    NOT_FOUND_PAGE,
    UNAUTHENTICATED,
    UNREGISTERED_CALLER,
    error_body,
    key_invalid_body,
    model_not_found_body,
    project_denied_body,
)
from gemini_cli_proxy.testing.fake_replies import (
    JSON_CONTENT_TYPE,
    ApiName,
    BodyPlan,
    PlainPlan,
    Plan,
    Reply,
    ServeContext,
    StreamPlan,
    WirePlan,
    encode_pretty,
    prompt_token_count,
    render,
    unwrap_delays,
)
from gemini_cli_proxy.testing.fake_state import GENERATE_ACTIONS, FakeGoogle, Received
from gemini_cli_proxy.testing.fake_validation import validate_envelope, validate_generate_request
from gemini_cli_proxy.testing.fake_vertex import JWT_BEARER_GRANT, vertex_model_not_found_body

FAKE_KEY: web.AppKey[FakeGoogle] = web.AppKey("fake_google", FakeGoogle)

_SSE_HEADERS: Mapping[str, str] = MappingProxyType({"Content-Type": "text/event-stream"})
_JSON_HEADERS: Mapping[str, str] = MappingProxyType({"Content-Type": JSON_CONTENT_TYPE})
_AISTUDIO_ACTIONS = GENERATE_ACTIONS | {"countTokens"} | AISTUDIO_EMBED_ACTIONS
_VERTEX_ACTIONS = GENERATE_ACTIONS | {"countTokens"} | VERTEX_EMBED_ACTIONS
# Scripted replies an embedding call serves as they are; any other (a text reply...) gets the default
# embeddings, since a GenerateContentResponse is no answer to an embedding call.
_SCRIPTED_FAILURES = frozenset({"error", "rate_limited", "permission_denied", "raw", "wire"})


def create_fake_app(fake: FakeGoogle) -> web.Application:
    """One aiohttp app serving AI Studio, Code Assist, Vertex AI and the OAuth token endpoint for `fake`."""
    # Image and video inputs arrive inline as base64, so allow bodies as large as Google does (20 MB+).
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[FAKE_KEY] = fake
    router = app.router
    router.add_post("/v1beta/models/{tail}", _aistudio)
    router.add_post("/v1/projects/{project}/locations/{location}/publishers/google/models/{tail}", _vertex)
    router.add_post("/v1/publishers/google/models/{tail}", _vertex)  # express mode: an API key, no project
    router.add_post("/v1internal:generateContent", _codeassist_generate)
    router.add_post("/v1internal:streamGenerateContent", _codeassist_generate)
    router.add_post("/v1internal:countTokens", _codeassist_count_tokens)
    router.add_post("/v1internal:loadCodeAssist", _load_code_assist)
    router.add_post("/v1internal:onboardUser", _onboard_user)
    router.add_get("/v1internal/{name:operations/.+}", _operation)
    router.add_post("/token", _token)
    router.add_route("*", "/{tail:.*}", _unknown)
    return app


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=encode_pretty(body), headers=_JSON_HEADERS)


def _google_error(status: int, message: str, google_status: str, details: Any = None) -> web.Response:
    return _json(status, error_body(status, message, google_status, details))


def _parse_json(raw: bytes) -> tuple[bool, Any]:
    try:
        return True, orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False, None


def _received(
    request: web.Request,
    raw: bytes,
    body: Any,
    api: ApiName,
    action: str,
    *,
    model: str | None = None,
    stream: bool = False,
) -> Received:
    return Received(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        api=api,
        model=model,
        stream=stream,
        action=action,
        raw_body=raw,
    )


def _unauthenticated() -> web.Response:
    response = _google_error(401, UNAUTHENTICATED, "UNAUTHENTICATED")
    response.headers["WWW-Authenticate"] = (
        'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    )
    return response


async def _aistudio(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE_KEY]
    model, _, action = request.match_info["tail"].rpartition(":")
    stream = action == "streamGenerateContent"
    raw = await request.read()
    ok, body = _parse_json(raw)
    fake.record(_received(request, raw, body, "aistudio", action, model=model or None, stream=stream))
    if action not in _AISTUDIO_ACTIONS or not model:
        return _google_error(404, "Method not found.", "NOT_FOUND")
    problem = fake.key_problem(request.headers.get("x-goog-api-key") or request.query.get("key"))
    if problem == "missing":
        return _google_error(403, UNREGISTERED_CALLER, "PERMISSION_DENIED")
    if problem == "invalid":
        return _json(400, key_invalid_body())
    if action in AISTUDIO_EMBED_ACTIONS:
        return await _aistudio_embed(request, fake, model, action, body, ok=ok)
    if not fake.model_known(model) or (action in GENERATE_ACTIONS and is_embedding_model(model)):
        # Google's own answer for generating with an embedding model: "not supported for generateContent".
        return _json(404, model_not_found_body(model, action))
    if not ok:
        return _google_error(400, INVALID_JSON, "INVALID_ARGUMENT")
    if action == "countTokens":
        # AI Studio takes the whole request under generateContentRequest (or bare contents).
        inner = body.get("generateContentRequest", body) if isinstance(body, dict) else body
        if isinstance(inner, dict):
            inner = {k: v for k, v in inner.items() if k != "model"}
        return _count_tokens(inner, model)
    problem_text = validate_generate_request(body, model=model)
    if problem_text is not None:
        return _google_error(400, problem_text, "INVALID_ARGUMENT")
    ctx = ServeContext("aistudio", model, body, stream, fake.default_stream_chunks, fake.stream_delay)
    return await _answer(request, fake, ctx)


async def _vertex(request: web.Request) -> web.StreamResponse:
    """Vertex AI: a service account's bearer token for a project route, an API key for express mode."""
    fake = request.app[FAKE_KEY]
    model, _, action = request.match_info["tail"].rpartition(":")
    stream = action == "streamGenerateContent"
    raw = await request.read()
    ok, body = _parse_json(raw)
    fake.record(_received(request, raw, body, "vertex", action, model=model or None, stream=stream))
    if action not in _VERTEX_ACTIONS or not model:
        return _google_error(404, "Method not found.", "NOT_FOUND")
    project = request.match_info.get("project")
    name = request.path.removeprefix("/v1/").rpartition(":")[0]
    if project is None:
        problem = fake.key_problem(request.headers.get("x-goog-api-key") or request.query.get("key"))
        if problem == "missing":
            return _unauthenticated()
        if problem == "invalid":
            return _json(400, key_invalid_body())
    else:
        refused = fake.vertex.check_token(request.headers.get("Authorization"), project, name)
        if refused is not None:
            return _unauthenticated() if refused[0] == 401 else _json(*refused)
    if not _vertex_model_known(fake, model):
        return _json(404, vertex_model_not_found_body(name))
    if not ok:
        return _google_error(400, INVALID_JSON, "INVALID_ARGUMENT")
    if action in VERTEX_EMBED_ACTIONS:
        return await _embed(request, fake, "vertex", action, model, body)
    if action in GENERATE_ACTIONS and is_embedding_model(model):
        return _google_error(400, unsupported_method_message(name, action), "INVALID_ARGUMENT")
    if action == "countTokens":
        return _count_tokens(body, model)  # Vertex takes the request's fields at the top level
    problem_text = validate_generate_request(body, model=model)
    if problem_text is not None:
        return _google_error(400, problem_text, "INVALID_ARGUMENT")
    ctx = ServeContext("vertex", model, body, stream, fake.default_stream_chunks, fake.stream_delay)
    return await _answer(request, fake, ctx)


def _vertex_model_known(fake: FakeGoogle, model: str) -> bool:
    """Vertex serves its text-embedding models too, though they lack the fake's "gemini-" prefix."""
    return fake.model_known(model) or (is_embedding_model(model) and model not in fake.missing_models)


async def _aistudio_embed(
    request: web.Request, fake: FakeGoogle, model: str, action: str, body: Any, *, ok: bool
) -> web.StreamResponse:
    """AI Studio's embedding methods: any model but an embedding one is Google's "not supported" 404."""
    if not is_embedding_model(model) or model in fake.missing_models:
        return _json(404, model_not_found_body(model, action))
    if not ok:
        return _google_error(400, INVALID_JSON, "INVALID_ARGUMENT")
    return await _embed(request, fake, "aistudio", action, model, body)


async def _embed(
    request: web.Request, fake: FakeGoogle, api: EmbeddingApi, action: str, model: str, body: Any
) -> web.StreamResponse:
    """An embedding call past auth and model checks: Google's 400 for a bad body, else the scripted
    failure (or exact `Reply.response` body) queued for the model, else the default vectors."""
    inputs = parse_embedding_request(api, action, body, model)
    if isinstance(inputs, Refusal):
        return _google_error(400, inputs.message, inputs.google_status)
    reply = await _next_reply(fake, model)
    if reply is not None and reply.kind == "response":
        return _json(200, reply.body)
    if reply is None or reply.kind not in _SCRIPTED_FAILURES:
        return _json(200, embedding_body(api, action, model, inputs))
    ctx = ServeContext(api, model, body, False, fake.default_stream_chunks, fake.stream_delay)
    return await _write_plan(request, render(reply, ctx), ctx)


def _count_tokens(request: Any, model: str) -> web.Response:
    """countTokens: `{"totalTokens": N}` for a request Google would take, counted as the fake counts."""
    problem_text = validate_generate_request(request, model=model)
    if problem_text is not None:
        return _google_error(400, problem_text, "INVALID_ARGUMENT")
    return _json(200, {"totalTokens": prompt_token_count(request)})


async def _codeassist_count_tokens(request: web.Request) -> web.StreamResponse:
    """Code Assist's countTokens: `{"request": {"model": "models/X", "contents": [...]}}`."""
    fake = request.app[FAKE_KEY]
    raw = await request.read()
    ok, body = _parse_json(raw)
    inner = body.get("request") if isinstance(body, dict) else None
    raw_model = inner.get("model") if isinstance(inner, dict) else None
    model = raw_model.removeprefix("models/") if isinstance(raw_model, str) else None
    fake.record(_received(request, raw, body, "codeassist", "countTokens", model=model))
    if fake.authenticate(request.headers.get("Authorization")) is None:
        return _unauthenticated()
    if not ok or not isinstance(inner, dict) or model is None:
        return _google_error(400, INVALID_JSON, "INVALID_ARGUMENT")
    if not fake.model_known(model):
        return _google_error(404, "Requested entity was not found.", "NOT_FOUND")
    return _count_tokens({"contents": inner.get("contents", [])}, model)


async def _codeassist_generate(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE_KEY]
    stream = request.path.endswith(":streamGenerateContent")
    action = "streamGenerateContent" if stream else "generateContent"
    raw = await request.read()
    ok, body = _parse_json(raw)
    raw_model = body.get("model") if isinstance(body, dict) else None
    model = raw_model if isinstance(raw_model, str) else None
    fake.record(_received(request, raw, body, "codeassist", action, model=model, stream=stream))
    refresh_token = fake.authenticate(request.headers.get("Authorization"))
    if refresh_token is None:
        return _unauthenticated()
    if not ok:
        return _google_error(400, INVALID_JSON, "INVALID_ARGUMENT")
    message = validate_envelope(body)
    if message is not None:
        return _google_error(400, message, "INVALID_ARGUMENT")
    known_project = fake.project_of(refresh_token)
    project = body.get("project")
    if known_project is not None and project != known_project:
        return _json(403, project_denied_body(project if isinstance(project, str) else ""))
    model = str(body["model"])  # validate_envelope made sure it is a non-empty string
    if not fake.model_known(model):
        return _google_error(404, "Requested entity was not found.", "NOT_FOUND")
    message = validate_generate_request(body["request"], code_assist=True, model=model)
    if message is not None:
        return _google_error(400, message, "INVALID_ARGUMENT")
    ctx = ServeContext(
        "codeassist", model, body["request"], stream, fake.default_stream_chunks, fake.stream_delay
    )
    return await _answer(request, fake, ctx)


async def _answer(request: web.Request, fake: FakeGoogle, ctx: ServeContext) -> web.StreamResponse:
    """Serve the next scripted reply for this call (or the default echo)."""
    reply = await _next_reply(fake, ctx.model)
    return await _write_plan(request, render(reply, ctx), ctx)


async def _next_reply(fake: FakeGoogle, model: str) -> Reply | None:
    """Take the reply scripted for this call (None: the default) after sleeping its `Reply.delay`s and
    the fake's first-byte delay, as Google would take that long before its first byte."""
    seconds, reply = unwrap_delays(fake.take_reply(model))
    seconds += fake.first_byte_delay
    if seconds > 0:
        await asyncio.sleep(seconds)
    return reply


async def _write_plan(request: web.Request, plan: Plan, ctx: ServeContext) -> web.StreamResponse:
    """Write a rendered reply: bytes as planned, one JSON body, or a stream."""
    if isinstance(plan, WirePlan):
        return await _write_wire(request, plan)
    if isinstance(plan, PlainPlan):
        return web.Response(status=plan.status, body=plan.body, headers={"Content-Type": plan.content_type})
    trace_id = secrets.token_hex(8) if ctx.api == "codeassist" else None
    if isinstance(plan, BodyPlan):
        return _json(200, _envelope(plan.body, trace_id))
    return await _write_stream(request, plan, trace_id, sse=request.query.get("alt") == "sse")


def _envelope(body: Mapping[str, Any], trace_id: str | None) -> Mapping[str, Any]:
    """Code Assist wraps each GenerateContentResponse as `{"response": ..., "traceId": ...}`."""
    return body if trace_id is None else {"response": body, "traceId": trace_id}


async def _write_stream(
    request: web.Request, plan: StreamPlan, trace_id: str | None, *, sse: bool
) -> web.StreamResponse:
    """SSE (`data: {json}\\r\\n\\r\\n` per event) or Google's JSON array (`[{..}\\n,\\r\\n{..}\\n]`)."""
    response = web.StreamResponse(headers=_SSE_HEADERS if sse else _JSON_HEADERS)
    await response.prepare(request)
    events, delay, cut_at = plan.events, plan.delay, plan.break_after
    try:
        for i, event in enumerate(events):
            if cut_at is not None and i >= cut_at:
                break
            if delay > 0 and (i or plan.delay_first):
                await asyncio.sleep(delay)
            payload = _envelope(event, trace_id)
            if sse:
                chunk = b"data: " + orjson.dumps(payload) + b"\r\n\r\n"
            else:
                chunk = (b"\n,\r\n" if i else b"[") + encode_pretty(payload)
            await response.write(chunk)
        if cut_at is not None:
            # Abrupt end: close the socket without the terminating zero-length chunk (or the closing "]"),
            # which is what a dropped upstream connection looks like to the proxy.
            if request.transport is not None:
                request.transport.close()
            return response
        if not sse:
            await response.write(b"\n]")
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away mid-stream; nothing left to tell it
    return response


async def _write_wire(request: web.Request, plan: WirePlan) -> web.StreamResponse:
    """Exactly the planned bytes, piece by piece (a misbehaving Google: see fake_misbehaving)."""
    response = web.StreamResponse(status=plan.status, headers=plan.headers)
    await response.prepare(request)
    try:
        for _ in range(plan.repeat):
            for piece in plan.pieces:
                if plan.interval > 0:
                    await asyncio.sleep(plan.interval)
                await response.write(piece)
        await response.write_eof()
    except ConnectionError:
        pass  # the proxy gave up on us, which is what these replies are for
    return response


async def _code_assist_call(request: web.Request, action: str) -> tuple[FakeGoogle, str | None, Any, bool]:
    """Shared start of the non-generate Code Assist RPCs: record, then authenticate."""
    fake = request.app[FAKE_KEY]
    raw = await request.read()
    ok, body = _parse_json(raw) if raw else (True, None)
    fake.record(_received(request, raw, body, "codeassist", action))
    return fake, fake.authenticate(request.headers.get("Authorization")), body, ok


async def _load_code_assist(request: web.Request) -> web.Response:
    fake, refresh_token, body, ok = await _code_assist_call(request, "loadCodeAssist")
    if refresh_token is None:
        return _unauthenticated()
    if not ok or not isinstance(body, dict):
        return _google_error(400, INVALID_JSON, "INVALID_ARGUMENT")
    return _json(200, fake.load_code_assist(refresh_token))


async def _onboard_user(request: web.Request) -> web.Response:
    fake, refresh_token, body, ok = await _code_assist_call(request, "onboardUser")
    if refresh_token is None:
        return _unauthenticated()
    if not ok or not isinstance(body, dict):
        return _google_error(400, INVALID_JSON, "INVALID_ARGUMENT")
    status, payload = fake.onboard(refresh_token, body)
    return _json(status, payload)


async def _operation(request: web.Request) -> web.Response:
    fake, refresh_token, _, _ = await _code_assist_call(request, "getOperation")
    if refresh_token is None:
        return _unauthenticated()
    operation = fake.poll_operation(request.match_info["name"])
    if operation is None:
        return _google_error(404, "Requested entity was not found.", "NOT_FOUND")
    return _json(200, operation)


async def _token(request: web.Request) -> web.Response:
    fake = request.app[FAKE_KEY]
    raw = await request.read()
    fields: dict[str, str] = {}
    if request.content_type == "application/json":
        ok, parsed = _parse_json(raw)
        if ok and isinstance(parsed, dict):
            fields = {str(k): str(v) for k, v in parsed.items()}
    else:
        fields = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    fake.record(_received(request, raw, fields, "oauth", "token"))
    if fields.get("grant_type") == JWT_BEARER_GRANT:
        # The assertion's `aud` must name this endpoint exactly as the caller addressed it.
        audience = str(request.url.with_query(None))
        status, payload = fake.exchange_jwt(fields, audience)
    else:
        status, payload = fake.exchange_refresh_token(fields, request.headers.get("Authorization"))
    # Google's token endpoint answers compact JSON with a lower-case charset, unlike the API front end.
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json", charset="utf-8"
    )


async def _unknown(request: web.Request) -> web.Response:
    fake = request.app[FAKE_KEY]
    raw = await request.read()
    ok, body = _parse_json(raw) if raw else (False, None)
    fake.record(_received(request, raw, body if ok else None, "other", request.path))
    return web.Response(status=404, body=NOT_FOUND_PAGE, content_type="text/html", charset="UTF-8")
