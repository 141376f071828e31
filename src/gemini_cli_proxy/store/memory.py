"""memory://: state in this process only. For tests, single-process runs, and the fallback while a
shared store is unreachable. Every method runs without awaiting, so each is atomic on its loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ._batch import Totals, aggregate
from .base import Cooldown, PoolState, Turn, Usage, UsageEvent

# Expired values are swept every this many writes, so TTL'd keys (thought signatures) cannot pile up.
_SWEEP_EVERY = 1024


class MemoryStore:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._cursors: dict[str, int] = {}
        self._version = 0  # see Turn
        self._cooldowns: dict[tuple[str, str], Cooldown] = {}
        self._disabled: dict[str, str] = {}
        # What was cleared and not set again since, for the handover: as the fallback of a shared store,
        # a clear made here must undo the store's flag or cooldown too. A key is in the dict or in the
        # set, never both: where its last write put it. Bounded by the credentials and models there are.
        self._cleared_cooldowns: set[tuple[str, str]] = set()
        self._cleared_disabled: set[str] = set()
        self._usage: dict[str, dict[str, Totals]] = {}
        self._values: dict[str, tuple[str, float | None]] = {}  # key -> (value, expires at)
        self._writes = 0
        self._counts: dict[str, tuple[int, float]] = {}  # counter name -> (value, expires at)
        # Expired counters are swept once the dict reaches this size, which then becomes twice what
        # survived: a sweep per so many new names, never a scan per call.
        self._counts_sweep_at = _SWEEP_EVERY

    def __repr__(self) -> str:
        return "MemoryStore()"

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def take_turn(self, pool: str) -> Turn:
        value = self._cursors.get(pool, 0)
        self._cursors[pool] = value + 1
        return Turn(value, self._version)

    async def pool_state(self, credential_ids: Sequence[str], model: str, now: float) -> PoolState:
        # Walks the cooldowns and disabled flags there are, not the credentials asked about: a pool of
        # hundreds of keys is read on every request, and few of them are ever cooling at once.
        wanted = credential_ids if isinstance(credential_ids, frozenset | set) else set(credential_ids)
        own = {
            cred: cooldown
            for (cred, cooled_for), cooldown in self._cooldowns.items()
            if cooled_for == model and cred in wanted
        }
        cooldowns = {cred: cooldown for cred, cooldown in own.items() if cooldown.until > now}
        disabled = {cred: reason for cred, reason in self._disabled.items() if cred in wanted}
        struck = frozenset(cred for cred, cooldown in own.items() if cooldown.strikes)
        return PoolState(cooldowns, disabled, struck, self._version)

    def _strikes_of(self, credential_id: str, model: str) -> int:
        cooldown = self._cooldowns.get((credential_id, model))
        return 0 if cooldown is None else cooldown.strikes

    async def set_cooldown(self, credential_id: str, model: str, cooldown: Cooldown) -> None:
        # Expired entries stay: strikes() must still see them until clear_cooldown.
        self._cooldowns[(credential_id, model)] = cooldown
        self._cleared_cooldowns.discard((credential_id, model))
        self._version += 1

    async def set_cooldowns(self, credential_ids: Sequence[str], model: str, cooldown: Cooldown) -> None:
        # Through set_cooldown, which never suspends: still atomic, and a subclass's hook sees each key.
        for credential_id in credential_ids:
            await self.set_cooldown(credential_id, model, cooldown)

    async def clear_cooldown(self, credential_id: str, model: str) -> None:
        self._cooldowns.pop((credential_id, model), None)
        self._cleared_cooldowns.add((credential_id, model))
        self._version += 1

    async def strikes(self, credential_id: str, model: str) -> int:
        return self._strikes_of(credential_id, model)

    async def set_disabled(self, credential_id: str, reason: str) -> None:
        self._disabled[credential_id] = reason
        self._cleared_disabled.discard(credential_id)
        self._version += 1

    async def clear_disabled(self, credential_id: str) -> None:
        self._disabled.pop(credential_id, None)
        self._cleared_disabled.add(credential_id)
        self._version += 1

    async def record_usage(self, events: Iterable[UsageEvent]) -> None:
        for (cred, model), totals in aggregate(events).items():
            self._usage.setdefault(cred, {}).setdefault(model, Totals()).merge(totals)

    async def usage(self, credential_ids: Sequence[str]) -> dict[str, dict[str, Usage]]:
        return {
            cred: {model: totals.usage() for model, totals in self._usage[cred].items()}
            for cred in credential_ids
            if cred in self._usage
        }

    async def get_value(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= self._clock():
            del self._values[key]
            return None
        return value

    async def set_value(self, key: str, value: str, ttl: float | None = None) -> None:
        now = self._clock()
        self._values[key] = (value, None if ttl is None else now + ttl)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._values = {
                k: entry for k, entry in self._values.items() if entry[1] is None or entry[1] > now
            }

    async def get_values(self, keys: Sequence[str]) -> list[str | None]:
        return [await self.get_value(key) for key in keys]

    async def set_values(self, items: Sequence[tuple[str, str, float | None]]) -> None:
        for key, value, ttl in items:
            await self.set_value(key, value, ttl)

    async def add_counts(self, counts: Sequence[tuple[str, int, float]]) -> list[int]:
        now = self._clock()
        totals: list[int] = []
        for name, amount, expires_at in counts:
            value, until = self._counts.get(name, (0, 0.0))
            if until <= now:  # absent or its window is over: a new window starts from 0
                value = 0
            value += amount
            self._counts[name] = (value, max(until, expires_at))
            totals.append(value)
        if len(self._counts) >= self._counts_sweep_at:
            self._counts = {k: entry for k, entry in self._counts.items() if entry[1] > now}
            self._counts_sweep_at = max(_SWEEP_EVERY, 2 * len(self._counts))
        return totals

    def handover(self) -> Handover:
        """What this store learned, for ResilientStore to hand to the primary once it is back."""
        events = [
            UsageEvent(
                cred, model, t.requests, t.tokens_in, t.tokens_out, t.errors, t.last_error, t.last_used
            )
            for cred, models in self._usage.items()
            for model, t in models.items()
        ]
        return Handover(
            dict(self._cooldowns),
            dict(self._disabled),
            events,
            frozenset(self._cleared_cooldowns),
            frozenset(self._cleared_disabled),
        )


@dataclass(frozen=True, slots=True)
class Handover:
    """The last write to each key, a set (the dicts) or a clear (the sets); no key is in both."""

    cooldowns: dict[tuple[str, str], Cooldown]
    disabled: dict[str, str]
    usage: list[UsageEvent]
    cleared_cooldowns: frozenset[tuple[str, str]]  # (credential id, model)
    cleared_disabled: frozenset[str]
