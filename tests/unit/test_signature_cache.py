"""The signature cache stays bounded in bytes and keeps what was used recently."""

from __future__ import annotations

from gemini_cli_proxy.signature_cache import SignatureCache
from gemini_cli_proxy.translate.signatures import call_key, text_key


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
