"""Quota as one: does the pool answer a client 429 only when the whole pool is out?

A simulated AI Studio with Google's quota model: a per-minute-style request quota per Google project
and model, in fixed windows (compressible: 10 s windows make a run short), shared by every key of the
project; real-shaped 429s (QuotaFailure, RetryInfo truncated to whole seconds, the exact delay in the
message), invalid keys (400 API_KEY_INVALID) and daily-spent keys (429 PerDay). Every upstream call
goes into a ledger. Open-loop load (requests at a fixed rate, whether or not earlier ones finished) in
phases at a share of the pool's capacity, through one proxy instance or two sharing a Redis, and per
phase:

- client 429s while some project still had quota for the model (the number that must be 0);
- upstream calls per client request; the spread of successes over projects (min and max against a
  fair share); 429s without Retry-After; latency; in a recovery phase, when its last 429 came.

Run: `.venv/bin/python bench/quota_sim.py --window 10 --keys 55 --instances 1` (add `--instances 2`
for two instances over a private redis-server, `--keys 300` for a large pool). Results go to stdout as
a Markdown table; record notable runs in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from common import Processes, clean_env, start_proxy, start_redis
from gemini_cli_proxy.app import create_app
from gemini_cli_proxy.credentials import ApiKeyCredential
from gemini_cli_proxy.runtime import runtime_of_app
from gemini_cli_proxy.settings import Settings

MODEL = "gemini-2.5-flash"
KEYS_PER_PROJECT = 5
QUOTA = 10  # requests per window, per project and model
PHASES = (("warm", 0.5), ("busy", 0.9), ("over", 1.3), ("recovery", 0.5))


@dataclass
class Call:
    at: float
    key: str
    project: str | None
    outcome: int  # HTTP status the simulated Google answered


@dataclass
class SimulatedStudio:
    """Google's quota model for one model: fixed windows per project, counted per call."""

    window: float
    projects: dict[str, str]  # key -> project
    invalid: set[str]
    spent: set[str]  # keys whose project's daily quota is gone
    started: float = field(default_factory=time.monotonic)
    # project -> how far into its window the project is at `started`: 0 for all when windows are
    # aligned across projects; spread over the window when each project's windows begin apart.
    offsets: dict[str, float] = field(default_factory=dict)
    used: Counter[tuple[str, int]] = field(default_factory=Counter)
    ledger: list[Call] = field(default_factory=list)

    def window_of(self, at: float, project: str | None = None) -> tuple[int, float]:
        """(window index, seconds until it ends) at monotonic time `at`, for `project`'s windows."""
        elapsed = at - self.started + self.offsets.get(project or "", 0.0)
        index = int(elapsed // self.window)
        return index, (index + 1) * self.window - elapsed

    def has_quota(self, at: float) -> bool:
        """Some project that can serve had quota left at `at`."""
        serving = {p for k, p in self.projects.items() if k not in self.invalid and k not in self.spent}
        return any(self.used[(project, self.window_of(at, project)[0])] < QUOTA for project in serving)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        key = request.headers.get("x-goog-api-key", "")
        now = time.monotonic()
        project = self.projects.get(key)
        if key in self.invalid or project is None:
            self.ledger.append(Call(now, key, project, 400))
            return _json(
                400,
                _error(
                    400,
                    "API key not valid. Please pass a valid API key.",
                    "INVALID_ARGUMENT",
                    [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
                ),
            )
        if key in self.spent:
            self.ledger.append(Call(now, key, project, 429))
            return _json(429, _quota_error("GenerateRequestsPerDayPerProjectPerModel-FreeTier", 3600.0))
        index, left = self.window_of(now, project)
        if self.used[(project, index)] >= QUOTA:
            self.ledger.append(Call(now, key, project, 429))
            return _json(429, _quota_error("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", left))
        self.used[(project, index)] += 1
        self.ledger.append(Call(now, key, project, 200))
        return _json(200, _REPLY)


_REPLY = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP", "index": 0}
    ],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
}


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _error(code: int, message: str, status: str, details: list[dict[str, Any]]) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


