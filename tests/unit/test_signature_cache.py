"""The signature cache stays bounded in bytes and keeps what was used recently."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gemini_cli_proxy.signature_cache import STORE_TTL_SECONDS, SignatureCache
from gemini_cli_proxy.store import MemoryStore
from gemini_cli_proxy.translate.signatures import call_key, text_key

from support import Clock


def test_bounded_by_bytes_least_recently_used() -> None:
    cache = SignatureCache(max_bytes=30)  # each entry below is 1 + 9 = 10 bytes
    cache.put_many([("a", "1" * 9), ("b", "2" * 9), ("c", "3" * 9)])
    assert cache.get_many(["a"]) == {"a": "1" * 9}  # a is now the most recent
    cache.put_many([("d", "4" * 9)])
    assert len(cache) == 3 and cache.size_bytes == 30
    assert set(cache.get_many(["a", "b", "c", "d"])) == {"a", "c", "d"}
    cache.put_many([("a", "x")])  # replacing an entry frees its old size
    assert cache.size_bytes == 22


def test_a_huge_signature_never_grows_the_cache_past_its_limit() -> None:
    cache = SignatureCache(max_bytes=100)
    cache.put_many([("k", "s" * 1000)])
    assert cache.size_bytes <= 100


def test_keys_ignore_the_signature_suffix_and_hash_text_with_its_context() -> None:
    assert call_key("call_abc.sig.c2ln") == call_key("call_abc") == "call:call_abc"
    assert text_key("hello", "ctx") == text_key("hello", "ctx") != text_key("hello ", "ctx")
    assert text_key("4", "conversation one") != text_key("4", "conversation two")
    assert "hello" not in text_key("hello", "ctx")


class CountingStore(MemoryStore):
    """Counts the value calls, as round trips to a shared store."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.calls: list[str] = []

    async def get_value(self, key: str) -> str | None:
        self.calls.append("get_value")
        return await super().get_value(key)

    async def get_values(self, keys: Sequence[str]) -> list[str | None]:
        self.calls.append("get_values")
        values = []
        for key in keys:
            values.append(await super().get_value(key))
        return values

    async def set_value(self, key: str, value: str, ttl: float | None = None) -> None:
        self.calls.append("set_value")
        await super().set_value(key, value, ttl)

    async def set_values(self, items: Sequence[tuple[str, str, float | None]]) -> None:
        self.calls.append("set_values")
        for key, value, ttl in items:
            await super().set_value(key, value, ttl)


def test_the_store_tier_costs_one_round_trip_per_lookup_and_per_flush() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = CountingStore(clock)
        writer = SignatureCache(store)
        writer.put_many([(f"k{i}", f"sig{i}") for i in range(20)])
        await writer.flush()
        assert store.calls == ["set_values"]
        await writer.flush()  # nothing pending: no call
        assert store.calls == ["set_values"]

        store.calls.clear()
        reader = SignatureCache(store)  # another instance, or this one after a restart
        reader.put_many([("k0", "local")])
        keys = ["k0", "k1", "k2", "unknown"]
        assert await reader.lookup(keys, shared=False) == {"k0": "local"}
        assert store.calls == []
        assert await reader.lookup(keys, shared=True) == {"k0": "local", "k1": "sig1", "k2": "sig2"}
        assert store.calls == ["get_values"]  # the missing ones only, together
        assert reader.get_many(["k1", "k2"]) == {"k1": "sig1", "k2": "sig2"}  # kept locally
        clock.now += STORE_TTL_SECONDS  # shared for a day, no longer
        assert await SignatureCache(store).lookup(["k3"], shared=True) == {}

    asyncio.run(scenario())
