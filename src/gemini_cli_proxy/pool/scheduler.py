"""Which credential serves the next request: round robin, cooldowns, disabling, backup pool.

All state lives in the StateStore, so every instance sharing a store shares the rotation, the
cooldowns and the disabled flags. One pick costs at most two store calls: the round-robin cursor (only
when a pool has several usable credentials) and the pool's state for the model. The latter is kept for
`state_max_age` seconds (PROXY_STATE_MAX_AGE): reading a shared store on every request cost 12-16% of
the throughput, while a cooldown or disabled flag that another instance set reaches this one at most
that late (a few extra 429s at worst, each failed over). This process's own changes are seen at once,
and the checks that decide a cooldown's strikes always read the store.

Quota is per Google project and per model, not per key: credentials known to share a project cool
down together, and the rotation turns over projects, so that each gets a fair share whatever number
of usable keys it has. What Google's 429s teach beyond a cooldown (a project's per-minute limit, keys
that seem to share a project) orders the plan: see quota.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .. import errors
from ..credentials import ApiKeyCredential, Credential
from ..errors import ProxyError
from ..store.base import Cooldown, PoolState, StateStore, UsageEvent
from ..upstream.errors import UpstreamError, Verdict
from .quota import BUCKET_SECONDS, BUCKETS, QuotaBook

log = logging.getLogger("gemini_cli_proxy.pool")

QUOTA_ZONE = ZoneInfo("America/Los_Angeles")
# A 429 asking to wait no longer than this came in a quota window's last second.
LAST_SECOND = 1.0
# A shared count lives this long past the sliding minute it counts in.
COUNT_SLACK_SECONDS = 10.0


def seconds_until_quota_reset(now: float) -> float:
    """Seconds from `now` (epoch) to the next midnight Pacific, when Google resets daily quotas."""
    local = dt.datetime.fromtimestamp(now, QUOTA_ZONE)
    midnight = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, midnight.timestamp() - now)


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    default_seconds: float = 60.0  # a 429 without RetryInfo
    max_seconds: float = 3600.0  # growth stops here (a daily quota waits for its reset instead)


@dataclass(frozen=True, slots=True)
class _Rotation:
    usable: list[Credential]  # in turn order (see Scheduler._turn_order)
    projects: list[list[Credential]]  # the same, grouped by Google project


# Rotations kept (see Scheduler._rotation): one per set of unusable credentials seen, forgotten at this many.
MAX_ROTATIONS = 256


@dataclass(frozen=True, slots=True)
class _Snapshot:
    state: PoolState
    taken: float  # monotonic seconds


def _current(state: PoolState, now: float) -> PoolState:
    """`state` without the cooldowns that have ended by `now`: a kept snapshot ages correctly."""
    if all(cooldown.until > now for cooldown in state.cooldowns.values()):
        return state
    active = {cred: cooldown for cred, cooldown in state.cooldowns.items() if cooldown.until > now}
    return PoolState(active, state.disabled, state.struck, state.version)


class Scheduler:
    def __init__(
        self,
        credentials: Sequence[Credential],
        store: StateStore,
        *,
        clock: Callable[[], float],
        policy: CooldownPolicy | None = None,
        state_max_age: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        serves: Callable[[Credential, str], bool] | None = None,
        on_cooldown: Callable[[str, str, str], None] | None = None,
    ) -> None:
        """`serves(credential, model)`: whether the credential's kind of upstream has the model's
        method at all (Code Assist makes no embeddings); those that have not are left out of the
        model's plans, its rotation and its counts. None: every credential serves every model.
        `on_cooldown(credential id, kind, reason)`: told of each credential a cooldown begins for."""
        self._primary = [c for c in credentials if c.pool == "primary"]
        self._backup = [c for c in credentials if c.pool == "backup"]
        self._ids = [c.id for c in (*self._primary, *self._backup)]
        self._by_id = {c.id: c for c in (*self._primary, *self._backup)}
        self._pool_ids: dict[int, frozenset[str]] = {}
        self._turn_order: dict[int, list[Credential]] = {}
        for pool in (self._primary, self._backup):
            self._register(pool)
        self._serves = serves
        self._on_cooldown = on_cooldown
        # model -> its (primary, backup) pools, where `serves` leaves some credentials out of them.
        self._pools_of: dict[str, tuple[list[Credential], list[Credential]]] = {}
        # (pool, its unusable credentials) -> the rotation over the rest; see _rotation
        self._rotations: dict[tuple[int, frozenset[str]], _Rotation] = {}
        self._projects: dict[str, list[Credential]] = {}  # project key -> its credentials; see _project_of
        # (credential, model) -> when the cooldown this process set ends: see known_unusable. Bounded
        # by credentials x models, each entry overwritten by the next cooldown.
        self._cooled_until: dict[tuple[str, str], float] = {}
        # (project key, model) -> held while a 429 is turned into a cooldown; see report_failure.
        self._cooling_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._book = QuotaBook()
        self._store = store
        self._clock = clock  # wall clock: instances on several machines compare these times
        self._policy = policy or CooldownPolicy()
        # (credential, model) pairs this process cooled down; a success on one clears its strikes.
        self._struck: set[tuple[str, str]] = set()
        # model -> the credentials the last state read said have strikes, whoever struck them.
        self._struck_seen: dict[str, frozenset[str]] = {}
        self._max_age = state_max_age
        self._monotonic = monotonic  # ages snapshots; the wall clock may jump
        self._snapshots: dict[str, _Snapshot] = {}  # model -> the pool's state as last read
        # Bumped by every change this process makes: a read begun before a change must not be kept.
        self._generation = 0
        self._reads: dict[tuple[str, int], asyncio.Task[PoolState]] = {}
        self._version_seen = -1  # the last state version a turn showed that a read must follow

    def _register(self, pool: list[Credential]) -> None:
        self._pool_ids[id(pool)] = frozenset(c.id for c in pool)
        # The rotation turns in the order of the credentials' ids (stable hashes, the same in every
        # instance), not as configured: keys are mostly listed project by project, and a burst, or a
        # part of a lap, then went to a few projects' keys, where this spreads it over many.
        self._turn_order[id(pool)] = sorted(pool, key=lambda c: c.id)

    def _pools(self, model: str) -> tuple[list[Credential], list[Credential]]:
        """The primary and backup pools that can serve `model`: the configured ones, or their
        members that `serves` it, worked out once per model (the catalog bounds the models)."""
        if self._serves is None:
            return self._primary, self._backup
        pools = self._pools_of.get(model)
        if pools is None:
            pools = self._pools_of[model] = (
                self._serving(self._primary, model, self._serves),
                self._serving(self._backup, model, self._serves),
            )
        return pools

    def _serving(
        self, pool: list[Credential], model: str, serves: Callable[[Credential, str], bool]
    ) -> list[Credential]:
        subset = [c for c in pool if serves(c, model)]
        if len(subset) == len(pool):
            return pool  # the same list: models served by all share its rotations
        self._register(subset)
        return subset

    @property
    def credentials(self) -> list[Credential]:
        return [*self._primary, *self._backup]

    async def state(self, model: str) -> PoolState:
        """The pool's state for `model`, read from the store now."""
        return await self._store.pool_state(self._ids, model, self._clock())

    async def _recent_state(self, model: str) -> PoolState:
        """The pool's state for `model`, read at most `state_max_age` seconds ago. Concurrent
        requests share one read."""
        if self._max_age <= 0:
            return await self.state(model)
        snapshot = self._snapshots.get(model)
        if snapshot is not None and self._monotonic() - snapshot.taken < self._max_age:
            return _current(snapshot.state, self._clock())
        key = (model, self._generation)
        read = self._reads.get(key)
        if read is None:
            read = self._reads[key] = asyncio.ensure_future(self._read(model, self._generation))
            read.add_done_callback(lambda done: self._read_done(key, done))
        # shield: one caller giving up (a client disconnect) must not cancel the others' read.
        return _current(await asyncio.shield(read), self._clock())

    def _read_done(self, key: tuple[str, int], read: asyncio.Task[PoolState]) -> None:
        self._reads.pop(key, None)
        if not read.cancelled():
            read.exception()  # retrieved here too: every caller may have given up meanwhile

    async def _read(self, model: str, generation: int) -> PoolState:
        taken = self._monotonic()
        state = await self.state(model)
        if generation == self._generation:
            self._snapshots[model] = _Snapshot(state, taken)
        return state

    def _changed(self) -> None:
        """This process changed the shared state: forget what was read before."""
        self._generation += 1
        self._snapshots.clear()

    def _rotation(self, pool: list[Credential], state: PoolState) -> _Rotation:
        """`pool`'s usable credentials grouped by Google project, kept for each set of unusable ones:
        a pool of hundreds of keys is planned on every request, and its state rarely changes."""
        unusable = frozenset(c for c in (*state.cooldowns, *state.disabled) if c in self._pool_ids[id(pool)])
        key = (id(pool), unusable)
        rotation = self._rotations.get(key)
        if rotation is None:
            if len(self._rotations) >= MAX_ROTATIONS:
                self._rotations.clear()
            usable = [c for c in self._turn_order[id(pool)] if c.id not in unusable]
            groups: dict[str, list[Credential]] = {}
            for cred in usable:
                groups.setdefault(cred.project_key(), []).append(cred)
            rotation = self._rotations[key] = _Rotation(usable, list(groups.values()))
        return rotation

    def _rotated(self, rotation: _Rotation, turn: int) -> list[Credential]:
        """The usable credentials in rotation, fair to Google projects: quota is per project, so each
        turn goes to the next project that can serve, and within it to its next usable key; the other
        projects follow as failovers, one key of each before a second of any. The cursor is per pool
        and model: one for all models let two models on two keys each keep to one key. Turning over
        keys instead gave a key that follows unusable ones (invalid, spent) their turns too: 0.4-2.0x
        a fair share of successes per project, where this keeps to a fair rotation's. The turn is
        taken modulo the usable projects, which spaces each project's turns evenly; a cursor over
        every project, usable or not, with an unusable one's turns handed round the others, moved
        fewer turns when a cooldown began or ended, but gave some projects two turns in a lap:
        1.04-1.06 upstream calls a request at 90% load where this gives 1.00, and 3.0 at 130% with
        300 keys over two instances (1.6 here)."""
        usable, projects = rotation.usable, rotation.projects
        if len(usable) <= 1:
            return list(usable)
        first, lap = turn % len(projects), turn // len(projects)
        if len(projects) == len(usable):  # a key each (the usual AI Studio pool): a slice
            return usable[first:] + usable[:first]
        ordered = projects[first:] + projects[:first]
        out: list[Credential] = []
        for level in range(max(len(keys) for keys in ordered)):
            out.extend(keys[(lap + level) % len(keys)] for keys in ordered if level < len(keys))
        return out

    async def plan(self, model: str) -> list[Credential]:
        """The credentials to try for one request, in order, each at most once: the usable
        primaries in rotation, then the usable backups (the backup pool serves only when no
        primary can). Raises the 429/503 answer when nothing is usable."""
        state = await self._recent_state(model)
        primary_pool, backup_pool = self._pools(model)
        primary = self._rotation(primary_pool, state)
        turn = 0
        if len(primary.usable) > 1:
            turn, version = await self._store.take_turn(f"primary:{model}")
            if version != state.version:
                # Another request or instance changed the state since it was read (a 429, a key
                # found invalid): plan with the change. Waiting for the snapshot to age out, instances
                # planned with different sets of usable keys, so that their shared turns landed on
                # some keys twice (0.6-1.5x a fair share per key with two instances, 0.9-1.2x alone)
                # and each learned a spent key by its own 429.
                state = await self._state_of_version(model, version)
                primary = self._rotation(primary_pool, state)
        self._struck_seen[model] = state.struck
        backup = self._rotation(backup_pool, state)
        if not primary.usable and not backup.usable:
            raise self._exhausted(model, state)
        order = self.deferring(self._rotated(primary, turn), model)
        if len(backup.usable) > 1:
            backup_turn = (await self._store.take_turn(f"backup:{model}")).cursor
            order += self.deferring(self._rotated(backup, backup_turn), model)
        elif backup.usable:
            order += backup.usable
        return order

    async def _state_of_version(self, model: str, version: int) -> PoolState:
        """The state as read after the store's state version became `version`: the first request to
        see that version makes the snapshots stale, the others share its read."""
        if version != self._version_seen:
            self._version_seen = version
            self._changed()
        return await self._recent_state(model)

    def deferring(self, order: list[Credential], model: str) -> list[Credential]:
        """`order` with the credentials presumed spent (quota.py) moved to its end, else as it was:
        a guess never keeps a credential from serving, it only asks the others first."""
        if not self._book.active or len(order) <= 1:
            return order
        keys, projects = self._book.presumed(model, self._clock())
        if not keys and not projects:
            return order
        later = [c for c in order if c.id in keys or c.project_key() in projects]
        if not later:
            return order
        deferred = set(map(id, later))
        return [c for c in order if id(c) not in deferred] + later

    def known_unusable(self, cred: Credential, model: str) -> bool:
        """`cred` cannot serve `model` since after a request's plan was made: a cooldown this process
        set (another request's 429 on that key or its project), or a cooldown or disabled flag the
        latest state read holds (another instance's, read when a later plan's turn showed the change).
        The request skips the key instead of hearing Google say it again; with two instances and 300
        keys, each spent key was otherwise asked by both (1.5-1.9 upstream calls a request at 130%
        load, 1.2 alone)."""
        now = self._clock()
        until = self._cooled_until.get((cred.id, model))
        if until is not None and until > now:
            return True
        snapshot = self._snapshots.get(model)
        if snapshot is None:
            return False
        cooldown = snapshot.state.cooldowns.get(cred.id)
        return (cooldown is not None and cooldown.until > now) or cred.id in snapshot.state.disabled

    async def report_failure(
        self, cred: Credential, model: str, failure: UpstreamError, *, sent_at: float | None = None
    ) -> None:
        """Acts on Google's verdict on one call. `sent_at` (epoch seconds) is when the call left: a
        quota window's end is taken as that plus Google's delay, the earliest moment it can be. From
        when the answer was read instead, the cooldown outlasted the window by the answer's way back
        (and under load by the event loop's lag), and requests in that gap were refused while the
        project could serve."""
        now = self._clock()
        start = now if sent_at is None else min(sent_at, now)
        if failure.consumer and isinstance(cred, ApiKeyCredential) and cred.project is None:
            cred.project = failure.consumer.removeprefix("projects/")  # now it cools down with its siblings
            self._rotations.clear()  # and turns with them
            self._projects.clear()
        match failure.verdict:
            case Verdict.RATE_LIMITED:
                self._book.rate_limited(
                    cred.id,
                    cred.project_key(),
                    model,
                    start,
                    failure.retry_after,
                    failure.quota_values,
                    infer_siblings=isinstance(cred, ApiKeyCredential) and cred.project is None,
                )
                # One 429 of a project at a time, from "already cooling?" to the cooldown written: on
                # a store that awaits, concurrent 429s of one episode interleaved there, and a later
                # one read the first one's strike and added a second (a doubled cooldown). (Another
                # instance's 429 at the same moment can still race this; the store has no
                # compare-and-set for it.)
                async with self._cooling_locks[(cred.project_key(), model)]:
                    if await self._cooling(cred, model, now):
                        # A request that was already in flight when this episode's cooldown was
                        # set: the same rate limit, not a new strike.
                        return
                    previous = await self._store.strikes(cred.id, model)
                    base = (
                        failure.retry_after
                        if failure.retry_after is not None
                        else self._policy.default_seconds
                    )
                    if base <= LAST_SECOND:
                        # A 429 in a quota window's last second: the window ends now, so the key is
                        # no worse than before it; wait the window out without a strike.
                        strikes, seconds = previous, base
                    else:
                        strikes = previous + 1
                        seconds = min(self._policy.max_seconds, base * 2 ** (strikes - 1))
                    await self._cool_project(cred, model, Cooldown(start + seconds, "rate_limited", strikes))
                log.warning(
                    "%s rate limited on %s; cooling down %.1fs (strike %d)",
                    cred.label,
                    model,
                    seconds,
                    strikes,
                )
            case Verdict.QUOTA_EXHAUSTED:
                # Daily quotas reset at midnight Pacific, and Google's RetryInfo on them is often
                # short; a quota Google gave a long but definite delay for waits that delay.
                until = now + seconds_until_quota_reset(now)
                if not failure.is_daily() and failure.retry_after is not None:
                    until = start + failure.retry_after
                seconds = until - now
                await self._cool_project(cred, model, Cooldown(until, "quota_exhausted"))
                log.warning("%s quota exhausted on %s; cooling down %.0fs", cred.label, model, seconds)
            case Verdict.CREDENTIAL_INVALID | Verdict.PERMISSION:
                reason = failure.message or failure.reason
                if failure.reason == "VALIDATION_REQUIRED":
                    reason = (
                        "Google asks to verify this account before use: sign in to it once in a browser "
                        f"(gemini-cli shows the link). {reason}"
                    )
                try:
                    await self._store.set_disabled(cred.id, reason)
                finally:
                    self._changed()  # also when cancelled mid-write: the store may have it anyway
                log.error("%s disabled: %s", cred.label, reason)
            case _:
                # Capacity, 5xx, unreachable: Google's trouble, not the credential's.
                log.warning("%s failed on %s: %s", cred.label, model, failure)

    async def _cool_project(self, cred: Credential, model: str, cooldown: Cooldown) -> None:
        try:
            members = self._project_of(cred)
            for other in members:
                self._struck.add((other.id, model))
                self._cooled_until[(other.id, model)] = cooldown.until
            # One round trip for the whole project, however many keys share it.
            await self._store.set_cooldowns([other.id for other in members], model, cooldown)
            if self._on_cooldown is not None:
                for other in members:
                    self._on_cooldown(other.id, other.kind, cooldown.reason)
        finally:
            self._changed()  # also when cancelled mid-write: the store may have it anyway

    async def _cooling(self, cred: Credential, model: str, now: float) -> bool:
        return cred.id in (await self._store.pool_state([cred.id], model, now)).cooldowns

    async def report_success(
        self, cred: Credential, model: str, *, probe: bool = False, sent_at: float | None = None
    ) -> None:
        """A success forgets the strikes, so the next 429 starts from the base delay: whichever
        instance struck them (the store's state says who has strikes). Only once the cooldown is
        over: a request begun before the 429 may finish after it. A `probe` (an explicit test
        through this credential) also ends a running cooldown early. `sent_at` (epoch seconds)
        is when the request left: what it proves about other keys' projects depends on it."""
        now = self._clock()
        self._book.served(cred.id, cred.project_key(), model, now if sent_at is None else sent_at, now)
        # The whole project's: a 429 struck every key known to share its quota, and a success through
        # any of them shows that quota back. Clearing only this key's left its siblings' strikes, and
        # the next 429 through one of them doubled the project's cooldown past its window's end.
        seen = self._struck_seen.get(model, frozenset())
        struck = [c for c in self._project_of(cred) if (c.id, model) in self._struck or c.id in seen]
        if not struck and not probe:
            return
        if probe or not await self._cooling(cred, model, now):
            try:
                for member in struck if cred in struck else [cred, *struck]:
                    self._struck.discard((member.id, model))
                    self._cooled_until.pop((member.id, model), None)
                    await self._store.clear_cooldown(member.id, model)
            finally:
                self._changed()

    def _project_of(self, cred: Credential) -> list[Credential]:
        """`cred` and the credentials known to share its Google project."""
        members = self._projects.get(cred.project_key())
        if members is None:
            self._projects = {}
            for other in self.credentials:
                self._projects.setdefault(other.project_key(), []).append(other)
            members = self._projects[cred.project_key()]
        return members

    async def count_usage(self, events: list[UsageEvent]) -> None:
        """Adds what was sent through projects with a known per-minute limit to the shared counts of
        the last minute, and learns the totals that all instances sent: called with each batch of
        usage events (pool/usage.py), off the request path."""
        now = self._clock()
        for event in events:
            cred = self._by_id.get(event.credential_id)
            if cred is not None and not event.errors:
                self._book.tokens_used(cred.project_key(), event.model, event.tokens_in, now)
        pending = self._book.take_pending(now)
        if not pending:
            return
        totals = await self._store.add_counts(
            [
                (
                    "\x1f".join(("sent", project, model, metric, str(bucket))),
                    amount,
                    # Kept while the bucket is within the sliding minute, and a little longer: instances'
                    # clocks differ a little.
                    (bucket + BUCKETS + 1) * BUCKET_SECONDS + COUNT_SLACK_SECONDS,
                )
                for project, model, metric, bucket, amount in pending
            ]
        )
        for (project, model, metric, bucket, _), total in zip(pending, totals, strict=True):
            self._book.counted(project, model, metric, bucket, total, now)

    def inferred_siblings(self) -> tuple[bool, list[tuple[Credential, Credential]]]:
        """Whether keys of one project are being inferred from 429s (quota.py), and the pairs taken
        for siblings now."""
        pairs = [(self._by_id[a], self._by_id[b]) for a, b in self._book.sibling_links()]
        return self._book.inferring_siblings, pairs

    async def enable(self, cred: Credential) -> None:
        try:
            await self._store.clear_disabled(cred.id)
        finally:
            self._changed()

    async def exhausted(self, model: str) -> ProxyError:
        state = await self.state(model)
        if any(self._rotation(pool, state).usable for pool in self._pools(model)):
            # This request ran out of attempts or time, but other credentials are free.
            return errors.rate_limited(
                f"The credentials tried for {model} were rate limited; others are free: retry now.", 1.0
            )
        return self._exhausted(model, state)

    def _exhausted(self, model: str, state: PoolState) -> ProxyError:
        """The error for 'no credential can serve `model` now', with counts by state."""
        if not self.credentials:
            return errors.no_credentials(
                "No Google credential is configured: set GEMINI_API_KEYS, VERTEX_CREDENTIALS, "
                "GEMINI_OAUTH_CREDS or another credential setting."
            )
        primary, backup = self._pools(model)
        everyone = [*primary, *backup]
        if not everyone:
            kinds = ", ".join(sorted({c.kind for c in self.credentials}))
            return errors.no_credentials(
                f"No configured credential can serve {model}: the pool holds only credentials of "
                f"kinds without that method ({kinds}). Add an AI Studio key or a Vertex credential."
            )
        disabled = [c for c in everyone if c.id in state.disabled]
        cooling = [
            state.cooldowns[c.id] for c in everyone if c.id not in state.disabled and c.id in state.cooldowns
        ]
        if not cooling:
            return errors.no_credentials(
                f"No credential can serve: {len(disabled)} of {len(everyone)} disabled after Google rejected "
                "them. Check the keys, or sign in again with gemini-cli; restart the proxy to re-enable."
            )
        wait = min(cooldown.until for cooldown in cooling) - self._clock()
        daily = all(cooldown.reason == "quota_exhausted" for cooldown in cooling)
        return errors.rate_limited(
            f"All credentials are rate limited for {model}: {len(cooling)} cooling down, "
            f"{len(disabled)} disabled. Retry after {max(1, round(wait))}s.",
            wait,
            daily=daily,
        )
