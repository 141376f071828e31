"""Google AI Studio (generativelanguage.googleapis.com) with API keys."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from ..pool.credentials import ApiKeyCredential
from .http import encode, request_json, sse_events
from .replies import gemini_reply


class AiStudioClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = f"{base_url.rstrip('/')}/v1beta/models/"

    @staticmethod
    def _headers(cred: ApiKeyCredential) -> dict[str, str]:
        # The key goes in a header, never in `?key=`, which ends up in access logs.
        return {"Content-Type": "application/json", "x-goog-api-key": cred.key}

    async def generate(self, cred: ApiKeyCredential, model: str, request: dict[str, Any]) -> dict[str, Any]:
        url = f"{self._base}{model}:generateContent"
        reply: dict[str, Any] = await request_json(
            self._session,
            "POST",
            url,
            headers=self._headers(cred),
            body=encode(request),
            secrets=cred.secrets(),
            parse=gemini_reply,
        )
        return reply

    def stream(
        self,
        cred: ApiKeyCredential,
        model: str,
        request: dict[str, Any],
        *,
        answer_within: float | None = None,
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        url = f"{self._base}{model}:streamGenerateContent?alt=sse"
        return sse_events(
            self._session,
            url,
            headers=self._headers(cred),
            body=encode(request),
            secrets=cred.secrets(),
            parse=gemini_reply,
            answer_within=answer_within,
        )
