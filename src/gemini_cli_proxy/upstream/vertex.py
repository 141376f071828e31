"""Google Vertex AI with service-account keys (bearer tokens) or express-mode API keys.

Service account: `{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:method`
where base is `https://aiplatform.googleapis.com` for location `global`, else
`https://{location}-aiplatform.googleapis.com`. Express-mode keys have no project or location:
`https://aiplatform.googleapis.com/v1/publishers/google/models/{model}:method`. Replies are plain
GenerateContentResponses, as from AI Studio.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

import aiohttp

from ..pool.credentials import VertexKeyCredential, VertexServiceAccountCredential
from .errors import UpstreamError, Verdict
from .http import encode, request_json, sse_events
from .replies import gemini_reply
from .service_account import ServiceAccountTokens

VertexCredential = VertexServiceAccountCredential | VertexKeyCredential

GLOBAL_BASE_URL = "https://aiplatform.googleapis.com"


def vertex_base_url(location: str, configured: str | None = None) -> str:
    """The Vertex host for `location`, unless VERTEX_API_BASE_URL names one."""
    if configured:
        return configured.rstrip("/")
    if location == "global":
        return GLOBAL_BASE_URL
    return f"https://{location}-aiplatform.googleapis.com"


class VertexClient:
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

    async def access_token(self, cred: VertexServiceAccountCredential) -> str:
        """A valid access token for `cred` (minted if needed), for the debug token test."""
        return await self._tokens.access_token(cred)

    def url(self, cred: VertexCredential, model: str, method: str) -> str:
        if isinstance(cred, VertexKeyCredential):
            # Express mode is served by the global host only.
            return f"{self._configured or GLOBAL_BASE_URL}/v1/publishers/google/models/{model}:{method}"
        base = vertex_base_url(cred.location, self._configured)
        where = f"projects/{cred.project_id}/locations/{cred.location}"
        return f"{base}/v1/{where}/publishers/google/models/{model}:{method}"

    async def _headers(
        self, cred: VertexCredential, *, force: bool = False, stale: str = ""
    ) -> dict[str, str]:
        if isinstance(cred, VertexKeyCredential):
            # The key goes in a header, never in `?key=`, which ends up in access logs.
            return {"Content-Type": "application/json", "x-goog-api-key": cred.key}
        token = await self._tokens.access_token(cred, force=force, stale=stale)
        return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    @staticmethod
    def _retry_unauthenticated(cred: VertexCredential, exc: UpstreamError, attempt: int) -> bool:
        """A 401 on a minted token gets one fresh token and one retry (Google may have revoked it
        early); an express key that Google refuses stays refused."""
        return (
            isinstance(cred, VertexServiceAccountCredential)
            and exc.verdict is Verdict.UNAUTHENTICATED
            and attempt == 1
        )

    async def generate(self, cred: VertexCredential, model: str, request: dict[str, Any]) -> dict[str, Any]:
        url = self.url(cred, model, "generateContent")
        body = encode(request)
        headers: dict[str, str] = {}
        for attempt in (1, 2):
            headers = await self._headers(cred, force=attempt == 2, stale=_bearer(headers))
            try:
                reply: dict[str, Any] = await request_json(
                    self._session,
                    "POST",
                    url,
                    headers=headers,
                    body=body,
                    secrets=cred.secrets(),
                    parse=gemini_reply,
                )
                return reply
            except UpstreamError as exc:
                if not self._retry_unauthenticated(cred, exc, attempt):
                    raise
        raise AssertionError("unreachable")

    async def stream(
        self,
        cred: VertexCredential,
        model: str,
        request: dict[str, Any],
        *,
        answer_within: float | None = None,
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        url = self.url(cred, model, "streamGenerateContent") + "?alt=sse"
        body = encode(request)
        headers: dict[str, str] = {}
        for attempt in (1, 2):
            headers = await self._headers(cred, force=attempt == 2, stale=_bearer(headers))
            events = sse_events(
                self._session,
                url,
                headers=headers,
                body=body,
                secrets=cred.secrets(),
                parse=gemini_reply,
                answer_within=answer_within,
            )
            # aclosing: a client that goes away mid-stream closes the upstream response too.
            async with aclosing(events):
                try:
                    first = await anext(events)
                except StopAsyncIteration:
                    return
                except UpstreamError as exc:
                    if not self._retry_unauthenticated(cred, exc, attempt):
                        raise
                    continue
                del request, body  # not needed again: an open stream holds only what it relays
                yield first
                async for event in events:
                    yield event
                return


def _bearer(headers: dict[str, str]) -> str:
    return headers.get("Authorization", "").removeprefix("Bearer ")
