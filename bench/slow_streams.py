"""Thousands of concurrent slow streams: does the server hold them all, and in how much memory?

A separate fake Google streams 10 events 1 s apart (``fake-upstream --stream-chunks 10 --stream-delay 1``,
so each stream lasts ~9-10 s). A client in its own process opens N connections at once (at most 256
connects in flight), sends one ``stream: true`` chat completion on each and reads every stream to its end.
A stream counts as completed when it answered 200 and ended with ``data: [DONE]``; whatever is not done by
the deadline is aborted and counted as ``unfinished``. Measured for the proxy (memory://, 1 key, log level
warning) and for the floor, each a fresh process per N so that its peak RSS (VmHWM) belongs to that N.

Every process raises its soft RLIMIT_NOFILE to the hard limit: the server holds N client and N upstream
sockets. The client alone:

    python bench/slow_streams.py --url http://127.0.0.1:8000/v1/chat/completions -n 1000 --deadline 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any, cast
from urllib.parse import urlsplit

from common import (
    OPENAI_STREAM,
    Processes,
    peak_rss_mb,
    proc_nofile_limit,
    proxy_env,
    raise_nofile_limit,
    rss_mb,
    start_fake,
    start_floor,
    start_proxy,
)

DONE_MARKER = b"data: [DONE]"
CONNECT_CONCURRENCY = 256


@dataclass
class HoldResult:
    """What the client saw: N streams opened at once, read to the end or to the deadline."""

    n: int
    completed: int = 0  # status 200 and ended with data: [DONE]
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0  # first connect to last stream finished (or the deadline)
    all_open_s: float | None = None  # when the last of the N got its response headers
    peak_open: int = 0  # most streams with headers received and not yet finished, at one time
    duration_p50_s: float | None = None  # per completed stream: request sent -> [DONE]
    duration_max_s: float | None = None

    @classmethod
    def from_json(cls, text: str) -> HoldResult:
        return cls(**json.loads(text))


@dataclass
class SlowResult:
    """One server, one N."""

    target: str
    n: int
    hold: HoldResult | None = None
    rss_idle_mb: float | None = None  # VmRSS before the streams
    peak_rss_mb: float | None = None  # VmHWM after them
    fd_limit: int | None = None  # the server's soft RLIMIT_NOFILE
    note: str = ""


class _Hold:
    def __init__(self, n: int, deadline: float) -> None:
        self.n = n
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + deadline
        self.open = 0
        self.peak_open = 0
        self.with_headers = 0
        self.all_open_at: float | None = None
        self.finished = 0
        self.completed = 0
        self.durations: list[float] = []
        self.errors: dict[str, int] = {}
        self.last_done = self.t0
        self.all_done = asyncio.get_running_loop().create_future()
        self.live: set[_Stream] = set()

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def done(self, stream: _Stream, ok: bool, kind: str) -> None:
        now = time.perf_counter()
        self.finished += 1
        self.last_done = now
        if ok:
            self.completed += 1
            self.durations.append(now - stream.t_sent)
        else:
            self.error(kind)
        if self.finished == self.n and not self.all_done.done():
            self.all_done.set_result(None)


class _Stream(asyncio.Protocol):
    def __init__(self, hold: _Hold, request: bytes) -> None:
        self.hold = hold
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.status = 0
        self.headers_seen = False
        self.tail = b""
        self.done_seen = False
        self.finished = False
        self.t_sent = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.hold.live.add(self)
        self.t_sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.finished:
            return
        if not self.headers_seen:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                self.status = int(bytes(self.head[: self.head.find(b"\r\n")]).split(b" ", 2)[1])
            except (IndexError, ValueError):
                self._finish(False, "protocol")
                return
            self.headers_seen = True
            data = bytes(self.head[end + 4 :])
            hold = self.hold
            hold.open += 1
            hold.peak_open = max(hold.peak_open, hold.open)
            hold.with_headers += 1
            if hold.with_headers == hold.n:
                hold.all_open_at = time.perf_counter()
        self.tail = (self.tail + data)[-64:]
        if DONE_MARKER in self.tail:
            self.done_seen = True
        if self.done_seen and self.tail.endswith(b"0\r\n\r\n"):  # the last chunk of a chunked body
            self._finish(self.status == 200, f"status_{self.status}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.hold.live.discard(self)
        if not self.finished:
            ok = self.status == 200 and self.done_seen
            kind = "closed_early" if self.status in (0, 200) else f"status_{self.status}"
            self._finish(ok, kind)

    def _finish(self, ok: bool, kind: str) -> None:
        if self.finished:
            return
        self.finished = True
        if self.headers_seen:
            self.hold.open -= 1
        self.hold.done(self, ok, kind)
        if self.transport is not None:
            self.transport.close()


async def _open(hold: _Hold, host: str, port: int, request: bytes, gate: asyncio.Semaphore) -> None:
    loop = asyncio.get_running_loop()
    async with gate:
        try:
            await loop.create_connection(lambda: _Stream(hold, request), host, port)
        except OSError:
            hold.error("connect")
            hold.finished += 1
            if hold.finished == hold.n and not hold.all_done.done():
                hold.all_done.set_result(None)


async def hold_streams(url: str, body: bytes, n: int, deadline: float) -> HoldResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    request = head.encode() + body
    hold = _Hold(n, deadline)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tasks = [asyncio.create_task(_open(hold, host, port, request, gate)) for _ in range(n)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(hold.all_done), max(0.0, hold.deadline - time.perf_counter()))
    timed_out = not hold.all_done.done()
    for task in tasks:
        task.cancel()
    unfinished = n - hold.finished
    for stream in list(hold.live):
        if stream.transport is not None:
            stream.finished = True
            stream.transport.abort()
    await asyncio.gather(*tasks, return_exceptions=True)
    if unfinished > 0:
        hold.errors["unfinished"] = hold.errors.get("unfinished", 0) + unfinished
    end = time.perf_counter() if timed_out else hold.last_done
    durations = sorted(hold.durations)
    return HoldResult(
        n=n,
        completed=hold.completed,
        errors=hold.errors,
        wall_s=end - hold.t0,
        all_open_s=None if hold.all_open_at is None else hold.all_open_at - hold.t0,
        peak_open=hold.peak_open,
        duration_p50_s=durations[len(durations) // 2] if durations else None,
        duration_max_s=durations[-1] if durations else None,
    )


# --------------------------------------------------------------------------------------------------
# Orchestration (called by bench/run.py)
# --------------------------------------------------------------------------------------------------


def _measure_one(
    procs: Processes, target: str, proc: subprocess.Popen[bytes], url: str, n: int, deadline: float
) -> SlowResult:
    result = SlowResult(target, n, fd_limit=proc_nofile_limit(proc.pid))
    result.rss_idle_mb = rss_mb(proc.pid)
    argv = [sys.executable, __file__, "--url", f"{url}/v1/chat/completions", "-n", str(n)]
    argv += ["--deadline", str(deadline), "--json"]
    out = procs.run_tool(argv, deadline + 60.0)
    result.hold = HoldResult.from_json(out.strip().splitlines()[-1])
    result.peak_rss_mb = peak_rss_mb(proc.pid)
    return result


def run_slow_streams(
    procs: Processes, ns: Sequence[int], chunks: int, delay: float, deadline: float, log: IO[str]
) -> list[SlowResult]:
    """For each N: a fresh proxy, then a fresh floor, against one shared slow fake upstream."""
    _, hard = raise_nofile_limit()
    print(f"slow streams: starting fake upstream ({chunks} events, {delay:g} s apart)", file=log, flush=True)
    fake_proc, fake = start_fake(procs, "fake-slow", chunks, delay)
    results: list[SlowResult] = []
    try:
        for n in ns:
            for target in ("proxy", "floor"):
                need = 2 * n + 256
                if hard < need:
                    note = f"skipped: RLIMIT_NOFILE hard limit {hard} < {need} needed for {n} streams"
                    results.append(SlowResult(target, n, note=note))
                    continue
                print(f"  slow streams: {target}, N = {n:,}", file=log, flush=True)
                if target == "proxy":
                    proc, url = start_proxy(procs, f"proxy-slow-{n}", proxy_env(fake, 1, "warning"))
                else:
                    proc, url = start_floor(procs, f"floor-slow-{n}", fake)
                try:
                    results.append(_measure_one(procs, target, proc, url, n, deadline))
                finally:
                    procs.stop(proc)
    finally:
        procs.stop(fake_proc)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the chat completions URL")
    parser.add_argument("--body", default=OPENAI_STREAM.decode(), help="JSON request body (stream: true)")
    parser.add_argument("-n", type=int, default=1000, help="concurrent streams")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds before giving up")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    soft, _ = raise_nofile_limit()
    if soft < args.n + 64:
        print(f"warning: RLIMIT_NOFILE {soft} is too low for {args.n} connections", file=sys.stderr)
    coro = hold_streams(args.url, args.body.encode(), args.n, args.deadline)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coro)
    else:
        result = uvloop.run(coro)
    if args.json:
        print(json.dumps(asdict(result)), flush=True)
        return
    summary: dict[str, Any] = asdict(result)
    for key, value in summary.items():
        print(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()
