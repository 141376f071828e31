"""Google's Code Assist endpoint (what gemini-cli's OAuth accounts use).

Calls are wrapped: `{model, project, user_prompt_id, request: GenerateContentRequest}` in,
`{response: GenerateContentResponse, traceId}` out, per event when streaming. The project is
`GEMINI_PROJECT_ID`, or discovered once per credential with loadCodeAssist / onboardUser.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from contextlib import aclosing
from typing import Any

import aiohttp

from ..credentials import OAuthCredential
from ..store.base import StateStore
from ..wire.gemini import GenerateContentResponse
from ..wire.gemini_request import CodeAssistRequest, GenerateContentRequest
from .client import Events
from .errors import UpstreamError, Verdict
from .http import bearer_headers, encode, request_json, sse_events
from .oauth import TokenManager
from .replies import Parser, any_json, code_assist_reply_of, total_tokens
from .singleflight import SingleFlight
from .tokens import call_with_token, stream_with_token

log = logging.getLogger("gemini_cli_proxy.codeassist")

_METADATA = {"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}
ONBOARD_POLL_SECONDS = 2.0
ONBOARD_MAX_POLLS = 30


def _project_id(value: Any) -> str | None:
    """loadCodeAssist says the project as a string; onboardUser as {id, name}."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
        return str(value["id"])
    return None


class CodeAssistClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        tokens: TokenManager,
        *,
        endpoint: str,
        api_version: str,
        project_id: str | None,
        poll_seconds: float | None = None,
        store: StateStore | None = None,
    ) -> None:
        self._session = session
        self._tokens = tokens
        self._base = f"{endpoint.rstrip('/')}/{api_version}"
        self._fixed_project = project_id
        # None: the module's ONBOARD_POLL_SECONDS as it is when the client is built (app start-up).
        self._poll_seconds = ONBOARD_POLL_SECONDS if poll_seconds is None else poll_seconds
        self._discovering: SingleFlight[str] = SingleFlight()
        self._store = store  # shares discovered projects between instances

    async def _call(
        self,
        cred: OAuthCredential,
        method: str,
        body: Mapping[str, Any] | None,
        *,
        get: bool = False,
        parse: Parser = any_json,
    ) -> Any:
        """One JSON call with a fresh token (see tokens.call_with_token)."""
        url = f"{self._base}:{method}" if not get else f"{self._base}/{method}"
        payload = encode(body) if body is not None else None

        async def call(token: str) -> Any:
            return await request_json(
                self._session,
                "GET" if get else "POST",
                url,
                headers=bearer_headers(token),
                body=payload,
                secrets=cred.secrets(),
                parse=parse,
            )

        return await call_with_token(self._tokens, cred, call)

    async def access_token(self, cred: OAuthCredential) -> str:
        return await self._tokens.access_token(cred)

    async def project(self, cred: OAuthCredential) -> str:
        if self._fixed_project:
            return self._fixed_project
        if cred.project_id:
            return cred.project_id
        if self._store is not None and (
            shared := await self._store.get_value(f"codeassist-project:{cred.id}")
        ):
            cred.project_id = shared  # discovered by another instance
            return shared
        return await self._discovering.run(cred.id, lambda: self._discover(cred))

    async def _discover(self, cred: OAuthCredential) -> str:
        loaded = await self._call(cred, "loadCodeAssist", {"metadata": dict(_METADATA)})
        project = _project_id(loaded.get("cloudaicompanionProject")) if isinstance(loaded, dict) else None
        if project is None:
            project = await self._onboard(cred, loaded if isinstance(loaded, dict) else {})
        cred.project_id = project
        if self._store is not None:
            await self._store.set_value(f"codeassist-project:{cred.id}", project)
        log.info("code assist project for %s: %s", cred.label, project)
        return project

    async def _onboard(self, cred: OAuthCredential, loaded: dict[str, Any]) -> str:
        listed = loaded.get("allowedTiers")
        tiers = [t for t in listed if isinstance(t, dict)] if isinstance(listed, list) else []
        default = next((t for t in tiers if t.get("isDefault")), None)
        tier_id = str(default.get("id")) if default and default.get("id") else "free-tier"
        if default and default.get("userDefinedCloudaicompanionProject"):
            # Paid tiers bill the user's own project, which Google cannot pick for us.
            raise UpstreamError(
                Verdict.PERMISSION,
                0,
                f"this account's Code Assist tier ({tier_id}) needs a Google Cloud project: "
                "set GEMINI_PROJECT_ID",
            )
        operation = await self._call(cred, "onboardUser", {"tierId": tier_id, "metadata": dict(_METADATA)})
        for _ in range(ONBOARD_MAX_POLLS):
            if not isinstance(operation, dict):
                break
            if operation.get("done"):
                response = operation.get("response")
                project = (
                    _project_id(response.get("cloudaicompanionProject"))
                    if isinstance(response, dict)
                    else None
                )
                if project is None:
                    break
                return project
            name = operation.get("name")
            if not isinstance(name, str) or not name:
                break
            await asyncio.sleep(self._poll_seconds)
            operation = await self._call(cred, name, None, get=True)
        raise UpstreamError(
            Verdict.PERMISSION,
            0,
            "Code Assist onboarding did not yield a project; "
            "set GEMINI_PROJECT_ID to your Google Cloud project",
        )

    async def _envelope(
        self, cred: OAuthCredential, model: str, request: GenerateContentRequest
    ) -> CodeAssistRequest:
        return {
            "model": model,
            "project": await self.project(cred),
            "user_prompt_id": uuid.uuid4().hex,
            "request": request,
        }

    async def generate(
        self, cred: OAuthCredential, model: str, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        envelope = await self._envelope(cred, model, request)
        reply: GenerateContentResponse = await self._call(
            cred, "generateContent", envelope, parse=code_assist_reply_of
        )
        return reply

    async def count_tokens(self, cred: OAuthCredential, model: str, request: GenerateContentRequest) -> int:
        # Code Assist counts contents only (its countTokens request has no system instruction or tools).
        body = {"request": {"model": f"models/{model}", "contents": request.get("contents", [])}}
        return total_tokens(await self._call(cred, "countTokens", body))

    async def stream(
        self,
        cred: OAuthCredential,
        model: str,
        request: GenerateContentRequest,
        *,
        answer_within: float | None = None,
    ) -> Events:
        body = encode(await self._envelope(cred, model, request))
        url = f"{self._base}:streamGenerateContent?alt=sse"

        def open_stream(token: str) -> Events:
            return sse_events(
                self._session,
                url,
                headers=bearer_headers(token),
                body=body,
                secrets=cred.secrets(),
                parse=code_assist_reply_of,
                answer_within=answer_within,
            )

        del request  # an open stream holds only what it relays
        async with aclosing(stream_with_token(self._tokens, cred, open_stream)) as events:
            async for batch in events:
                yield batch
