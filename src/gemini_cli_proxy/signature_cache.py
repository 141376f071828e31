"""Thought signatures remembered by the proxy (see translate.signatures), bounded in memory.

In-process for now: with several instances, the signature inside the tool call id and in
extra_content still works everywhere; this cache only rescues clients that strip both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

# Gemini 3 signs every reply and a signature can be several KB: bound the bytes, not the count.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


class SignatureCache:
    """A least-recently-used map of key -> signature whose total size stays under `max_bytes`."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._max_bytes = max_bytes
        self._bytes = 0

    @staticmethod
    def _size(key: str, signature: str) -> int:
        return len(key) + len(signature)

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for key in keys:
            signature = self._entries.get(key)
            if signature is not None:
                self._entries.move_to_end(key)
                found[key] = signature
        return found

    def put_many(self, pairs: Iterable[tuple[str, str]]) -> None:
        for key, signature in pairs:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= self._size(key, previous)
            self._entries[key] = signature
            self._bytes += self._size(key, signature)
        while self._bytes > self._max_bytes and self._entries:
            key, signature = self._entries.popitem(last=False)
            self._bytes -= self._size(key, signature)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