def _quota_error(quota_id: str, delay: float) -> dict[str, Any]:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaId": quota_id, "quotaValue": str(QUOTA)}],
        },
        # Google's RetryInfo is whole seconds, truncated; the message keeps the exact delay.
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{int(delay)}s"},
    ]
    message = f"You exceeded your current quota. Please retry in {delay:.6f}s."
    return _error(429, message, "RESOURCE_EXHAUSTED", details)


@dataclass
class Outcome:
    sent: float
    status: int
    latency: float
    retry_after: str | None
    quota_left: bool  # some project had quota when the answer came
    answer: bytes = b""  # the body of a 429


def make_pool(keys: int, rng: random.Random) -> tuple[dict[str, str], set[str], set[str]]:
    """`keys` keys in projects of KEYS_PER_PROJECT; one key in 11 invalid, one project in 11 spent."""
    projects: dict[str, str] = {}
    for i in range(keys):
        projects[f"sim-key-{i:04d}-{rng.getrandbits(32):08x}"] = f"project-{i // KEYS_PER_PROJECT:03d}"
    names = sorted(set(projects.values()))
    spent_projects = set(names[::11][1:]) if len(names) > 11 else set()
    spent = {k for k, p in projects.items() if p in spent_projects}
    invalid = {k for i, k in enumerate(projects) if i % 11 == 10}
    return projects, invalid, spent


