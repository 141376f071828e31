"""What every part of the benchmark shares: child processes (started, waited for, always stopped), their
memory, the fake upstream / proxy / floor / Redis command lines, loopback ports and sockets."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
LOG_DIR = OUT_DIR / "logs"

HOST = "127.0.0.1"
MODEL = "gemini-2.5-flash"
GEMINI_BODY = b'{"contents":[{"role":"user","parts":[{"text":"hello"}]}]}'
GOOGLE_KEY_HEADER = ("x-goog-api-key", "bench-direct")

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
LISTENING = re.compile(r"listening on (http://\S+)")
REDIS_READY = re.compile(r"Ready to accept connections")


def openai_body(stream: bool, content: str = "hello") -> bytes:
    body: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


OPENAI_PLAIN = openai_body(False)
OPENAI_STREAM = openai_body(True)


def responses_body(stream: bool, content: str = "hello") -> bytes:
    """The same turn for the Responses API (store false: the chat row stores nothing either)."""
    body: dict[str, object] = {"model": MODEL, "input": content, "store": False}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


RESPONSES_PLAIN = responses_body(False)
RESPONSES_STREAM = responses_body(True)


def messages_body(stream: bool, content: str = "hello") -> bytes:
    """The same turn for Anthropic's Messages API."""
    body: dict[str, object] = {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": content}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


MESSAGES_PLAIN = messages_body(False)
MESSAGES_STREAM = messages_body(True)


# --------------------------------------------------------------------------------------------------
# File descriptors
# --------------------------------------------------------------------------------------------------


def raise_nofile_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit; returns the (soft, hard) now in force.

    Used as ``preexec_fn`` for every child too: 5,000 streams through a proxy hold 5,000 client and
    5,000 upstream sockets in one process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _child_setup() -> None:
    raise_nofile_limit()


def proc_nofile_limit(pid: int) -> int | None:
    """The soft 'Max open files' of a running process (to check what a child really got)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                value = line.split()[3]
                return None if value == "unlimited" else int(value)
    return None


# --------------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------------


class Processes:
    """Every child this run starts, so that all of them can be stopped in a ``finally``."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen[bytes]] = []

    def start_server(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        ready: re.Pattern[str] = LISTENING,
    ) -> tuple[subprocess.Popen[bytes], str]:
        """Start a server with output to ``bench/out/logs/<name>.log``; wait for ``ready`` in it and
        return the process and the pattern's first group (or the whole match)."""
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
                preexec_fn=_child_setup,
            )
        self.live.append(proc)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            text = log_path.read_text(errors="replace")
            match = ready.search(text)
            if match:
                return proc, match.group(1) if ready.groups else match.group(0)
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode} before it was ready:\n{tail(log_path)}"
                )
            time.sleep(0.05)
        raise RuntimeError(f"{name} was not ready within {STARTUP_TIMEOUT:.0f}s:\n{tail(log_path)}")

    def run_tool(self, argv: list[str], timeout: float) -> str:
        """Run a load generator to completion (bounded by ``timeout``) and return its stdout."""
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=_child_setup,
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


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------


