"""The benchmark: the proxy against a bare aiohttp pass-through (the floor), in one run so ratios are fair.

    python bench/run.py [--quick] [--only plain,stream,stores,workers,slow,backpressure]
                        [--duration S] [--warmup S] [--connections N] [--generator auto|wrk|python]

Everything on free 127.0.0.1 ports; every process it starts is stopped (SIGTERM, then SIGKILL) on the way
out, including on Ctrl-C. Parts (``--only`` picks some; default all):

- plain / stream: a zero-latency fake Google (``gemini-cli-proxy fake-upstream``, 20-chunk streams) measured
  directly, the floor (``bench/floor.py``), and the proxy with memory:// state (1 key; 10 keys; 1 key at log
  level info): requests/s and p50/p99 at 32 connections (plain, and streamed with time to first byte),
  p50 at one connection and the added latency, peak RSS;
- stores: the same for the proxy with SQLite state (a temporary file) and Redis state (a private
  redis-server, when installed), and their throughput cost against memory://;
- workers: ``serve --workers 2`` with SQLite state, and its plain-throughput scaling over one process;
- slow: N = 1,000 and 5,000 concurrent ~10 s streams held through the proxy and the floor
  (``bench/slow_streams.py``): how many complete, peak RSS;
- backpressure: a slow-reading client on a 24 MB stream, then a disconnect (``bench/backpressure.py``).

The report ends with the issue's targets, met or not. It is printed and written to ``bench/out/latest.md``
(raw numbers: ``latest.json``; server logs: ``bench/out/logs/``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import IO

import loadgen
from backpressure import run_backpressure
from common import (
    GEMINI_BODY,
    GOOGLE_KEY_HEADER,
    LOG_DIR,
    MESSAGES_PLAIN,
    MESSAGES_STREAM,
    MODEL,
    OPENAI_PLAIN,
    OPENAI_STREAM,
    OUT_DIR,
    RESPONSES_PLAIN,
    RESPONSES_STREAM,
    CpuMeter,
    Processes,
    children,
    peak_rss_mb,
    proxy_code_path,
    proxy_env,
    raise_nofile_limit,
    redis_dbsize,
    start_fake,
    start_floor,
    start_proxy,
    start_redis,
    tree_peak_rss_mb,
)
from cpu_budget import CpuBudget
from loadgen import LoadResult
from report import render
from results import Results, Row, Settings
from slow_streams import run_slow_streams

SECTIONS = ("plain", "stream", "stores", "workers", "slow", "backpressure")
# The CPU share each server process gets in the capped --workers rows: two workers then use 0.8 of the
# 2 CPUs, leaving 1.2 for wrk and the fake upstream (about 0.5 at the rate two capped workers reach).
WORKER_CPU_CAP = 0.4


@dataclass
class Target:
    name: str
    plain_url: str
    stream_url: str
    plain_body: bytes
    stream_body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    sends_done: bool = True  # an OpenAI stream ends with data: [DONE]; Google's does not


def smoke_check(target: Target) -> None:
    """One plain and one streamed request, so a broken setup fails loudly before any load."""
    for url, body, stream in (
        (target.plain_url, target.plain_body, False),
        (target.stream_url, target.stream_body, True),
    ):
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        for name, value in target.headers:
            request.add_header(name, value)
        with urllib.request.urlopen(request, timeout=10) as resp:
            payload = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{target.name}: {url} answered {resp.status}: {payload[:300]!r}")
        if stream and target.sends_done and not payload.rstrip().endswith(b"data: [DONE]"):
            raise RuntimeError(f"{target.name}: stream did not end with data: [DONE]: {payload[-300:]!r}")


def measure_target(
    key: str,
    target: Target,
    settings: Settings,
    procs: Processes,
    log: IO[str],
    kinds: set[str],
    server_pids: list[int] | None = None,
) -> Row:
    """``kinds`` ⊆ {plain, stream}: plain = c1 and cN plain; stream = cN streamed (+ first-byte pass).
    ``server_pids``: the processes whose CPU time the cN plain and stream runs are charged with."""
    row = Row(key, target.name)
    smoke_check(target)

    def run(
        url: str,
        body: bytes,
        connections: int,
        *,
        check_done: bool,
        generator: str,
        duration: float,
        warmup: float,
    ) -> LoadResult:
        return loadgen.measure(
            url,
            body,
            target.headers,
            connections=connections,
            duration=duration,
            warmup=warmup,
            check_done=check_done,
            generator=generator,
            spawn=procs.run_tool,
        )

    gen = settings.generator
    d, w, c = settings.duration, settings.warmup, settings.connections
    if "plain" in kinds:
        print(f"  {target.name}: 1 connection, plain", file=log, flush=True)
        row.single = run(
            target.plain_url, target.plain_body, 1, check_done=False, generator=gen, duration=d, warmup=w
        )
        print(f"  {target.name}: {c} connections, plain", file=log, flush=True)
        meter = CpuMeter(server_pids or [])
        row.plain = run(
            target.plain_url, target.plain_body, c, check_done=False, generator=gen, duration=d, warmup=w
        )
        row.plain_cpus = meter.cpus()
    if "stream" not in kinds:
        return row
    print(f"  {target.name}: {c} connections, {settings.chunks}-chunk stream", file=log, flush=True)
    # wrk's Lua response hook (needed to look at the body) costs it ~40% of its streamed throughput, so wrk
    # measures throughput alone and a Python pass checks data: [DONE] and times the first byte.
    uses_wrk = gen == "wrk" or (gen == "auto" and loadgen.wrk_available())
    meter = CpuMeter(server_pids or [])
    row.stream = run(
        target.stream_url,
        target.stream_body,
        c,
        check_done=target.sends_done and not uses_wrk,
        generator=gen,
        duration=d,
        warmup=w,
    )
    row.stream_cpus = meter.cpus()
    if uses_wrk:
        print(f"  {target.name}: {c} connections, stream, first-byte pass (python)", file=log, flush=True)
        row.stream_ttfb = run(
            target.stream_url,
            target.stream_body,
            c,
            check_done=target.sends_done,
            generator="python",
            duration=settings.ttfb_duration,
            warmup=min(w, 0.5),
        )
    return row


def openai_target(name: str, base: str) -> Target:
    url = f"{base}/v1/chat/completions"
    return Target(name, url, url, OPENAI_PLAIN, OPENAI_STREAM)


def messages_target(name: str, base: str) -> Target:
    url = f"{base}/v1/messages"
    # A Messages stream ends with its message_stop event, never data: [DONE].
    return Target(name, url, url, MESSAGES_PLAIN, MESSAGES_STREAM, sends_done=False)


def gemini_target(name: str, base: str) -> Target:
    # Google's own API through the proxy: the same body the direct row sends to the fake.
    return Target(
        name,
        f"{base}/v1beta/models/{MODEL}:generateContent",
        f"{base}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
        GEMINI_BODY,
        GEMINI_BODY,
        sends_done=False,
    )


def responses_target(name: str, base: str) -> Target:
    url = f"{base}/v1/responses"
    # A Responses stream ends with its response.completed event, never data: [DONE].
    return Target(name, url, url, RESPONSES_PLAIN, RESPONSES_STREAM, sends_done=False)


@dataclass
class ProxyConfig:
    key: str
    label: str
    keys: int = 1
    log_level: str | None = "warning"
    state: str = "memory"  # memory | sqlite | redis
    workers: int = 1
    cpu_cap: float | None = None  # each server process capped at this share of one CPU (cpu_budget.py)
    kinds: frozenset[str] | None = None  # measure only these of plain/stream
    api: str = "chat"  # chat | responses | messages | gemini: the front door the load goes to


def _kinds(sections: set[str]) -> set[str]:
    """Which throughput measurements each row gets: the ones asked for, or both."""
    asked: set[str] = {kind for kind in ("plain", "stream") if kind in sections}
    return asked or {"plain", "stream"}


def _proxy_configs(sections: set[str]) -> list[ProxyConfig]:
    base = bool(sections & {"plain", "stream"})
    configs: list[ProxyConfig] = []
    if base or "stores" in sections:
        configs.append(ProxyConfig("mem1", "proxy, memory://, 1 key"))
    if base:
        configs.append(ProxyConfig("mem10", "proxy, memory://, 10 keys", keys=10))
        configs.append(
            ProxyConfig("meminfo", "proxy, memory://, 1 key, log level info (default)", log_level=None)
        )
        configs.append(ProxyConfig("memresp", "proxy, memory://, 1 key, Responses API", api="responses"))
        configs.append(ProxyConfig("memmsg", "proxy, memory://, 1 key, Messages API", api="messages"))
        configs.append(ProxyConfig("memgem", "proxy, memory://, 1 key, Gemini API", api="gemini"))
    if sections & {"stores", "workers"}:
        configs.append(ProxyConfig("sqlite", "proxy, SQLite, 1 key", state="sqlite"))
    if "stores" in sections:
        configs.append(ProxyConfig("redis", "proxy, Redis, 1 key", state="redis"))
    if "workers" in sections:
        configs.append(
            ProxyConfig("workers2", "proxy, SQLite, 1 key, serve --workers 2", state="sqlite", workers=2)
        )
        # The same pair with every worker process capped at the same CPU share: how the proxy scales with
        # CPU, on a machine where wrk and the fake upstream leave two workers no idle core.
        plain_only = frozenset({"plain"})
        cap = WORKER_CPU_CAP
        configs.append(
            ProxyConfig(
                "sqlite_capped",
                f"proxy, SQLite, 1 key, one process capped at {cap:g} CPU",
                state="sqlite",
                cpu_cap=cap,
                kinds=plain_only,
            )
        )
        configs.append(
            ProxyConfig(
                "workers2_capped",
                f"proxy, SQLite, 1 key, serve --workers 2, each worker capped at {cap:g} CPU",
                state="sqlite",
                workers=2,
                cpu_cap=cap,
                kinds=plain_only,
            )
        )
    return configs


def _measure_proxy(
    cfg: ProxyConfig, fake: str, settings: Settings, procs: Processes, workdir: Path, results: Results
) -> None:
    log = sys.stderr
    sections = set(settings.sections)
    kinds = set(cfg.kinds) if cfg.kinds is not None else _kinds(sections)
    budget = CpuBudget(cfg.key) if cfg.cpu_cap is not None else None
    if budget is not None and (why := budget.unavailable()):
        results.notes.append(f"no '{cfg.label}' row: processes cannot be capped here ({why})")
        return
    redis_url: str | None = None
    redis_proc = None
    if cfg.state == "memory":
        state_url = "memory://"
    elif cfg.state == "sqlite":
        state_file = workdir / f"{cfg.key}.sqlite3"
        state_url = f"sqlite:///{state_file}"
    else:
        started = start_redis(procs, workdir)
        if started is None:
            results.notes.append("no Redis row: redis-server is not installed (apt-get install redis-server)")
            return
        redis_proc, redis_url = started
        state_url = redis_url
    try:
        env = proxy_env(fake, cfg.keys, cfg.log_level, state_url)
        proc, url = start_proxy(procs, f"proxy-{cfg.key}", env, workers=cfg.workers)
        print(f"measuring {cfg.label}", file=log, flush=True)
        try:
            servers = children(proc.pid) if cfg.workers > 1 else [proc.pid]
            if budget is not None and cfg.cpu_cap is not None:
                for pid in servers:
                    budget.cap(pid, cfg.cpu_cap)
            targets = {"responses": responses_target, "messages": messages_target, "gemini": gemini_target}
            target = targets.get(cfg.api, openai_target)(cfg.label, url)
            row = measure_target(cfg.key, target, settings, procs, log, kinds, server_pids=servers)
            row.peak_rss_mb = tree_peak_rss_mb(proc.pid) if cfg.workers > 1 else peak_rss_mb(proc.pid)
        finally:
            procs.stop(proc)  # the store's batched writes are flushed on the way out
            if budget is not None:
                budget.close()
        log_text = (LOG_DIR / f"proxy-{cfg.key}.log").read_text(errors="replace")
        if "state store unavailable" in log_text:
            row.notes.append(f"the proxy logged 'state store unavailable' (see logs/proxy-{cfg.key}.log)")
        if cfg.state == "sqlite":
            size = state_file.stat().st_size if state_file.exists() else 0
            row.notes.append(f"state file {state_url} ({size / 1024:.0f} KiB after the run)")
        if redis_url is not None:
            row.notes.append(f"private redis-server; keys in it after the run: {redis_dbsize(redis_url)}")
        results.rows.append(row)
    finally:
        if redis_proc is not None:
            procs.stop(redis_proc)


def run_benchmark(settings: Settings, procs: Processes, workdir: Path) -> Results:
    log = sys.stderr
    results = Results()
    soft, hard = raise_nofile_limit()
    results.meta["nofile"] = f"{soft}/{hard} (soft/hard, raised in every process started)"
    results.meta["proxy_code"] = proxy_code_path() or "unknown"
    sections = set(settings.sections)
    kinds = _kinds(sections)
    configs = _proxy_configs(sections)
    if configs:
        print("starting fake upstream", file=log, flush=True)
        fake_proc, fake = start_fake(procs, "fake-upstream", settings.chunks)
        results.meta["upstream"] = fake
        try:
            if sections & {"plain", "stream"}:
                direct = Target(
                    "fake upstream, direct (no proxy)",
                    f"{fake}/v1beta/models/{MODEL}:generateContent",
                    f"{fake}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                    GEMINI_BODY,
                    GEMINI_BODY,
                    headers=(GOOGLE_KEY_HEADER,),
                    sends_done=False,
                )
                print(f"measuring {direct.name}", file=log, flush=True)
                results.rows.append(measure_target("direct", direct, settings, procs, log, kinds))
                floor_proc, floor_url = start_floor(procs, "floor", fake)
                print("measuring floor", file=log, flush=True)
                try:
                    target = openai_target("floor: bare aiohttp pass-through", floor_url)
                    row = measure_target(
                        "floor", target, settings, procs, log, kinds, server_pids=[floor_proc.pid]
                    )
                    row.peak_rss_mb = peak_rss_mb(floor_proc.pid)
                    results.rows.append(row)
                finally:
                    procs.stop(floor_proc)
            for cfg in configs:
                _measure_proxy(cfg, fake, settings, procs, workdir, results)
        finally:
            procs.stop(fake_proc)
    if "slow" in sections:
        results.slow = run_slow_streams(
            procs, settings.slow_ns, settings.slow_chunks, settings.slow_delay, settings.slow_deadline, log
        )
    if "backpressure" in sections:
        results.backpressure = run_backpressure(
            procs, settings.bp_chunks, settings.bp_prompt_chars, settings.bp_read_seconds, log
        )
    return results


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM and SIGINT raise, so that ``finally`` blocks run and children are stopped."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _parse_sections(text: str, parser: argparse.ArgumentParser) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in SECTIONS]
    if unknown or not chosen:
        parser.error(
            f"--only: unknown part(s) {', '.join(unknown) or '(none)'}; choose from {','.join(SECTIONS)}"
        )
    return [part for part in SECTIONS if part in chosen]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, help="measured seconds per measurement (default 8, quick 2)"
    )
    parser.add_argument(
        "--warmup", type=float, help="warm-up seconds before each measurement (default 2, quick 0.5)"
    )
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="about 2 minutes: short measurements, slow streams N=200,1000 of ~5 s, 2 s of slow reading",
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated parts to run (default all): {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--generator", choices=("auto", "wrk", "python"), default="auto", help="auto: wrk when installed"
    )
    parser.add_argument("--chunks", type=int, default=20, help="events per upstream stream (default 20)")
    parser.add_argument(
        "--slow-n", help="comma-separated concurrent slow streams (default 1000,5000; quick 200,1000)"
    )
    parser.add_argument("--slow-deadline", type=float, default=60.0, help="seconds per slow-stream N (60)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "latest.md", help="where to write the report")
    args = parser.parse_args()
    duration = args.duration if args.duration is not None else (2.0 if args.quick else 8.0)
    warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0)
    if duration <= 0 or warmup < 0 or args.connections < 1:
        parser.error("--duration must be > 0, --warmup >= 0, --connections >= 1")
    if args.generator == "wrk" and not shutil.which("wrk"):
        parser.error("--generator wrk: wrk is not on PATH")
    try:
        slow_ns = [int(n) for n in (args.slow_n or ("200,1000" if args.quick else "1000,5000")).split(",")]
    except ValueError:
        parser.error("--slow-n: comma-separated integers")
    settings = Settings(
        duration=duration,
        warmup=warmup,
        connections=args.connections,
        generator=args.generator,
        chunks=args.chunks,
        ttfb_duration=max(1.0, duration / 2),
        sections=_parse_sections(args.only, parser),
        slow_ns=slow_ns,
        slow_chunks=10,
        slow_delay=0.5 if args.quick else 1.0,
        slow_deadline=args.slow_deadline,
        bp_chunks=100,
        bp_prompt_chars=24_000_000,
        bp_read_seconds=2.0 if args.quick else 4.0,
    )

    started = time.monotonic()
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="gemini-cli-proxy-bench-"))
    try:
        with terminate_on_sigterm():
            results = run_benchmark(settings, procs, workdir)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    text = render(results, settings, time.monotonic() - started)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    raw = {
        "settings": asdict(settings),
        "meta": results.meta,
        "notes": results.notes,
        "rows": [asdict(r) for r in results.rows],
        "slow": [asdict(s) for s in results.slow],
        "backpressure": asdict(results.backpressure) if results.backpressure else None,
    }
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=2))
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
