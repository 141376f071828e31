"""The scheduler keeps each pool's rotation for a set of unusable credentials: what it keeps must
follow every change that regroups or removes credentials."""

from __future__ import annotations

import asyncio

from gemini_cli_proxy.credentials import ApiKeyCredential
from gemini_cli_proxy.pool.scheduler import Scheduler
from gemini_cli_proxy.store.base import Cooldown
from gemini_cli_proxy.store.memory import MemoryStore
from gemini_cli_proxy.upstream.errors import UpstreamError, Verdict

from support import Clock

MODEL = "gemini-2.5-flash"


def test_a_project_learned_from_googles_error_regroups_the_rotation() -> None:
    async def scenario() -> None:
        clock = Clock()
        a, b, c = (ApiKeyCredential(f"key-{n}-00000000") for n in "abc")
        pool = Scheduler([a, b, c], MemoryStore(clock=clock), clock=clock)
        firsts = [(await pool.plan(MODEL))[0] for _ in range(3)]
        assert sorted(firsts, key=id) == sorted([a, b, c], key=id)  # a key each: three turns
        for key in (a, b):
            await pool.report_failure(
                key,
                MODEL,
                UpstreamError(Verdict.RATE_LIMITED, 429, "quota", retry_after=0.5, consumer="projects/7"),
            )
        clock.now += 1.0
        # a and b are one project now: it gets every other turn, as c does.
        firsts = [(await pool.plan(MODEL))[0] for _ in range(4)]
        assert firsts.count(c) == 2 and set(firsts) - {c} <= {a, b}

    asyncio.run(scenario())


def test_the_rotation_follows_cooldowns_set_and_ended() -> None:
    async def scenario() -> None:
        clock = Clock()
        keys = [ApiKeyCredential(f"key-{n}-00000000") for n in "abcd"]
        store = MemoryStore(clock=clock)
        pool = Scheduler(keys, store, clock=clock)
        assert len(await pool.plan(MODEL)) == 4
        await store.set_cooldown(keys[1].id, MODEL, Cooldown(clock.now + 5, "rate_limited"))
        await store.set_disabled(keys[3].id, "invalid")
        for _ in range(4):
            assert sorted(k.id for k in await pool.plan(MODEL)) == sorted([keys[0].id, keys[2].id])
        clock.now += 6
        assert len(await pool.plan(MODEL)) == 3
        await store.clear_disabled(keys[3].id)
        assert len(await pool.plan(MODEL)) == 4

    asyncio.run(scenario())


def test_a_success_through_one_key_clears_the_strikes_of_its_whole_project() -> None:
    """A 429 strikes every key of the project; a success through any of them after the cooldown
    shows the quota back. The next 429, through a sibling, starts from the base delay again."""

    async def scenario() -> None:
        clock = Clock()
        k1, k2 = (ApiKeyCredential(f"key-{n}-00000000", project="p") for n in "12")
        other = ApiKeyCredential("key-3-00000000", project="q")
        store = MemoryStore(clock=clock)
        pool = Scheduler([k1, k2, other], store, clock=clock)
        limited = UpstreamError(Verdict.RATE_LIMITED, 429, "quota", retry_after=3.0)
        await pool.report_failure(k1, MODEL, limited)
        assert (await store.pool_state([k2.id], MODEL, clock.now)).cooldowns[k2.id].until == clock.now + 3
        clock.now += 4
        await pool.plan(MODEL)
        await pool.report_success(k1, MODEL)
        await pool.report_failure(k2, MODEL, limited)
        cooldown = (await store.pool_state([k1.id, k2.id], MODEL, clock.now)).cooldowns
        assert cooldown[k1.id].until == cooldown[k2.id].until == clock.now + 3  # strike 1, not 2 (6 s)
        assert await store.strikes(k2.id, MODEL) == 1

    asyncio.run(scenario())


def test_a_burst_on_keys_listed_project_by_project_is_spread_over_the_projects() -> None:
    """Keys are mostly listed project by project. Turning in the listed order gave a burst of ten
    requests to the first two projects' keys; the turn order (by the keys' stable ids) spreads it."""

    async def scenario() -> None:
        clock = Clock()
        keys = [ApiKeyCredential(f"key-{i:03d}-{i * 7919:08d}") for i in range(50)]
        project_of = {key.id: i // 5 for i, key in enumerate(keys)}  # ten projects of five keys
        pool = Scheduler(keys, MemoryStore(clock=clock), clock=clock)
        burst = [(await pool.plan(MODEL))[0] for _ in range(10)]
        assert len({project_of[key.id] for key in burst}) >= 5

    asyncio.run(scenario())


def test_while_a_key_cools_down_each_other_key_has_one_turn_a_lap() -> None:
    """Turns are spaced evenly over the usable keys: a quota window sees each key's share, never two
    turns of one key in a lap (measured: handing an unusable key's turns round gave some keys two in
    a lap, and their projects 429s at 90% load)."""

    async def scenario() -> None:
        clock = Clock()
        keys = [ApiKeyCredential(f"key-{n}-00000000") for n in "abcde"]
        store = MemoryStore(clock=clock)
        pool = Scheduler(keys, store, clock=clock)
        for _ in range(3):
            await pool.plan(MODEL)  # the cursor anywhere
        cooled = (await pool.plan(MODEL))[0]
        await store.set_cooldown(cooled.id, MODEL, Cooldown(clock.now + 60, "rate_limited"))
        firsts = [(await pool.plan(MODEL))[0] for _ in range(40)]
        assert cooled not in firsts
        for lap in range(10):
            assert len({id(first) for first in firsts[lap * 4 : lap * 4 + 4]}) == 4

    asyncio.run(scenario())
