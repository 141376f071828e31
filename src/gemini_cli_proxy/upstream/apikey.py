"""API keys: Google AI Studio's (generativelanguage.googleapis.com) and Vertex AI's express-mode keys.

Both take the key in a header and answer plain GenerateContentResponses; only where the models live
differs: AI Studio's `{base}/v1beta/models/{model}:method`, Vertex express mode's
`https://aiplatform.googleapis.com/v1/publishers/google/models/{model}:method` (no project or
location: Google derives them from the key, and only the global host serves it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import aiohttp

from ..credentials import ApiKeyCredential
from ..wire.gemini import GenerateContentResponse
from ..wire.gemini_embed import EmbedContentRequest, Embeddings
from ..wire.gemini_request import GenerateContentRequest
from .client import Events
from .embedding import aistudio_body, aistudio_reply, embed_on_vertex
from .http import encode, key_headers, request_json, sse_events
from .replies import Parser, any_json, gemini_reply, total_tokens


class KeyCredential(Protocol):
    @property
    def key(self) -> str: ...

    def secrets(self) -> tuple[str, ...]: ...


def aistudio_models_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/v1beta/models/"


class ApiKeyClient:
    """Calls with an API key; an UpstreamClient for AI Studio keys and for Vertex express keys.

    A key Google refuses stays refused: there is no token to renew."""

    def __init__(self, session: aiohttp.ClientSession, models_url: str, *, vertex: bool = False) -> None:
        self._session = session
        self._models = models_url  # ends with "/": the model id and method follow
        self._vertex = vertex  # Vertex's countTokens takes the request's fields at the top level

    def _count_body(self, model: str, request: GenerateContentRequest) -> Mapping[str, Any]:
        if self._vertex:
            return request
        # AI Studio counts a whole GenerateContentRequest given under this name, model included.
        return {"generateContentRequest": {"model": f"models/{model}", **request}}

    async def project(self, cred: KeyCredential) -> str | None:
        """The project an AI Studio key was declared with (KEY@PROJECT) or learned from Google."""
        return cred.project if isinstance(cred, ApiKeyCredential) else None

    async def access_token(self, cred: KeyCredential) -> None:
        """An API key has no token."""
        return None

    async def _post(self, cred: KeyCredential, model: str, method: str, body: Any, parse: Parser) -> Any:
        """One call of a model's method, with the key; `parse`d and checked by the caller's parser."""
        return await request_json(
            self._session,
            "POST",
            f"{self._models}{model}:{method}",
            headers=key_headers(cred.key),
            body=encode(body),
            secrets=cred.secrets(),
            parse=parse,
        )

    async def generate(
        self, cred: KeyCredential, model: str, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        reply: GenerateContentResponse = await self._post(
            cred, model, "generateContent", request, gemini_reply
        )
        return reply

    async def count_tokens(self, cred: KeyCredential, model: str, request: GenerateContentRequest) -> int:
        return total_tokens(
            await self._post(cred, model, "countTokens", self._count_body(model, request), any_json)
        )

    async def embed(
        self, cred: KeyCredential, model: str, requests: Sequence[EmbedContentRequest]
    ) -> Embeddings:
        async def post(method: str, body: Mapping[str, Any], parse: Parser) -> Embeddings:
            embedded: Embeddings = await self._post(cred, model, method, body, parse)
            return embedded

        if self._vertex:
            return await embed_on_vertex(model, requests, post)
        return await post("batchEmbedContents", aistudio_body(model, requests), aistudio_reply(len(requests)))

    def stream(
        self,
        cred: KeyCredential,
        model: str,
        request: GenerateContentRequest,
        *,
        answer_within: float | None = None,
    ) -> Events:
        return sse_events(
            self._session,
            f"{self._models}{model}:streamGenerateContent?alt=sse",
            headers=key_headers(cred.key),
            body=encode(request),
            secrets=cred.secrets(),
            parse=gemini_reply,
            answer_within=answer_within,
        )
