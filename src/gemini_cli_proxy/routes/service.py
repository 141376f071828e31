"""GET / (what this service is) and GET /health (is it up)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from .. import __version__
from ..frontdoor import json_response
from ..runtime import RUNNING, runtime_of

DOCUMENTATION_URL = "https://github.com/gemini-cli-proxy/gemini-cli-proxy#readme"


def _service_info(request: web.Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    required = bool(runtime.settings.client_keys())
    return {
        "name": "gemini-cli-proxy",
        "description": "OpenAI-compatible Chat Completions API in front of Google Gemini",
        "version": __version__,
        "authentication": {"required": required, "type": "Bearer token" if required else "none"},
        "endpoints": {
            "chat_completions": "/v1/chat/completions",
            "responses": "/v1/responses",
            "messages": "/v1/messages",
            "embeddings": "/v1/embeddings",
            "gemini": "/v1beta/models",
            "models": "/v1/models",
            "debug": {"cache": "/v1/debug/cache", "token_test": "/v1/token-test", "full_test": "/v1/test"},
        },
        "documentation": DOCUMENTATION_URL,
    }


async def info(request: web.Request) -> web.Response:
    return json_response(_service_info(request))


async def health(request: web.Request) -> web.Response:
    """Up: 200 with status ok. `state_store` says whether the shared store answers: an instance whose
    store is unreachable still serves, from its own state (so a load balancer should keep it), but no
    longer shares cooldowns and the rotation with the others, which its operator should hear of."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    runtime = request.app[RUNNING].runtime
    body = {"status": "ok", "timestamp": now}
    if runtime is not None:
        body["state_store"] = "degraded" if runtime.store.degraded else "ok"
    return json_response(body)


def register(app: web.Application) -> None:
    app.router.add_get("/", info)
    app.router.add_get("/health", health)
