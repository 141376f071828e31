"""sqlite:///path: the default store, one file shared by every worker process on one machine.

One connection per store, owned by one worker thread, so the event loop never waits on the disk or on
another process's lock. WAL mode lets readers run beside the single writer; synchronous=NORMAL skips
the fsync per commit (a power cut may lose the last few counters, never corrupt the file). The
per-request calls made in one loop iteration go to the thread together (see Coalescer), one hop for
all: the cursor is one UPSERT ... RETURNING per pool (atomic across processes, since SQLite serialises
writers; n calls advance it by n at once), each distinct pool_state one SELECT over both tables, and
the state's version one SELECT of a row that triggers on both tables count up.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final, TypeVar, cast

import orjson

from ._batch import Coalescer, Fetched, RawState, Read, Totals, aggregate
from .base import Cooldown, PoolState, Turn, Usage, UsageEvent

T = TypeVar("T")
# How long a first open keeps trying while another process holds a fresh file (see _open).
FIRST_OPEN_SECONDS: Final = 10.0

_SCHEMA = (
    """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS cursors (pool TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cooldowns (
    credential_id TEXT NOT NULL, model TEXT NOT NULL,
    until REAL NOT NULL, reason TEXT NOT NULL, strikes INTEGER NOT NULL,
    PRIMARY KEY (credential_id, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS disabled (credential_id TEXT PRIMARY KEY, reason TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
    credential_id TEXT NOT NULL, model TEXT NOT NULL,
    requests INTEGER NOT NULL, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,
    errors INTEGER NOT NULL, last_error TEXT, last_error_at REAL NOT NULL, last_used REAL NOT NULL,
    PRIMARY KEY (credential_id, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS counts (
    name TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_version (one INTEGER PRIMARY KEY CHECK (one = 1), value INTEGER NOT NULL);
INSERT OR IGNORE INTO state_version (one, value) VALUES (1, 0);
"""
    + "".join(
        # Every change of a cooldown or a disabled flag, in the statement that makes it (see Turn); an
        # upsert's update fires the UPDATE trigger, and a DELETE that finds no row fires none.
        f"CREATE TRIGGER IF NOT EXISTS {table}_{event.lower()} AFTER {event} ON {table} "
        "BEGIN UPDATE state_version SET value = value + 1; END;\n"
        for table in ("cooldowns", "disabled")
        for event in ("INSERT", "UPDATE", "DELETE")
    )
    + "COMMIT;\n"
)

# Advance by ?2 and return the value before; one statement, so no other process can interleave.
_ADVANCE_CURSOR = (
    "INSERT INTO cursors (pool, value) VALUES (?1, ?2) "
    "ON CONFLICT (pool) DO UPDATE SET value = value + ?2 RETURNING value - ?2"
)

# The model's cooldowns (until is set) and the disabled flags (until is NULL) in one statement, so one
# pick sees one snapshot; cooldowns also when over, for their strikes. The ids travel as one JSON
# parameter: a constant SQL text the statement cache keeps, and no limit on bound variables.
_POOL_STATE = """
SELECT credential_id, until, reason, strikes FROM cooldowns
 WHERE credential_id IN (SELECT value FROM json_each(?1)) AND model = ?2
UNION ALL
SELECT credential_id, NULL, reason, NULL FROM disabled
 WHERE credential_id IN (SELECT value FROM json_each(?1))
"""

_SET_COOLDOWN = (
    "INSERT INTO cooldowns (credential_id, model, until, reason, strikes) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (credential_id, model) DO UPDATE SET "
    "until = excluded.until, reason = excluded.reason, strikes = excluded.strikes"
)

# Counters add up; the later error (by its time) and the latest use win, whichever instance wrote
# first. On the right of SET, bare column names are the row's values before this update.
_RECORD_USAGE = """
INSERT INTO usage (credential_id, model, requests, tokens_in, tokens_out, errors,
                   last_error, last_error_at, last_used)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (credential_id, model) DO UPDATE SET
    requests = requests + excluded.requests,
    tokens_in = tokens_in + excluded.tokens_in,
    tokens_out = tokens_out + excluded.tokens_out,
    errors = errors + excluded.errors,
    last_error = CASE WHEN excluded.last_error IS NOT NULL AND excluded.last_error_at >= last_error_at
                      THEN excluded.last_error ELSE last_error END,
    last_error_at = CASE WHEN excluded.last_error IS NOT NULL AND excluded.last_error_at >= last_error_at
                         THEN excluded.last_error_at ELSE last_error_at END,
    last_used = max(last_used, excluded.last_used)
"""

_USAGE = """
SELECT credential_id, model, requests, tokens_in, tokens_out, errors, last_error, last_used FROM usage
 WHERE credential_id IN (SELECT value FROM json_each(?))
"""

_SET_VALUE = (
    "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)

# The keys travel as one JSON parameter, like the ids of _POOL_STATE.
_GET_VALUES = """
SELECT key, value FROM kv
 WHERE key IN (SELECT value FROM json_each(?1)) AND (expires_at IS NULL OR expires_at > ?2)
"""

# Expired values are deleted every this many writes, so TTL'd keys (thought signatures) cannot pile up.
_SWEEP_EVERY = 1024

# Add ?2 to a counter, from 0 if its window ended by ?4 (the row stays until a sweep), and return the
# total. On the right of SET, bare column names are the row's values before this update.
_ADD_COUNT = """
INSERT INTO counts (name, value, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (name) DO UPDATE SET
    value = CASE WHEN expires_at <= ?4 THEN excluded.value ELSE value + excluded.value END,
    expires_at = max(expires_at, excluded.expires_at)
RETURNING value
"""
# Counters whose window ended this long ago are deleted, one batch in _SWEEP_EVERY. No index on
# expires_at: the sweep keeps the table small enough to scan, and every upsert would pay for one.
_COUNT_GRACE = 60.0

_Outcome = tuple["asyncio.Future[object]", object, Exception | None]
_Job = tuple[Callable[[], object], "asyncio.Future[object]", asyncio.AbstractEventLoop]


def _json(ids: Sequence[str]) -> str:
    # Text, not bytes: SQLite 3.45+ reads a BLOB argument of json_each as its binary JSONB format.
    return orjson.dumps(list(ids)).decode()


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():  # the caller gave up; the work is done anyway, like asyncio.to_thread
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class _Worker:
    """A thread that runs calls in order. Whatever queued while it was busy runs as one batch and the
    results go back in one loop wake-up: under load that is far cheaper than a wake-up per call."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[[], T]) -> T:
        if self._stopped:
            raise sqlite3.ProgrammingError("the state store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        self._jobs.put((fn, future, loop))
        return cast(T, await future)

    async def stop(self) -> None:
        self._stopped = True
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    def _main(self) -> None:
        running = True
        while running:
            jobs = [self._jobs.get()]
            while True:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            settled: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
            for job in jobs:
                if job is None:
                    running = False
                    continue
                fn, future, loop = job
                try:
                    outcome: _Outcome = (future, fn(), None)
                except Exception as error:
                    outcome = (future, None, error)
                settled.setdefault(loop, []).append(outcome)
            for loop, outcomes in settled.items():
                # A closed loop raises RuntimeError: nobody is waiting there any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, outcomes)


def _is_locked(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


class SqliteStore:
    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._worker: _Worker | None = None
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        self._writes = 0
        self._count_batches = 0
        self._coalescer = Coalescer(self._fetch)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self._path)!r})"

    async def start(self) -> None:
        if self._worker is not None:
            return
        worker = _Worker(f"sqlite-store:{self._path.name}")
        try:
            await worker.call(self._open)
        except BaseException:
            await worker.stop()
            raise
        self._worker = worker

    async def close(self) -> None:
        if self._worker is None:
            return
        await self._coalescer.drain()  # batches already gathered still need the connection
        worker, self._worker = self._worker, None
        try:
            await worker.call(self._close)
        finally:
            await worker.stop()

    def _open(self) -> None:
        """Open the file, retrying while another process holds it: two workers that open a fresh
        file at once race to switch it to WAL, and the loser is told "database is locked" (about 1
        start in 30), which degraded that worker to private state for half a minute."""
        deadline = time.monotonic() + max(self._busy_timeout, FIRST_OPEN_SECONDS)
        while True:
            try:
                self._open_once()
                return
            except sqlite3.OperationalError as error:
                if not _is_locked(error) or time.monotonic() >= deadline:
                    raise
                time.sleep(random.uniform(0.02, 0.1))  # jittered: the other opener is not us

    def _open_once(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so each statement is its own short transaction and the
        # few multi-statement writes say BEGIN IMMEDIATE themselves (no deadlock-prone lock upgrades).
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("the state store is not started")
        return self._conn

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._worker is None:
            raise sqlite3.ProgrammingError("the state store is not started")
        return await self._worker.call(fn)

    # -- the per-request calls

    async def take_turn(self, pool: str) -> Turn:
        return await self._coalescer.take_turn(pool)

    async def pool_state(self, credential_ids: Sequence[str], model: str, now: float) -> PoolState:
        return await self._coalescer.pool_state(credential_ids, model, now)

    async def _fetch(self, cursors: dict[str, int], reads: list[Read]) -> Fetched:
        return await self._call(lambda: self._fetch_now(cursors, reads))

    def _fetch_now(self, cursors: dict[str, int], reads: list[Read]) -> Fetched:
        conn = self._db()
        # First: a change made while the state is read shows as a new version.
        version = int(conn.execute("SELECT value FROM state_version").fetchall()[0][0])
        # fetchall, not fetchone: the statement must run to completion for autocommit to commit.
        bases = {
            pool: int(conn.execute(_ADVANCE_CURSOR, (pool, n)).fetchall()[0][0])
            for pool, n in cursors.items()
        }
        raws: list[RawState] = []
        for ids, model in reads:
            raw = RawState({}, {})
            for cred, until, reason, strikes in conn.execute(_POOL_STATE, (_json(ids), model)):
                if until is None:
                    raw.disabled[cred] = reason
                else:
                    raw.cooldowns[cred] = Cooldown(until, reason, strikes)
                    if strikes:
                        raw.struck.add(cred)
            raws.append(raw)
        return bases, raws, version

    # -- state changes, rare

    async def set_cooldown(self, credential_id: str, model: str, cooldown: Cooldown) -> None:
        args = (credential_id, model, cooldown.until, cooldown.reason, cooldown.strikes)
        await self._call(lambda: self._db().execute(_SET_COOLDOWN, args))

    async def set_cooldowns(self, credential_ids: Sequence[str], model: str, cooldown: Cooldown) -> None:
        if not credential_ids:
            return
        rows = [(cred, model, cooldown.until, cooldown.reason, cooldown.strikes) for cred in credential_ids]
        await self._call(lambda: self._write_all(_SET_COOLDOWN, rows))

    def _write_all(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        """`sql` once per row, in one transaction: all rows land or none, for one commit."""
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(sql, rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def clear_cooldown(self, credential_id: str, model: str) -> None:
        sql = "DELETE FROM cooldowns WHERE credential_id = ? AND model = ?"
        await self._call(lambda: self._db().execute(sql, (credential_id, model)))

    async def strikes(self, credential_id: str, model: str) -> int:
        sql = "SELECT strikes FROM cooldowns WHERE credential_id = ? AND model = ?"
        rows = await self._call(lambda: self._db().execute(sql, (credential_id, model)).fetchall())
        return int(rows[0][0]) if rows else 0

    async def set_disabled(self, credential_id: str, reason: str) -> None:
        sql = (
            "INSERT INTO disabled (credential_id, reason) VALUES (?, ?) "
            "ON CONFLICT (credential_id) DO UPDATE SET reason = excluded.reason"
        )
        await self._call(lambda: self._db().execute(sql, (credential_id, reason)))

    async def clear_disabled(self, credential_id: str) -> None:
        sql = "DELETE FROM disabled WHERE credential_id = ?"
        await self._call(lambda: self._db().execute(sql, (credential_id,)))

    # -- usage, written in batches from a background task

    async def record_usage(self, events: Iterable[UsageEvent]) -> None:
        rows = aggregate(events)
        if rows:
            await self._call(lambda: self._record_usage(rows))

    def _record_usage(self, rows: dict[tuple[str, str], Totals]) -> None:
        args: list[tuple[object, ...]] = [
            (
                cred,
                model,
                t.requests,
                t.tokens_in,
                t.tokens_out,
                t.errors,
                t.last_error,
                t.last_error_at,
                t.last_used,
            )
            for (cred, model), t in rows.items()
        ]
        self._write_all(_RECORD_USAGE, args)

    async def usage(self, credential_ids: Sequence[str]) -> dict[str, dict[str, Usage]]:
        if not credential_ids:
            return {}
        ids = _json(credential_ids)
        rows = await self._call(lambda: self._db().execute(_USAGE, (ids,)).fetchall())
        result: dict[str, dict[str, Usage]] = {}
        for cred, model, requests, tokens_in, tokens_out, errors, last_error, last_used in rows:
            result.setdefault(cred, {})[model] = Usage(
                requests, tokens_in, tokens_out, errors, last_error, last_used
            )
        return result

    # -- small shared values

    async def get_value(self, key: str) -> str | None:
        sql = "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
        now = time.time()
        rows = await self._call(lambda: self._db().execute(sql, (key, now)).fetchall())
        return str(rows[0][0]) if rows else None

    async def set_value(self, key: str, value: str, ttl: float | None = None) -> None:
        now = time.time()
        self._writes += 1
        sweep = self._writes % _SWEEP_EVERY == 0
        await self._call(lambda: self._set_value(key, value, None if ttl is None else now + ttl, sweep, now))

    def _set_value(self, key: str, value: str, expires_at: float | None, sweep: bool, now: float) -> None:
        conn = self._db()
        conn.execute(_SET_VALUE, (key, value, expires_at))
        if sweep:
            conn.execute("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))

    async def get_values(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        args = (_json(keys), time.time())
        rows = await self._call(lambda: self._db().execute(_GET_VALUES, args).fetchall())
        found = {key: str(value) for key, value in rows}
        return [found.get(key) for key in keys]

    async def set_values(self, items: Sequence[tuple[str, str, float | None]]) -> None:
        if not items:
            return
        now = time.time()
        rows: list[tuple[object, ...]] = [
            (key, value, None if ttl is None else now + ttl) for key, value, ttl in items
        ]
        # A sweep whenever the count of writes passes a multiple of _SWEEP_EVERY, as set_value's.
        before, self._writes = self._writes, self._writes + len(rows)
        sweep = before // _SWEEP_EVERY != self._writes // _SWEEP_EVERY
        await self._call(lambda: self._set_values(rows, sweep, now))

    def _set_values(self, rows: list[tuple[object, ...]], sweep: bool, now: float) -> None:
        # executemany applies the rows in order, so a key given twice keeps its later value.
        self._write_all(_SET_VALUE, rows)
        if sweep:
            self._db().execute("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))

    # -- windowed counters

    async def add_counts(self, counts: Sequence[tuple[str, int, float]]) -> list[int]:
        if not counts:
            return []
        rows = list(counts)  # a snapshot: the worker thread reads it later
        self._count_batches += 1
        sweep = self._count_batches % _SWEEP_EVERY == 0
        return await self._call(lambda: self._add_counts(rows, sweep))

    def _add_counts(self, rows: list[tuple[str, int, float]], sweep: bool) -> list[int]:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            # The time once the write lock is ours: the batch may have waited for it (busy_timeout).
            now = time.time()
            totals = [
                int(conn.execute(_ADD_COUNT, (name, amount, expires_at, now)).fetchall()[0][0])
                for name, amount, expires_at in rows
            ]
            if sweep:
                conn.execute("DELETE FROM counts WHERE expires_at < ?", (now - _COUNT_GRACE,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return totals