def lap_turns(turns: int, units: int) -> list[int]:
    """How many of `turns` a rotation over `units` gives each, beginning with the first."""
    laps, rest = divmod(turns, units) if units else (0, 0)
    return [laps + (1 if i < rest else 0) for i in range(units)]


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _load(
    urls: list[str], rate: float, seconds: float, studio: SimulatedStudio, session: aiohttp.ClientSession
) -> list[Outcome]:
    """Open loop: one request every 1/rate s for `seconds`, whatever the answers."""
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    outcomes: list[Outcome] = []

    async def one(i: int) -> None:
        sent = time.monotonic()
        async with session.post(
            f"{urls[i % len(urls)]}/v1/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as resp:
            answer = await resp.read()
            done = time.monotonic()
            outcomes.append(
                Outcome(
                    sent,
                    resp.status,
                    done - sent,
                    resp.headers.get("Retry-After"),
                    studio.has_quota(done),
                    answer if resp.status == 429 else b"",
                )
            )

    tasks = []
    start = time.monotonic()
    count = int(rate * seconds)
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return outcomes


def _report_phase(
    name: str,
    share: float,
    outcomes: list[Outcome],
    calls: list[Call],
    projects: dict[str, str],
    serving_projects: set[str],
    serving_keys: set[str],
    declare: bool,
    detail: bool = False,
) -> dict[str, Any]:
    limited = [o for o in outcomes if o.status == 429]
    with_quota = [o for o in limited if o.quota_left]
    successes = Counter(c.project for c in calls if c.outcome == 200)
    fair = (sum(successes.values()) / len(serving_projects)) if serving_projects else 0
    spread = [successes.get(p, 0) / fair for p in serving_projects] if fair else [0.0]
    # Without projects declared, the pool can only be fair to keys: each usable key's share.
    by_key = Counter(c.key for c in calls if c.outcome == 200)
    fair_key = (sum(by_key.values()) / len(serving_keys)) if serving_keys else 0
    key_spread = [by_key.get(k, 0) / fair_key for k in serving_keys] if fair_key else [0.0]
    # The yardstick: a fair rotation with as many successes, undisturbed: over the projects when
    # they are declared, else over the keys (the pool cannot know which keys share a project), in
    # the order the pool turns them (by credential id), then summed by project. A phase that is not
    # a whole number of laps gives the keys its last part reaches one turn more: whichever projects
    # those keys belong to are ahead.
    if declare:
        units = sorted(serving_projects)
    else:
        units = sorted(serving_keys, key=lambda k: ApiKeyCredential(k).id)
    turns = sum(successes.values())
    ideal = Counter(
        unit if declare else projects[unit]
        for unit, count in zip(units, lap_turns(turns, len(units)), strict=True)
        for _ in range(count)
    )
    ideal_spread = [ideal.get(p, 0) / fair for p in serving_projects] if fair else [0.0]
    latencies = sorted(o.latency for o in outcomes)
    phase_start = min((o.sent for o in outcomes), default=0.0)
    last_429 = max((o.sent - phase_start for o in limited), default=None)
    if detail:
        print(name, {p: successes.get(p, 0) for p in sorted(serving_projects)}, file=sys.stderr)
        for outcome in with_quota:
            print(f"  429 with quota left, {outcome.sent:.2f}: {outcome.answer[:300]!r}", file=sys.stderr)
    return {
        "phase": f"{name} ({share:.0%})",
        "requests": len(outcomes),
        "200": sum(1 for o in outcomes if o.status == 200),
        "429": len(limited),
        "429 with quota left": len(with_quota),
        "share with quota left": f"{len(with_quota) / max(1, len(outcomes)):.2%}",
        "429 without Retry-After": sum(1 for o in limited if not o.retry_after),
        "other errors": sum(1 for o in outcomes if o.status not in (200, 429)),
        "upstream calls / request": f"{len(calls) / max(1, len(outcomes)):.2f}",
        "spread min-max": f"{min(spread):.2f}-{max(spread):.2f}",
        "fair rotation's spread": f"{min(ideal_spread):.2f}-{max(ideal_spread):.2f}",
        "key spread min-max": f"{min(key_spread):.2f}-{max(key_spread):.2f}",
        "p50 / p99 ms": f"{statistics.median(latencies) * 1000:.0f} / "
        f"{latencies[max(0, math.ceil(len(latencies) * 0.99) - 1)] * 1000:.0f}"
        if latencies
        else "n/a",
        "last 429 s into phase": f"{last_429:.1f}" if last_429 is not None else "none",
    }


async def simulate(
    keys: int,
    window: float,
    instances: int,
    windows_per_phase: int,
    seed: int,
    declare: bool,
    detail: bool = False,
    phased: bool = False,
    in_process: bool = False,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The table's rows, and (`in_process`) a line per instance on the keys it took for siblings."""
    rng = random.Random(seed)
    projects, invalid, spent = make_pool(keys, rng)
    serving_projects = {p for k, p in projects.items() if k not in invalid and k not in spent}
    serving_keys = {k for k in projects if k not in invalid and k not in spent}
    capacity = len(serving_projects) * QUOTA / window  # requests per second the pool can take
    studio = SimulatedStudio(window, projects, invalid, spent)
    if phased:
        studio.offsets = {project: rng.uniform(0, window) for project in set(projects.values())}
    procs = Processes()
    runners: list[web.AppRunner] = []
    with tempfile.TemporaryDirectory() as workdir:
        try:
            google_runner, google_url = await _serve(_studio_app(studio))
            runners.append(google_runner)
            state_url = "memory://"
            if instances > 1:
                started = start_redis(procs, Path(workdir))
                if started is None:
                    raise SystemExit("two instances need redis-server on PATH")
                state_url = started[1]
            urls = []
            apps = []
            # KEY@PROJECT when declared (AI Studio's 429s never say which keys share a project)
            keys_setting = [f"{k}@{p}" if declare else k for k, p in projects.items()]
            for n in range(instances):
                if in_process:
                    settings = Settings(
                        gemini_api_keys=keys_setting,
                        gemini_api_base_url=google_url,
                        gemini_oauth_creds=[],
                        proxy_state_url=state_url,
                        proxy_log_level="error",
                        proxy_retry_deadline=30.0,
                    )
                    apps.append(create_app(settings))
                    runner, url = await _serve(apps[-1])
                    runners.append(runner)
                else:
                    env = clean_env(
                        {
                            "GEMINI_API_KEYS": ",".join(keys_setting),
                            "GEMINI_API_BASE_URL": google_url,
                            "PROXY_STATE_URL": state_url,
                            "PROXY_LOG_LEVEL": "error",
                            "PROXY_RETRY_DEADLINE": "30",
                        }
                    )
                    # A thread: the simulated Google answers on this loop while the proxy starts.
                    _, url = await asyncio.to_thread(
                        start_proxy, procs, f"quota-sim-{os.getpid()}-proxy-{n}", env
                    )
                urls.append(url)
            rows = []
            timeout = aiohttp.ClientTimeout(total=60)
            async with aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
            ) as session:
                studio.started = time.monotonic()
                for name, share in PHASES:
                    # Each phase begins as a window does: else its first moments still belong to the
                    # window the phase before spent, and a 429 there is that phase's, not this one's.
                    # (With --phased-windows, as the windows of a project without offset would.)
                    _, left = studio.window_of(time.monotonic())
                    if left < window - 0.05:
                        await asyncio.sleep(left)
                    before = len(studio.ledger)
                    outcomes = await _load(
                        urls, capacity * share, window * windows_per_phase, studio, session
                    )
                    rows.append(
                        _report_phase(
                            name,
                            share,
                            outcomes,
                            studio.ledger[before:],
                            projects,
                            serving_projects,
                            serving_keys,
                            declare,
                            detail,
                        )
                    )
            return rows, [_siblings_line(app, projects) for app in apps]
        finally:
            for runner in reversed(runners):
                await runner.cleanup()
            procs.stop_all()


def _siblings_line(app: web.Application, projects: dict[str, str]) -> str:
    """How many of the key pairs an instance took for siblings really share a project."""
    inferring, pairs = runtime_of_app(app).scheduler.inferred_siblings()
    right = sum(1 for a, b in pairs if projects[a.secrets()[0]] == projects[b.secrets()[0]])
    state = "on" if inferring else "off (windows end together across projects)"
    return f"sibling inference {state}: {len(pairs)} key pairs taken for siblings, {right} of them right"


def _studio_app(studio: SimulatedStudio) -> web.Application:
    app = web.Application()
    app.router.add_post("/v1beta/models/{tail}", studio.handle)
    return app


def _table(rows: list[dict[str, Any]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(row[h]) for h in head) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    # In-process proxies log through the root logger: their per-429 warnings are the run's noise here.
    logging.getLogger("gemini_cli_proxy").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=55)
    parser.add_argument("--window", type=float, default=10.0, help="quota window in seconds (Google's: 60)")
    parser.add_argument("--instances", type=int, default=1, choices=(1, 2))
    parser.add_argument("--windows-per-phase", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--declare-projects", action="store_true", help="give the keys as KEY@PROJECT")
    parser.add_argument("--detail", action="store_true", help="print each project's successes per phase")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the proxies on the simulation's event loop (default: `serve` processes); "
        "reports which keys each took for siblings",
    )
    parser.add_argument(
        "--phased-windows",
        action="store_true",
        help="each project's windows begin at its own moment (default: all projects' windows together)",
    )
    args = parser.parse_args()
    rows, siblings = asyncio.run(
        simulate(
            args.keys,
            args.window,
            args.instances,
            args.windows_per_phase,
            args.seed,
            args.declare_projects,
            args.detail,
            args.phased_windows,
            args.in_process,
        )
    )
    declared = "declared" if args.declare_projects else "not declared"
    windows = "each project's apart" if args.phased_windows else "aligned across projects"
    where = "in the simulation's process" if args.in_process else "serve processes"
    print(
        f"keys {args.keys}, window {args.window:g} s ({windows}), instances {args.instances} ({where}), "
        f"quota {QUOTA} per project, projects {declared}\n"
    )
    print(_table(rows))
    if siblings and not args.declare_projects:
        print("\n" + "\n".join(siblings))


if __name__ == "__main__":
    main()
