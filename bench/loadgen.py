"""Closed-loop HTTP load generator: C keep-alive connections, each sending its next POST as soon as the
previous response has been read, for D seconds after a warm-up.

Two engines, the same numbers out (a ``LoadResult``):

- ``wrk`` (C, used when ``shutil.which("wrk")`` finds it): a Lua script sets the POST body and, for streams,
  checks that each body ends with ``data: [DONE]``; its ``done()`` hook prints exact percentiles, and the
  ``--latency`` distribution is parsed as a fallback. wrk cannot time the first byte, so no TTFB.
- ``python``: this file run as a separate process (``--json``), on uvloop when importable. Each connection
  is a bare ``asyncio.Protocol`` that writes pre-built request bytes and parses just the status line,
  ``Content-Length`` / chunked framing; it records latency, time to first body byte and the ``[DONE]``
  check. Far cheaper than an HTTP client library, but still Python: on a small machine it takes CPU from
  the server under test, so throughput it reports is a lower bound.

Standalone:

    python bench/loadgen.py --url http://127.0.0.1:8000/v1/chat/completions \\
        --body '{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hello"}],"stream":true}' \\
        --check-done -c 32 -d 8 --warmup 2 [--generator python|wrk|auto] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

DONE_MARKER = b"data: [DONE]"
DEFAULT_TIMEOUT = 10.0  # a request taking longer counts as an error and its connection is replaced


@dataclass
class LoadResult:
    generator: str
    connections: int
    duration: float
    requests: int = 0  # responses completed inside the measured window (any status)
    ok: int = 0  # of those: status 200 and, for streams, ended with data: [DONE]
    errors: dict[str, int] = field(default_factory=dict)
    rps: float = 0.0  # ok / duration
    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    ttfb_p50_ms: float | None = None
    ttfb_p99_ms: float | None = None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoadResult:
        return cls(**json.loads(text))


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# --------------------------------------------------------------------------------------------------
# The Python engine
# --------------------------------------------------------------------------------------------------

_HEAD, _FIXED, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER = range(6)


class _Run:
    """Shared state of one measurement: clock window, samples, error counts, live connections."""

    def __init__(
        self,
        host: str,
        port: int,
        request: bytes,
        connections: int,
        warmup: float,
        duration: float,
        check_done: bool,
        timeout: float,
    ) -> None:
        self.host = host
        self.port = port
        self.request = request
        self.connections = connections
        self.check_done = check_done
        self.timeout = timeout
        now = time.perf_counter()
        self.t_measure = now + warmup
        self.t_end = self.t_measure + duration
        self.latencies: list[float] = []
        self.ttfbs: list[float] = []
        self.requests = 0
        self.ok = 0
        self.errors: dict[str, int] = {}
        self.live: set[_Conn] = set()
        self.finished = asyncio.get_running_loop().create_future()

    def error(self, kind: str) -> None:
        if self.t_measure <= time.perf_counter() <= self.t_end:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def record(self, t_sent: float, t_first: float, t_done: float, ok: bool) -> None:
        if self.t_measure <= t_done <= self.t_end:
            self.requests += 1
            if ok:
                self.ok += 1
                self.latencies.append(t_done - t_sent)
                self.ttfbs.append(t_first - t_sent)

    def running(self) -> bool:
        return time.perf_counter() < self.t_end

    def connect(self) -> None:
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        while self.running():
            try:
                await loop.create_connection(lambda: _Conn(self), self.host, self.port)
                return
            except OSError:
                self.error("connect")
                await asyncio.sleep(0.05)
        self.check_finished()

    def check_finished(self) -> None:
        if not self.running() and not self.live and not self.finished.done():
            self.finished.set_result(None)


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that parses responses incrementally and sends the next request."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.state = _HEAD
        self.remaining = 0
        self.status = 0
        self.close_after = False
        self.tail = b""
        self.t_sent = 0.0
        self.t_first = 0.0
        self.in_flight = False
        self.timer: asyncio.TimerHandle | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's class is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.run.live.add(self)
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.live.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        if self.in_flight:
            self.in_flight = False
            self.run.error("disconnect")
        if self.run.running():
            self.run.connect()
        else:
            self.run.check_finished()

    def send(self) -> None:
        assert self.transport is not None
        if not self.run.running():
            self.transport.close()
            return
        self.buf.clear()
        self.state = _HEAD
        self.tail = b""
        self.t_first = 0.0
        self.in_flight = True
        self.t_sent = time.perf_counter()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.run.timeout, self.on_timeout)
        self.transport.write(self.run.request)

    def on_timeout(self) -> None:
        self.timer = None
        if self.in_flight and self.transport is not None:
            self.in_flight = False
            self.run.error("timeout")
            self.transport.abort()

    def fail(self, kind: str) -> None:
        self.in_flight = False
        self.run.error(kind)
        if self.transport is not None:
            self.transport.abort()

    # -- parsing -----------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if not self.in_flight:
            return
        if not self.t_first and self.state != _HEAD:
            self.t_first = time.perf_counter()
        self.buf += data
        buf = self.buf
        pos = 0
        while True:
            state = self.state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    break
                if not self._parse_head(bytes(buf[pos:end])):
                    return
                pos = end + 4
                if pos < len(buf) or (self.state == _FIXED and self.remaining == 0):
                    self.t_first = time.perf_counter()
                if self.state == _FIXED and self.remaining == 0:
                    self._complete()
                    return
            elif state == _FIXED:
                take = min(self.remaining, len(buf) - pos)
                if take <= 0:
                    break
                self._keep_tail(buf, pos, pos + take)
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self._complete()
                    return
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                try:
                    size = int(bytes(buf[pos:end]).split(b";", 1)[0], 16)
                except ValueError:
                    self.fail("protocol")
                    return
                pos = end + 2
                if size == 0:
                    self.state = _TRAILER
                else:
                    self.remaining = size
                    self.state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                take = min(self.remaining, len(buf) - pos)
                if take <= 0:
                    break
                self._keep_tail(buf, pos, pos + take)
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = _CHUNK_CRLF
            elif state == _CHUNK_CRLF:
                if len(buf) - pos < 2:
                    break
                pos += 2
                self.state = _CHUNK_SIZE
            else:  # _TRAILER: lines until an empty one
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                empty = end == pos
                pos = end + 2
                if empty:
                    self._complete()
                    return
        del buf[:pos]

    def _parse_head(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        try:
            self.status = int(parts[1])
        except (IndexError, ValueError):
            self.fail("protocol")
            return False
        length = -1
        chunked = False
        self.close_after = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                self.close_after = b"close" in value.lower()
        if chunked:
            self.state = _CHUNK_SIZE
        elif length >= 0:
            self.state = _FIXED
            self.remaining = length
        else:  # body delimited by close: not expected from these servers
            self.fail("protocol")
            return False
        return True

    def _keep_tail(self, buf: bytearray, start: int, end: int) -> None:
        if self.run.check_done:
            self.tail = (self.tail + bytes(buf[max(start, end - 32) : end]))[-32:]

    def _complete(self) -> None:
        t_done = time.perf_counter()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.in_flight = False
        ok = self.status == 200
        if self.status != 200:
            self.run.error(f"status_{self.status}")
        elif self.run.check_done and DONE_MARKER not in self.tail:
            ok = False
            self.run.error("no_done")
        self.run.record(self.t_sent, self.t_first or t_done, t_done, ok)
        if self.close_after:
            assert self.transport is not None
            self.transport.close()
        else:
            self.send()


def build_request(url: str, body: bytes, headers: Sequence[tuple[str, str]]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only plain http:// URLs are supported: {url}")
    port = parts.port or 80
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {parts.hostname}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return parts.hostname, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _python_load(
    url: str,
    body: bytes,
    headers: Sequence[tuple[str, str]],
    connections: int,
    duration: float,
    warmup: float,
    check_done: bool,
    request_timeout: float,
) -> LoadResult:
    host, port, request = build_request(url, body, headers)
    run = _Run(host, port, request, connections, warmup, duration, check_done, request_timeout)
    for _ in range(connections):
        run.connect()
    grace = request_timeout + 2.0
    await asyncio.sleep(max(0.0, run.t_end - time.perf_counter()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(run.finished), grace)
    for conn in list(run.live):
        if conn.transport is not None:
            conn.transport.abort()
    await asyncio.sleep(0)
    latencies = sorted(run.latencies)
    ttfbs = sorted(run.ttfbs)

    def ms(value: float | None) -> float | None:
        return None if value is None else value * 1000.0

    return LoadResult(
        generator="python",
        connections=connections,
        duration=duration,
        requests=run.requests,
        ok=run.ok,
        errors=run.errors,
        rps=run.ok / duration,
        p50_ms=ms(percentile(latencies, 50)),
        p99_ms=ms(percentile(latencies, 99)),
        mean_ms=ms(sum(latencies) / len(latencies)) if latencies else None,
        ttfb_p50_ms=ms(percentile(ttfbs, 50)),
        ttfb_p99_ms=ms(percentile(ttfbs, 99)),
    )


def python_load_inprocess(
    url: str,
    body: bytes,
    headers: Sequence[tuple[str, str]] = (),
    *,
    connections: int,
    duration: float,
    warmup: float,
    check_done: bool,
    timeout: float = DEFAULT_TIMEOUT,
) -> LoadResult:
    """Run the Python engine in this process (the CLI entry; the benchmark uses a subprocess instead)."""
    coro = _python_load(url, body, headers, connections, duration, warmup, check_done, timeout)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# --------------------------------------------------------------------------------------------------
# The wrk engine
# --------------------------------------------------------------------------------------------------

_WRK_LUA = """
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
%(headers)s
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) no_done = 0 end
%(response)s
function done(summary, latency, requests)
  local nd = 0
  for _, t in ipairs(threads) do nd = nd + (t:get("no_done") or 0) end
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\\"requests\\":%%.0f,\\"duration_us\\":%%.0f,\\"connect\\":%%.0f,\\"read\\":%%.0f," ..
    "\\"write\\":%%.0f,\\"status\\":%%.0f,\\"timeout\\":%%.0f,\\"p50_us\\":%%.0f,\\"p99_us\\":%%.0f," ..
    "\\"mean_us\\":%%.1f,\\"no_done\\":%%.0f}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, nd))
