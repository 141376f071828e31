"""Each credential's requests and tokens today, shared by every instance through the store's windowed
counters. "Today" is Google's quota day, which ends at midnight Pacific time (its daily quotas reset
then), so that the status page's numbers sit beside the quota they spend."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..store.base import StateStore, UsageEvent
from .scheduler import QUOTA_ZONE, seconds_until_quota_reset

# A day's counters outlive its end by a day: an instance whose clock runs a little behind still adds
# to (and reads) the right one.
KEEP_AFTER_DAY_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class Today:
    requests: int = 0
    tokens: int = 0  # in and out


def quota_day(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, QUOTA_ZONE).date().isoformat()


def _name(day: str, credential_id: str, metric: str) -> str:
    return "\x1f".join(("day", day, credential_id, metric))


def day_counts(events: Iterable[UsageEvent]) -> list[tuple[str, int, float]]:
    """The additions a batch of usage events makes to the day counters, one per counter."""
    sums: defaultdict[tuple[str, str, str], int] = defaultdict(int)
    ends: dict[str, float] = {}
    for event in events:
        day = quota_day(event.at)
        ends.setdefault(day, event.at + seconds_until_quota_reset(event.at) + KEEP_AFTER_DAY_SECONDS)
        if event.requests:
            sums[(day, event.credential_id, "requests")] += event.requests
        if event.tokens_in or event.tokens_out:
            sums[(day, event.credential_id, "tokens")] += event.tokens_in + event.tokens_out
    return [(_name(day, cred, metric), amount, ends[day]) for (day, cred, metric), amount in sums.items()]


async def today(store: StateStore, credential_ids: Sequence[str], now: float) -> dict[str, Today]:
    """Each credential's counts for the quota day of `now` (adding 0 reads a counter)."""
    day = quota_day(now)
    expires = now + seconds_until_quota_reset(now) + KEEP_AFTER_DAY_SECONDS
    names = [_name(day, cred, metric) for cred in credential_ids for metric in ("requests", "tokens")]
    totals = await store.add_counts([(name, 0, expires) for name in names])
    return {
        cred: Today(totals[2 * index], totals[2 * index + 1]) for index, cred in enumerate(credential_ids)
    }
