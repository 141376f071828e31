"""Claude Code itself through the proxy's Messages door, against the fake Google: two `claude -p` turns.

1. A plain turn: Claude Code asks, the fake answers text, Claude Code prints it.
2. A tool turn: the fake's first answer is a call of Claude Code's `Bash` tool (with a Gemini 3 thought
   signature); Claude Code runs the command, sends its output back with the thinking block it got, and
   the fake's second answer is text. The script checks that the request Google got next carries the
   command's output and the call's thought signature.

    npm install --prefix /tmp/claude @anthropic-ai/claude-code@2.1.197
    .venv/bin/python bench/claude_e2e.py --claude /tmp/claude/node_modules/.bin/claude

Prints what Claude Code printed for each turn and exits non-zero when a check fails. Not part of
`make test`: it needs Node.js and Claude Code from the npm registry.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from common import Processes, clean_env, start_proxy
from gemini_cli_proxy.testing import FakeGoogle, Reply
from gemini_cli_proxy.testing.fake_google import create_fake_app

MODEL = "gemini-3-pro-preview"
SIGNATURE = "Y2xhdWRlLWUyZS1zaWduYXR1cmU="
MARKER = "claude-was-here"


def _call_reply() -> Reply:
    call = {"functionCall": {"name": "Bash", "args": {"command": f"echo {MARKER}"}}}
    return Reply.response(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{**call, "thoughtSignature": SIGNATURE}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 12, "totalTokenCount": 912},
        }
    )


async def _claude(claude: str, home: Path, workdir: Path, proxy: str, prompt: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": proxy,
        "ANTHROPIC_API_KEY": "sk-claude-e2e",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": MODEL,
        "ANTHROPIC_MODEL": MODEL,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "NO_COLOR": "1",
    }
    process = await asyncio.create_subprocess_exec(
        claude,
        "-p",
        prompt,
        "--allowedTools",
        "Bash",
        cwd=str(workdir),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    return process.returncode or 0, out.decode(errors="replace")


def _parts(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [part for content in request.get("contents", ()) for part in content.get("parts", ())]


async def main(claude: str) -> int:
    fake = FakeGoogle()
    runner = web.AppRunner(create_fake_app(fake), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    google = f"http://127.0.0.1:{runner.addresses[0][1]}"
    procs = Processes()
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        try:
            env = clean_env(
                {
                    "GEMINI_API_KEYS": "claude-e2e-key",
                    "GEMINI_API_BASE_URL": google,
                    "PROXY_API_KEYS": "sk-claude-e2e",
                    "PROXY_STATE_URL": "memory://",
                }
            )
            _, proxy = await asyncio.to_thread(start_proxy, procs, "claude-e2e-proxy", env)
            home = root / "home"
            home.mkdir()
            workdir = root / "work"
            workdir.mkdir()
            # Claude Code may make side calls (titles, summaries) before the turn: the default echo
            # answers those; the scripted replies are for the calls that carry tools.
            fake.push(Reply.text("Hi! I am Gemini, speaking through the proxy."))
            code, printed = await _claude(claude, home, workdir, proxy, "Say hi.")
            print(f"--- turn 1: claude -p 'Say hi.' (exit {code})\n{printed}")
            if code != 0 or "speaking through the proxy" not in printed:
                failures.append("turn 1: Claude Code did not print the reply")

            fake.reset()
            fake.push(_call_reply())
            fake.push(Reply.text(f"The command printed {MARKER}."))
            ask = f"Run `echo {MARKER}` with Bash and tell me what it printed."
            code, printed = await _claude(claude, home, workdir, proxy, ask)
            print(f"--- turn 2: claude -p with Bash (exit {code})\n{printed}")
            requests = [r.request for r in fake.generate_requests()]
            print(f"--- Google got {len(requests)} generate requests in turn 2")
            if code != 0 or f"The command printed {MARKER}" not in printed:
                failures.append("turn 2: Claude Code did not print the final reply")
            answered = [
                (request, part)
                for request in requests
                for part in _parts(request)
                if "functionResponse" in part and MARKER in str(part["functionResponse"])
            ]
            if not answered:
                failures.append("turn 2: the command's output did not reach Google")
            else:
                request, part = answered[0]
                print(f"--- the function response Google got: {part['functionResponse']}")
                signed = [p for p in _parts(request) if p.get("functionCall", {}).get("name") == "Bash"]
                if not any(p.get("thoughtSignature") == SIGNATURE for p in signed):
                    failures.append("turn 2: the call's thought signature did not come back")
        finally:
            procs.stop_all()
            await runner.cleanup()
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print("ok" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claude", default="claude", help="the claude executable")
    sys.exit(asyncio.run(main(parser.parse_args().claude)))
