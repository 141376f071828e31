"""POST /v1/embeddings: OpenAI's embeddings over Gemini's embedding models, through the pool."""

from __future__ import annotations

from aiohttp import web

from ..frontdoor import LOG_FIELDS, json_response
from ..runtime import runtime_of
from ..translate.embeddings import to_embed_requests, to_openai_embeddings
from ..wire.embeddings import parse_embedding_request
from .embedding import embedded
from .turn import check_content_type, model_info


async def create_embeddings(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    check_content_type(request)
    req = parse_embedding_request(await request.read())
    info = model_info(runtime, req.model, embedding=True)
    requests = to_embed_requests(req)
    answer = await embedded(runtime, request[LOG_FIELDS], info, requests, dimensions_param="dimensions")
    return json_response(
        to_openai_embeddings(
            answer.vectors,
            model=req.model,
            prompt_tokens=answer.tokens,
            base64_encoded=req.encoding_format == "base64",
            # OpenAI's shortened vectors are unit length; Google's are cut, not scaled.
            normalise=req.dimensions is not None and req.dimensions < info.embedding_dimensions,
        )
    )


def register(app: web.Application) -> None:
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/embeddings", create_embeddings)
