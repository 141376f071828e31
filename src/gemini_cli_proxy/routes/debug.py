"""Debug endpoints (proxy key required, like every route but /health). Nothing secret is shown:
credentials appear by id and redacted label only."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from .. import errors
from ..credentials import Credential, OAuthCredential, VertexServiceAccountCredential
from ..frontdoor import json_response
from ..pool.dispatch import ProbeFailure
from ..runtime import runtime_of
from ..wire.gemini_request import GenerateContentRequest
from .pool_view import credential_rows, describe, iso
from .turn import model_info

TEST_MODEL = "gemini-2.5-flash"
TEST_REQUEST: GenerateContentRequest = {
    "contents": [{"role": "user", "parts": [{"text": "Reply with the word OK."}]}],
    "generationConfig": {"maxOutputTokens": 16, "thinkingConfig": {"thinkingBudget": 0}},
}


TokenCredential = OAuthCredential | VertexServiceAccountCredential


async def cache(request: web.Request) -> web.Response:
    """Token and project cache of every token-based credential (gemini-cli OAuth, Vertex)."""
    now = time.time()
    entries = []
    for cred in runtime_of(request).credentials:
        if not isinstance(cred, TokenCredential):
            continue
        remaining = cred.expires_at - now if cred.expires_at else None
        entries.append(
            {
                **describe(cred),
                "cached": bool(cred.access_token),
                "cached_at": iso(cred.refreshed_at) if isinstance(cred, OAuthCredential) else None,
                "expires_at": iso(cred.expires_at),
                "time_until_expiry_seconds": round(remaining) if remaining is not None else None,
                "is_expired": remaining is None or remaining <= 0,
                "project_id": cred.project_id,
            }
        )
    return json_response({"object": "list", "data": entries, "timestamp": iso(now)})


async def token_test(request: web.Request) -> web.Response:
    """Each token-based credential's token: valid, or refreshed now, or why not."""
    runtime = runtime_of(request)
    gateway = runtime.gateway

    async def check(cred: Credential) -> dict[str, Any]:
        before = cred.access_token if isinstance(cred, TokenCredential) else ""
        token = await gateway.probe_token(cred)
        if isinstance(token, ProbeFailure):
            return {**describe(cred), "ok": False, "error": token.message}
        if token is None:
            return {**describe(cred), "ok": True, "token": "not applicable (API key)"}
        expires = cred.expires_at if isinstance(cred, TokenCredential) else 0.0
        return {
            **describe(cred),
            "ok": True,
            "refreshed": token != before,
            "expires_in_seconds": round(expires - time.time()) if expires else None,
        }

    results = await asyncio.gather(*(check(cred) for cred in runtime.credentials))
    return json_response({"object": "list", "data": results})


async def full_test(request: web.Request) -> web.Response:
    """A real, minimal generate through every credential, with latency and outcome."""
    runtime = runtime_of(request)
    gateway = runtime.gateway
    model = model_info(runtime, request.query.get("model", TEST_MODEL)).id

    async def probe(cred: Credential) -> dict[str, Any]:
        started = time.perf_counter()
        failure = await gateway.probe(cred, model, TEST_REQUEST)
        outcome: dict[str, Any] = (
            {"ok": True}
            if failure is None
            else {"ok": False, "status": failure.status, "error": failure.message}
        )
        return {**describe(cred), **outcome, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}

    results = await asyncio.gather(*(probe(cred) for cred in runtime.credentials))
    return json_response({"object": "list", "model": model, "data": results})


async def credentials(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    await runtime.usage.flush()  # show what has happened, not what was last batched
    return json_response({"object": "list", "data": await credential_rows(runtime)})


async def enable(request: web.Request) -> web.Response:
    """Re-enable a disabled credential without a restart."""
    runtime = runtime_of(request)
    wanted = request.match_info["credential_id"]
    cred = next((c for c in runtime.credentials if c.id == wanted), None)
    if cred is None:
        raise errors.ProxyError(
            404, f"No credential with id '{errors.shown(wanted)}'.", param="credential_id", code="not_found"
        )
    await runtime.scheduler.enable(cred)
    return json_response({**describe(cred), "state": "enabled"})


def register(app: web.Application) -> None:
    # Like every other route, each answers with and without the /v1 prefix.
    for prefix in ("/v1", ""):
        app.router.add_get(f"{prefix}/debug/cache", cache)
        app.router.add_get(f"{prefix}/debug/credentials", credentials)
        app.router.add_post(f"{prefix}/debug/credentials/{{credential_id}}/enable", enable)
        for method in ("GET", "POST"):
            app.router.add_route(method, f"{prefix}/token-test", token_test)
            app.router.add_route(method, f"{prefix}/test", full_test)
