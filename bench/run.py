"""The benchmark: the proxy against a bare aiohttp pass-through (the floor), in one run so ratios are fair.

    python bench/run.py [--duration S] [--connections N] [--quick] [--generator auto|wrk|python]

It starts, on free 127.0.0.1 ports, a zero-latency fake Google (``gemini-cli-proxy fake-upstream``, 20-chunk
streams), the floor (``bench/floor.py``) and, one after the other, the proxy in several configurations. For
each target it measures, closed loop:

- plain requests/s, p50, p99 at N connections (default 32);
- 20-chunk stream requests/s, p50, p99 and time to first body byte at N connections;
- p50 at 1 connection, and the proxy's added latency: its p50 minus the floor's and minus the fake's;
- the peak RSS of the server process (VmHWM).

The Markdown table is printed and written to ``bench/out/latest.md`` (raw numbers: ``latest.json``; server
logs: ``bench/out/logs/``). Every process it starts is stopped (SIGTERM, then SIGKILL) on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO

import loadgen
from loadgen import LoadResult

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
LOG_DIR = OUT_DIR / "logs"

HOST = "127.0.0.1"
MODEL = "gemini-2.5-flash"
OPENAI_PLAIN = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}).encode()
OPENAI_STREAM = json.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "stream": True}
).encode()
GEMINI_BODY = b'{"contents":[{"role":"user","parts":[{"text":"hello"}]}]}'
GOOGLE_KEY_HEADER = ("x-goog-api-key", "bench-direct")

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
LISTENING = re.compile(r"listening on (http://\S+)")

# DESIGN.md "Performance targets" (2-core machine, zero-latency fake upstream, one process).
TARGET_PLAIN_RPS = 3000.0
TARGET_STREAM_RPS = 1200.0
TARGET_ADDED_MS = 1.0


# --------------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------------


class Processes:
    """Every child this run starts, so that all of them can be stopped in a ``finally``."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen[bytes]] = []

    def start_server(
        self, name: str, argv: list[str], env: dict[str, str]
    ) -> tuple[subprocess.Popen[bytes], str]:
        """Start a server with output to ``bench/out/logs/<name>.log``; wait for its ``listening on`` line."""
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = LOG_DIR / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
            )
        self.live.append(proc)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            text = log_path.read_text(errors="replace")
            match = LISTENING.search(text)
            if match:
                return proc, match.group(1)
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode} before listening:\n{_tail(log_path)}"
                )
            time.sleep(0.05)
        raise RuntimeError(
            f"{name} did not print 'listening on' within {STARTUP_TIMEOUT:.0f}s:\n{_tail(log_path)}"
        )

    def run_tool(self, argv: list[str], timeout: float) -> str:
        """Run a load generator to completion (bounded by ``timeout``) and return its stdout."""
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            start_new_session=True,
        )
        self.live.append(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{argv[0]} took longer than {timeout:.0f}s") from exc
        finally:
            self.stop(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} exited {proc.returncode}: {err.decode()[-2000:]}")
        return out.decode()

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(STOP_TIMEOUT)
        if proc in self.live:
            self.live.remove(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            try:
                self.stop(proc)
            except Exception as exc:  # keep stopping the others
                print(f"warning: could not stop pid {proc.pid}: {exc}", file=sys.stderr)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set size) of a live process, in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024.0 if match else None


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without any proxy/Gemini settings that would change what is measured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "PROXY_", "GOOGLE_"))}
    env.update(extra)
    return env


def proxy_command() -> list[str]:
    script = Path(sys.executable).parent / "gemini-cli-proxy"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gemini_cli_proxy"]


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------


@dataclass
class Settings:
    duration: float
    warmup: float
    connections: int
    generator: str
    chunks: int
    ttfb_duration: float


@dataclass
class Target:
    name: str
    plain_url: str
    stream_url: str
    plain_body: bytes
    stream_body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    sends_done: bool = True  # an OpenAI stream ends with data: [DONE]; Google's does not


@dataclass
class Row:
    name: str
    plain: LoadResult | None = None
    stream: LoadResult | None = None
    stream_ttfb: LoadResult | None = None  # the Python pass that times the first byte (when wrk ran the rest)
    single: LoadResult | None = None
    peak_rss_mb: float | None = None
    notes: list[str] = field(default_factory=list)


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


