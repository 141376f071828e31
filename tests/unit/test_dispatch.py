"""The gateway's retry loop with a scripted AI Studio client standing in for the network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from gemini_cli_proxy.credentials import ApiKeyCredential
from gemini_cli_proxy.pool.dispatch import Gateway, GoogleStream
from gemini_cli_proxy.pool.scheduler import Scheduler
from gemini_cli_proxy.pool.usage import UsageRecorder
from gemini_cli_proxy.store.memory import MemoryStore
from gemini_cli_proxy.upstream.errors import UpstreamError, Verdict

OK: dict[str, Any] = {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}]}


class ScriptedAiStudio:
    """Answers 429 for the keys in `limited`, OK for the rest, and records who was called."""

    def __init__(self, limited: set[str]) -> None:
        self.limited = limited
        self.calls: list[str] = []

    async def generate(self, cred: ApiKeyCredential, model: str, request: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(cred.key)
        if cred.key in self.limited:
            raise UpstreamError(Verdict.RATE_LIMITED, 429, "limited", retry_after=30.0)
        return OK

    async def stream(
        self,
        cred: ApiKeyCredential,
        model: str,
        request: dict[str, Any],
        *,
        answer_within: float | None = None,
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        yield [await self.generate(cred, model, request)]

    async def access_token(self, cred: ApiKeyCredential) -> None:
        return None


def gateway(keys: list[ApiKeyCredential], client: ScriptedAiStudio, store: MemoryStore) -> Gateway:
    scheduler = Scheduler(keys, store, clock=time.time)
    return Gateway(scheduler, UsageRecorder(store, clock=time.time), {"aistudio": client})


def test_a_request_skips_the_siblings_of_a_limited_project() -> None:
    a1 = ApiKeyCredential("key-a1-0000000", project="77")
    a2 = ApiKeyCredential("key-a2-0000000", project="77")
    b1 = ApiKeyCredential("key-b1-0000000", project="88")
    client = ScriptedAiStudio({"key-a1-0000000", "key-a2-0000000"})

    async def scenario() -> None:
        store = MemoryStore()
        # The rotation turns over projects (77: a1, a2; 88: b1); two turns of the cursor make this
        # request's plan a2, b1, a1: after a2's 429 its sibling a1 is skipped.
        for _ in range(2):
            await store.take_turn("primary:gemini-2.5-flash")
        _, served = await gateway([a1, a2, b1], client, store).generate("gemini-2.5-flash", {})
        assert served is b1
        assert client.calls == ["key-a2-0000000", "key-b1-0000000"]

    asyncio.run(scenario())


def test_closing_a_google_stream_closes_googles_response_even_before_it_is_iterated() -> None:
    closed: list[bool] = []

    async def events() -> AsyncGenerator[list[dict[str, Any]], None]:
        try:
            yield [{"first": True}]
            yield [{"second": True}]
        finally:
            closed.append(True)

    async def scenario() -> None:
        inner = events()
        await anext(inner)  # the gateway takes the first batch itself
        store = MemoryStore()
        key = ApiKeyCredential("key-for-the-test")
        scheduler = Scheduler([key], store, clock=time.time)
        await GoogleStream(
            inner, key, "gemini-2.5-flash", scheduler, UsageRecorder(store, clock=time.time)
        ).aclose()
        assert closed == [True]

    asyncio.run(scenario())
