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
    # CPUs the server's processes used during the c32 plain run (warm-up included): CPU time / wall time.
    plain_cpus: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def plain_cpu_us(self) -> float | None:
        """Server CPU time per plain request, in microseconds."""
        if self.plain_cpus is None or self.plain is None or not self.plain.rps:
            return None
        return self.plain_cpus / self.plain.rps * 1e6


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    slow: list[SlowResult] = field(default_factory=list)
    backpressure: BackpressureResult | None = None
    meta: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # skipped parts and why

    def row(self, key: str) -> Row | None:
        return next((r for r in self.rows if r.key == key), None)
