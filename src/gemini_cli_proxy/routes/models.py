"""GET /v1/models and GET /v1/models/{id}, also without the /v1 prefix."""

from __future__ import annotations

from aiohttp import web

from .. import errors
from ..frontdoor import json_response
from ..runtime import runtime_of


async def list_models(request: web.Request) -> web.Response:
    listing = runtime_of(request).catalog.listing()
    return json_response(listing)


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    info = runtime_of(request).catalog.get(model_id)
    if info is None:
        raise errors.model_not_found(model_id)
    return json_response(info.as_openai())


def register(app: web.Application) -> None:
    for prefix in ("/v1", ""):
        app.router.add_get(f"{prefix}/models", list_models)
        app.router.add_get(prefix + "/models/{model_id:.+}", get_model)
