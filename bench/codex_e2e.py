"""Codex CLI itself through the proxy's Responses door, against the fake Google: two `codex exec` turns.

1. A plain turn: Codex asks, the fake answers text, Codex prints it.
2. A tool turn: the fake's first answer is a call of Codex's `exec_command` tool (with a Gemini 3 thought
   signature); Codex runs the command, sends its output back with the reasoning item it got (it keeps no
   server state: `store: false`), and the fake's second answer is text. The script checks that the second
   request Google got carries the command's output and the call's thought signature.

    npm install --prefix /tmp/codex @openai/codex@0.169.0
    .venv/bin/python bench/codex_e2e.py --codex /tmp/codex/node_modules/.bin/codex

Prints what Codex printed for each turn and exits non-zero when a check fails. Not part of `make test`:
it needs Node.js and Codex CLI from the npm registry, and takes a few seconds a turn.
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
SIGNATURE = "Y29kZXgtZTJlLXNpZ25hdHVyZQ=="
MARKER = "codex-was-here"


def _call_reply() -> Reply:
    call = {"functionCall": {"name": "exec_command", "args": {"cmd": f"echo {MARKER}"}}}
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


def _config(home: Path, base_url: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'model = "{MODEL}"\n'
        'model_provider = "gemini-cli-proxy"\n'
        "[model_providers.gemini-cli-proxy]\n"
        'name = "gemini-cli-proxy"\n'
        f'base_url = "{base_url}/v1"\n'
        'env_key = "GEMINI_CLI_PROXY_KEY"\n'
        'wire_api = "responses"\n'
    )


async def _codex(codex: str, home: Path, workdir: Path, prompt: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "CODEX_HOME": str(home),
        "GEMINI_CLI_PROXY_KEY": "sk-codex-e2e",
        "NO_COLOR": "1",
    }
    process = await asyncio.create_subprocess_exec(
        codex,
        "exec",
        "--skip-git-repo-check",
        "--sandbox",
        "danger-full-access",
        "--cd",
        str(workdir),
        prompt,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    return process.returncode or 0, out.decode(errors="replace")


def _function_response(request: dict[str, Any]) -> dict[str, Any] | None:
    for content in request.get("contents", ()):
        for part in content.get("parts", ()):
            if "functionResponse" in part:
                found: dict[str, Any] = part["functionResponse"]
                return found
    return None


def _signed_call(request: dict[str, Any]) -> bool:
    parts = [part for content in request.get("contents", ()) for part in content.get("parts", ())]
    calls = [part for part in parts if part.get("functionCall", {}).get("name") == "exec_command"]
    return any(part.get("thoughtSignature") == SIGNATURE for part in calls)


async def main(codex: str) -> int:
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
                    "GEMINI_API_KEYS": "codex-e2e-key",
                    "GEMINI_API_BASE_URL": google,
                    "PROXY_API_KEYS": "sk-codex-e2e",
                    "PROXY_STATE_URL": "memory://",
                }
            )
            _, proxy = await asyncio.to_thread(start_proxy, procs, "codex-e2e-proxy", env)
            home = root / "codex-home"
            _config(home, proxy)
            workdir = root / "work"
            workdir.mkdir()

            fake.push(Reply.text("Hi! I am Gemini, speaking through the proxy."))
            code, printed = await _codex(codex, home, workdir, "Say hi.")
            print(f"--- turn 1: codex exec 'Say hi.' (exit {code})\n{printed}")
            if code != 0 or "speaking through the proxy" not in printed:
                failures.append("turn 1: Codex did not print the reply")

            fake.reset()
            fake.push(_call_reply())
            fake.push(Reply.text(f"The command printed {MARKER}."))
            ask = f"Run `echo {MARKER}` and tell me what it printed."
            code, printed = await _codex(codex, home, workdir, ask)
            print(f"--- turn 2: codex exec with exec_command (exit {code})\n{printed}")
            requests = [r.request for r in fake.generate_requests()]
            print(f"--- Google got {len(requests)} generate requests in turn 2")
            if code != 0 or f"The command printed {MARKER}" not in printed:
                failures.append("turn 2: Codex did not print the final reply")
            if len(requests) < 2:
                failures.append("turn 2: Codex did not send the command's output back")
            else:
                answer = _function_response(requests[1])
                print(f"--- the function response Google got: {answer}")
                if answer is None or MARKER not in str(answer):
                    failures.append("turn 2: the command's output did not reach Google")
                if not _signed_call(requests[1]):
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
    parser.add_argument("--codex", default="codex", help="the codex executable")
    sys.exit(asyncio.run(main(parser.parse_args().codex)))
