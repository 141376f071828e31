"""StateStore.add_counts, the windowed shared counters: one suite, every backend (see test_contract)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import pytest

from gemini_cli_proxy.store import MemoryStore, RedisStore, ResilientStore, SqliteStore, StateStore
from gemini_cli_proxy.store import sqlite as sqlite_module

from .conftest import Backend
from support import free_port

# A window end in the real future: Redis expires keys by its own clock.
LATER = 3600.0


def test_a_counter_starts_at_its_amount_and_adds_up(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        end = time.time() + LATER
        assert await store.add_counts([("p1:requests", 3, end)]) == [3]
        assert await store.add_counts([("p1:requests", 4, end)]) == [7]
        assert await store.add_counts([("p1:tokens", 1000, end)]) == [1000]  # each name its own
        assert await store.add_counts([("p1:requests", 0, end)]) == [7]  # 0 reads
        assert await store.add_counts([("unknown", 0, end)]) == [0]
        assert await store.add_counts([]) == []

    backend.run(scenario)


def test_a_batch_answers_in_order_and_repeats_accumulate(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        end = time.time() + LATER
        await store.add_counts([("b", 10, end)])
        totals = await store.add_counts(
            [("a", 1, end), ("b", 2, end), ("a", 5, end), ("c", 0, end), ("b", 0, end)]
        )
        assert totals == [1, 12, 6, 0, 12]
        # A large batch, names repeating: each entry's total after its own addition.
        batch = [(f"n{i % 300}", 1, end) for i in range(3000)]
        totals = await store.add_counts(batch)
        assert totals[:300] == [1] * 300
        assert totals[-300:] == [10] * 300

    backend.run(scenario)


def test_a_counter_restarts_once_its_window_ends_and_an_entry_only_pushes_the_end_later(
    backend: Backend,
) -> None:
    async def scenario(store: StateStore) -> None:
        start = time.time()
        soon, later = start + 1.0, start + LATER
        assert await store.add_counts([("ends", 5, soon), ("pushed", 5, soon), ("kept", 5, later)]) == [5] * 3
        # Before the end: alive. "pushed" now lives until `later`; "kept" is not cut short.
        assert await store.add_counts([("ends", 1, soon), ("pushed", 1, later), ("kept", 1, soon)]) == [6] * 3
        await asyncio.sleep(soon + 0.2 - time.time())
        totals = await store.add_counts([("ends", 3, later), ("pushed", 3, later), ("kept", 3, later)])
        assert totals == [3, 9, 9]
        # The new window of "ends" lives until the end its restarting entry gave.
        assert await store.add_counts([("ends", 0, soon)]) == [3]

    backend.run(scenario)


def test_an_entry_whose_end_has_passed_counts_once_then_is_gone(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        past = time.time() - 10
        assert await store.add_counts([("late", 2, past)]) == [2]
        assert await store.add_counts([("late", 2, time.time() + LATER)]) == [2]

    backend.run(scenario)


def test_counters_are_apart_from_the_other_state(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        await store.set_value("primary", "a value")
        assert (await store.take_turn("primary")).cursor == 0
        assert await store.add_counts([("primary", 4, time.time() + LATER)]) == [4]
        assert await store.get_value("primary") == "a value"
        assert (await store.take_turn("primary")).cursor == 1
        # Names with separators and other characters, as project/model/metric names may hold.
        odd = ["proj-1\x1fmodels/gemini-2.5-pro:latest", "a|b c", "proj-ä-🙂"]
        assert await store.add_counts([(name, 1, time.time() + LATER) for name in odd]) == [1, 1, 1]

    backend.run(scenario)


def test_counts_are_atomic_under_concurrency(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        end = time.time() + LATER
        replies = await asyncio.gather(
            *(store.add_counts([("n", 1, end), ("m", 2, end)]) for _ in range(100))
        )
        assert sorted(n for n, _ in replies) == list(range(1, 101))
        assert sorted(m for _, m in replies) == list(range(2, 201, 2))

    backend.run(scenario)


def test_store_objects_share_counts(shared_backend: Backend) -> None:
    async def scenario(first: StateStore) -> None:
        second = await shared_backend.open()
        try:
            end = time.time() + LATER
            assert await first.add_counts([("p", 2, end)]) == [2]
            assert await second.add_counts([("p", 3, end)]) == [5]
            assert await first.add_counts([("p", 0, end)]) == [5]
            calls = [store.add_counts([("q", 1, end)]) for _ in range(100) for store in (first, second)]
            totals = [total for (total,) in await asyncio.gather(*calls)]
            assert sorted(totals) == list(range(1, 201))
        finally:
            await second.close()

    shared_backend.run(scenario)


def test_counts_survive_a_restart(shared_backend: Backend) -> None:
    end = time.time() + LATER

    async def write(store: StateStore) -> None:
        await store.add_counts([("p", 7, end)])

    async def read(store: StateStore) -> None:
        assert await store.add_counts([("p", 1, end)]) == [8]

    shared_backend.run(write)
    shared_backend.run(read)


# -- how each backend keeps ended windows from piling up


def test_memory_sweeps_ended_windows() -> None:
    clock = [1000.0]
    store = MemoryStore(clock=lambda: clock[0])

    async def scenario() -> None:
        for i in range(5000):
            await store.add_counts([(f"old{i}", 1, 1010.0)])
        clock[0] = 2000.0
        for i in range(5000):
            await store.add_counts([(f"new{i}", 1, 2010.0)])
        assert await store.add_counts([("new0", 0, 2010.0)]) == [1]

    asyncio.run(scenario())
    names = set(store._counts)
    assert len(names) < 6000, len(names)  # most of the ended windows are gone
    assert {f"new{i}" for i in range(5000)} <= names


def test_sqlite_sweeps_windows_ended_well_ago(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "_SWEEP_EVERY", 3)
    path = tmp_path / "state.sqlite3"
    now = time.time()

    async def scenario() -> None:
        store = SqliteStore(path)
        await store.start()
        try:
            await store.add_counts([("long-ended", 1, now - 3600), ("just-ended", 1, now - 1)])
            await store.add_counts([("live", 1, now + LATER)])
            with contextlib.closing(sqlite3.connect(path)) as conn:
                assert conn.execute("SELECT count(*) FROM counts").fetchone() == (3,)
            await store.add_counts([("live", 1, now + LATER)])  # the third batch sweeps
        finally:
            await store.close()

    asyncio.run(scenario())
    with contextlib.closing(sqlite3.connect(path)) as conn:
        names = {name for (name,) in conn.execute("SELECT name FROM counts")}
    assert names == {"just-ended", "live"}


def test_sqlite_adds_the_table_to_a_state_file_from_before(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"

    async def scenario() -> None:
        store = SqliteStore(path)
        await store.start()
        await store.set_value("token", "ya29.kept")
        await store.close()
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("DROP TABLE counts")  # as a file written by a version without counters
        await store.start()
        try:
            assert await store.add_counts([("p", 1, time.time() + LATER)]) == [1]
            assert await store.get_value("token") == "ya29.kept"
        finally:
            await store.close()

    asyncio.run(scenario())


def test_resilient_store_counts_in_memory_while_the_primary_is_unreachable() -> None:
    async def scenario() -> None:
        store = ResilientStore(RedisStore(f"redis://127.0.0.1:{free_port()}/0"), retry_after=60)
        await store.start()
        try:
            end = time.time() + LATER
            assert await store.add_counts([("p", 2, end), ("p", 3, end)]) == [2, 5]
            assert store.degraded
        finally:
            await store.close()

    asyncio.run(scenario())


def test_resilient_store_passes_counts_to_the_primary(shared_backend: Backend) -> None:
    async def scenario(primary: StateStore) -> None:
        store = ResilientStore(shared_backend.make())
        end = time.time() + LATER
        await store.start()
        try:
            assert await store.add_counts([("p", 2, end)]) == [2]
            assert not store.degraded
        finally:
            await store.close()
        assert await primary.add_counts([("p", 0, end)]) == [2]

    shared_backend.run(scenario)
