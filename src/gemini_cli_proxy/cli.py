"""The `gemini-cli-proxy` command: serve, fake-upstream."""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from .logconfig import configure
from .server import run, serve_until_signalled
from .settings import Settings, load_settings


def _fail(message: str) -> None:
    click.echo(f"gemini-cli-proxy: {message}", err=True)
    sys.exit(2)


def _settings(**flags: Any) -> Settings:
    try:
        return load_settings(**flags)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        _fail(f"invalid settings: {problems}")
    except ValueError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


@click.group()
@click.version_option(package_name="gemini-cli-proxy")
def main() -> None:
    """An OpenAI Chat Completions API in front of Google Gemini."""


@main.command()
@click.option("--host", default=None, help="Address to listen on (PROXY_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (PROXY_PORT, default 8000).")
@click.option("--config", "config", default=None, help="TOML settings file (PROXY_CONFIG).")
@click.option(
    "--workers", type=int, default=None, help="Worker processes sharing the port (PROXY_WORKERS, 1)."
)
def serve(host: str | None, port: int | None, config: str | None, workers: int | None) -> None:
    """Serve the OpenAI-compatible API."""
    settings = _settings(proxy_host=host, proxy_port=port, proxy_config=config, proxy_workers=workers)
    configure(settings.proxy_log_level)
    if not settings.client_keys() and not settings.is_loopback_bind():
        _fail(
            f"refusing to listen on {settings.proxy_host} without a proxy key: anyone who can reach it "
            "could spend your Google quota. Set PROXY_API_KEYS, or bind to 127.0.0.1."
        )
    if settings.proxy_workers > 1:
        _count_across_workers()
    from .app import create_app  # imported here so `--help` stays fast
    from .runtime import SETUP
    from .startup import summary

    try:
        app = create_app(settings)
    except (ValueError, OSError) as exc:
        _fail(f"could not start: {exc}")
    setup = app[SETUP]
    banner = summary(setup.credentials, settings.proxy_state_url, setup.catalog)
    grace = settings.proxy_shutdown_grace
    if settings.proxy_workers > 1:
        if settings.proxy_state_url.lower().startswith("memory://"):
            _fail("--workers needs shared state: set PROXY_STATE_URL to sqlite:///... or redis://...")
        from .workers import serve_workers

        with _listen_errors(settings):
            code = serve_workers(
                lambda: create_app(settings),
                settings.proxy_host,
                settings.proxy_port,
                workers=settings.proxy_workers,
                grace=grace,
                banner=banner,
            )
        sys.exit(code)
    with _listen_errors(settings):
        run(serve_until_signalled(app, settings.proxy_host, settings.proxy_port, grace=grace, banner=banner))


def _count_across_workers() -> None:
    """Metrics in prometheus-client's multiprocess mode: each worker counts into files in one
    directory, and a scrape answered by any worker adds them up. The directory must start empty: a
    fresh one is made and removed at exit, or an operator's PROMETHEUS_MULTIPROC_DIR is emptied of
    old counts."""
    from .metrics import MULTIPROCESS_ENV, count_in_files  # imported here so `--help` stays fast

    given = os.environ.get(MULTIPROCESS_ENV)
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        count_in_files(given)
        return
    directory = tempfile.mkdtemp(prefix="gemini-cli-proxy-metrics-")
    atexit.register(shutil.rmtree, directory, True)
    count_in_files(directory)


@contextlib.contextmanager
def _listen_errors(settings: Settings) -> Iterator[None]:
    """A port in use or an address this machine does not have: one line, not a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        _fail(f"cannot listen on {settings.proxy_host}:{settings.proxy_port}: {os.strerror(exc.errno)}")


@main.command("fake-upstream")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8090, show_default=True)
@click.option("--api-key", "api_keys", multiple=True, help="Accept only these keys (default: any key).")
@click.option("--stream-chunks", type=int, default=3, show_default=True, help="Events in a default stream.")
@click.option("--stream-delay", type=float, default=0.0, show_default=True, help="Seconds between events.")
@click.option("--first-byte-delay", type=float, default=0.0, show_default=True)
def fake_upstream(
    host: str,
    port: int,
    api_keys: tuple[str, ...],
    stream_chunks: int,
    stream_delay: float,
    first_byte_delay: float,
) -> None:
    """Run the fake Google (AI Studio, Code Assist, OAuth) used by the tests, for offline trials."""
    from .testing.fake_google import FakeGoogle, create_fake_app

    configure("warning")
    fake = FakeGoogle(
        api_keys=api_keys or None,
        default_stream_chunks=stream_chunks,
        stream_delay=stream_delay,
        first_byte_delay=first_byte_delay,
    )
    run(serve_until_signalled(create_fake_app(fake), host, port, grace=1.0))


@main.command("check")
@click.option("--config", "config", default=None, help="TOML settings file (PROXY_CONFIG).")
@click.option("--model", default="gemini-2.5-flash", show_default=True, help="The model each test call uses.")
@click.option("--dry-run", is_flag=True, help="Tokens and project discovery only: no generate call.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per credential, for scripts.")
def check(config: str | None, model: str, dry_run: bool, as_json: bool) -> None:
    """Check every configured credential (the settings `serve` uses): exit 0 when all work."""
    import asyncio

    import orjson
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from .check import check_credentials, table_rows

    settings = _settings(proxy_config=config)
    configure("error")  # the table says what went wrong; log lines would only repeat it
    errors = Console(stderr=True)
    with Progress(
        TextColumn("checking credentials"),
        BarColumn(),
        MofNCompleteColumn(),
        console=errors,
        transient=True,
        disable=as_json or not errors.is_terminal,
    ) as progress:
        task = progress.add_task("check", total=None)
        try:
            results = asyncio.run(
                check_credentials(
                    settings,
                    model=model,
                    dry_run=dry_run,
                    started=lambda count: progress.update(task, total=count),
                    done=lambda _: progress.advance(task),
                )
            )
        except ValueError as exc:
            _fail(f"could not check: {exc}")
    if as_json:
        click.echo(orjson.dumps([r.as_json() for r in results], option=orjson.OPT_INDENT_2).decode())
    else:
        table = Table(title=f"{sum(r.works for r in results)} of {len(results)} credentials work")
        for column in ("label", "kind", "pool", "project", "state", "latency", "Google's error"):
            table.add_column(column, overflow="fold")
        for row, result in zip(table_rows(results), results, strict=True):
            style = "green" if result.state in ("ok", "ready") else ("yellow" if result.works else "red")
            table.add_row(*row, style=style)
        Console().print(table)
    sys.exit(0 if results and all(r.works for r in results) else 1)
