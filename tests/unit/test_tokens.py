"""Tokens kept on credentials, and the one retry a refused token gets (upstream/tokens.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import pytest

from gemini_cli_proxy.upstream.errors import UpstreamError, Verdict
from gemini_cli_proxy.upstream.tokens import (
    REFRESH_MARGIN_SECONDS,
    TokenCache,
    call_with_token,
    stream_with_token,
)

from support import Clock


@dataclass
class Holder:
    id: str = "cred-1"
    access_token: str = ""
    expires_at: float = 0.0


class Minter:
    """Mints token-1, token-2, ...; records the refused token it was told of, and can be slow."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.refused: list[str] = []
        self.delay = 0.0

    async def __call__(self, cred: Holder, refused: str) -> str:
        self.refused.append(refused)
        await asyncio.sleep(self.delay)
        cred.access_token = f"token-{len(self.refused)}"
        cred.expires_at = self.clock.now + 3600
        return cred.access_token


def unauthenticated() -> UpstreamError:
    return UpstreamError(Verdict.UNAUTHENTICATED, 401, "Request had invalid authentication credentials.")


def test_a_fresh_token_is_kept_and_one_near_its_expiry_is_replaced() -> None:
    async def scenario() -> None:
        clock = Clock()
        mint = Minter(clock)
        tokens = TokenCache(mint, clock=clock)
        cred = Holder()
        assert await tokens.access_token(cred) == "token-1"
        assert await tokens.access_token(cred) == "token-1"
        clock.now += 3600 - REFRESH_MARGIN_SECONDS + 1
        assert await tokens.access_token(cred) == "token-2"
        assert mint.refused == ["", "token-1"]

    asyncio.run(scenario())


def test_concurrent_callers_share_one_mint() -> None:
    async def scenario() -> None:
        clock = Clock()
        mint = Minter(clock)
        mint.delay = 0.01
        tokens = TokenCache(mint, clock=clock)
        cred = Holder()
        assert set(await asyncio.gather(*(tokens.access_token(cred) for _ in range(10)))) == {"token-1"}
        assert len(mint.refused) == 1

    asyncio.run(scenario())


def test_a_forced_mint_is_skipped_when_another_request_already_replaced_the_refused_token() -> None:
    async def scenario() -> None:
        clock = Clock()
        tokens = TokenCache(Minter(clock), clock=clock)
        cred = Holder()
        await tokens.access_token(cred)
        assert await tokens.access_token(cred, force=True, stale="token-1") == "token-2"
        assert await tokens.access_token(cred, force=True, stale="token-1") == "token-2"

    asyncio.run(scenario())


def test_a_call_refused_with_401_is_made_once_more_with_a_fresh_token() -> None:
    async def scenario() -> None:
        clock = Clock()
        mint = Minter(clock)
        tokens = TokenCache(mint, clock=clock)
        seen: list[str] = []

        async def call(token: str) -> str:
            seen.append(token)
            if token == "token-1":
                raise unauthenticated()
            return "reply"

        assert await call_with_token(tokens, Holder(), call) == "reply"
        assert seen == ["token-1", "token-2"]
        assert mint.refused == ["", "token-1"]

    asyncio.run(scenario())


def test_a_second_401_and_every_other_failure_are_not_retried() -> None:
    async def scenario() -> None:
        clock = Clock()
        tokens = TokenCache(Minter(clock), clock=clock)
        calls: list[str] = []

        async def always_refused(token: str) -> str:
            calls.append(token)
            raise unauthenticated()

        with pytest.raises(UpstreamError) as refused:
            await call_with_token(tokens, Holder(), always_refused)
        assert refused.value.verdict is Verdict.UNAUTHENTICATED and calls == ["token-1", "token-2"]

        async def limited(token: str) -> str:
            calls.append(token)
            raise UpstreamError(Verdict.RATE_LIMITED, 429, "quota")

        calls.clear()
        with pytest.raises(UpstreamError, match="quota"):
            await call_with_token(tokens, Holder(id="cred-2"), limited)
        assert len(calls) == 1

    asyncio.run(scenario())


class Streams:
    """Opens streams that answer 401 for refused tokens, else two batches; records which closed."""

    def __init__(self, refused: set[str]) -> None:
        self.refused = refused
        self.opened: list[str] = []
        self.closed: list[str] = []

    def open(self, token: str) -> AsyncGenerator[list[dict[str, Any]], None]:
        self.opened.append(token)
        return self._events(token)

    async def _events(self, token: str) -> AsyncGenerator[list[dict[str, Any]], None]:
        try:
            if token in self.refused:
                raise unauthenticated()
            yield [{"n": 1}]
            yield [{"n": 2}]
        finally:
            self.closed.append(token)


def test_a_stream_refused_before_its_first_event_is_opened_again_with_a_fresh_token() -> None:
    async def scenario() -> None:
        clock = Clock()
        streams = Streams(refused={"token-1"})
        events = stream_with_token(TokenCache(Minter(clock), clock=clock), Holder(), streams.open)
        assert [batch async for batch in events] == [[{"n": 1}], [{"n": 2}]]
        assert streams.opened == ["token-1", "token-2"]
        assert streams.closed == ["token-1", "token-2"]

    asyncio.run(scenario())


@pytest.mark.parametrize("refused", [set(), {"token-1"}], ids=["first stream", "second stream"])
def test_a_caller_that_stops_early_closes_the_stream_in_use(refused: set[str]) -> None:
    """A client that goes away mid-stream: closing the outer generator closes Google's response."""

    async def scenario() -> None:
        clock = Clock()
        streams = Streams(refused=refused)
        events = stream_with_token(TokenCache(Minter(clock), clock=clock), Holder(), streams.open)
        assert await anext(events) == [{"n": 1}]
        await events.aclose()
        assert streams.closed == streams.opened

    asyncio.run(scenario())