end
"""

_WRK_RESPONSE_CHECK = """
function response(status, headers, body)
  if status == 200 and not string.find(string.sub(body, -32), "data: [DONE]", 1, true) then
    no_done = no_done + 1
  end
end
"""

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _parse_wrk_latency(text: str) -> dict[str, float]:
    """Percentiles (ms) from wrk's ``--latency`` 'Latency Distribution' block, e.g. ``  50%  1.23ms``."""
    found: dict[str, float] = {}
    for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE):
        found[pct] = float(value) * _UNITS_MS[unit]
    return found


def _parse_wrk(text: str, connections: int, duration: float, check_done: bool) -> LoadResult:
    match = re.search(r"^BENCH_JSON (\{.*\})$", text, re.MULTILINE)
    if match:
        data: dict[str, float] = json.loads(match.group(1))
        seconds = data["duration_us"] / 1e6 or duration
        errors = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout") if data[k]}
        if check_done and data["no_done"]:
            errors["no_done"] = int(data["no_done"])
        requests = int(data["requests"])
        ok = max(0, requests - int(data["status"]) - (int(data["no_done"]) if check_done else 0))
        return LoadResult(
            generator="wrk",
            connections=connections,
            duration=seconds,
            requests=requests,
            ok=ok,
            errors=errors,
            rps=ok / seconds,
            p50_ms=data["p50_us"] / 1000.0,
            p99_ms=data["p99_us"] / 1000.0,
            mean_ms=data["mean_us"] / 1000.0,
        )
    # Fallback: wrk's human-readable report.
    pcts = _parse_wrk_latency(text)
    req = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if not req or "50" not in pcts:
        raise RuntimeError(f"could not parse wrk output:\n{text}")
    requests = int(req.group(1))
    seconds = float(req.group(2)) * _UNITS_MS[req.group(3)] / 1000.0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = {"status": int(non2xx.group(1))} if non2xx else {}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        for name, value in zip(("connect", "read", "write", "timeout"), sock.groups(), strict=True):
            if int(value):
                errors[name] = int(value)
    ok = requests - errors.get("status", 0)
    return LoadResult(
        generator="wrk",
        connections=connections,
        duration=seconds,
        requests=requests,
        ok=ok,
        errors=errors,
        rps=ok / seconds,
        p50_ms=pcts.get("50"),
        p99_ms=pcts.get("99"),
    )


