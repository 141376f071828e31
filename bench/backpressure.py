"""Bounded memory under a slow client, and the upstream connection released when the client leaves.

A separate fake Google answers streams as fast as it can write (``fake-upstream --stream-chunks 100``),
echoing the prompt: with a 24 MB prompt that is a 24 MB upstream reply in 100 events of 240 KB, and about
as much to the client. (The fake's cost grows with events x text, so big events, not many small ones; and
the reply must dwarf the kernel's socket buffers, which on loopback hold a few MB on each side.)

1. The reply size is measured once by fetching it straight from the fake.
2. A fresh proxy (memory://, 1 key, log level warning) gets the streamed request from a client with a
   small receive buffer (SO_RCVBUF 4 KiB) that, from the first byte on, reads 1 KiB every 10 ms for a few
   seconds, while the proxy's VmRSS is sampled after every read. RSS growth is counted from the first
   byte: handling a 24 MB request body costs the proxy memory before that.
3. Then ``ss -tni`` on the proxy's upstream socket gives ``bytes_received`` minus the unread ``Recv-Q``:
   how much of the upstream reply the proxy process has pulled in. A proxy that respects back-pressure
   pulls about what the client has read plus the socket buffers towards the client (a few MB); one that
   does not pulls the whole reply within a second or two and holds it in memory.
4. The client closes its socket mid-stream; the ESTABLISHED connections at the fake's port (from
   /proc/net/tcp) are polled until the proxy's upstream connection is gone, for at most 5 s.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from typing import IO

from common import (
    GEMINI_BODY,
    GOOGLE_KEY_HEADER,
    HOST,
    MODEL,
    Processes,
    established_to,
    openai_body,
    port_of,
    proxy_env,
    rss_mb,
    start_fake,
    start_proxy,
)

RELEASE_LIMIT_S = 5.0  # how long to wait for the upstream connection to go
FIRST_BYTE_TIMEOUT_S = 60.0
READ_SIZE = 1024
READ_PAUSE_S = 0.01
CLIENT_RCVBUF = 4096


@dataclass
class BackpressureResult:
    chunks: int
    prompt_chars: int
    read_seconds: float
    upstream_reply_bytes: int | None = None  # the whole upstream reply, fetched directly
    client_read_bytes: int = 0  # what the slow client read in read_seconds
    upstream_pulled_bytes: int | None = None  # read by the proxy from its upstream socket (ss)
    upstream_queued_bytes: int | None = None  # received by the kernel, not yet read by the proxy
    first_byte_s: float | None = None  # request sent -> first byte at the client
    rss_first_byte_mb: float | None = None
    rss_peak_mb: float | None = None  # highest VmRSS sampled while the client read slowly
    upstream_before_disconnect: int | None = None  # ESTABLISHED at the fake's port
    released_after_s: float | None = None  # None: still there after RELEASE_LIMIT_S
    notes: list[str] = field(default_factory=list)

    @property
    def rss_growth_mb(self) -> float | None:
        if self.rss_peak_mb is None or self.rss_first_byte_mb is None:
            return None
        return self.rss_peak_mb - self.rss_first_byte_mb

    @property
    def pulled_fraction(self) -> float | None:
        if self.upstream_pulled_bytes is None or not self.upstream_reply_bytes:
            return None
        return self.upstream_pulled_bytes / self.upstream_reply_bytes


def _upstream_socket_bytes(fake_port: int) -> tuple[int, int] | None:
    """(bytes_received, Recv-Q) of the one ESTABLISHED socket connected to the fake's port, via ss."""
    if shutil.which("ss") is None:
        return None
    out = subprocess.run(
        ["ss", "-tniH", "state", "established", f"( dport = :{fake_port} )"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout
    # Recv-Q Send-Q Local Peer, then the -i details on the same or the next line.
    queued = re.match(r"\s*(\d+)\s+\d+\s", out)
    received = re.search(r"bytes_received:(\d+)", out)
    if not queued or not received or out.count("bytes_received:") != 1:
        return None
    return int(received.group(1)), int(queued.group(1))


def _direct_reply_size(fake: str, prompt: str) -> int:
    body = GEMINI_BODY.replace(b'"hello"', b'"' + prompt.encode() + b'"')
    request = urllib.request.Request(
        f"{fake}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", GOOGLE_KEY_HEADER[0]: GOOGLE_KEY_HEADER[1]},
    )
    with urllib.request.urlopen(request, timeout=FIRST_BYTE_TIMEOUT_S + 30) as resp:
        return len(resp.read())


def _slow_read(
    sock: socket.socket, proxy_pid: int, url: str, prompt: str, result: BackpressureResult
) -> None:
    """Send the request on ``sock`` and read slowly for result.read_seconds, leaving it open."""
    body = openai_body(True, prompt)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)  # before connect: small window
    sock.settimeout(FIRST_BYTE_TIMEOUT_S)
    sock.connect((HOST, port_of(url)))
    sent = time.monotonic()
    sock.sendall(head.encode() + body)
    first = sock.recv(READ_SIZE)
    if not first:
        raise RuntimeError("back-pressure: the proxy closed the connection before answering")
    started = time.monotonic()
    result.first_byte_s = started - sent
    result.rss_first_byte_mb = rss_mb(proxy_pid)
    result.rss_peak_mb = result.rss_first_byte_mb
    result.client_read_bytes = len(first)
    sock.settimeout(5.0)
    while time.monotonic() - started < result.read_seconds:
        time.sleep(READ_PAUSE_S)
        try:
            data = sock.recv(READ_SIZE)
        except TimeoutError:
            result.notes.append("the stream stalled for 5 s while the client was reading slowly")
            break
        if not data:
            result.notes.append("the stream ended while the client was still reading slowly")
            break
        result.client_read_bytes += len(data)
        now_rss = rss_mb(proxy_pid)
        if now_rss is not None and (result.rss_peak_mb is None or now_rss > result.rss_peak_mb):
            result.rss_peak_mb = now_rss


