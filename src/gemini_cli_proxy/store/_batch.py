"""What the backends share: folding usage events, applying the time to a pool read, coalescing calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import Cooldown, PoolState, Turn, Usage, UsageEvent


@dataclass(slots=True)
class Totals:
    """Usage of one (credential, model) plus when its last error happened, so that batches arriving
    out of order from several instances keep the latest error rather than the last one written."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: float = -1.0  # below any real time, so the first error always lands
    last_used: float = 0.0

    def add(self, event: UsageEvent) -> None:
        self.requests += event.requests
        self.tokens_in += event.tokens_in
        self.tokens_out += event.tokens_out
        self.errors += event.errors
        # Ties go to the later event, so events without timestamps keep arrival order.
        if event.last_error is not None and event.at >= self.last_error_at:
            self.last_error = event.last_error
            self.last_error_at = event.at
        self.last_used = max(self.last_used, event.at)

    def merge(self, other: Totals) -> None:
        self.requests += other.requests
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.errors += other.errors
        if other.last_error is not None and other.last_error_at >= self.last_error_at:
            self.last_error = other.last_error
            self.last_error_at = other.last_error_at
        self.last_used = max(self.last_used, other.last_used)

    def usage(self) -> Usage:
        return Usage(
            self.requests, self.tokens_in, self.tokens_out, self.errors, self.last_error, self.last_used
        )


def aggregate(events: Iterable[UsageEvent]) -> dict[tuple[str, str], Totals]:
    """One row per (credential, model): a batch of thousands of events becomes a few writes."""
    rows: dict[tuple[str, str], Totals] = {}
    for event in events:
        key = (event.credential_id, event.model)
        totals = rows.get(key)
        if totals is None:
            totals = rows[key] = Totals()
        totals.add(event)
    return rows


Read = tuple[tuple[str, ...], str]  # (credential ids, model) of one pool_state call


@dataclass(slots=True)
class RawState:
    """A backend's answer to one Read, before `now` is applied: the cooldown of each (credential,
    model) there is, ended or not (its strikes still count), and the disabled flags. The callers
    of one batch may each ask at another `now`, hence the ended ones too."""

    cooldowns: dict[str, Cooldown]
    disabled: dict[str, str]
    struck: set[str] = field(default_factory=set)  # see PoolState.struck

    def at(self, now: float, version: int) -> PoolState:
        cooldowns = {cred: cooldown for cred, cooldown in self.cooldowns.items() if cooldown.until > now}
        return PoolState(cooldowns, dict(self.disabled), frozenset(self.struck), version)


# Advance each pool's cursor by the given count and return the values before; answer each Read; and
# the state's version, read before the Reads. One round trip or one worker hop for all.
Fetched = tuple[dict[str, int], list[RawState], int]
Fetch = Callable[[dict[str, int], list[Read]], Awaitable[Fetched]]


class Coalescer:
    """The per-request calls (take_turn, pool_state) made during one event loop iteration travel
    together in one fetch. Under load that turns dozens of round trips into one, at no cost when idle
    (the batch leaves on the next iteration). Calls made while a fetch is out start the next batch, so
    a caller always sees the writes it made before calling.

    The cursor: a batch of n calls on one pool advances it by n at once and hands out base .. base+n-1
    in call order; still unique across processes, since the backend's increment is atomic."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._cursors: dict[str, list[asyncio.Future[Turn]]] = {}
        self._reads: dict[Read, list[tuple[float, asyncio.Future[PoolState]]]] = {}
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def take_turn(self, pool: str) -> Turn:
        future: asyncio.Future[Turn] = asyncio.get_running_loop().create_future()
        self._cursors.setdefault(pool, []).append(future)
        self._schedule()
        return await future

    async def pool_state(self, credential_ids: Sequence[str], model: str, now: float) -> PoolState:
        if not credential_ids:
            return PoolState()
        future: asyncio.Future[PoolState] = asyncio.get_running_loop().create_future()
        self._reads.setdefault((tuple(credential_ids), model), []).append((now, future))
        self._schedule()
        return await future

    async def drain(self) -> None:
        """Wait for the fetches under way (before closing the connection they use)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _schedule(self) -> None:
        if self._scheduled:
            return
        self._scheduled = True
        # A task, not the first caller, runs the fetch: a caller cancelled mid-way must not strand the
        # others. Its first step runs after the callbacks already queued, which is what gathers the batch.
        task = asyncio.get_running_loop().create_task(self._flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        self._scheduled = False
        cursors, self._cursors = self._cursors, {}
        reads, self._reads = self._reads, {}
        counts = {pool: len(futures) for pool, futures in cursors.items()}
        try:
            bases, raws, version = await self._fetch(counts, list(reads))
        except BaseException as error:
            waiting: list[asyncio.Future[Any]] = [f for futures in cursors.values() for f in futures]
            waiting += [f for waiters in reads.values() for _, f in waiters]
            for future in waiting:
                if future.done():
                    continue
                if isinstance(error, Exception):
                    future.set_exception(error)
                else:
                    future.cancel()
            if not isinstance(error, Exception):
                raise
            return
        for pool, futures in cursors.items():
            for offset, future in enumerate(futures):
                if not future.done():  # a cancelled caller just leaves a gap in the rotation
                    future.set_result(Turn(bases[pool] + offset, version))
        for waiters, raw in zip(reads.values(), raws, strict=True):
            for now, state_future in waiters:
                if not state_future.done():
                    state_future.set_result(raw.at(now, version))
