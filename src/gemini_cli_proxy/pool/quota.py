"""What Google's 429s teach about its per-minute quotas, used to order credentials, never to refuse one.

Two guesses are made here, and both only move a credential to the end of a request's plan ("presumed
spent"): a wrong guess then costs one failover at most, never a client 429 while quota is left. What
Google says for certain (a 429 on that very credential) is the cooldown's business (scheduler.py).

- Pacing: a 429's `QuotaFailure` names the quota (`GenerateRequestsPerMinutePerProjectPerModel`,
  `GenerateContentInputTokensPerModelPerMinute`) and its limit (`quotaValue`). From then on the
  requests and input tokens sent through that project are counted in 10-second buckets (shared
  between instances through the store), and a project that has sent its limit within the last minute
  is presumed spent: it is asked last instead of being asked to say 429 again. A sliding minute, not
  the window a 429's delay places: where Google's windows begin is not said, an instance sees only
  the 429s that reach it, and windows placed from those drifted (measured: a project counted over two
  windows was paced out with half its quota left, 0.4-2.0x a fair share). Below the pool's capacity no
  project sends its limit in a minute, so pacing leaves a fair rotation as it is. A project that
  serves more than twice its limit within a minute (no per-minute window allows that), or whose 429s
  name window ends less than a minute apart, shows the quota's window is shorter than its name says:
  that model is not paced by that metric again, for any project (pacing some projects and not others
  deferred the paced ones for a minute at half load).
- Siblings: AI Studio's 429s never name the Google project, and quota is per project. Keys whose
  per-minute 429s name the same window end in two windows are taken for siblings unless one of them
  ever served while the other's project was spent; a 429 on one then presumes its siblings spent
  until that window ends. That tells keys apart only where projects' windows end at different
  moments. Where they end together (measured: with aligned windows, 9 in 10 keys taken for siblings
  were not), keys known to be of different projects keep naming the same ends, and the inference
  turns itself off.

Pure bookkeeping: no I/O, no clock of its own (every call is given `now`, epoch seconds).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

REQUESTS = "requests"
INPUT_TOKENS = "input_tokens"
PER_MINUTE = 60.0
BUCKET_SECONDS = 10.0  # the sliding minute is counted in buckets this long
BUCKETS = math.ceil(PER_MINUTE / BUCKET_SECONDS)
# Two 429s name the same window end when their ends differ by less than this: the delays come exact
# to the microsecond, the time they arrived here a few milliseconds apart. (0.25 s took keys of
# projects whose windows happened to end within it for siblings: 76 of 166 pairs in a simulation.)
SAME_WINDOW = 0.1
# Two per-minute 429s of one project that name window ends this far apart (more than a delay's
# rounding, less than a minute less that rounding) show windows shorter than a minute.
WINDOW_ENDS_APART = (2.0, PER_MINUTE - 5.0)
# A pair of keys is taken for siblings after this many windows in which both were spent together.
SIBLING_EVIDENCE = 2
# Bounds the pairs remembered: a pool of 1,000 keys has half a million; the guesses are worth less.
MAX_PAIRS = 200_000
# Windows are taken for aligned across projects once this many pairs of keys known apart were seen
# spent at once, and most of them named the same window end (unaligned: about 2 * SAME_WINDOW / 60).
ALIGNMENT_SAMPLE = 20


@dataclass(frozen=True, slots=True)
class Limit:
    metric: str  # REQUESTS or INPUT_TOKENS
    value: int


def per_minute_limits(quota_values: Iterable[tuple[str, int]]) -> list[Limit]:
    """The per-minute limits a 429's QuotaFailure names, by the metric each counts."""
    limits = []
    for quota_id, value in quota_values:
        if "PerMinute" not in quota_id or value <= 0:
            continue
        metric = INPUT_TOKENS if "Token" in quota_id else REQUESTS
        limits.append(Limit(metric, value))
    return limits


def bucket_of(now: float) -> int:
    """The 10-second bucket `now` (epoch seconds) counts in: the same in every instance."""
    return math.floor(now / BUCKET_SECONDS)


@dataclass(slots=True)
class _Spent:
    """A key's per-minute 429 whose window has not ended."""

    at: float  # when the 429 arrived
    end: float  # when its window ends


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


