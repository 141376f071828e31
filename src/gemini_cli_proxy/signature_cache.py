"""Thought signatures remembered by the proxy (see translate.signatures), bounded in memory.

In-process for now: with several instances, the signature inside the tool call id and in
extra_content still works everywhere; this cache only rescues clients that strip both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class SignatureCache:
    """A least-recently-used map of key -> signature, so memory stays bounded under any load."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._max = max_entries

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
            self._entries[key] = signature
            self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