def run_backpressure(
    procs: Processes, chunks: int, prompt_chars: int, read_seconds: float, log: IO[str]
) -> BackpressureResult:
    result = BackpressureResult(chunks=chunks, prompt_chars=prompt_chars, read_seconds=read_seconds)
    prompt = "x" * prompt_chars  # no whitespace: the fake's word counting stays cheap
    print(f"back-pressure: starting fake upstream ({chunks:,}-event streams)", file=log, flush=True)
    fake_proc, fake = start_fake(procs, "fake-bigstream", chunks)
    fake_port = port_of(fake)
    proxy_proc = None
    try:
        print("  back-pressure: reply size, straight from the fake", file=log, flush=True)
        result.upstream_reply_bytes = _direct_reply_size(fake, prompt)
        proxy_proc, url = start_proxy(procs, "proxy-backpressure", proxy_env(fake, 1, "warning"))
        print(f"  back-pressure: slow reader for {read_seconds:g} s", file=log, flush=True)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            _slow_read(sock, proxy_proc.pid, url, prompt, result)
            counts = _upstream_socket_bytes(fake_port)
            if counts is None:
                result.notes.append("ss -tni unavailable or ambiguous: upstream bytes not measured")
            else:
                result.upstream_pulled_bytes = counts[0] - counts[1]
                result.upstream_queued_bytes = counts[1]
            result.upstream_before_disconnect = established_to(fake_port)
        finally:
            sock.close()
        print("  back-pressure: client gone, waiting for the upstream connection", file=log, flush=True)
        closed = time.monotonic()
        if not result.upstream_before_disconnect:
            result.notes.append("no upstream connection was open when the client left: release not measured")
        while result.upstream_before_disconnect and time.monotonic() - closed < RELEASE_LIMIT_S:
            if established_to(fake_port) == 0:
                result.released_after_s = time.monotonic() - closed
                break
            time.sleep(0.02)
    finally:
        if proxy_proc is not None:
            procs.stop(proxy_proc)
        procs.stop(fake_proc)
    return result
