"""PROXY_STATE_URL -> backend."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from gemini_cli_proxy.settings import Settings
from gemini_cli_proxy.store import MemoryStore, RedisStore, SqliteStore, open_store


def test_memory() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


def test_sqlite_paths_follow_sqlalchemy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_store(f"sqlite:///{tmp_path / 'a.db'}")  # sqlite:////tmp/... : absolute
    assert isinstance(absolute, SqliteStore)
    assert repr(absolute) == f"SqliteStore({str(tmp_path / 'a.db')!r})"
    relative = open_store("sqlite:///state/b.db")
    assert repr(relative) == "SqliteStore('state/b.db')"


def test_the_default_sqlite_store_creates_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    url = Settings().proxy_state_url
    assert url.startswith("sqlite:////")

    async def scenario() -> None:
        store = open_store(url)
        await store.start()
        await store.set_value("k", "v")
        await store.close()

    asyncio.run(scenario())
    assert (tmp_path / "data" / "gemini-cli-proxy" / "state.sqlite3").is_file()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/x.db", "sqlite:///x.db?mode=ro"])
def test_malformed_sqlite_urls(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///relative/path"):
        open_store(url)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://user:secret@cache.internal:6380/2", "REDIS://localhost"]
)
def test_redis(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, RedisStore)
    assert "secret" not in repr(store)


def test_redis_prefix_from_the_query() -> None:
    store = open_store("redis://127.0.0.1:6379/0?prefix=team-a:&socket_timeout=1")
    assert repr(store) == "RedisStore(prefix='team-a:')"


@pytest.mark.parametrize("url", ["postgres://user:hunter2@db/x", "state.db", "", "mem://"])
def test_unknown_schemes_are_refused_without_echoing_the_url(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported scheme") as caught:
        open_store(url)
    assert "hunter2" not in str(caught.value)
    assert "memory://" in str(caught.value)


def test_a_first_open_waits_out_another_process_holding_the_fresh_file(tmp_path: Path) -> None:
    """Two workers opening a fresh file race to switch it to WAL; the loser was told "database is
    locked" at once and ran on private state. Here the other opener holds a read lock for 0.5 s, five
    times the store's busy timeout."""
    path = tmp_path / "state.db"
    holding = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("CREATE TABLE IF NOT EXISTS other_opener (x)")
        other.execute("BEGIN")
        other.execute("SELECT * FROM other_opener").fetchall()  # a shared lock, in rollback mode
        holding.set()
        time.sleep(0.5)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)

    async def start_and_use() -> int:
        store = SqliteStore(path, busy_timeout=0.1)
        await store.start()
        try:
            return (await store.take_turn("primary")).cursor
        finally:
            await store.close()

    try:
        assert asyncio.run(start_and_use()) == 0
    finally:
        holder.join()
