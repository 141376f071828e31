"""API keys: Google AI Studio's (generativelanguage.googleapis.com) and Vertex AI's express-mode keys.

Both take the key in a header and answer plain GenerateContentResponses; only where the models live
differs: AI Studio's `{base}/v1beta/models/{model}:method`, Vertex express mode's
`https://aiplatform.googleapis.com/v1/publishers/google/models/{model}:method` (no project or
location: Google derives them from the key, and only the global host serves it).
"""

from __future__ import annotations

from typing import Protocol

import aiohttp

from ..wire.gemini import GenerateContentResponse
from ..wire.gemini_request import GenerateContentRequest
from .client import Events
from .http import encode, key_headers, request_json, sse_events
from .replies import gemini_reply


class KeyCredential(Protocol):
    @property
    def key(self) -> str: ...

    def secrets(self) -> tuple[str, ...]: ...


def aistudio_models_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/v1beta/models/"


class ApiKeyClient:
    """Calls with an API key; an UpstreamClient for AI Studio keys and for Vertex express keys.

    A key Google refuses stays refused: there is no token to renew."""

    def __init__(self, session: aiohttp.ClientSession, models_url: str) -> None:
        self._session = session
        self._models = models_url  # ends with "/": the model id and method follow

    async def access_token(self, cred: KeyCredential) -> None:
        """An API key has no token."""
        return None

    async def generate(
        self, cred: KeyCredential, model: str, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        reply: GenerateContentResponse = await request_json(
            self._session,
            "POST",
            f"{self._models}{model}:generateContent",
            headers=key_headers(cred.key),
            body=encode(request),
            secrets=cred.secrets(),
            parse=gemini_reply,
        )
        return reply

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
