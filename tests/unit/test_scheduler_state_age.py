"""PROXY_STATE_MAX_AGE: the scheduler reads a shared store's pool state at most that often, and sooner
when a change shows: its own at once, another instance's in the version its next turn carries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from gemini_cli_proxy.credentials import ApiKeyCredential, Credential
from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.pool.scheduler import Scheduler
from gemini_cli_proxy.store.base import Cooldown, PoolState
from gemini_cli_proxy.store.memory import MemoryStore
from gemini_cli_proxy.upstream.errors import UpstreamError, Verdict

from support import Clock

MODEL = "gemini-2.5-flash"
KEYS = [ApiKeyCredential(f"key-{name}-00000000") for name in "abc"]


class CountingStore(MemoryStore):
    """A MemoryStore that counts pool_state reads and can make them slow, like a store over the network."""

    def __init__(self, *, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.reads = 0
        self.read_delay = 0.0

    async def pool_state(self, credential_ids: Sequence[str], model: str, now: float) -> PoolState:
        self.reads += 1
        if self.read_delay:
            await asyncio.sleep(self.read_delay)
        return await super().pool_state(credential_ids, model, now)


def scheduler(store: MemoryStore, clock: Clock, max_age: float = 1.0) -> Scheduler:
    return Scheduler(KEYS, store, clock=clock, monotonic=clock, state_max_age=max_age)


def planned_ids(plan: list[Credential]) -> set[str]:
    return {cred.id for cred in plan}


def test_another_instances_change_is_seen_at_the_next_turn_and_no_read_is_made_without_one() -> None:
    """Each plan takes a turn, which shows the store's state version: a change made by another
    instance (here, straight in the store) is planned with at once; without one the snapshot is kept."""

    async def scenario() -> None:
        clock = Clock()
        store = CountingStore(clock=clock)
        pool = scheduler(store, clock, max_age=3600)
        for _ in range(3):
            assert len(await pool.plan(MODEL)) == 3
        assert store.reads == 1
        await store.set_cooldown(KEYS[0].id, MODEL, Cooldown(clock.now + 60, "rate_limited"))
        plans = await asyncio.gather(*(pool.plan(MODEL) for _ in range(5)))
        assert all(planned_ids(plan) == {KEYS[1].id, KEYS[2].id} for plan in plans)
        assert store.reads == 2  # one read for all five requests that saw the change
        await store.set_disabled(KEYS[1].id, "API key not valid")
        assert planned_ids(await pool.plan(MODEL)) == {KEYS[2].id}
        assert store.reads == 3

    asyncio.run(scenario())


def test_one_key_sees_another_instances_change_once_its_snapshot_is_older_than_the_max_age() -> None:
    """With one usable key there is no turn to take, and no round trip is spent to learn the version."""

    async def scenario() -> None:
        clock = Clock()
        store = CountingStore(clock=clock)
        pool = Scheduler(KEYS[:1], store, clock=clock, monotonic=clock, state_max_age=1.0)
        assert len(await pool.plan(MODEL)) == 1
        await store.set_disabled(KEYS[0].id, "API key not valid")
        clock.now += 0.5
        assert len(await pool.plan(MODEL)) == 1  # still the snapshot
        assert store.reads == 1
        clock.now += 0.6
        with pytest.raises(ProxyError, match="disabled"):
            await pool.plan(MODEL)
        assert store.reads == 2

    asyncio.run(scenario())


def test_a_change_made_by_this_process_is_seen_at_once() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = CountingStore(clock=clock)
        pool = scheduler(store, clock, max_age=3600)
        assert len(await pool.plan(MODEL)) == 3
        limited = UpstreamError(Verdict.RATE_LIMITED, 429, "limited", retry_after=30.0)
        await pool.report_failure(KEYS[0], MODEL, limited)
        assert planned_ids(await pool.plan(MODEL)) == {KEYS[1].id, KEYS[2].id}
        invalid = UpstreamError(Verdict.CREDENTIAL_INVALID, 400, "API key not valid")
        await pool.report_failure(KEYS[1], MODEL, invalid)
        assert planned_ids(await pool.plan(MODEL)) == {KEYS[2].id}
        await pool.enable(KEYS[1])
        assert planned_ids(await pool.plan(MODEL)) == {KEYS[1].id, KEYS[2].id}

    asyncio.run(scenario())


def test_a_kept_snapshot_still_ends_cooldowns_on_time() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = CountingStore(clock=clock)
        pool = scheduler(store, clock, max_age=3600)
        await store.set_cooldown(KEYS[0].id, MODEL, Cooldown(clock.now + 5, "rate_limited"))
        assert len(await pool.plan(MODEL)) == 2
        clock.now += 5.1
        assert len(await pool.plan(MODEL)) == 3
        assert store.reads == 1

    asyncio.run(scenario())


def test_concurrent_picks_share_one_read_and_a_read_begun_before_a_change_is_not_kept() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = CountingStore(clock=clock)
        store.read_delay = 0.05
        pool = scheduler(store, clock, max_age=3600)
        plans = await asyncio.gather(*(pool.plan(MODEL) for _ in range(20)))
        assert all(len(plan) == 3 for plan in plans)
        assert store.reads == 1

        # A pick whose read is under way while this process disables a key: the read may predate the
        # change, so it is not kept, and the next pick reads again.
        clock.now += 1
        pool = scheduler(store, clock, max_age=3600)
        early = asyncio.ensure_future(pool.plan(MODEL))
        await asyncio.sleep(0.01)
        invalid = UpstreamError(Verdict.CREDENTIAL_INVALID, 400, "API key not valid")
        await pool.report_failure(KEYS[0], MODEL, invalid)
        await early
        reads = store.reads
        assert planned_ids(await pool.plan(MODEL)) == {KEYS[1].id, KEYS[2].id}
        assert store.reads == reads + 1

    asyncio.run(scenario())


def test_a_caller_that_gives_up_does_not_cancel_the_shared_read() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = CountingStore(clock=clock)
        store.read_delay = 0.05
        pool = scheduler(store, clock)
        quitter = asyncio.ensure_future(pool.plan(MODEL))
        stayer = asyncio.ensure_future(pool.plan(MODEL))
        await asyncio.sleep(0.01)
        quitter.cancel()
        assert len(await stayer) == 3
        assert store.reads == 1

    asyncio.run(scenario())


def test_max_age_zero_reads_the_store_for_every_pick() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = CountingStore(clock=clock)
        pool = scheduler(store, clock, max_age=0)
        for _ in range(3):
            await pool.plan(MODEL)
        assert store.reads == 3

    asyncio.run(scenario())


class SlowWriteStore(CountingStore):
    """Writes land in the store at once, but the caller is kept waiting afterwards, as when a write
    has reached SQLite's thread or Redis and the request is cancelled before the answer comes back."""

    async def set_cooldown(self, credential_id: str, model: str, cooldown: Cooldown) -> None:
        await super().set_cooldown(credential_id, model, cooldown)
        await asyncio.sleep(10)


