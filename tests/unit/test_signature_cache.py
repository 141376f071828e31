"""The signature cache stays bounded and keeps what was used recently."""

from __future__ import annotations

from gemini_cli_proxy.signature_cache import SignatureCache
from gemini_cli_proxy.translate.signatures import call_key, text_key


def test_bounded_least_recently_used() -> None:
    cache = SignatureCache(max_entries=3)
    cache.put_many([("a", "1"), ("b", "2"), ("c", "3")])
    assert cache.get_many(["a"]) == {"a": "1"}  # a is now the most recent
    cache.put_many([("d", "4")])
    assert len(cache) == 3
    assert cache.get_many(["a", "b", "c", "d"]) == {"a": "1", "c": "3", "d": "4"}


def test_keys_ignore_the_signature_suffix_and_hash_text() -> None:
    assert call_key("call_abc.sig.c2ln") == call_key("call_abc") == "call:call_abc"
    assert text_key("hello") == text_key("hello") != text_key("hello ")
    assert "hello" not in text_key("hello")