def _status_kb(pid: int, field: str) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set size) of a live process, in MiB."""
    kb = _status_kb(pid, "VmHWM")
    return None if kb is None else kb / 1024.0


def rss_mb(pid: int) -> float | None:
    """VmRSS (current resident set size) of a live process, in MiB."""
    kb = _status_kb(pid, "VmRSS")
    return None if kb is None else kb / 1024.0


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces): state is [0],
    ppid [1], utime [11], stime [12]. Raises OSError when the process is gone."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/*/stat), e.g. the workers of ``serve --workers N``."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(_stat_fields(entry.name)[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by ``pids`` (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(pid)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """How many CPUs ``pids`` used from its creation to ``cpus()``: CPU time over wall time."""

    def __init__(self, pids: list[int]) -> None:
        self._pids = pids
        self._cpu = cpu_seconds(pids)
        self._wall = time.monotonic()

    def cpus(self) -> float | None:
        """None when no process was given (the row is not charged with any)."""
        if not self._pids:
            return None
        return (cpu_seconds(self._pids) - self._cpu) / (time.monotonic() - self._wall)


def tree_peak_rss_mb(pid: int) -> float | None:
    """Sum of VmHWM over ``pid`` and its direct children (a pre-fork server's whole footprint)."""
    values = [peak_rss_mb(p) for p in (pid, *children(pid))]
    known = [v for v in values if v is not None]
    return sum(known) if known else None


# --------------------------------------------------------------------------------------------------
# Loopback sockets
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def established_to(port: int) -> int:
    """ESTABLISHED TCP sockets whose local port is ``port`` (a server's accepted connections), from
    /proc/net/tcp{,6}: one per client connection the server still holds."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 3 and fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


# --------------------------------------------------------------------------------------------------
# The servers under test
# --------------------------------------------------------------------------------------------------


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without any proxy/Gemini settings that would change what is measured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "PROXY_", "GOOGLE_"))}
    env.update(extra)
    return env


def proxy_command() -> list[str]:
    script = Path(sys.executable).parent / "gemini-cli-proxy"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gemini_cli_proxy"]


def proxy_env(
    upstream: str, keys: int, log_level: str | None, state_url: str = "memory://"
) -> dict[str, str]:
    extra = {
        "GEMINI_API_KEYS": ",".join(f"bench-key-{i:02d}" for i in range(1, keys + 1)),
        "GEMINI_API_BASE_URL": upstream,
        "PROXY_STATE_URL": state_url,
    }
    if log_level:
        extra["PROXY_LOG_LEVEL"] = log_level
    return clean_env(extra)


def proxy_code_path() -> str | None:
    """Where the ``gemini_cli_proxy`` package the children run is imported from (PYTHONPATH can point
    elsewhere than this checkout's src/, e.g. at an exported commit)."""
    code = "import os, gemini_cli_proxy; print(os.path.dirname(gemini_cli_proxy.__file__))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=clean_env({}),
        timeout=30,
        check=False,
    )
    return done.stdout.strip() or None


def start_fake(
    procs: Processes, name: str, chunks: int, delay: float = 0.0, first_byte_delay: float = 0.0
) -> tuple[subprocess.Popen[bytes], str]:
    argv = [*proxy_command(), "fake-upstream", "--host", HOST, "--port", "0", "--stream-chunks", str(chunks)]
    if delay:
        argv += ["--stream-delay", str(delay)]
    if first_byte_delay:
        argv += ["--first-byte-delay", str(first_byte_delay)]
    return procs.start_server(name, argv, clean_env({}))


def start_proxy(
    procs: Processes, name: str, env: dict[str, str], workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    argv = [*proxy_command(), "serve", "--host", HOST, "--port", "0"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return procs.start_server(name, argv, env)


def start_floor(procs: Processes, name: str, upstream: str) -> tuple[subprocess.Popen[bytes], str]:
    argv = [
        sys.executable,
        str(BENCH_DIR / "floor.py"),
        "--host",
        HOST,
        "--port",
        "0",
        "--upstream",
        upstream,
    ]
    return procs.start_server(name, argv, clean_env({}))


def start_redis(procs: Processes, workdir: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    """A private, memory-only redis-server on a free loopback port, or None when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(workdir), "--protected-mode", "yes"]
    proc, _ = procs.start_server("redis", argv, clean_env({}), ready=REDIS_READY)
    return proc, f"redis://{HOST}:{port}/0"


def redis_dbsize(url: str) -> int | None:
    """DBSIZE over a raw RESP connection (to check that the proxy really wrote to this Redis)."""
    port = port_of(url)
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as sock:
            sock.sendall(b"*1\r\n$6\r\nDBSIZE\r\n")
            reply = sock.recv(64)
    except OSError:
        return None
    match = re.match(rb":(\d+)\r\n", reply)
    return int(match.group(1)) if match else None
