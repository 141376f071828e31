"""Google Vertex AI with service-account keys (bearer tokens) or express-mode API keys.

Service account: `{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:method`
where base is `https://aiplatform.googleapis.com` for location `global`, else
`https://{location}-aiplatform.googleapis.com`. Express-mode keys have no project or location:
`https://aiplatform.googleapis.com/v1/publishers/google/models/{model}:method`. Replies are plain
GenerateContentResponses, as from AI Studio.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

from ..credentials import VertexServiceAccountCredential
from ..wire.gemini import GenerateContentResponse
from ..wire.gemini_embed import EmbedContentRequest, Embeddings
from ..wire.gemini_request import GenerateContentRequest
from .client import Events
from .embedding import embed_on_vertex
from .http import bearer_headers, encode, request_json, sse_events
from .replies import Parser, any_json, gemini_reply, total_tokens
from .service_account import ServiceAccountTokens
from .tokens import call_with_token, stream_with_token

GLOBAL_BASE_URL = "https://aiplatform.googleapis.com"


def vertex_base_url(location: str, configured: str | None = None) -> str:
    """The Vertex host for `location`, unless VERTEX_API_BASE_URL names one."""
    if configured:
        return configured.rstrip("/")
    if location == "global":
        return GLOBAL_BASE_URL
    return f"https://{location}-aiplatform.googleapis.com"


def vertex_express_models_url(configured: str | None = None) -> str:
    """Where Vertex express-mode keys find the models (see apikey.py): the global host only."""
    return f"{(configured or GLOBAL_BASE_URL).rstrip('/')}/v1/publishers/google/models/"


class VertexClient:
    """Vertex AI with service-account keys: an UpstreamClient whose calls carry minted tokens."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._configured = base_url.rstrip("/") if base_url else None
        self._tokens = ServiceAccountTokens(session, clock=clock)

    async def project(self, cred: VertexServiceAccountCredential) -> str:
        return cred.project_id

    async def access_token(self, cred: VertexServiceAccountCredential) -> str:
        """A valid access token for `cred` (minted if needed)."""
        return await self._tokens.access_token(cred)

    def url(self, cred: VertexServiceAccountCredential, model: str, method: str) -> str:
        base = vertex_base_url(cred.location, self._configured)
        where = f"projects/{cred.project_id}/locations/{cred.location}"
        return f"{base}/v1/{where}/publishers/google/models/{model}:{method}"

    async def _post(
        self, cred: VertexServiceAccountCredential, model: str, method: str, body: Any, parse: Parser
    ) -> Any:
        """One call of a model's method with the credential's token (a fresh one after a 401)."""
        url, payload = self.url(cred, model, method), encode(body)

        async def call(token: str) -> Any:
            return await request_json(
                self._session,
                "POST",
                url,
                headers=bearer_headers(token),
                body=payload,
                secrets=cred.secrets(),
                parse=parse,
            )

        return await call_with_token(self._tokens, cred, call)

    async def generate(
        self, cred: VertexServiceAccountCredential, model: str, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        reply: GenerateContentResponse = await self._post(
            cred, model, "generateContent", request, gemini_reply
        )
        return reply

    async def count_tokens(
        self, cred: VertexServiceAccountCredential, model: str, request: GenerateContentRequest
    ) -> int:
        # Vertex takes the request's fields at the top level.
        return total_tokens(await self._post(cred, model, "countTokens", request, any_json))

    async def embed(
        self, cred: VertexServiceAccountCredential, model: str, requests: Sequence[EmbedContentRequest]
    ) -> Embeddings:
        async def post(method: str, body: Mapping[str, Any], parse: Parser) -> Embeddings:
            embedded: Embeddings = await self._post(cred, model, method, body, parse)
            return embedded

        return await embed_on_vertex(model, requests, post)

    def stream(
        self,
        cred: VertexServiceAccountCredential,
        model: str,
        request: GenerateContentRequest,
        *,
        answer_within: float | None = None,
    ) -> Events:
        url = self.url(cred, model, "streamGenerateContent") + "?alt=sse"
        body = encode(request)

        def open_stream(token: str) -> Events:
            return sse_events(
                self._session,
                url,
                headers=bearer_headers(token),
                body=body,
                secrets=cred.secrets(),
                parse=gemini_reply,
                answer_within=answer_within,
            )

        return stream_with_token(self._tokens, cred, open_stream)
