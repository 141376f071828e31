"""Google AI Studio (generativelanguage.googleapis.com) with API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..pool.credentials import ApiKeyCredential
from .http import request_json, sse_events


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
        body = orjson.dumps(request)
        reply: dict[str, Any] = await request_json(
            self._session, "POST", url, headers=self._headers(cred), body=body, secrets=cred.secrets()
        )
        return reply

    def stream(
        self, cred: ApiKeyCredential, model: str, request: dict[str, Any]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        url = f"{self._base}{model}:streamGenerateContent?alt=sse"
        return sse_events(
            self._session,
            url,
            headers=self._headers(cred),
            body=orjson.dumps(request),
            secrets=cred.secrets(),
        )
