"""A shared store that is unreachable must not fail requests: fall back to in-process state.

ResilientStore wraps the configured store. When a call fails because the store cannot be reached
(connection, OS, Redis or SQLite operational errors), it logs one warning, answers that call and the
following ones from a MemoryStore, and tries the primary again after `retry_after` seconds, so an
outage costs one failed attempt per `retry_after`, not one per request. Once the primary answers again
it gets what the fallback learned meanwhile (cooldowns and disabled flags set or cleared, usage), then
serves alone.
Other errors (bugs) propagate unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from redis.exceptions import RedisError

from .base import Cooldown, PoolState, StateStore, Turn, Usage, UsageEvent
from .memory import MemoryStore

log = logging.getLogger("gemini_cli_proxy.store")
T = TypeVar("T")


def is_unavailable(error: BaseException) -> bool:
    """Errors that say the store is out of reach (or broken), as opposed to a bug in the caller."""
    if isinstance(error, OSError | RedisError | sqlite3.OperationalError):
        return True
    # Plain DatabaseError is "file is not a database" and the like; its other subclasses
    # (IntegrityError, ProgrammingError, ...) are bugs.
    return type(error) is sqlite3.DatabaseError


class ResilientStore:
    def __init__(
        self,
        primary: StateStore,
        *,
        retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._fallback = MemoryStore()
        self._retry_after = retry_after
        self._clock = clock
        self._started = False  # the primary's start() has succeeded
        self._start_lock = asyncio.Lock()
        self._degraded = False
        self._recovering = False
        self._retry_at = 0.0

    def __repr__(self) -> str:
        return f"ResilientStore({self._primary!r})"

    @property
    def degraded(self) -> bool:
        """True while calls are served from in-process state."""
        return self._degraded

    def _degrade(self, error: BaseException) -> None:
        self._retry_at = self._clock() + self._retry_after
        if self._degraded:
            log.debug("state store still unavailable store=%r error=%r", self._primary, error)
            return
        self._degraded = True
        log.warning(
            "state store unavailable, using in-process state store=%r error=%r retry_in=%gs",
            self._primary,
            error,
            self._retry_after,
        )

    async def _recover(self) -> None:
        """Hand the primary what the fallback learned during the outage, then drop the fallback."""
        # Calls made meanwhile go to the primary (the retry time has passed), so the fallback holds
        # still; the flag keeps them from replaying the same handover.
        self._recovering = True
        try:
            handover = self._fallback.handover()
            # The last write to each key during the outage, replayed: clears too, or an /enable or a
            # success made meanwhile would leave the primary's older flag or cooldown in force. A key is
            # either set or cleared in a handover, so the order between them does not matter; every
            # step is idempotent, so a replay cut short is simply made again.
            for cred in handover.cleared_disabled:
                await self._primary.clear_disabled(cred)
            for cred, model in handover.cleared_cooldowns:
                await self._primary.clear_cooldown(cred, model)
            # A project's keys were cooled together, with one cooldown: they go back together.
            cooled: dict[tuple[str, Cooldown], list[str]] = {}
            for (cred, model), cooldown in handover.cooldowns.items():
                cooled.setdefault((model, cooldown), []).append(cred)
            for (model, cooldown), creds in cooled.items():
                await self._primary.set_cooldowns(creds, model, cooldown)
            for cred, reason in handover.disabled.items():
                await self._primary.set_disabled(cred, reason)
            if handover.usage:  # last and in one call: an atomic batch, so a failure cannot count twice
                await self._primary.record_usage(handover.usage)
        except Exception as error:
            if not is_unavailable(error):
                raise
            self._degrade(error)  # keep the fallback; the next attempt replays it (idempotent)
            return
        finally:
            self._recovering = False
        self._degraded = False
        self._fallback = MemoryStore()
        log.info("state store reachable again store=%r", self._primary)

    async def _start_primary_once(self) -> None:
        # Many requests may find the primary unstarted at once (after an outage at boot): one of
        # them starts it, the others wait, so only one client or connection is ever built.
        async with self._start_lock:
            if not self._started:
                await self._primary.start()
                self._started = True

    async def _call(self, op: Callable[[StateStore], Awaitable[T]]) -> T:
        if self._degraded and self._clock() < self._retry_at:
            return await op(self._fallback)
        try:
            if not self._started:
                await self._start_primary_once()
            result = await op(self._primary)
        except Exception as error:
            if not is_unavailable(error):
                raise
            self._degrade(error)
            return await op(self._fallback)
        if self._degraded and not self._recovering:
            await self._recover()
        return result

    async def start(self) -> None:
        await self._fallback.start()
        try:
            await self._primary.start()
        except Exception as error:
            if not is_unavailable(error):
                raise
            self._degrade(error)
        else:
            self._started = True

    async def close(self) -> None:
        await self._fallback.close()
        if not self._started:
            return
        self._started = False
        try:
            await self._primary.close()
        except Exception as error:
            if not is_unavailable(error):
                raise
            log.debug("state store did not close cleanly store=%r error=%r", self._primary, error)

    async def take_turn(self, pool: str) -> Turn:
        # Across a switch to the fallback and back, versions of two stores meet: one may repeat a
        # number the other gave, and a change goes unseen until the scheduler's snapshot ages out.
        return await self._call(lambda s: s.take_turn(pool))

    async def pool_state(self, credential_ids: Sequence[str], model: str, now: float) -> PoolState:
        return await self._call(lambda s: s.pool_state(credential_ids, model, now))

    async def set_cooldown(self, credential_id: str, model: str, cooldown: Cooldown) -> None:
        await self._call(lambda s: s.set_cooldown(credential_id, model, cooldown))

    async def set_cooldowns(self, credential_ids: Sequence[str], model: str, cooldown: Cooldown) -> None:
        await self._call(lambda s: s.set_cooldowns(credential_ids, model, cooldown))

    async def clear_cooldown(self, credential_id: str, model: str) -> None:
        await self._call(lambda s: s.clear_cooldown(credential_id, model))

    async def strikes(self, credential_id: str, model: str) -> int:
        return await self._call(lambda s: s.strikes(credential_id, model))

    async def set_disabled(self, credential_id: str, reason: str) -> None:
        await self._call(lambda s: s.set_disabled(credential_id, reason))

    async def clear_disabled(self, credential_id: str) -> None:
        await self._call(lambda s: s.clear_disabled(credential_id))

    async def record_usage(self, events: Iterable[UsageEvent]) -> None:
        batch = list(events)  # an iterator could only be consumed once, and the fallback may need it
        await self._call(lambda s: s.record_usage(batch))

    async def usage(self, credential_ids: Sequence[str]) -> dict[str, dict[str, Usage]]:
        return await self._call(lambda s: s.usage(credential_ids))

    async def get_value(self, key: str) -> str | None:
        return await self._call(lambda s: s.get_value(key))

    async def set_value(self, key: str, value: str, ttl: float | None = None) -> None:
        await self._call(lambda s: s.set_value(key, value, ttl))

    async def get_values(self, keys: Sequence[str]) -> list[str | None]:
        return await self._call(lambda s: s.get_values(keys))

    async def set_values(self, items: Sequence[tuple[str, str, float | None]]) -> None:
        await self._call(lambda s: s.set_values(items))

    async def add_counts(self, counts: Sequence[tuple[str, int, float]]) -> list[int]:
        # Not handed over on recovery: a window the outage overlapped counts in the primary only what
        # was added there, so it may undercount until it ends.
        return await self._call(lambda s: s.add_counts(counts))
