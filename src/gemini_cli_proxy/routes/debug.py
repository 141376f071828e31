"""Debug endpoints (proxy key required, like every route but /health). Nothing secret is shown:
credentials appear by id and redacted label only."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import orjson
from aiohttp import web

from .. import errors
from ..pool.credentials import Credential, OAuthCredential, VertexServiceAccountCredential
from ..runtime import Runtime, runtime_of
from ..upstream.errors import UpstreamError

TEST_MODEL = "gemini-2.5-flash"
TEST_REQUEST: dict[str, Any] = {
    "contents": [{"role": "user", "parts": [{"text": "Reply with the word OK."}]}],
    "generationConfig": {"maxOutputTokens": 16, "thinkingConfig": {"thinkingBudget": 0}},
}


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _iso(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _describe(cred: Credential) -> dict[str, Any]:
    return {"id": cred.id, "label": cred.label, "kind": cred.kind, "pool": cred.pool}


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
                **_describe(cred),
                "cached": bool(cred.access_token),
                "cached_at": _iso(cred.refreshed_at) if isinstance(cred, OAuthCredential) else None,
                "expires_at": _iso(cred.expires_at),
                "time_until_expiry_seconds": round(remaining) if remaining is not None else None,
                "is_expired": remaining is None or remaining <= 0,
                "project_id": cred.project_id,
            }
        )
    return _json({"object": "list", "data": entries, "timestamp": _iso(now)})


async def token_test(request: web.Request) -> web.Response:
    """Each token-based credential's token: valid, or refreshed now, or why not."""
    runtime = runtime_of(request)
    gateway = runtime.require_gateway()

    async def check(cred: Credential) -> dict[str, Any]:
        before = cred.access_token if isinstance(cred, TokenCredential) else ""
        try:
            token = await gateway.token_for(cred)
        except UpstreamError as failure:
            return {**_describe(cred), "ok": False, "error": failure.message}
        if token is None:
            return {**_describe(cred), "ok": True, "token": "not applicable (API key)"}
        expires = cred.expires_at if isinstance(cred, TokenCredential) else 0.0
        return {
            **_describe(cred),
            "ok": True,
            "refreshed": token != before,
            "expires_in_seconds": round(expires - time.time()) if expires else None,
        }

    results = await asyncio.gather(*(check(cred) for cred in runtime.credentials))
    return _json({"object": "list", "data": results})


async def full_test(request: web.Request) -> web.Response:
    """A real, minimal generate through every credential, with latency and outcome."""
    runtime = runtime_of(request)
    gateway = runtime.require_gateway()
    model = request.query.get("model", TEST_MODEL)
    if runtime.catalog.get(model) is None:
        raise errors.model_not_found(model)

    async def probe(cred: Credential) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            await gateway.generate_with(cred, model, TEST_REQUEST)
        except UpstreamError as failure:
            outcome: dict[str, Any] = {"ok": False, "status": failure.status, "error": failure.message}
        else:
            outcome = {"ok": True}
        return {**_describe(cred), **outcome, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}

    results = await asyncio.gather(*(probe(cred) for cred in runtime.credentials))
    return _json({"object": "list", "model": model, "data": results})


async def _credential_rows(runtime: Runtime) -> list[dict[str, Any]]:
    now = time.time()
    ids = [cred.id for cred in runtime.credentials]
    usage = await runtime.store.usage(ids)
    rows = []
    for cred in runtime.credentials:
        state = await runtime.store.pool_state([cred.id], "*", now)
        cooldowns = {}
        for model in usage.get(cred.id, {}):
            model_state = await runtime.store.pool_state([cred.id], model, now)
            if cred.id in model_state.cooldowns:
                cooldown = model_state.cooldowns[cred.id]
                cooldowns[model] = {
                    "remaining_seconds": round(cooldown.until - now, 1),
                    "reason": cooldown.reason,
                }
        disabled = state.disabled.get(cred.id)
        rows.append(
            {
                **_describe(cred),
                "state": "disabled" if disabled else ("cooling" if cooldowns else "ok"),
                "disabled_reason": disabled,
                "cooldowns": cooldowns,
                "usage": {
                    model: {
                        "requests": counts.requests,
                        "tokens_in": counts.tokens_in,
                        "tokens_out": counts.tokens_out,
                        "errors": counts.errors,
                        "last_error": counts.last_error,
                        "last_used": _iso(counts.last_used),
                    }
                    for model, counts in usage.get(cred.id, {}).items()
                },
            }
        )
    return rows


async def credentials(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    await runtime.usage.flush()  # show what has happened, not what was last batched
    return _json({"object": "list", "data": await _credential_rows(runtime)})


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
    return _json({**_describe(cred), "state": "enabled"})


def register(app: web.Application) -> None:
    # Like every other route, each answers with and without the /v1 prefix.
    for prefix in ("/v1", ""):
        app.router.add_get(f"{prefix}/debug/cache", cache)
        app.router.add_get(f"{prefix}/debug/credentials", credentials)
        app.router.add_post(f"{prefix}/debug/credentials/{{credential_id}}/enable", enable)
        for method in ("GET", "POST"):
            app.router.add_route(method, f"{prefix}/token-test", token_test)
            app.router.add_route(method, f"{prefix}/test", full_test)
