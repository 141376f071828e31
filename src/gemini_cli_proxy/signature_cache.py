"""Thought signatures remembered by the proxy (see translate.signatures).

Two tiers: a byte-bounded LRU in this process, which answers almost every lookup, and the shared
state store behind it, written in batches off the request path, so that another instance (or this
one after a restart) can still find a signature a client stripped.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable

from .periodic import Periodic
from .store.base import StateStore

log = logging.getLogger("gemini_cli_proxy.signatures")

# Gemini 3 signs every reply and a signature can be several KB: bound the bytes, not the count.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
# A conversation left alone for a day has lost its signatures; Gemini then gets the skip value.
STORE_TTL_SECONDS = 24 * 3600.0
FLUSH_INTERVAL_SECONDS = 0.5
# Writes waiting for the store; beyond this the oldest are dropped (the local tier keeps them).
MAX_PENDING = 10_000
STORE_PREFIX = "signature:"


class SignatureCache:
    def __init__(self, store: StateStore | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._max_bytes = max_bytes
        self._bytes = 0
        self._store = store
        self._pending: list[tuple[str, str]] = []
        self._writer = Periodic(self.flush, interval=FLUSH_INTERVAL_SECONDS, name="signature-writer")

    @staticmethod
    def _size(key: str, signature: str) -> int:
        return len(key) + len(signature)

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        """What this process remembers."""
        found: dict[str, str] = {}
        for key in keys:
            signature = self._entries.get(key)
            if signature is not None:
                self._entries.move_to_end(key)
                found[key] = signature
        return found

    async def lookup(self, keys: list[str], *, shared: bool) -> dict[str, str]:
        """This process first; then, when `shared`, the state store for what is missing."""
        found = self.get_many(keys)
        missing = [key for key in keys if key not in found]
        if shared and missing and self._store is not None:
            values = await self._store.get_values([STORE_PREFIX + key for key in missing])
            remote = [(key, value) for key, value in zip(missing, values, strict=True) if value is not None]
            self._put_local(remote)
            found.update(remote)
        return found

    def put_many(self, pairs: Iterable[tuple[str, str]]) -> None:
        pairs = list(pairs)
        self._put_local(pairs)
        if self._store is not None:
            self._pending.extend(pairs)
            if len(self._pending) > MAX_PENDING:
                del self._pending[: len(self._pending) - MAX_PENDING]

    def _put_local(self, pairs: Iterable[tuple[str, str]]) -> None:
        for key, signature in pairs:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= self._size(key, previous)
            self._entries[key] = signature
            self._bytes += self._size(key, signature)
        while self._bytes > self._max_bytes and self._entries:
            key, signature = self._entries.popitem(last=False)
            self._bytes -= self._size(key, signature)

    async def flush(self) -> None:
        if not self._pending or self._store is None:
            return
        batch, self._pending = self._pending, []
        if getattr(self._store, "degraded", False):
            return  # an in-process fallback would only duplicate the local tier, without its bound
        try:
            await self._store.set_values(
                [(STORE_PREFIX + key, signature, STORE_TTL_SECONDS) for key, signature in batch]
            )
        except Exception as exc:  # the local tier still has them; sharing is best effort
            log.warning("could not share %d thought signatures: %s", len(batch), exc)

    def start(self) -> None:
        self._writer.start()

    async def stop(self) -> None:
        await self._writer.stop()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
