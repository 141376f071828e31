"""One request to Google through the pool: pick a credential, call, on failure try the next.

Retries happen only before anything reached the client: for a stream, until its first event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..errors import ProxyError
from ..upstream.aistudio import AiStudioClient
from ..upstream.codeassist import CodeAssistClient
from ..upstream.errors import RETRY_ELSEWHERE, UpstreamError, Verdict, garbage, to_proxy_error
from .credentials import ApiKeyCredential, Credential
from .scheduler import Scheduler

_POOL_VERDICTS = frozenset({Verdict.RATE_LIMITED, Verdict.QUOTA_EXHAUSTED, Verdict.CREDENTIAL_INVALID})


class Gateway:
    def __init__(self, scheduler: Scheduler, aistudio: AiStudioClient, codeassist: CodeAssistClient) -> None:
        self._scheduler = scheduler
        self._aistudio = aistudio
        self._codeassist = codeassist

    def _failed(self, cred: Credential, model: str, failure: UpstreamError) -> None:
        self._scheduler.report(cred, model, failure)
        if failure.verdict not in RETRY_ELSEWHERE:
            raise to_proxy_error(failure)

    def _give_up(self, model: str, last: UpstreamError | None) -> ProxyError:
        if last is None or last.verdict in _POOL_VERDICTS:
            # The pool's own account (how many cooling, until when) says more than the last error.
            return self._scheduler.exhausted(model)
        return to_proxy_error(last)

    async def generate(self, model: str, request: dict[str, Any]) -> tuple[dict[str, Any], Credential]:
        last: UpstreamError | None = None
        for cred in self._scheduler.attempts(model):
            try:
                if isinstance(cred, ApiKeyCredential):
                    return await self._aistudio.generate(cred, model, request), cred
                return await self._codeassist.generate(cred, model, request), cred
            except UpstreamError as failure:
                self._failed(cred, model, failure)
                last = failure
        raise self._give_up(model, last)

    async def open_stream(
        self, model: str, request: dict[str, Any]
    ) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]], Credential]:
        """The first event of a stream and the iterator of the rest; every failure up to the first
        event is retried on another credential."""
        last: UpstreamError | None = None
        for cred in self._scheduler.attempts(model):
            if isinstance(cred, ApiKeyCredential):
                events = self._aistudio.stream(cred, model, request)
            else:
                events = self._codeassist.stream(cred, model, request)
            try:
                first = await anext(events)
            except StopAsyncIteration:
                failure = garbage("the stream ended before its first event")
            except UpstreamError as exc:
                failure = exc
            else:
                return first, events, cred
            self._failed(cred, model, failure)
            last = failure
        raise self._give_up(model, last)
