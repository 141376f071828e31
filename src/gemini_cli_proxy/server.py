"""Running an app on a socket until SIGTERM/SIGINT, then draining in-flight requests."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from .drain import ENDING_SECONDS
from .http_protocol import ProxyAppRunner
from .logconfig import FLUSH_INTERVAL_SECONDS, flush_handlers
from .settings import Settings


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (absent on Windows)
        return None
    return uvloop.new_event_loop


async def _flush_logs_periodically() -> None:
    while True:
        await asyncio.sleep(FLUSH_INTERVAL_SECONDS)
        flush_handlers()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    flusher = loop.create_task(_flush_logs_periodically(), name="log-flusher")
    try:
        await stop.wait()
    finally:
        flusher.cancel()
        flush_handlers()
    print("shutting down: draining in-flight requests", file=sys.stderr, flush=True)


def read_timeout_of(app: web.Application) -> float:
    """The PROXY_REQUEST_READ_TIMEOUT of the settings the app was built from; the default for an app built
    without settings (the fake Google)."""
    from .runtime import SETUP  # here: the runtime imports the whole proxy, which `--help` need not load

    setup = app.get(SETUP)
    if setup is not None:
        return setup.settings.proxy_request_read_timeout
    default: float = Settings.model_fields["proxy_request_read_timeout"].default
    return default


def make_runner(app: web.Application, grace: float, read_timeout: float) -> web.AppRunner:
    # The app's Drain ends what still runs when the grace is over (see drain.py); aiohttp waits a
    # little longer than that, so that those requests can write their endings before it cuts them.
    return ProxyAppRunner(
        app,
        read_timeout=read_timeout,
        access_log=None,
        shutdown_timeout=grace + ENDING_SECONDS + 0.25,
        handler_cancellation=True,
    )


async def serve_until_signalled(
    app: web.Application, host: str, port: int, *, grace: float, banner: str = ""
) -> None:
    """Serve until SIGTERM/SIGINT; once listening, `banner` (if any) goes to stderr and the
    `listening on URL` line to stdout."""
    runner = make_runner(app, grace, read_timeout_of(app))
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=2048)
        await site.start()
        bound_port = runner.addresses[0][1] if runner.addresses else port
        shown_host = f"[{host}]" if ":" in host else host
        if banner:
            print(banner, file=sys.stderr, flush=True)
        print(f"listening on http://{shown_host}:{bound_port}", flush=True)
        await _until_signalled()
    finally:
        await runner.cleanup()
        # The lines of the drained requests: a worker process ends without logging.shutdown().
        flush_handlers()


async def serve_socket(
    app: web.Application, sock: socket.socket, *, grace: float, on_ready: Callable[[], None]
) -> None:
    """Serve on an already listening socket (a worker of `serve --workers N`)."""
    runner = make_runner(app, grace, read_timeout_of(app))
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        on_ready()
        await _until_signalled()
    finally:
        await runner.cleanup()
        # The lines of the drained requests: a worker process ends without logging.shutdown().
        flush_handlers()


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run the server coroutine on uvloop when available."""
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        runner.run(main)
