"""An unreachable store degrades to in-process state, warns once, and is used again once it answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import pytest
import redis

from gemini_cli_proxy.store import (
    Cooldown,
    MemoryStore,
    PoolState,
    RedisStore,
    ResilientStore,
    SqliteStore,
    StateStore,
    Turn,
    Usage,
    UsageEvent,
)

from support import RedisServer, free_port

PRO = "gemini-2.5-pro"
FLASH = "gemini-2.5-flash"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "gemini_cli_proxy.store" and r.levelno >= logging.WARNING
    ]


async def exercise(store: StateStore) -> None:
    """Every method, checked against what an in-process store answers."""
    assert [(await store.take_turn("primary")).cursor for _ in range(3)] == [0, 1, 2]
    cooldown = Cooldown(until=time.time() + 100, reason="rate_limited", strikes=2)
    await store.set_cooldown("a", PRO, cooldown)
    await store.set_disabled("b", "API_KEY_INVALID")
    assert await store.pool_state(["a", "b"], PRO, time.time()) == PoolState(
        {"a": cooldown}, {"b": "API_KEY_INVALID"}
    )
    assert await store.strikes("a", PRO) == 2
    await store.clear_cooldown("a", PRO)
    await store.clear_disabled("b")
    assert await store.pool_state(["a", "b"], PRO, time.time()) == PoolState()
    await store.record_usage(iter([UsageEvent("a", PRO, tokens_in=5, at=1.0)]))
    assert await store.usage(["a"]) == {"a": {PRO: Usage(1, 5, 0, 0, None, 1.0)}}
    await store.set_value("token", "ya29.x", ttl=60)
    assert await store.get_value("token") == "ya29.x"


def test_unreachable_redis_serves_from_memory_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gemini_cli_proxy.store")
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    async def scenario() -> None:
        store = ResilientStore(RedisStore(url), retry_after=60)
        started = time.monotonic()
        await store.start()
        assert store.degraded
        await exercise(store)
        await store.close()
        assert time.monotonic() - started < 5  # fails fast: no long retry loop per call

    asyncio.run(scenario())
    warnings = warnings_of(caplog)
    assert len(warnings) == 1, warnings
    assert "state store unavailable" in warnings[0]


def test_redis_going_away_mid_run_degrades(
    redis_binary: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gemini_cli_proxy.store")
    server = RedisServer.start(redis_binary, free_port(), tmp_path)

    async def scenario() -> None:
        store = ResilientStore(RedisStore(server.url), retry_after=60)
        await store.start()
        assert not store.degraded
        assert (await store.take_turn("primary")).cursor == 0
        server.stop()
        for _ in range(20):
            await store.take_turn("primary")  # from memory now: counts restart there
        assert store.degraded
        await store.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
    assert len(warnings_of(caplog)) == 1


def test_unwritable_sqlite_path_serves_from_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gemini_cli_proxy.store")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the store's directory should be")

    async def scenario() -> None:
        store = ResilientStore(SqliteStore(blocker / "state.sqlite3"), retry_after=60)
        await store.start()
        assert store.degraded
        await exercise(store)
        await store.close()

    asyncio.run(scenario())
    assert len(warnings_of(caplog)) == 1


def test_a_file_that_is_not_a_database_serves_from_memory(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)

    async def scenario() -> None:
        store = ResilientStore(SqliteStore(path))
        await store.start()
        assert store.degraded
        await exercise(store)
        await store.close()

    asyncio.run(scenario())


class FlakyStore(MemoryStore):
    """A MemoryStore whose every call fails with a connection error while `down` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def __getattribute__(self, name: str) -> object:
        attribute = super().__getattribute__(name)
        if name in _METHODS and callable(attribute):
            self.calls += 1
            if self.down:
                return _refuse
        return attribute


async def _refuse(*args: object, **kwargs: object) -> None:
    raise ConnectionRefusedError("store is down")


