"""GET / (what this service is) and GET /health (is it up)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from .. import __version__
from ..frontdoor import json_response
from ..runtime import runtime_of

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
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json_response({"status": "ok", "timestamp": now})


def register(app: web.Application) -> None:
    app.router.add_get("/", info)
    app.router.add_get("/health", health)