def test_a_change_whose_caller_was_cancelled_mid_write_is_still_seen() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = SlowWriteStore(clock=clock)
        pool = scheduler(store, clock, max_age=3600)
        assert len(await pool.plan(MODEL)) == 3
        limited = UpstreamError(Verdict.RATE_LIMITED, 429, "limited", retry_after=30.0)
        report = asyncio.ensure_future(pool.report_failure(KEYS[0], MODEL, limited))
        await asyncio.sleep(0.01)
        report.cancel()  # the client went away while the cooldown was being written
        with contextlib.suppress(asyncio.CancelledError):
            await report
        assert planned_ids(await pool.plan(MODEL)) == {KEYS[1].id, KEYS[2].id}

    asyncio.run(scenario())


def test_a_request_under_way_learns_of_another_instances_cooldown_from_a_later_plans_read() -> None:
    """Once any later plan has read the change, requests already walking their plans skip the key
    instead of asking Google for a 429 the other instance already heard."""

    async def scenario() -> None:
        clock = Clock()
        store = CountingStore(clock=clock)
        pool = scheduler(store, clock, max_age=3600)
        walking = await pool.plan(MODEL)
        cooled, invalid = walking[1], walking[2]
        await store.set_cooldown(cooled.id, MODEL, Cooldown(clock.now + 60, "rate_limited"))
        await store.set_disabled(invalid.id, "API key not valid")
        assert not pool.known_unusable(cooled, MODEL)  # nothing read since
        await pool.plan(MODEL)
        assert pool.known_unusable(cooled, MODEL) and pool.known_unusable(invalid, MODEL)
        assert not pool.known_unusable(walking[0], MODEL)
        clock.now += 61
        assert not pool.known_unusable(cooled, MODEL)  # its cooldown is over

    asyncio.run(scenario())
