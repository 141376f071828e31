"""gemini-cli itself through the proxy's Gemini door, against the fake Google: two `gemini -p` turns.

1. A plain turn: gemini-cli asks, the fake answers text, gemini-cli prints it.
2. A tool turn (`--yolo`): the fake's first answer is a call of gemini-cli's `run_shell_command` tool
   (with a thought signature); gemini-cli runs the command and sends its output back, and the fake's
   second answer is text. The script checks that the request Google got next carries the command's
   output and the call's thought signature, untouched.

    npm install --prefix /tmp/geminicli @google/gemini-cli@0.61.0
    .venv/bin/python bench/geminicli_e2e.py --gemini /tmp/geminicli/node_modules/.bin/gemini

Prints what gemini-cli printed for each turn and exits non-zero when a check fails. Not part of
`make test`: it needs Node.js and gemini-cli from the npm registry.
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

MODEL = "gemini-2.5-pro"
SIGNATURE = "Z2VtaW5pLWNsaS1lMmU="
MARKER = "gemini-cli-was-here"


def _call_reply() -> Reply:
    call = {"functionCall": {"name": "run_shell_command", "args": {"command": f"echo {MARKER}"}}}
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


async def _gemini(gemini: str, home: Path, workdir: Path, proxy: str, prompt: str) -> tuple[int, str]:
    settings = home / ".gemini"
    settings.mkdir(exist_ok=True)
    (settings / "settings.json").write_text(
        '{"security": {"auth": {"selectedType": "gemini-api-key"}}, "telemetry": {"enabled": false}}'
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "GOOGLE_GEMINI_BASE_URL": proxy,
        "GEMINI_API_KEY": "sk-gemini-cli-e2e",
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        "NO_COLOR": "1",
    }
    process = await asyncio.create_subprocess_exec(
        gemini,
        "-p",
        prompt,
        "-m",
        MODEL,
        "--yolo",
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


async def main(gemini: str) -> int:
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
                    "GEMINI_API_KEYS": "gemini-cli-e2e-key",
                    "GEMINI_API_BASE_URL": google,
                    "PROXY_API_KEYS": "sk-gemini-cli-e2e",
                    "PROXY_STATE_URL": "memory://",
                }
            )
            _, proxy = await asyncio.to_thread(start_proxy, procs, "geminicli-e2e-proxy", env)
            home = root / "home"
            home.mkdir()
            workdir = root / "work"
            workdir.mkdir()
            # gemini-cli may make side calls with other models (routing, checks): the default echo
            # answers those; the scripted replies are for the turn's model.
            fake.push(Reply.text("Hi! I am Gemini, speaking through the proxy."), model=MODEL)
            code, printed = await _gemini(gemini, home, workdir, proxy, "Say hi.")
            print(f"--- turn 1: gemini -p 'Say hi.' (exit {code})\n{printed}")
            if code != 0 or "speaking through the proxy" not in printed:
                failures.append("turn 1: gemini-cli did not print the reply")

            fake.reset()
            fake.push(_call_reply(), model=MODEL)
            fake.push(Reply.text(f"The command printed {MARKER}."), model=MODEL)
            ask = f"Run `echo {MARKER}` and tell me what it printed."
            code, printed = await _gemini(gemini, home, workdir, proxy, ask)
            print(f"--- turn 2: gemini -p --yolo with run_shell_command (exit {code})\n{printed}")
            requests = [r.request for r in fake.generate_requests()]
            print(f"--- Google got {len(requests)} generate requests in turn 2")
            if code != 0 or f"The command printed {MARKER}" not in printed:
                failures.append("turn 2: gemini-cli did not print the final reply")
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
                calls = [
                    p for p in _parts(request) if p.get("functionCall", {}).get("name") == "run_shell_command"
                ]
                signed = calls
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
    parser.add_argument("--gemini", default="gemini", help="the gemini-cli executable")
    sys.exit(asyncio.run(main(parser.parse_args().gemini)))