class QuotaBook:
    """Per (project, model): learned limits and what was sent in the last minute; per model: which
    keys have been spent together, and which have been seen to be no siblings."""

    def __init__(self) -> None:
        self._limits: dict[tuple[str, str], dict[str, int]] = {}
        # (project, model, metric) -> bucket -> total, as the store last counted it (all instances)
        self._counted: dict[tuple[str, str, str], dict[int, int]] = {}
        # (project, model, metric) -> bucket -> sent here and not yet given to the store
        self._pending: dict[tuple[str, str, str], Counter[int]] = {}
        self._spent: dict[str, dict[str, _Spent]] = {}  # model -> key -> its open 429
        self._together: dict[tuple[str, str], int] = {}  # key pair -> windows spent together
        self._last_together: dict[tuple[str, str], float] = {}  # key pair -> the window end last counted
        self._apart: set[tuple[str, str]] = set()  # key pairs seen not to share a project
        self._siblings: dict[str, set[str]] = {}  # key -> the keys taken for its siblings
        self._presumed: dict[tuple[str, str], float] = {}  # (key, model) -> until when
        self._paced_out: dict[tuple[str, str], float] = {}  # (project, model) -> until when
        self._not_per_minute: set[tuple[str, str]] = set()  # (model, metric): see _stop_pacing
        self._window_ends: dict[tuple[str, str], float] = {}  # (project, model) -> its last 429's end
        self._apart_spent = 0  # pairs of keys known apart seen spent at once...
        self._apart_same_end = 0  # ...and of those, naming the same window end
        self._aligned = False  # windows end together across projects: siblings cannot be told

    @property
    def active(self) -> bool:
        """Anything presumed spent: when not, ordering a plan costs nothing."""
        return bool(self._paced_out or self._presumed)

    # -- what Google said ---------------------------------------------------------------------------

    def rate_limited(
        self,
        key: str,
        project: str,
        model: str,
        now: float,
        delay: float | None,
        quota_values: Iterable[tuple[str, int]],
        *,
        infer_siblings: bool,
    ) -> None:
        """A per-minute 429 on `key` (of `project`, or of an unknown one when `infer_siblings`)."""
        limits = per_minute_limits(quota_values)
        if limits:
            self._limits.setdefault((project, model), {}).update((lim.metric, lim.value) for lim in limits)
            if delay is not None:
                self._check_window(project, model, now + delay, [lim.metric for lim in limits])
        if delay is not None and infer_siblings:
            self._spent_together(key, model, now, now + delay)

    def _spent_together(self, key: str, model: str, now: float, end: float) -> None:
        if self._aligned:
            return
        spent = self._spent.setdefault(model, {})
        for other, entry in list(spent.items()):
            if entry.end <= now:
                del spent[other]
        spent[key] = _Spent(now, end)
        for other, entry in spent.items():
            if other == key:
                continue
            pair = _pair(key, other)
            same_end = abs(entry.end - end) < SAME_WINDOW
            if pair in self._apart:
                self._apart_spent += 1
                self._apart_same_end += same_end
                continue
            if not same_end or abs(self._last_together.get(pair, -1.0) - end) < SAME_WINDOW:
                continue  # another window, or this window already counted for the pair
            if pair not in self._together and len(self._together) >= MAX_PAIRS:
                continue
            self._together[pair] = count = self._together.get(pair, 0) + 1
            self._last_together[pair] = end
            if count >= SIBLING_EVIDENCE:
                self._siblings.setdefault(key, set()).add(other)
                self._siblings.setdefault(other, set()).add(key)
        if self._apart_spent >= ALIGNMENT_SAMPLE and 2 * self._apart_same_end > self._apart_spent:
            self._turn_off_siblings()
            return
        for sibling in self._siblings.get(key, ()):
            self._presumed[(sibling, model)] = max(end, self._presumed.get((sibling, model), 0.0))

    def _turn_off_siblings(self) -> None:
        """Windows end together across projects: a window end says nothing of a project."""
        self._aligned = True
        self._together.clear()
        self._last_together.clear()
        self._siblings.clear()
        self._apart.clear()
        self._presumed.clear()
        self._spent.clear()

    @property
    def inferring_siblings(self) -> bool:
        return not self._aligned

    def sibling_links(self) -> list[tuple[str, str]]:
        """The key pairs taken for siblings now."""
        return sorted(_pair(a, b) for a, others in self._siblings.items() for b in others if a < b)

    def _set_apart(self, a: str, b: str) -> None:
        pair = _pair(a, b)
        if pair not in self._together and len(self._apart) >= MAX_PAIRS:
            return  # never seen spent together: nothing to correct, and memory is bounded
        self._apart.add(pair)
        self._together.pop(pair, None)
        self._last_together.pop(pair, None)
        self._siblings.get(a, set()).discard(b)
        self._siblings.get(b, set()).discard(a)

    def served(self, key: str, project: str, model: str, sent_at: float, now: float) -> None:
        """A request sent through `key` at `sent_at` succeeded: one more request in its project's
        window, and no sibling of any key whose project was already spent when it was sent."""
        self._presumed.pop((key, model), None)
        spent = self._spent.get(model)
        if spent:
            for other, entry in spent.items():
                # Sent after the other's 429 arrived and well before its window ended: had they shared a
                # project, Google would have refused this one too.
                if other != key and entry.at < sent_at < entry.end - SAME_WINDOW:
                    self._set_apart(key, other)
        if (project, model) in self._limits:
            self._add_pending(project, model, REQUESTS, 1, now)

    def tokens_used(self, project: str, model: str, tokens_in: int, now: float) -> None:
        limits = self._limits.get((project, model))
        if limits and INPUT_TOKENS in limits and tokens_in > 0:
            self._add_pending(project, model, INPUT_TOKENS, tokens_in, now)

    def _add_pending(self, project: str, model: str, metric: str, amount: int, now: float) -> None:
        if (model, metric) in self._not_per_minute:
            return  # not paced by it: nothing to count
        self._pending.setdefault((project, model, metric), Counter())[bucket_of(now)] += amount
        self._check_limit(project, model, metric, now)

    # -- sharing counts ----------------------------------------------------------------------------

    def take_pending(self, now: float) -> list[tuple[str, str, str, int, int]]:
        """(project, model, metric, bucket, amount) for the store: what was sent here since the last
        call, added to the shared counts, and a read (amount 0) of every other bucket of the last
        minute that this book paces by, so that the totals `counted` gets back include what other
        instances sent. What is taken is forgotten here until `counted` gives the totals back."""
        current = bucket_of(now)
        taken: list[tuple[str, str, str, int, int]] = []
        for (project, model), limits in self._limits.items():
            for metric in limits:
                if (model, metric) in self._not_per_minute:
                    continue  # not paced by it: its counts are neither shared nor read
                pending = self._pending.get((project, model, metric), Counter())
                for bucket in range(current - BUCKETS + 1, current + 1):
                    taken.append((project, model, metric, bucket, pending.get(bucket, 0)))
        self._pending.clear()
        return taken

    def counted(self, project: str, model: str, metric: str, bucket: int, total: int, now: float) -> None:
        """The store's total for one bucket, every instance's sends included."""
        buckets = self._counted.setdefault((project, model, metric), {})
        buckets[bucket] = total
        for old in [b for b in buckets if b <= bucket_of(now) - BUCKETS]:
            del buckets[old]
        self._check_limit(project, model, metric, now)

    def _check_window(self, project: str, model: str, end: float, metrics: list[str]) -> None:
        """A per-minute window ends a whole number of minutes after the project's last one: two ends
        less than a minute apart show a shorter window, which a minute's count says nothing of.
        (A project served its limit in several short windows within one minute, and was deferred for
        the rest of it while it had quota: 0.5-1.5x a fair share at half load, 10-second windows.)"""
        last = self._window_ends.get((project, model))
        self._window_ends[(project, model)] = end
        low, high = WINDOW_ENDS_APART
        if last is not None and low < abs(end - last) < high:
            self._stop_pacing(model, metrics)

    def _stop_pacing(self, model: str, metrics: list[str]) -> None:
        """`model` is not paced by these metrics again, for any project: pacing some projects and
        not others deferred the paced ones for a minute at half load."""
        self._not_per_minute.update((model, metric) for metric in metrics)
        for paced in [key for key in self._paced_out if key[1] == model]:
            del self._paced_out[paced]

    # -- what it means for a plan ------------------------------------------------------------------

    def _check_limit(self, project: str, model: str, metric: str, now: float) -> None:
        """After a count changed: a project that has sent a limit within the last minute is paced out
        until enough of what it sent has left the minute."""
        limit = self._limits.get((project, model), {}).get(metric)
        if limit is None or (model, metric) in self._not_per_minute:
            return
        first = bucket_of(now) - BUCKETS + 1
        sent: Counter[int] = Counter()
        for bucket, total in self._counted.get((project, model, metric), {}).items():
            if bucket >= first:
                sent[bucket] += total
        for bucket, amount in self._pending.get((project, model, metric), Counter()).items():
            if bucket >= first:
                sent[bucket] += amount
        left = sum(sent.values())
        if left < limit:
            return
        if left > 2 * limit:
            # A minute that straddles two fixed windows holds two limits' worth at most: this quota's
            # window is shorter than a minute (or it is not the quota that binds), so a minute's count
            # says nothing of it.
            self._stop_pacing(model, [metric])
            return
        until = now
        for bucket in sorted(sent):
            left -= sent[bucket]
            until = (bucket + BUCKETS) * BUCKET_SECONDS  # when this bucket leaves the minute
            if left < limit:
                break
        self._paced_out[(project, model)] = max(until, self._paced_out.get((project, model), 0.0))

    def presumed_spent(self, key: str, project: str, model: str, now: float) -> bool:
        keys, projects = self.presumed(model, now)
        return key in keys or project in projects

    def presumed(self, model: str, now: float) -> tuple[set[str], set[str]]:
        """The keys and the projects presumed spent for `model` at `now`; forgets those that ended."""
        keys: set[str] = set()
        projects: set[str] = set()
        for source, into in ((self._presumed, keys), (self._paced_out, projects)):
            ended = []
            for (name, for_model), until in source.items():
                if until <= now:
                    ended.append((name, for_model))
                elif for_model == model:
                    into.add(name)
            for gone in ended:
                del source[gone]
        return keys, projects
