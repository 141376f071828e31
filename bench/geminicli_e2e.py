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
from pathlib import Path

from agent_e2e import PROXY_KEY, ToolTurn, run_agent, run_two_turns

MODEL = "gemini-2.5-pro"
# gemini-cli makes side calls with other models (routing, checks): the default echo answers those,
# the scripted replies are for the turn's model.
TURN = ToolTurn(
    tool="run_shell_command",
    argument="command",
    marker="gemini-cli-was-here",
    signature="Z2VtaW5pLWNsaS1lMmU=",
    ask="Run `echo gemini-cli-was-here` and tell me what it printed.",
    model=MODEL,
)


async def gemini(executable: str, home: Path, workdir: Path, proxy: str, prompt: str) -> tuple[int, str]:
    settings = home / ".gemini"
    settings.mkdir(exist_ok=True)
    (settings / "settings.json").write_text(
        '{"security": {"auth": {"selectedType": "gemini-api-key"}}, "telemetry": {"enabled": false}}'
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "GOOGLE_GEMINI_BASE_URL": proxy,
        "GEMINI_API_KEY": PROXY_KEY,
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        "NO_COLOR": "1",
    }
    return await run_agent([executable, "-p", prompt, "-m", MODEL, "--yolo"], env=env, cwd=workdir)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gemini", default="gemini", help="the gemini-cli executable")
    executable = parser.parse_args().gemini
    agent = lambda home, work, proxy, prompt: gemini(executable, home, work, proxy, prompt)  # noqa: E731
    sys.exit(asyncio.run(run_two_turns("gemini-cli", agent, TURN)))
