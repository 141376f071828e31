"""The StateStore protocol: everything instances of the proxy share.

Times are absolute epoch seconds (wall clock), since instances on several machines compare them.
Keys are credential ids (stable hashes, never secrets) and model ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


@dataclass(frozen=True, slots=True)
class Cooldown:
    until: float  # epoch seconds
    reason: str  # "rate_limited" | "quota_exhausted" | ...
    strikes: int = 1  # consecutive 429s that led here; cooldowns grow with it


@dataclass(slots=True)
class UsageEvent:
    """One request's outcome, recorded in batches off the request path."""

    credential_id: str
    model: str
    requests: int = 1
    tokens_in: int = 0
    tokens_out: int = 0
    errors: int = 0
    last_error: str | None = None
    at: float = 0.0  # epoch seconds


@dataclass(slots=True)
class Usage:
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    errors: int = 0
    last_error: str | None = None
    last_used: float = 0.0


@dataclass(frozen=True, slots=True)
class PoolState:
    """What the scheduler needs for one pick, read in one round trip."""

    cooldowns: dict[str, Cooldown] = field(default_factory=dict)  # credential id -> active cooldown
    disabled: dict[str, str] = field(default_factory=dict)  # credential id -> reason
    # Credentials with strikes recorded for exactly this model, their cooldown over or not: a success
    # through any instance then clears them, so the next 429 starts from the base delay again.
    struck: frozenset[str] = field(default=frozenset(), compare=False)
    # The store's state version (see Turn) read before this state: a turn that names another version
    # shows a change this state may not have.
    version: int = field(default=0, compare=False)


class Turn(NamedTuple):
    """A round-robin turn, with the state version: a number every change of a cooldown or a disabled
    flag changes, in whichever process sharing the store made it. One round trip for both, so every
    request learns whether the state it planned with is still current, without reading that state."""

    cursor: int
    version: int


class StateStore(Protocol):
    """Implemented by MemoryStore, SqliteStore and RedisStore; one contract suite tests all."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def take_turn(self, pool: str) -> Turn:
        """Atomically increment the round-robin cursor of `pool`; returns the value before and the
        state's version."""
        ...

    async def pool_state(self, credential_ids: Sequence[str], model: str, now: float) -> PoolState:
        """Active cooldowns for `model` and disabled flags, and the state's version read before them
        (a change made meanwhile shows in the next turn's)."""
        ...

    # Each of the changes below also changes the state's version, atomically with the change.

    async def set_cooldown(self, credential_id: str, model: str, cooldown: Cooldown) -> None: ...

    async def set_cooldowns(self, credential_ids: Sequence[str], model: str, cooldown: Cooldown) -> None:
        """set_cooldown for each of `credential_ids` (every key of a Google project), in one round trip
        and atomically: the version changes once or once per key."""
        ...

    async def clear_cooldown(self, credential_id: str, model: str) -> None: ...

    async def strikes(self, credential_id: str, model: str) -> int:
        """The `strikes` of the last cooldown set for exactly (credential, model), even when it has
        expired, until clear_cooldown; 0 when none. Cooldowns grow with consecutive 429s."""
        ...

    async def set_disabled(self, credential_id: str, reason: str) -> None: ...

    async def clear_disabled(self, credential_id: str) -> None: ...

    async def record_usage(self, events: Iterable[UsageEvent]) -> None: ...

    async def usage(self, credential_ids: Sequence[str]) -> dict[str, dict[str, Usage]]:
        """credential id -> model -> totals."""
        ...

    async def get_value(self, key: str) -> str | None: ...

    async def set_value(self, key: str, value: str, ttl: float | None = None) -> None:
        """A small shared value (OAuth token, Code Assist project, thought signature, stored
        response), with an optional time to live in seconds; a ttl of 0 or less removes it."""
        ...

    async def get_values(self, keys: Sequence[str]) -> list[str | None]:
        """get_value of each key, in the order given, in one round trip."""
        ...

    async def set_values(self, items: Sequence[tuple[str, str, float | None]]) -> None:
        """set_value of each (key, value, ttl), in one round trip; a key given twice keeps the later."""
        ...

    async def add_counts(self, counts: Sequence[tuple[str, int, float]]) -> list[int]:
        """Windowed shared counters (requests or tokens sent through a Google project in one quota
        window). Each entry is (name, amount, expires_at): atomically add `amount` (>= 0; 0 just reads)
        to the counter `name`, which starts from 0 when absent or when its expiry has passed, and lives
        until `expires_at` (epoch seconds; an entry may push the expiry later, never earlier). Returns each
        counter's total after the addition, in the order given. One round trip for the whole batch."""
        ...
