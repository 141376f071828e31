"""Backends for the store contract suite; the Redis one uses the session's real redis-server
(`redis_server` in tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gemini_cli_proxy.store import MemoryStore, RedisStore, SqliteStore, StateStore

from support import RedisServer

Scenario = Callable[[StateStore], Awaitable[None]]


@dataclass
class Backend:
    name: str
    url: str
    make: Callable[[], StateStore]  # a new, unstarted store object over the same shared state

    async def open(self) -> StateStore:
        store = self.make()
        await store.start()
        return store

    def run(self, scenario: Scenario) -> None:
        """Run `scenario` on a started store, on a fresh event loop, and close the store after."""

        async def main() -> None:
            store = await self.open()
            try:
                await scenario(store)
            finally:
                await store.close()

        asyncio.run(main())


def _backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if name == "memory":
        return Backend(name, "memory://", MemoryStore)
    if name == "sqlite":
        path = tmp_path / "state" / "state.sqlite3"
        return Backend(name, f"sqlite:///{path}", lambda: SqliteStore(path))
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()  # each test starts from an empty database
    return Backend(name, server.url, lambda: RedisStore(server.url))


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return _backend(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "redis"])
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The backends whose state outlives one store object (and one process)."""
    return _backend(request.param, request, tmp_path)
