"""The StateStore contract: one suite, every backend (memory, SQLite file, real redis-server)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

import pytest

from gemini_cli_proxy.store import Cooldown, PoolState, StateStore, Turn, Usage, UsageEvent

from .conftest import Backend

PRO = "gemini-2.5-pro"
FLASH = "gemini-2.5-flash"


def soon(seconds: float = 100.0) -> float:
    """A time in the real future: every backend keeps the cooldown (Redis expires keys by its clock)."""
    return time.time() + seconds


# -- round-robin cursor


def test_cursor_counts_from_zero_per_pool(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        assert [(await store.take_turn("primary")).cursor for _ in range(3)] == [0, 1, 2]
        assert (await store.take_turn("backup")).cursor == 0
        assert (await store.take_turn("primary")).cursor == 3

    backend.run(scenario)


def test_cursor_is_atomic_under_concurrency(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        turns = await asyncio.gather(*(store.take_turn("primary") for _ in range(200)))
        assert sorted(turn.cursor for turn in turns) == list(range(200))

    backend.run(scenario)


def test_cursor_is_atomic_across_store_objects(shared_backend: Backend) -> None:
    async def scenario(first: StateStore) -> None:
        second = await shared_backend.open()
        try:
            calls = [store.take_turn("primary") for _ in range(150) for store in (first, second)]
            turns = await asyncio.gather(*calls)
        finally:
            await second.close()
        assert sorted(turn.cursor for turn in turns) == list(range(300))

    shared_backend.run(scenario)


def test_every_change_of_the_pool_state_changes_the_version_a_turn_shows(shared_backend: Backend) -> None:
    """A turn tells whether the pool's state changed since it was read, in this store object or in
    another one sharing the store (another instance): each of the four changes shows, reads and
    turns do not count as changes, and a state read carries the version read before it."""

    async def scenario(first: StateStore) -> None:
        second = await shared_backend.open()
        try:
            await _versions_follow_changes(first, second)
        finally:
            await second.close()

    shared_backend.run(scenario)


def test_a_store_objects_own_changes_change_the_version(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        await _versions_follow_changes(store, store)

    backend.run(scenario)


async def _versions_follow_changes(first: StateStore, second: StateStore) -> None:
    seen = [(await first.take_turn("primary")).version]
    assert (await second.take_turn("primary")).version == seen[0]
    assert (await first.pool_state(["a"], PRO, time.time())).version == seen[0]
    changes = [
        lambda: second.set_cooldown("a", PRO, Cooldown(soon(), "rate_limited")),
        lambda: second.set_cooldown("a", PRO, Cooldown(soon(200), "rate_limited", 2)),
        lambda: second.clear_cooldown("a", PRO),
        lambda: second.set_cooldowns(["a", "b"], PRO, Cooldown(soon(), "quota_exhausted")),
        lambda: second.set_disabled("b", "API_KEY_INVALID"),
        lambda: second.clear_disabled("b"),
    ]
    for change in changes:
        await change()
        seen.append((await first.take_turn("primary")).version)
        assert (await first.pool_state(["a"], PRO, time.time())).version == seen[-1]
    assert len(set(seen)) == len(seen), seen
    # Usage, values and counters are not the pool's state.
    await second.record_usage([UsageEvent("a", PRO)])
    await second.set_value("k", "v")
    await second.add_counts([("n", 1, soon())])
    assert (await first.take_turn("primary")).version == seen[-1]


_CURSOR_WORKER = textwrap.dedent(
    """
    import asyncio, sys, time
    from gemini_cli_proxy.store import open_store

    async def main(url: str, count: int, start_at: float) -> None:
        store = open_store(url)
        await store.start()
        await asyncio.sleep(max(0.0, start_at - time.time()))  # all processes begin together
        try:
            values = [(await store.take_turn("primary")).cursor for _ in range(count)]
        finally:
            await store.close()
        print(" ".join(map(str, values)))

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
    """
)


def test_cursor_is_atomic_across_processes(shared_backend: Backend) -> None:
    processes, count = 3, 300
    start_at = time.time() + 2.0  # after every interpreter has imported and opened its store
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _CURSOR_WORKER, shared_backend.url, str(count), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    values: list[int] = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        values += map(int, out.split())
    assert sorted(values) == list(range(processes * count))


# -- cooldowns


def test_cooldown_holds_for_its_model_only(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        cooldown = Cooldown(until=soon(), reason="rate_limited", strikes=2)
        await store.set_cooldown("a", PRO, cooldown)
        now = time.time()
        assert await store.pool_state(["a", "b"], PRO, now) == PoolState(cooldowns={"a": cooldown})
        assert await store.pool_state(["a", "b"], FLASH, now) == PoolState()
        assert await store.pool_state(["b"], PRO, now) == PoolState()

    backend.run(scenario)


def test_cooldowns_expire_at_until(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        start = time.time()
        cooldown = Cooldown(until=start + 100, reason="rate_limited")
        await store.set_cooldown("a", PRO, cooldown)
        assert (await store.pool_state(["a"], PRO, start + 99.9)).cooldowns == {"a": cooldown}
        assert (await store.pool_state(["a"], PRO, start + 100)).cooldowns == {}
        assert (await store.pool_state(["a"], PRO, start + 1000)) == PoolState()

    backend.run(scenario)


def test_a_cooldown_already_over_is_not_active(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        await store.set_cooldown("a", PRO, Cooldown(until=time.time() - 1000, reason="rate_limited"))
        assert await store.pool_state(["a"], PRO, time.time()) == PoolState()

    backend.run(scenario)


def test_set_cooldown_replaces_and_clear_removes(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        await store.set_cooldown("a", PRO, Cooldown(until=soon(300), reason="rate_limited"))
        replacement = Cooldown(until=soon(50), reason="capacity", strikes=4)
        await store.set_cooldown("a", PRO, replacement)
        flash = Cooldown(until=soon(10), reason="quota_exhausted")
        await store.set_cooldown("a", FLASH, flash)
        assert (await store.pool_state(["a"], PRO, time.time())).cooldowns == {"a": replacement}
        await store.clear_cooldown("a", PRO)
        assert await store.pool_state(["a"], PRO, time.time()) == PoolState()
        assert (await store.pool_state(["a"], FLASH, time.time())).cooldowns == {"a": flash}  # its own
        await store.clear_cooldown("a", FLASH)
        await store.clear_cooldown("never-cooled", PRO)  # clearing nothing is fine
        assert await store.pool_state(["a"], FLASH, time.time()) == PoolState()

    backend.run(scenario)


def test_strikes_outlive_the_cooldown_until_cleared(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        assert await store.strikes("a", PRO) == 0
        await store.set_cooldown("a", PRO, Cooldown(until=soon(), reason="rate_limited", strikes=1))
        assert await store.strikes("a", PRO) == 1
        # Exactly (credential, model): another model does not share them.
        assert await store.strikes("a", FLASH) == 0
        assert await store.strikes("b", PRO) == 0
        # An expired cooldown still tells how many 429s came in a row.
        await store.set_cooldown("a", PRO, Cooldown(until=time.time() - 5, reason="rate_limited", strikes=3))
        assert await store.pool_state(["a"], PRO, time.time()) == PoolState()
        assert await store.strikes("a", PRO) == 3
        await store.set_cooldown("a", PRO, Cooldown(until=soon(), reason="rate_limited", strikes=4))
        assert await store.strikes("a", PRO) == 4
        await store.clear_cooldown("a", PRO)
        assert await store.strikes("a", PRO) == 0

    backend.run(scenario)


def test_pool_state_says_who_has_strikes_so_any_instance_can_clear_them(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        assert (await store.pool_state(["a", "b"], PRO, time.time())).struck == frozenset()
        await store.set_cooldown("a", PRO, Cooldown(until=soon(), reason="rate_limited", strikes=1))
        assert (await store.pool_state(["a", "b"], PRO, time.time())).struck == {"a"}
        # Ended: no longer cooling, still struck, until a success clears it.
        await store.set_cooldown("a", PRO, Cooldown(until=time.time() - 5, reason="rate_limited", strikes=2))
        state = await store.pool_state(["a", "b"], PRO, time.time())
        assert state.cooldowns == {} and state.struck == {"a"}
        # Exactly (credential, model): another model's strikes are not this model's.
        assert (await store.pool_state(["a"], FLASH, time.time())).struck == frozenset()
        await store.set_cooldown("b", FLASH, Cooldown(until=soon(), reason="quota_exhausted", strikes=1))
        assert (await store.pool_state(["a", "b"], PRO, time.time())).struck == {"a"}
        await store.clear_cooldown("a", PRO)
        assert (await store.pool_state(["a", "b"], PRO, time.time())).struck == frozenset()

    backend.run(scenario)


def test_set_cooldowns_cools_every_key_given(backend: Backend) -> None:
    """A project's keys share its quota: one call cools them all, as set_cooldown would each."""

    async def scenario(store: StateStore) -> None:
        await store.set_cooldown("b", PRO, Cooldown(until=soon(500), reason="rate_limited", strikes=5))
        await store.set_cooldown("a", FLASH, Cooldown(until=soon(), reason="rate_limited", strikes=7))
        version = (await store.take_turn("primary")).version
        project = Cooldown(until=soon(), reason="quota_exhausted", strikes=2)
        await store.set_cooldowns(["a", "b", "c"], PRO, project)
        state = await store.pool_state(["a", "b", "c", "d"], PRO, time.time())
        assert state == PoolState({"a": project, "b": project, "c": project})  # b's replaced
        assert state.struck == {"a", "b", "c"}
        assert state.version != version
        assert [await store.strikes(cred, PRO) for cred in "abcd"] == [2, 2, 2, 0]
        # Only the model given.
        assert await store.strikes("a", FLASH) == 7
        # An ended cooldown is not active, and its strikes still count.
        await store.set_cooldowns(
            ["a", "b"], PRO, Cooldown(until=time.time() - 5, reason="rate_limited", strikes=3)
        )
        state = await store.pool_state(["a", "b", "c"], PRO, time.time())
        assert state.cooldowns == {"c": project} and state.struck == {"a", "b", "c"}
        assert await store.strikes("b", PRO) == 3
        await store.set_cooldowns([], PRO, project)  # nothing to cool is fine
        assert (await store.pool_state(["a", "b", "c"], PRO, time.time())).cooldowns == {"c": project}

    backend.run(scenario)


