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
from pathlib import Path

from agent_e2e import PROXY_KEY, ToolTurn, run_agent, run_two_turns

MODEL = "gemini-3-pro-preview"
TURN = ToolTurn(
    tool="exec_command",
    argument="cmd",
    marker="codex-was-here",
    signature="Y29kZXgtZTJlLXNpZ25hdHVyZQ==",
    ask="Run `echo codex-was-here` and tell me what it printed.",
)


async def codex(executable: str, home: Path, workdir: Path, proxy: str, prompt: str) -> tuple[int, str]:
    (home / "config.toml").write_text(
        f'model = "{MODEL}"\n'
        'model_provider = "gemini-cli-proxy"\n'
        "[model_providers.gemini-cli-proxy]\n"
        'name = "gemini-cli-proxy"\n'
        f'base_url = "{proxy}/v1"\n'
        'env_key = "GEMINI_CLI_PROXY_KEY"\n'
        'wire_api = "responses"\n'
    )
    env = {**os.environ, "CODEX_HOME": str(home), "GEMINI_CLI_PROXY_KEY": PROXY_KEY, "NO_COLOR": "1"}
    argv = [executable, "exec", "--skip-git-repo-check", "--sandbox", "danger-full-access"]
    return await run_agent([*argv, "--cd", str(workdir), prompt], env=env)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codex", default="codex", help="the codex executable")
    executable = parser.parse_args().codex
    agent = lambda home, work, proxy, prompt: codex(executable, home, work, proxy, prompt)  # noqa: E731
    sys.exit(asyncio.run(run_two_turns("codex", agent, TURN)))
