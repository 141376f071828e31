"""Which credential serves the next request: round robin, cooldowns, disabling, backup pool.

This is the in-process scheduler; its state (cursor, cooldowns per credential and model, disabled
flags) lives in this object, owned by the app, never in module globals.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .. import errors
from ..errors import ProxyError
from ..upstream.errors import UpstreamError, Verdict
from .credentials import Credential

log = logging.getLogger("gemini_cli_proxy.pool")

DEFAULT_COOLDOWN_SECONDS = 60.0
QUOTA_ZONE = ZoneInfo("America/Los_Angeles")


def seconds_until_quota_reset(now: float) -> float:
    """Seconds from `now` (epoch) to the next midnight Pacific, when Google resets daily quotas."""
    local = dt.datetime.fromtimestamp(now, QUOTA_ZONE)
    midnight = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, midnight.timestamp() - now)


@dataclass(slots=True)
class _Cooldown:
    until: float
    daily: bool


class Scheduler:
    def __init__(
        self,
        credentials: Sequence[Credential],
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._primary = [c for c in credentials if c.pool == "primary"]
        self._backup = [c for c in credentials if c.pool == "backup"]
        self._clock = clock
        self._wall_clock = wall_clock
        self._cursor = {"primary": 0, "backup": 0}
        self._cooldowns: dict[tuple[str, str], _Cooldown] = {}
        self._disabled: dict[str, str] = {}

    @property
    def credentials(self) -> list[Credential]:
        return [*self._primary, *self._backup]

    def disabled_reason(self, cred: Credential) -> str | None:
        return self._disabled.get(cred.id)

    def _cooling(self, cred: Credential, model: str, now: float) -> _Cooldown | None:
        cooldown = self._cooldowns.get((cred.id, model))
        if cooldown is not None and cooldown.until <= now:
            del self._cooldowns[(cred.id, model)]
            return None
        return cooldown

    def _usable(self, pool: list[Credential], name: str, model: str) -> list[Credential]:
        now = self._clock()
        usable = [c for c in pool if c.id not in self._disabled and self._cooling(c, model, now) is None]
        if not usable:
            return []
        start = self._cursor[name] % len(usable)
        self._cursor[name] = start + 1
        return usable[start:] + usable[:start]

    def attempts(self, model: str) -> Iterator[Credential]:
        """The credentials to try for one request, in order; each at most once.

        The backup pool is used only once no primary credential is usable; a credential that
        fails during this request is re-checked, so one marked cooling is not tried again."""
        order = self._usable(self._primary, "primary", model) or self._usable(self._backup, "backup", model)
        if not order:
            raise self.exhausted(model)
        for cred in order:
            if cred.id in self._disabled or self._cooling(cred, model, self._clock()) is not None:
                continue
            yield cred
        if order[0].pool == "primary":
            yield from (c for c in self._usable(self._backup, "backup", model))

    def report(self, cred: Credential, model: str, failure: UpstreamError) -> None:
        now = self._clock()
        match failure.verdict:
            case Verdict.RATE_LIMITED:
                seconds = failure.retry_after if failure.retry_after is not None else DEFAULT_COOLDOWN_SECONDS
                self._cooldowns[(cred.id, model)] = _Cooldown(now + seconds, daily=False)
                log.warning("%s rate limited on %s; cooling down %.1fs", cred.label, model, seconds)
            case Verdict.QUOTA_EXHAUSTED:
                # Daily quotas reset at midnight Pacific; Google's RetryInfo on them is often short.
                seconds = seconds_until_quota_reset(self._wall_clock())
                self._cooldowns[(cred.id, model)] = _Cooldown(now + seconds, daily=True)
                log.warning("%s quota exhausted on %s; cooling down %.0fs", cred.label, model, seconds)
            case Verdict.CREDENTIAL_INVALID | Verdict.PERMISSION:
                reason = failure.message or failure.reason
                if failure.reason == "VALIDATION_REQUIRED":
                    reason = (
                        "Google asks to verify this account before use: sign in to it once in a browser "
                        f"(gemini-cli shows the link). {reason}"
                    )
                self._disabled[cred.id] = reason
                log.error("%s disabled: %s", cred.label, reason)
            case _:
                log.warning("%s failed on %s: %s", cred.label, model, failure)

    def exhausted(self, model: str) -> ProxyError:
        """The error for 'no credential can serve `model` now', with counts by state."""
        everyone = self.credentials
        if not everyone:
            return errors.no_credentials(
                "No Google credential is configured: set GEMINI_API_KEYS, GEMINI_OAUTH_CREDS or another "
                "credential setting."
            )
        now = self._clock()
        disabled = [c for c in everyone if c.id in self._disabled]
        cooling = [
            cd for c in everyone if c.id not in self._disabled and (cd := self._cooling(c, model, now))
        ]
        if not cooling:
            return errors.no_credentials(
                f"No credential can serve: {len(disabled)} of {len(everyone)} disabled after Google rejected "
                "them. Check the keys, or sign in again with gemini-cli; restart the proxy to re-enable."
            )
        wait = min(cd.until for cd in cooling) - now
        daily = all(cd.daily for cd in cooling)
        return errors.rate_limited(
            f"All credentials are rate limited for {model}: {len(cooling)} cooling down, "
            f"{len(disabled)} disabled. Retry after {max(1, round(wait))}s.",
            wait,
            daily=daily,
        )
