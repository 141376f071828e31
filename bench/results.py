"""What one benchmark run measured: its settings and results (rendered by report.py, saved as JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field

from backpressure import BackpressureResult
from loadgen import LoadResult
from slow_streams import SlowResult


@dataclass
class Settings:
    duration: float
    warmup: float
    connections: int
    generator: str
    chunks: int
    ttfb_duration: float
    sections: list[str]
    slow_ns: list[int]
    slow_chunks: int
    slow_delay: float
    slow_deadline: float
    bp_chunks: int
    bp_prompt_chars: int
    bp_read_seconds: float


@dataclass
class Row:
    key: str  # direct, floor, mem1, mem10, meminfo, sqlite, redis, workers2, sqlite_capped, workers2_capped
    name: str
    plain: LoadResult | None = None
    stream: LoadResult | None = None
    stream_ttfb: LoadResult | None = None  # the Python pass that times the first byte (when wrk ran the rest)
    single: LoadResult | None = None
    peak_rss_mb: float | None = None
    # CPUs the server's processes used during the c32 plain / stream run (warm-up included): CPU time
    # over wall time.
    plain_cpus: float | None = None
    stream_cpus: float | None = None
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def cpu_us(cpus: float | None, result: LoadResult | None) -> float | None:
        """Server CPU time per request, in microseconds."""
        if cpus is None or result is None or not result.rps:
            return None
        return cpus / result.rps * 1e6


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    slow: list[SlowResult] = field(default_factory=list)
    backpressure: BackpressureResult | None = None
    meta: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # skipped parts and why

    def row(self, key: str) -> Row | None:
        return next((r for r in self.rows if r.key == key), None)
