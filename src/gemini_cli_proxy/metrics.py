"""Prometheus metrics: what the proxy counts as it works, and their text exposition for `GET /metrics`.

One `Metrics` per app, handed to what counts (the middleware, the gateway, the scheduler), never a
module global. Under `serve --workers N` every worker counts into prometheus-client's multiprocess
files (PROMETHEUS_MULTIPROC_DIR, set by `serve` before anything imports prometheus-client), and a
scrape answered by any worker adds them all up. The pool's state (each credential's ok / cooling /
disabled) is not counted but read from the shared store at scrape time: every instance reports the
same pool.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "gemini_proxy"
# Google answers in tens of milliseconds (countTokens) to minutes (long generations).
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
STATES = ("ok", "cooling", "disabled")


class Metrics:
    """The proxy's counters, gauges and histograms. `multiprocess_dir`: where the workers of
    `serve --workers N` keep theirs (prometheus-client's multiprocess mode); None: in this process."""

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self._multiprocess_dir = multiprocess_dir
        # Multiprocess metrics live in files, not in a registry; a process's own go in its own.
        registry = None if multiprocess_dir else CollectorRegistry()
        self._registry = registry
        self._requests = Counter(
            f"{PREFIX}_requests",
            "Requests answered, by front door, model and HTTP status.",
            ["door", "model", "status"],
            registry=registry,
        )
        self._attempts = Counter(
            f"{PREFIX}_upstream_attempts",
            "Calls to Google, by credential kind, method and outcome (ok, or Google's verdict).",
            ["kind", "method", "outcome"],
            registry=registry,
        )
        self._latency = Histogram(
            f"{PREFIX}_upstream_latency_seconds",
            "How long a whole call to Google took (not streams: see the time to first byte).",
            ["kind", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._first_byte = Histogram(
            f"{PREFIX}_upstream_ttfb_seconds",
            "How long a stream from Google took to bring its first event.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._tokens = Counter(
            f"{PREFIX}_tokens",
            "Tokens Google counted, by model and type: input, output, and reasoning (part of output).",
            ["model", "type"],
            registry=registry,
        )
        self._open_streams = Gauge(
            f"{PREFIX}_open_streams",
            "Streams being answered now, by front door.",
            ["door"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._cooldowns = Counter(
            f"{PREFIX}_cooldowns",
            "Cooldowns begun, by credential and reason (rate_limited, quota_exhausted).",
            ["credential", "kind", "reason"],
            registry=registry,
        )
        self._retries = Counter(
            f"{PREFIX}_retries",
            "Requests tried again on another credential, by what the failed attempt was.",
            ["reason"],
            registry=registry,
        )
        self._disconnects = Counter(
            f"{PREFIX}_client_disconnects",
            "Clients gone before their answer was complete, by front door.",
            ["door"],
            registry=registry,
        )

        # (metric, label values) -> its child: prometheus-client's labels() checks and locks on every
        # call (2-3 µs), which every request would pay several times over.
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, door: str, model: str, status: int, *, disconnected: bool) -> None:
        self._child(self._requests, door, model, str(status)).inc()
        if disconnected:
            self._child(self._disconnects, door).inc()

    def attempt(self, kind: str, method: str, outcome: str, seconds: float | None = None) -> None:
        """One call to Google; `seconds`: how long a whole call that served took (None for a stream,
        whose first event is timed instead: first_event)."""
        self._child(self._attempts, kind, method, outcome).inc()
        if seconds is not None and outcome == "ok":
            self._child(self._latency, kind, method).observe(seconds)

    def first_event(self, kind: str, seconds: float) -> None:
        self._child(self._first_byte, kind).observe(seconds)

    def retry(self, reason: str) -> None:
        self._child(self._retries, reason).inc()

    def tokens(self, model: str, *, tokens_in: int, tokens_out: int, reasoning: int) -> None:
        for kind, count in (("input", tokens_in), ("output", tokens_out), ("reasoning", reasoning)):
            if count > 0:
                self._child(self._tokens, model, kind).inc(count)

    def stream_opened(self, door: str) -> None:
        self._child(self._open_streams, door).inc()

    def stream_closed(self, door: str) -> None:
        self._child(self._open_streams, door).dec()

    def cooled(self, credential_id: str, kind: str, reason: str) -> None:
        self._child(self._cooldowns, credential_id, kind, reason).inc()

    def exposition(self, pool: Sequence[Mapping[str, Any]], *, store_degraded: bool) -> bytes:
        """The text format: everything counted (every worker's, in multiprocess mode), then the
        pool's state as `pool` rows give it (routes/pool_view.py), and whether this instance's state
        store is degraded to in-process state."""
        if self._multiprocess_dir:
            counted = CollectorRegistry()
            MultiProcessCollector(counted, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            assert self._registry is not None
            counted = self._registry
        live = CollectorRegistry()
        live.register(_PoolCollector(pool, store_degraded))
        return generate_latest(counted) + generate_latest(live)


# Where the app keeps its Metrics: the middleware counts every request, before any Runtime exists.
METRICS = web.AppKey("metrics", Metrics)


def count_in_files(directory: str) -> None:
    """Make every metric created from now on count into `directory` (multiprocess mode), as the
    workers forked after this do. prometheus-client picks its value store from the environment when
    first imported, which the proxy's modules do long before `serve` knows it will fork: it is
    picked again here, the way that import does."""
    os.environ[MULTIPROCESS_ENV] = directory
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def from_environment() -> Metrics:
    """The app's Metrics: multiprocess when `serve --workers` (or the operator) set the directory."""
    return Metrics(multiprocess_dir=os.environ.get(MULTIPROCESS_ENV) or None)


class _PoolCollector(Collector):
    """Each credential's state as gauges: one series per state, 1 for the one it is in."""

    def __init__(self, rows: Iterable[Mapping[str, Any]], store_degraded: bool) -> None:
        self._rows = list(rows)
        self._store_degraded = store_degraded

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            f"{PREFIX}_credential_state",
            "Each credential's state: 1 for the one it is in (ok, cooling for some model, disabled).",
            labels=["credential", "label", "kind", "pool", "state"],
        )
        cooling = GaugeMetricFamily(
            f"{PREFIX}_credential_cooldown_seconds",
            "Seconds left of each credential's cooldown, by model.",
            labels=["credential", "model"],
        )
        for row in self._rows:
            who = [row["id"], row["label"], row["kind"], row["pool"]]
            for name in STATES:
                state.add_metric([*who, name], 1.0 if row["state"] == name else 0.0)
            for model, cooldown in row["cooldowns"].items():
                cooling.add_metric([row["id"], model], max(0.0, float(cooldown["remaining_seconds"])))
        yield state
        yield cooling
        yield GaugeMetricFamily(
            f"{PREFIX}_state_store_degraded",
            "1 while this instance's state store is unreachable and it runs on its own state.",
            value=1.0 if self._store_degraded else 0.0,
        )
