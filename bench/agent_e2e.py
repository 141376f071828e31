"""What the coding-agent end-to-end scripts share (codex_e2e.py, claude_e2e.py, geminicli_e2e.py): the
fake Google and a proxy `serve` process in front of it, then two turns of the agent itself:

1. a plain turn: the fake answers text, the agent must print it;
2. a tool turn: the fake's first answer calls the agent's shell tool (with a thought signature), the agent
   runs the command and sends its output back, the fake's second answer is text. Checked: the output
   reached Google, the call went back with its signature untouched, the agent printed the answer.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from common import Processes, clean_env, start_proxy
from gemini_cli_proxy.testing import FakeGoogle, Reply
from gemini_cli_proxy.testing.fake_google import create_fake_app

GREETING = "Hi! I am Gemini, speaking through the proxy."
PROXY_KEY = "sk-agent-e2e"

# (home, workdir, proxy URL, prompt) -> (exit code, what the agent printed)
Agent = Callable[[Path, Path, str, str], Awaitable[tuple[int, str]]]


@dataclass(frozen=True)
class ToolTurn:
    tool: str  # the agent's shell tool, as it declares it to Google
    argument: str  # the tool's command argument
    marker: str  # what the command echoes
    signature: str  # the thought signature the call carries
    ask: str  # the prompt of the tool turn
    model: str | None = None  # script only this model's calls (the agent's side calls get the echo)


def _call_reply(turn: ToolTurn) -> Reply:
    call = {"functionCall": {"name": turn.tool, "args": {turn.argument: f"echo {turn.marker}"}}}
    return Reply.response(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{**call, "thoughtSignature": turn.signature}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 12, "totalTokenCount": 912},
        }
    )


def _parts(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [part for content in request.get("contents", ()) for part in content.get("parts", ())]


def _check_tool_turn(fake: FakeGoogle, turn: ToolTurn) -> list[str]:
    requests = [r.request for r in fake.generate_requests()]
    print(f"--- Google got {len(requests)} generate requests in turn 2")
    answered = [
        (request, part)
        for request in requests
        for part in _parts(request)
        if "functionResponse" in part and turn.marker in str(part["functionResponse"])
    ]
    if not answered:
        return ["turn 2: the command's output did not reach Google"]
    request, part = answered[0]
    print(f"--- the function response Google got: {part['functionResponse']}")
    calls = [p for p in _parts(request) if p.get("functionCall", {}).get("name") == turn.tool]
    if not any(p.get("thoughtSignature") == turn.signature for p in calls):
        return ["turn 2: the call's thought signature did not come back"]
    return []


async def run_two_turns(name: str, agent: Agent, turn: ToolTurn) -> int:
    """Both turns of `agent`; prints what it printed and returns the exit status (1: a check failed)."""
    fake = FakeGoogle()
    runner = web.AppRunner(create_fake_app(fake), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    google = f"http://127.0.0.1:{runner.addresses[0][1]}"
    procs = Processes()
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        try:
            env = clean_env(
                {
                    "GEMINI_API_KEYS": f"{name}-e2e-key",
                    "GEMINI_API_BASE_URL": google,
                    "PROXY_API_KEYS": PROXY_KEY,
                    "PROXY_STATE_URL": "memory://",
                }
            )
            _, proxy = await asyncio.to_thread(start_proxy, procs, f"{name}-e2e-proxy", env)
            home, workdir = root / "home", root / "work"
            home.mkdir()
            workdir.mkdir()

            fake.push(Reply.text(GREETING), model=turn.model)
            code, printed = await agent(home, workdir, proxy, "Say hi.")
            print(f"--- turn 1: {name}, 'Say hi.' (exit {code})\n{printed}")
            if code != 0 or GREETING not in printed:
                failures.append("turn 1: the agent did not print the reply")

            fake.reset()
            answer = f"The command printed {turn.marker}."
            fake.push(_call_reply(turn), model=turn.model)
            fake.push(Reply.text(answer), model=turn.model)
            code, printed = await agent(home, workdir, proxy, turn.ask)
            print(f"--- turn 2: {name}, running {turn.tool} (exit {code})\n{printed}")
            if code != 0 or answer not in printed:
                failures.append("turn 2: the agent did not print the final reply")
            failures += _check_tool_turn(fake, turn)
        finally:
            procs.stop_all()
            await runner.cleanup()
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print("ok" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


async def run_agent(argv: list[str], *, env: dict[str, str], cwd: Path | None = None) -> tuple[int, str]:
    """The agent's process, its output (stdout and stderr), within four minutes."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(cwd) if cwd is not None else None,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    return process.returncode or 0, out.decode(errors="replace")