def test_set_cooldowns_of_many_keys(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        ids = [f"cred-{i}" for i in range(1200)]  # more than any bind or batch limit
        cooldown = Cooldown(until=soon(), reason="quota_exhausted", strikes=1)
        await store.set_cooldowns(ids, PRO, cooldown)
        state = await store.pool_state(ids, PRO, time.time())
        assert state.cooldowns == dict.fromkeys(ids, cooldown)

    backend.run(scenario)


# -- disabled flags


def test_disabled_flags(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        await store.set_disabled("a", "API_KEY_INVALID")
        now = time.time()
        for model in (PRO, FLASH):
            assert await store.pool_state(["a", "b"], model, now) == PoolState(
                disabled={"a": "API_KEY_INVALID"}
            )
        await store.set_disabled("a", "verify the account")
        await store.set_disabled("b", "PERMISSION_DENIED")
        assert (await store.pool_state(["a", "b", "c"], PRO, now)).disabled == {
            "a": "verify the account",
            "b": "PERMISSION_DENIED",
        }
        assert (await store.pool_state(["b"], PRO, now)).disabled == {"b": "PERMISSION_DENIED"}
        await store.clear_disabled("a")
        await store.clear_disabled("never-disabled")
        assert (await store.pool_state(["a", "b"], PRO, now)).disabled == {"b": "PERMISSION_DENIED"}

    backend.run(scenario)


def test_pool_state_holds_cooldowns_and_flags_together(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        cooldown = Cooldown(until=soon(), reason="rate_limited")
        await store.set_cooldown("a", PRO, cooldown)
        await store.set_disabled("a", "API_KEY_INVALID")
        await store.set_disabled("c", "PERMISSION_DENIED")
        ids = [f"cred-{i}" for i in range(300)] + ["a", "c"]  # a pool larger than any bind limit matters
        state = await store.pool_state(ids, PRO, time.time())
        assert state == PoolState({"a": cooldown}, {"a": "API_KEY_INVALID", "c": "PERMISSION_DENIED"})
        assert await store.pool_state([], PRO, time.time()) == PoolState()

    backend.run(scenario)


# -- usage


def test_usage_accumulates_over_batches(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        await store.record_usage(
            [
                UsageEvent("a", PRO, tokens_in=10, tokens_out=5, at=100.0),
                UsageEvent("a", PRO, tokens_in=1, tokens_out=2, errors=1, last_error="429 rate", at=101.0),
                UsageEvent("a", FLASH, tokens_in=7, at=102.0),
                UsageEvent("b", PRO, requests=2, tokens_out=4, at=90.0),
            ]
        )
        await store.record_usage(
            iter([UsageEvent("a", PRO, tokens_in=100, tokens_out=50, at=105.0)])  # any iterable
        )
        await store.record_usage([])
        usage = await store.usage(["a", "b", "unknown"])
        assert usage == {
            "a": {
                PRO: Usage(3, 111, 57, 1, "429 rate", 105.0),
                FLASH: Usage(1, 7, 0, 0, None, 102.0),
            },
            "b": {PRO: Usage(2, 0, 4, 0, None, 90.0)},
        }
        assert await store.usage(["b"]) == {"b": usage["b"]}
        assert await store.usage([]) == {}

    backend.run(scenario)


def test_usage_keeps_the_latest_error_and_use_whatever_the_batch_order(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        await store.record_usage([UsageEvent("a", PRO, errors=1, last_error="newer", at=200.0)])
        # A batch from a slower instance, older than what is stored: counted, but it does not win.
        await store.record_usage([UsageEvent("a", PRO, errors=1, last_error="older", at=150.0)])
        await store.record_usage([UsageEvent("a", PRO, at=120.0)])
        assert await store.usage(["a"]) == {"a": {PRO: Usage(3, 0, 0, 2, "newer", 200.0)}}
        # Within a batch, too; an event without an error never clears the last one.
        await store.record_usage(
            [
                UsageEvent("a", PRO, errors=1, last_error="newest", at=300.0),
                UsageEvent("a", PRO, errors=1, last_error="stale", at=250.0),
                UsageEvent("a", PRO, at=310.0),
            ]
        )
        assert await store.usage(["a"]) == {"a": {PRO: Usage(6, 0, 0, 4, "newest", 310.0)}}

    backend.run(scenario)


def test_usage_of_a_large_batch(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        events = [UsageEvent(f"c{i % 700}", PRO, tokens_in=1, at=float(i)) for i in range(7000)]
        await store.record_usage(events)
        usage = await store.usage([f"c{i}" for i in range(700)])
        assert len(usage) == 700
        assert usage["c0"][PRO] == Usage(10, 10, 0, 0, None, 6300.0)

    backend.run(scenario)


# -- small shared values


def test_values_with_and_without_ttl(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        assert await store.get_value("token") is None
        await store.set_value("token", "ya29.first")
        await store.set_value("token", "ya29.second")
        await store.set_value("project", "proj-ä-🙂", ttl=30)
        await store.set_value("short", "x", ttl=0.2)
        await store.set_value("gone", "x", ttl=0)
        assert await store.get_value("token") == "ya29.second"
        assert await store.get_value("project") == "proj-ä-🙂"
        assert await store.get_value("short") == "x"
        assert await store.get_value("gone") is None
        await asyncio.sleep(0.3)
        assert await store.get_value("short") is None
        assert await store.get_value("token") == "ya29.second"
        # A new write replaces the TTL too.
        await store.set_value("short", "y", ttl=0.2)
        await store.set_value("short", "z")
        await asyncio.sleep(0.3)
        assert await store.get_value("short") == "z"

    backend.run(scenario)


def test_values_in_one_call(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        assert await store.get_values([]) == []
        await store.set_values([])
        await store.set_value("single", "s")
        await store.set_values(
            [
                ("token", "ya29.first", None),
                ("project", "proj-ä-🙂", 30),
                ("short", "x", 0.2),
                ("gone", "x", 0),
                ("token", "ya29.second", None),  # a key given twice keeps the later value
            ]
        )
        keys = ["token", "missing", "project", "single", "short", "gone", "token"]
        expected = ["ya29.second", None, "proj-ä-🙂", "s", "x", None, "ya29.second"]
        assert await store.get_values(keys) == expected  # in the order asked, repeats included
        assert [await store.get_value(key) for key in keys] == expected  # the same values one by one
        await asyncio.sleep(0.3)
        assert await store.get_values(["short", "token"]) == [None, "ya29.second"]
        # A new write replaces the TTL too.
        await store.set_values([("short", "y", 0.2), ("token", "t", 0.2)])
        await store.set_values([("short", "z", None)])
        await asyncio.sleep(0.3)
        assert await store.get_values(["short", "token"]) == ["z", None]

    backend.run(scenario)


def test_many_values_in_one_call(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        items = [(f"signature:{i}", "s" * (i % 50), 60.0) for i in range(3000)]
        await store.set_values(items)
        keys = [key for key, _, _ in items] + ["signature:none"]
        assert await store.get_values(keys) == [value for _, value, _ in items] + [None]

    backend.run(scenario)


# -- several store objects on one state


def test_store_objects_see_each_others_writes(shared_backend: Backend) -> None:
    async def scenario(first: StateStore) -> None:
        second = await shared_backend.open()
        try:
            cooldown = Cooldown(until=soon(), reason="rate_limited", strikes=2)
            await first.set_cooldown("a", PRO, cooldown)
            await first.set_disabled("b", "API_KEY_INVALID")
            await first.record_usage([UsageEvent("a", PRO, tokens_in=3, at=1.0)])
            await first.set_value("token", "ya29.shared", ttl=60)
            assert (await first.take_turn("primary")).cursor == 0

            assert await second.pool_state(["a", "b"], PRO, time.time()) == PoolState(
                {"a": cooldown}, {"b": "API_KEY_INVALID"}
            )
            assert await second.strikes("a", PRO) == 2
            assert await second.usage(["a"]) == {"a": {PRO: Usage(1, 3, 0, 0, None, 1.0)}}
            assert await second.get_value("token") == "ya29.shared"
            assert (await second.take_turn("primary")).cursor == 1

            await second.clear_cooldown("a", PRO)
            await second.clear_disabled("b")
            assert await first.pool_state(["a", "b"], PRO, time.time()) == PoolState()

            await second.set_cooldowns(["a", "b"], PRO, cooldown)
            await second.set_values([("k1", "v1", 60), ("k2", "v2", None)])
            assert (await first.pool_state(["a", "b"], PRO, time.time())).cooldowns == {
                "a": cooldown,
                "b": cooldown,
            }
            assert await first.get_values(["k1", "k2", "token"]) == ["v1", "v2", "ya29.shared"]
        finally:
            await second.close()

    shared_backend.run(scenario)


def test_state_survives_a_restart(shared_backend: Backend) -> None:
    async def write(store: StateStore) -> None:
        await store.set_disabled("a", "API_KEY_INVALID")
        await store.take_turn("primary")

    async def read(store: StateStore) -> None:
        assert (await store.pool_state(["a"], PRO, time.time())).disabled == {"a": "API_KEY_INVALID"}
        assert (await store.take_turn("primary")).cursor == 1

    shared_backend.run(write)
    shared_backend.run(read)


def test_close_then_start_again(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        pending = asyncio.ensure_future(store.take_turn("primary"))
        await asyncio.sleep(0)  # the call is made; a batching store has not sent it yet
        await store.close()  # calls already made complete first
        assert (await pending).cursor == 0
        await store.close()  # closing twice is harmless
        await store.start()
        await store.set_value("k", "v")
        assert await store.get_value("k") == "v"

    backend.run(scenario)


@pytest.mark.parametrize("model", [PRO, "models/gemini-3-pro-preview:latest", "a|b c"])
def test_odd_model_names(backend: Backend, model: str) -> None:
    async def scenario(store: StateStore) -> None:
        cooldown = Cooldown(until=soon(), reason="rate_limited")
        await store.set_cooldown("key-1:x", model, cooldown)
        assert (await store.pool_state(["key-1:x"], model, time.time())).cooldowns == {"key-1:x": cooldown}
        assert (await store.pool_state(["key-1"], model, time.time())).cooldowns == {}
        await store.record_usage([UsageEvent("key-1:x", model, tokens_in=1)])
        assert await store.usage(["key-1:x"]) == {"key-1:x": {model: Usage(1, 1, 0, 0, None, 0.0)}}

    backend.run(scenario)


# -- calls made together (the SQLite and Redis stores send them in one batch)


def test_calls_made_together_get_their_own_answers(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        start = time.time()
        cooldown = Cooldown(until=start + 100, reason="rate_limited")
        await store.set_cooldown("a", PRO, cooldown)
        await store.set_disabled("c", "API_KEY_INVALID")
        before, after, other_model, cursor, backup, ids_b = await asyncio.gather(
            store.pool_state(["a", "b"], PRO, start),
            store.pool_state(["a", "b"], PRO, start + 200),
            store.pool_state(["a", "b"], FLASH, start),
            store.take_turn("primary"),
            store.take_turn("backup"),
            store.pool_state(["b", "c"], PRO, start),
        )
        assert before == PoolState({"a": cooldown})
        assert after == PoolState()
        assert other_model == PoolState()
        assert (cursor.cursor, backup.cursor) == (0, 0)
        assert ids_b == PoolState(disabled={"c": "API_KEY_INVALID"})

    backend.run(scenario)


def test_a_cancelled_call_does_not_disturb_the_others(backend: Backend) -> None:
    async def scenario(store: StateStore) -> None:
        calls = [asyncio.ensure_future(store.take_turn("primary")) for _ in range(10)]
        calls[3].cancel()
        done = await asyncio.gather(*calls, return_exceptions=True)
        values = [v.cursor for v in done if isinstance(v, Turn)]
        assert len(values) == 9
        assert len(set(values)) == 9
        # Later calls go on from where the batch left off.
        assert (await store.take_turn("primary")).cursor > max(values)

    backend.run(scenario)