def _wrk_script(body: bytes, headers: Sequence[tuple[str, str]], check_done: bool) -> str:
    text = body.decode()
    if "]==]" in text:
        raise ValueError("request body cannot be embedded in the wrk Lua script")
    header_lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers)
    return _WRK_LUA % {
        "body": text,
        "headers": header_lines,
        "response": _WRK_RESPONSE_CHECK if check_done else "",
    }


# --------------------------------------------------------------------------------------------------
# Running either engine in a child process (what bench/run.py uses)
# --------------------------------------------------------------------------------------------------

Spawn = Callable[[list[str], float], str]


def _spawn_default(argv: list[str], timeout: float) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def measure(
    url: str,
    body: bytes,
    headers: Sequence[tuple[str, str]] = (),
    *,
    connections: int,
    duration: float,
    warmup: float,
    check_done: bool,
    generator: str = "auto",
    timeout: float = DEFAULT_TIMEOUT,
    spawn: Spawn = _spawn_default,
) -> LoadResult:
    """One closed-loop measurement in a child process; ``spawn(argv, timeout) -> stdout`` runs it."""
    use_wrk = generator == "wrk" or (generator == "auto" and wrk_available())
    if generator == "wrk" and not wrk_available():
        raise RuntimeError("wrk was requested but is not on PATH")
    bound = warmup + duration + timeout + 30.0
    if not use_wrk:
        argv = [
            sys.executable,
            os.path.abspath(__file__),
            "--url",
            url,
            "--body",
            body.decode(),
            "-c",
            str(connections),
            "-d",
            str(duration),
            "--warmup",
            str(warmup),
            "--timeout",
            str(timeout),
            "--generator",
            "python",
            "--json",
        ]
        for name, value in headers:
            argv += ["-H", f"{name}: {value}"]
        if check_done:
            argv.append("--check-done")
        out = spawn(argv, bound)
        return LoadResult.from_json(out.strip().splitlines()[-1])

    wrk = shutil.which("wrk") or "wrk"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-", delete=False) as script:
        script.write(_wrk_script(body, headers, check_done))
    try:

        def wrk_argv(seconds: float) -> list[str]:
            return [
                wrk,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, math.ceil(seconds))}s",
                f"--timeout={max(1, math.ceil(timeout))}s",
                "--latency",
                "-s",
                script.name,
                url,
            ]

        if warmup > 0:
            spawn(wrk_argv(warmup), bound)
        return _parse_wrk(spawn(wrk_argv(duration), bound), connections, duration, check_done)
    finally:
        os.unlink(script.name)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", default="{}", help="JSON request body")
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=8.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="per-request timeout")
    parser.add_argument(
        "--check-done",
        action="store_true",
        help="count a 200 whose body does not end with data: [DONE] as an error",
    )
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a summary")
    args = parser.parse_args(argv)
    headers = [(n.strip(), v.strip()) for n, _, v in (h.partition(":") for h in args.header)]
    body = args.body.encode()
    if args.generator == "python":
        # Engine process: die quietly on SIGTERM from a parent that gave up on us.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        result = python_load_inprocess(
            args.url,
            body,
            headers,
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            check_done=args.check_done,
            timeout=args.timeout,
        )
    else:
        result = measure(
            args.url,
            body,
            headers,
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            check_done=args.check_done,
            generator=args.generator,
            timeout=args.timeout,
        )
    if args.json:
        print(result.to_json(), flush=True)
        return
    summary: dict[str, Any] = asdict(result)
    for key, value in summary.items():
        print(f"{key:>12}: {value:.3f}" if isinstance(value, float) else f"{key:>12}: {value}")


if __name__ == "__main__":
    main()