def measure_target(target: Target, settings: Settings, procs: Processes, log: IO[str]) -> Row:
    row = Row(target.name)
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
    print(f"  {target.name}: 1 connection, plain", file=log, flush=True)
    row.single = run(
        target.plain_url, target.plain_body, 1, check_done=False, generator=gen, duration=d, warmup=w
    )
    print(f"  {target.name}: {c} connections, plain", file=log, flush=True)
    row.plain = run(
        target.plain_url, target.plain_body, c, check_done=False, generator=gen, duration=d, warmup=w
    )
    print(f"  {target.name}: {c} connections, {settings.chunks}-chunk stream", file=log, flush=True)
    # wrk's Lua response hook (needed to look at the body) costs it ~40% of its streamed throughput, so wrk
    # measures throughput alone and a Python pass checks data: [DONE] and times the first byte.
    uses_wrk = gen == "wrk" or (gen == "auto" and loadgen.wrk_available())
    row.stream = run(
        target.stream_url,
        target.stream_body,
        c,
        check_done=target.sends_done and not uses_wrk,
        generator=gen,
        duration=d,
        warmup=w,
    )
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


def proxy_env(upstream: str, keys: int, log_level: str | None) -> dict[str, str]:
    extra = {
        "GEMINI_API_KEYS": ",".join(f"bench-key-{i:02d}" for i in range(1, keys + 1)),
        "GEMINI_API_BASE_URL": upstream,
        "PROXY_STATE_URL": "memory://",
    }
    if log_level:
        extra["PROXY_LOG_LEVEL"] = log_level
    return clean_env(extra)


def openai_target(name: str, base: str) -> Target:
    url = f"{base}/v1/chat/completions"
    return Target(name, url, url, OPENAI_PLAIN, OPENAI_STREAM)


def run_benchmark(settings: Settings, procs: Processes) -> tuple[list[Row], dict[str, str]]:
    log = sys.stderr
    rows: list[Row] = []
    meta: dict[str, str] = {}

    print("starting fake upstream", file=log, flush=True)
    _, fake = procs.start_server(
        "fake-upstream",
        [
            *proxy_command(),
            "fake-upstream",
            "--host",
            HOST,
            "--port",
            "0",
            "--stream-chunks",
            str(settings.chunks),
        ],
        clean_env({}),
    )
    meta["upstream"] = fake

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
    rows.append(measure_target(direct, settings, procs, log))

    floor_proc, floor_url = procs.start_server(
        "floor",
        [sys.executable, str(BENCH_DIR / "floor.py"), "--host", HOST, "--port", "0", "--upstream", fake],
        clean_env({}),
    )
    print("measuring floor", file=log, flush=True)
    row = measure_target(openai_target("floor: bare aiohttp pass-through", floor_url), settings, procs, log)
    row.peak_rss_mb = peak_rss_mb(floor_proc.pid)
    rows.append(row)
    procs.stop(floor_proc)

    configs = [
        ("proxy, memory://, 1 key", "proxy-1key", 1, "warning"),
        ("proxy, memory://, 10 keys", "proxy-10keys", 10, "warning"),
        ("proxy, memory://, 1 key, log level info (default)", "proxy-1key-info", 1, None),
    ]
    for label, log_name, keys, level in configs:
        proc, url = procs.start_server(
            log_name,
            [*proxy_command(), "serve", "--host", HOST, "--port", "0"],
            proxy_env(fake, keys, level),
        )
        print(f"measuring {label}", file=log, flush=True)
        row = measure_target(openai_target(label, url), settings, procs, log)
        row.peak_rss_mb = peak_rss_mb(proc.pid)
        rows.append(row)
        procs.stop(proc)
    return rows, meta


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _ms(value: float | None) -> str:
    return _num(value, "{:.2f}")


def _delta(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a - b:+.2f}"


def _errors(row: Row) -> str:
    total: dict[str, int] = {}
    for result in (row.single, row.plain, row.stream, row.stream_ttfb):
        if result is not None:
            for kind, count in result.errors.items():
                total[kind] = total.get(kind, 0) + count
    return ", ".join(f"{k} {v}" for k, v in sorted(total.items())) or "0"


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{' (with uncommitted changes)' if dirty else ''}" if rev else "unknown"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for module in ("aiohttp", "uvloop"):
        try:
            parts.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            parts.append(f"no {module}")
    return ", ".join(parts)


def _generators(rows: list[Row]) -> str:
    main = {r.plain.generator for r in rows if r.plain is not None}
    if main == {"wrk"}:
        wrk_version = "wrk"
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
            wrk_version = (out.stdout + out.stderr).split("Copyright")[0].strip() or "wrk"
        return (
            f"{wrk_version} (1 thread) for requests/s and latency; the Python generator (bench/loadgen.py, "
            "separate process) for stream first-byte times and the data: [DONE] check"
        )
    why = "wrk not found" if not loadgen.wrk_available() else "--generator python"
    return f"Python generator (bench/loadgen.py in a separate process; {why}) for everything"


