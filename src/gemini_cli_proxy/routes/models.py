"""GET /v1/models and GET /v1/models/{id}, also without the /v1 prefix: OpenAI's list, or Google's for
a client of the Gemini door (google-genai looks here when given a base URL; see doors.py)."""

from __future__ import annotations

from aiohttp import web

from .. import errors
from ..doors import GEMINI
from ..frontdoor import FRONT_DOOR, json_response
from ..runtime import runtime_of
from . import gemini


async def list_models(request: web.Request) -> web.Response:
    if request[FRONT_DOOR] is GEMINI:
        return await gemini.list_models(request)
    listing = runtime_of(request).catalog.listing()
    return json_response(listing)


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    if request[FRONT_DOOR] is GEMINI:
        return gemini.google_model(runtime_of(request), model_id)
    info = runtime_of(request).catalog.get(model_id)
    if info is None:
        raise errors.model_not_found(model_id)
    return json_response(info.as_openai())


def register(app: web.Application) -> None:
    for prefix in ("/v1", ""):
        app.router.add_get(f"{prefix}/models", list_models)
        app.router.add_get(prefix + "/models/{model_id:.+}", get_model)
