"""`gemini-cli-proxy check`: every configured credential tried before going live.

The same settings as `serve`, but a state store of its own (memory://): a check must not clear the
disabled flags or cooldowns of the instances it is checking for, nor count its calls in their quota
pacing. Per credential: a token (OAuth refreshed, Vertex minted), the Google project (Code Assist's
discovered or onboarded), then one minimal generate through exactly that credential (skipped with
`--dry-run`). Nothing secret is shown: labels are redacted and Google's words scrubbed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from .app import create_app
from .credentials import Credential
from .pool.dispatch import Gateway, ProbeFailure
from .routes.debug import TEST_REQUEST
from .runtime import runtime_of_app
from .settings import Settings

CHECKS_AT_ONCE = 8
# What each outcome means for the exit code: a credential that works, or one that does not.
WORKING = frozenset({"ok", "rate limited", "ready"})


@dataclass(frozen=True, slots=True)
class CheckResult:
    label: str
    kind: str
    pool: str
    project: str | None
    state: str  # ok, ready (--dry-run), rate limited, token failed, project failed, failed
    latency_ms: float | None
    error: str | None  # Google's words, on one line

    @property
    def works(self) -> bool:
        return self.state in WORKING

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "works": self.works}


async def check_credentials(
    settings: Settings,
    *,
    model: str,
    dry_run: bool,
    started: Callable[[int], None] = lambda count: None,
    done: Callable[[CheckResult], None] = lambda result: None,
) -> list[CheckResult]:
    """Every credential checked (several at once), in the order configured; `started` is told how
    many there are once they are loaded, and `done` of each as it finishes (the progress bar)."""
    app = create_app(settings.model_copy(update={"proxy_state_url": "memory://"}))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()  # the app's lifespan: the Runtime, its session and clients
    try:
        runtime = runtime_of_app(app)
        info = runtime.catalog.get(model)
        if info is None or info.embeds:
            raise ValueError(f"{model} is not a model this proxy generates with")
        slots = asyncio.Semaphore(CHECKS_AT_ONCE)
        started(len(runtime.credentials))

        async def one(cred: Credential) -> CheckResult:
            async with slots:
                result = await _check(runtime.gateway, cred, info.id, dry_run=dry_run)
            done(result)
            return result

        return list(await asyncio.gather(*(one(cred) for cred in runtime.credentials)))
    finally:
        await runner.cleanup()


async def _check(gateway: Gateway, cred: Credential, model: str, *, dry_run: bool) -> CheckResult:
    def result(
        state: str, *, project: str | None = None, ms: float | None = None, error: str = ""
    ) -> CheckResult:
        return CheckResult(cred.label, cred.kind, cred.pool, project, state, ms, _one_line(error) or None)

    token = await gateway.probe_token(cred)
    if isinstance(token, ProbeFailure):
        return result("token failed", error=token.message)
    project = await gateway.probe_project(cred)
    if isinstance(project, ProbeFailure):
        return result("project failed", error=project.message)
    if dry_run:
        return result("ready", project=project)
    started = time.perf_counter()
    failure = await gateway.probe(cred, model, TEST_REQUEST)
    ms = round((time.perf_counter() - started) * 1000, 1)
    if failure is None:
        return result("ok", project=project, ms=ms)
    state = "rate limited" if failure.status == 429 else "failed"
    return result(state, project=project, ms=ms, error=f"{failure.status} {failure.message}")


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def table_rows(results: Sequence[CheckResult]) -> list[list[str]]:
    """The table's cells: label, kind, pool, project, state, latency, error."""
    return [
        [
            r.label,
            r.kind,
            r.pool,
            r.project or "-",
            r.state,
            f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "-",
            r.error or "",
        ]
        for r in results
    ]
