"""`serve --workers N`: every worker gets its share of the connections, also of a burst opened at once."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gemini_cli_proxy.testing import FakeGoogle, Reply

from conftest import FakeServer

CONNECTIONS = 16
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s"
)
BODY = b'{"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hello"}]}'


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def established_inodes(port: int) -> set[str]:
    """Socket inodes of the server side of established TCP connections on `port`."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def start_workers(
    fake_server: FakeServer,
    tmp_path: Path,
    port: int = 0,
    log_level: str = "warning",
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "GEMINI_API_KEYS": "key-a-11111111",
        "GEMINI_API_BASE_URL": fake_server.url,
        "PROXY_STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite3'}",
        "PROXY_LOG_LEVEL": log_level,
        **(extra_env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gemini_cli_proxy", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def port_of(listening_line: str) -> int:
    return int(listening_line.split(" ")[2].rsplit(":", 1)[1])


def test_a_burst_of_new_connections_is_spread_over_the_workers(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    process = start_workers(fake_server, tmp_path)
    assert process.stdout is not None
    clients: list[socket.socket] = []
    try:
        line = process.stdout.readline().strip()
        assert line.endswith("(2 workers)"), line
        port = port_of(line)
        workers = children(process.pid)
        assert len(workers) == 2
        # A burst: every connection is waiting to be accepted before either worker can run, as when a
        # client opens its pool of connections at once while the workers are busy.
        for worker in workers:
            os.kill(worker, signal.SIGSTOP)
        try:
            clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CONNECTIONS)]
        finally:
            for worker in workers:
                os.kill(worker, signal.SIGCONT)
        for client in clients:
            client.sendall(REQUEST % (len(BODY), BODY))
        for client in clients:
            assert read_response(client).startswith(b"HTTP/1.1 200")
        served = established_inodes(port)
        shares = [len(socket_inodes(worker) & served) for worker in workers]
        assert sum(shares) == CONNECTIONS
        # Each connection lands on a worker by a hash: all 16 on one is a 1-in-30,000 chance.
        assert all(share > 0 for share in shares), shares
        # The supervisor serves nothing, so it holds no socket a connection could wait in.
        assert not socket_inodes(process.pid) & served
    finally:
        for client in clients:
            client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_a_second_server_on_the_same_port_fails_instead_of_sharing_it(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    first = start_workers(fake_server, tmp_path)
    assert first.stdout is not None
    try:
        port = port_of(first.stdout.readline().strip())
        second = start_workers(fake_server, tmp_path, port=port)
        try:
            assert second.wait(timeout=30) != 0
        finally:
            if second.poll() is None:
                second.kill()
        assert second.stderr is not None
        assert "in use" in second.stderr.read().lower()
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0


def test_the_requests_a_worker_drains_at_shutdown_are_logged(
    fake_server: FakeServer, fake: FakeGoogle, tmp_path: Path
) -> None:
    process = start_workers(fake_server, tmp_path, log_level="info")
    assert process.stdout is not None and process.stderr is not None
    port = port_of(process.stdout.readline().strip())
    fake.push(Reply.delay(1.0))
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        client.sendall(REQUEST % (len(BODY), BODY))
        deadline = time.monotonic() + 10
        while not fake.generate_requests():  # the request has reached a worker and Google
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert read_response(client).startswith(b"HTTP/1.1 200")
    finally:
        client.close()
    assert process.wait(timeout=30) == 0
    assert "path=/v1/chat/completions status=200" in process.stderr.read()


def test_every_worker_applies_the_request_read_timeout(fake_server: FakeServer, tmp_path: Path) -> None:
    process = start_workers(fake_server, tmp_path, extra_env={"PROXY_REQUEST_READ_TIMEOUT": "0.5"})
    assert process.stdout is not None
    clients: list[socket.socket] = []
    try:
        port = port_of(process.stdout.readline().strip())
        # 16 connections: all of them on one worker is a 1-in-30,000 chance, so both workers are tested.
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CONNECTIONS)]
        for client in clients:
            client.sendall(b"POST /v1/chat/comp")  # half a request line, then nothing
        started = time.monotonic()
        for client in clients:
            client.settimeout(max(0.1, started + 5 - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):
                assert client.recv(65536) == b""
        assert time.monotonic() - started < 3
    finally:
        for client in clients:
            client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