def _spread(result: LoadResult | None) -> str:
    return "n/a" if result is None else f"{_ms(result.p50_ms)} / {_ms(result.p99_ms)}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(rows: list[Row], settings: Settings, elapsed: float) -> str:
    floor = next((r for r in rows if r.name.startswith("floor")), None)
    direct = rows[0] if rows else None
    floor_c1 = floor.single.p50_ms if floor and floor.single else None
    direct_c1 = direct.single.p50_ms if direct and direct.single else None
    c = settings.connections
    lines = [
        "# gemini-cli-proxy benchmark",
        "",
        f"- when: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, revision {_git_revision()}, "
        f"{elapsed:.0f} s in all",
        f"- machine: {os.cpu_count()} CPUs ({_cpu_model()}), {platform.system()} {platform.release()}; "
        f"{_versions()}",
        f"- load generator: {_generators(rows)}",
        f"- each measurement: {settings.warmup:g} s warm-up, then {settings.duration:g} s closed loop "
        f"(first-byte pass: {settings.ttfb_duration:g} s); upstream: zero-latency fake Google on loopback, "
        f"{settings.chunks}-event streams; load generator, fake, and server under test share the machine",
        "",
        f"| target | plain req/s (c{c}) | plain p50 / p99 ms | {settings.chunks}-chunk stream req/s (c{c}) "
        f"| stream p50 / p99 ms | stream TTFB p50 ms | p50 ms at c1 | added vs floor ms | added vs direct ms "
        "| peak RSS MiB | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        ttfb_source = row.stream_ttfb or row.stream
        single = row.single.p50_ms if row.single else None
        cells = [
            row.name,
            _num(row.plain.rps if row.plain else None),
            _spread(row.plain),
            _num(row.stream.rps if row.stream else None),
            _spread(row.stream),
            _ms(ttfb_source.ttfb_p50_ms if ttfb_source else None),
            _ms(single),
            _delta(single, floor_c1) if row.name.startswith("proxy") else "",
            _delta(single, direct_c1) if row is not direct else "",
            _num(row.peak_rss_mb, "{:.0f}"),
            _errors(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")

    proxy = next((r for r in rows if r.name.startswith("proxy")), None)
    if proxy and floor and proxy.plain and floor.plain and proxy.stream and floor.stream:
        plain, stream = proxy.plain.rps, proxy.stream.rps
        lines += ["", f"{proxy.name}, against the floor and DESIGN.md's targets:", ""]
        lines.append(
            f"- plain: {plain:,.0f} req/s = {plain / floor.plain.rps:.0%} of the floor; "
            f"target >= {TARGET_PLAIN_RPS:,.0f}: {_verdict(plain >= TARGET_PLAIN_RPS)}"
        )
        lines.append(
            f"- stream: {stream:,.0f} req/s = {stream / floor.stream.rps:.0%} of the floor; "
            f"target >= {TARGET_STREAM_RPS:,.0f}: {_verdict(stream >= TARGET_STREAM_RPS)}"
        )
        if proxy.single and proxy.single.p50_ms is not None and direct_c1 is not None:
            added = proxy.single.p50_ms - direct_c1
            lines.append(
                f"- added p50 latency at one connection (vs calling the fake directly): {added:.2f} ms; "
                f"target <= {TARGET_ADDED_MS:g} ms: {_verdict(added <= TARGET_ADDED_MS)}"
            )
        lines.append(
            "- not measured here: 5,000 concurrent slow streams within 300 MB RSS (the peak RSS above is "
            "after this run's load only)"
        )
    lines += [
        "",
        "Columns: req/s counts only successful responses (200, and for OpenAI streams ending in "
        "data: [DONE]); p50/p99 are whole-response latencies; TTFB is the time to the first body byte; "
        "c1 = one connection; added = this row's c1 p50 minus the floor's / the direct fake's; "
        "peak RSS = VmHWM of the server process.",
        "",
    ]
    return "\n".join(lines)


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
        "--quick", action="store_true", help="short measurements: the whole run takes about a minute"
    )
    parser.add_argument(
        "--generator", choices=("auto", "wrk", "python"), default="auto", help="auto: wrk when installed"
    )
    parser.add_argument("--chunks", type=int, default=20, help="events per upstream stream (default 20)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "latest.md", help="where to write the table")
    args = parser.parse_args()
    duration = args.duration if args.duration is not None else (2.0 if args.quick else 8.0)
    warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0)
    if duration <= 0 or warmup < 0 or args.connections < 1:
        parser.error("--duration must be > 0, --warmup >= 0, --connections >= 1")
    if args.generator == "wrk" and not shutil.which("wrk"):
        parser.error("--generator wrk: wrk is not on PATH")
    settings = Settings(
        duration=duration,
        warmup=warmup,
        connections=args.connections,
        generator=args.generator,
        chunks=args.chunks,
        ttfb_duration=max(1.0, duration / 2),
    )

    started = time.monotonic()
    procs = Processes()
    try:
        with terminate_on_sigterm():
            rows, meta = run_benchmark(settings, procs)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()

    text = report(rows, settings, time.monotonic() - started)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    raw = {"settings": asdict(settings), "meta": meta, "rows": [asdict(r) for r in rows]}
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=2))
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
