"""`serve --workers N`: N processes, each accepting on its own listening socket bound to the one port
with SO_REUSEPORT (pre-fork), sharing state through the state store. The kernel spreads new connections
over the sockets evenly; with one shared socket, whichever worker woke first took a whole burst of new
connections (32 keep-alive connections opened at once all went to one worker about one time in three),
and the other one idled. The parent only supervises: it binds, forks, waits for every worker to be ready,
prints the one `listening on` line, and on SIGTERM/SIGINT stops the workers, which drain their in-flight
requests."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.synchronize import Event as EventType

from aiohttp import web

from .server import run, serve_socket

AppFactory = Callable[[], web.Application]
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _port_is_free(host: str, port: int) -> None:
    """Raise OSError(EADDRINUSE) when something listens on `port` already. The workers' sockets set
    SO_REUSEPORT, which would let them join another server's group on that port (another instance of
    this proxy, started twice) and share its traffic instead of failing as a second bind should."""
    probe = _listening_socket(host, port, reuse_port=False)
    probe.close()


def _listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """One socket per worker on one port (the first one picks it when `port` is 0); one socket shared
    by all where the platform has no SO_REUSEPORT."""
    if port:
        _port_is_free(host, port)
    try:
        first = _listening_socket(host, port, reuse_port=True)
    except (AttributeError, OSError) as error:
        if isinstance(error, OSError) and error.errno != errno.ENOPROTOOPT:
            raise
        # No SO_REUSEPORT here (the constant is missing, or the kernel refuses the option).
        return [_listening_socket(host, port, reuse_port=False)] * count
    sockets = [first]
    try:
        bound = first.getsockname()[1]
        sockets += [_listening_socket(host, bound, reuse_port=True) for _ in range(count - 1)]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the supervisor dies, so no worker is ever orphaned
    still serving on the inherited socket."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _worker(
    factory: AppFactory,
    sockets: Sequence[socket.socket],
    number: int,
    ready: EventType,
    grace: float,
    parent: int,
) -> None:
    _die_with_parent()
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        return
    sock = sockets[number]
    # The other workers' sockets are theirs: one held open here would keep queueing the connections
    # the kernel hands it after its own worker is gone.
    for other in sockets:
        if other is not sock:
            other.close()
    # The supervisor's handlers are inherited through fork; the worker's own loop installs its own.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    # Each worker builds its own app after the fork: no event loop, session or store connection
    # is ever shared between processes.
    run(serve_socket(factory(), sock, grace=grace, on_ready=ready.set))


def serve_workers(
    factory: AppFactory, host: str, port: int, *, workers: int, grace: float, banner: str = ""
) -> int:
    # Signals are handled from the very start, so a SIGTERM during start-up still stops every worker.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sockets = _listening_sockets(host, port, workers)
    bound = sockets[0].getsockname()[1]
    context = multiprocessing.get_context("fork")
    children = []
    try:
        for number in range(workers):
            ready = context.Event()
            child = context.Process(
                target=_worker,
                args=(factory, sockets, number, ready, grace, os.getpid()),
                name=f"worker-{number}",
            )
            child.start()
            children.append((child, ready))
    finally:
        for sock in set(sockets):  # the workers have theirs; the supervisor serves nothing
            sock.close()
    for child, ready in children:
        while not ready.wait(0.2):
            if stop.is_set() or not child.is_alive():
                _stop(children, grace)
                if not stop.is_set():
                    print(f"worker {child.name} failed to start", file=sys.stderr, flush=True)
                return 0 if stop.is_set() else 1
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    if banner:
        print(banner, file=sys.stderr, flush=True)
    print(f"listening on http://{shown}:{bound} ({workers} workers)", flush=True)
    crashed = False
    while not stop.wait(0.5):
        if any(not child.is_alive() for child, _ in children):
            print("a worker exited; stopping the others", file=sys.stderr, flush=True)
            crashed = True
            break
    _stop(children, grace)
    return 1 if crashed else 0


def _stop(children: Sequence[tuple[multiprocessing.process.BaseProcess, EventType]], grace: float) -> None:
    for child, _ in children:
        if child.is_alive() and child.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
    for child, _ in children:
        child.join(grace + 5)
        if child.is_alive():
            child.kill()
            child.join(5)