_METHODS = {
    "start",
    "take_turn",
    "pool_state",
    "set_cooldown",
    "set_cooldowns",
    "clear_cooldown",
    "strikes",
    "set_disabled",
    "clear_disabled",
    "record_usage",
    "usage",
    "get_value",
    "set_value",
    "get_values",
    "set_values",
    "add_counts",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_retries_the_primary_after_retry_after_and_hands_over(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gemini_cli_proxy.store")
    primary, clock = FlakyStore(), Clock()
    store = ResilientStore(primary, retry_after=30, clock=clock)

    async def scenario() -> None:
        await store.start()
        await store.set_value("before", "1")
        primary.down = True
        cooldown = Cooldown(until=time.time() + 100, reason="quota_exhausted", strikes=3)
        await store.set_cooldown("a", PRO, cooldown)  # fails over: now served from memory
        assert store.degraded
        calls = primary.calls
        await store.set_disabled("b", "API_KEY_INVALID")
        await store.record_usage([UsageEvent("a", PRO, errors=1, last_error="429", at=5.0)])
        assert await store.get_value("before") is None  # the fallback knows only the outage
        assert primary.calls == calls  # not retried before retry_after
        clock.now += 29
        assert (await store.pool_state(["a", "b"], PRO, time.time())).disabled == {"b": "API_KEY_INVALID"}
        assert primary.calls == calls
        clock.now += 2  # past retry_after, still down: one attempt, back to memory, no new warning
        assert (await store.take_turn("primary")).cursor == 0
        assert primary.calls == calls + 1
        assert store.degraded
        primary.down = False
        clock.now += 31
        assert await store.get_value("before") == "1"  # the primary again
        assert not store.degraded
        # What the fallback learned was handed over.
        assert await primary.pool_state(["a", "b"], PRO, time.time()) == PoolState(
            {"a": cooldown}, {"b": "API_KEY_INVALID"}
        )
        assert await primary.strikes("a", PRO) == 3
        assert await primary.usage(["a"]) == {"a": {PRO: Usage(1, 0, 0, 1, "429", 5.0)}}
        await store.close()

    asyncio.run(scenario())
    records = [r for r in caplog.records if r.name == "gemini_cli_proxy.store"]
    assert [r.levelno for r in records if r.levelno >= logging.INFO] == [logging.WARNING, logging.INFO]


def test_a_store_that_starts_late_is_used_once_it_answers(redis_binary: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    async def scenario() -> None:
        store = ResilientStore(RedisStore(url), retry_after=0.2)
        await store.start()
        assert store.degraded
        await store.set_disabled("a", "API_KEY_INVALID")
        server = RedisServer.start(redis_binary, port, tmp_path)
        try:
            await asyncio.sleep(0.25)
            await store.set_value("k", "v")
            assert not store.degraded
            observer = RedisStore(url)
            await observer.start()
            try:
                assert await observer.get_value("k") == "v"
                assert (await observer.pool_state(["a"], PRO, time.time())).disabled == {
                    "a": "API_KEY_INVALID"
                }
            finally:
                await observer.close()
            await store.close()
        finally:
            server.stop()

    asyncio.run(scenario())


def stop_saving(server: RedisServer) -> None:
    """Stop `server` as a Redis with persistence stops: SHUTDOWN SAVE writes the RDB file, which
    RedisServer.start loads again from the same directory."""
    # The server hangs up as it exits.
    with (
        redis.Redis(host="127.0.0.1", port=server.port) as client,
        contextlib.suppress(redis.ConnectionError),
    ):
        client.shutdown(save=True)
    server.stop()


def test_clears_made_during_an_outage_reach_the_store_when_it_returns(
    redis_binary: str, tmp_path: Path
) -> None:
    """/enable and the start-up clearing call clear_disabled, a success clear_cooldown: made while the
    store was away, the store must not keep the old flag or cooldown once it is back. The last write
    to a key during the outage wins, a set or a clear."""
    server = RedisServer.start(redis_binary, free_port(), tmp_path)
    clock = Clock()
    cooldown = Cooldown(until=time.time() + 100, reason="rate_limited", strikes=2)

    async def scenario() -> None:
        nonlocal server
        store = ResilientStore(RedisStore(server.url), retry_after=30, clock=clock)
        await store.start()
        await store.set_disabled("enabled-again", "API_KEY_INVALID")
        await store.set_disabled("disabled-then-cleared", "API_KEY_INVALID")
        await store.set_cooldown("cooled", PRO, cooldown)
        await store.set_cooldown("cooled", FLASH, cooldown)
        stop_saving(server)
        await store.clear_disabled("enabled-again")  # fails over: from memory now
        assert store.degraded
        await store.set_disabled("disabled-then-cleared", "PERMISSION_DENIED")
        await store.clear_disabled("disabled-then-cleared")
        await store.clear_disabled("cleared-then-disabled")
        await store.set_disabled("cleared-then-disabled", "PERMISSION_DENIED")
        await store.clear_cooldown("cooled", PRO)
        await store.set_cooldown("set-then-cleared", PRO, cooldown)
        await store.clear_cooldown("set-then-cleared", PRO)
        server = RedisServer.start(redis_binary, server.port, tmp_path)  # back, with what it held
        clock.now += 31
        await store.set_value("k", "v")  # the primary answers: the handover runs
        assert not store.degraded

        observer = RedisStore(server.url)
        await observer.start()
        try:
            ids = [
                "enabled-again",
                "disabled-then-cleared",
                "cleared-then-disabled",
                "cooled",
                "set-then-cleared",
            ]
            state = await observer.pool_state(ids, PRO, time.time())
            assert state.disabled == {"cleared-then-disabled": "PERMISSION_DENIED"}
            assert state.cooldowns == {}
            assert await observer.strikes("cooled", PRO) == 0
            assert await observer.strikes("set-then-cleared", PRO) == 0
            # Only what was cleared: the same key's cooldown on another model stays.
            assert (await observer.pool_state(["cooled"], FLASH, time.time())).cooldowns == {
                "cooled": cooldown
            }
        finally:
            await observer.close()
        await store.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_bugs_are_not_outages() -> None:
    class Broken(MemoryStore):
        async def take_turn(self, pool: str) -> Turn:
            raise ValueError("a bug")

    async def scenario() -> None:
        store = ResilientStore(Broken())
        await store.start()
        with pytest.raises(ValueError, match="a bug"):
            await store.take_turn("primary")
        assert not store.degraded

    asyncio.run(scenario())
