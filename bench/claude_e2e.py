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
from pathlib import Path

from agent_e2e import PROXY_KEY, ToolTurn, run_agent, run_two_turns

MODEL = "gemini-3-pro-preview"
TURN = ToolTurn(
    tool="Bash",
    argument="command",
    marker="claude-was-here",
    signature="Y2xhdWRlLWUyZS1zaWduYXR1cmU=",
    ask="Run `echo claude-was-here` with Bash and tell me what it printed.",
)


async def claude(executable: str, home: Path, workdir: Path, proxy: str, prompt: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": proxy,
        "ANTHROPIC_API_KEY": PROXY_KEY,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": MODEL,
        "ANTHROPIC_MODEL": MODEL,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "NO_COLOR": "1",
    }
    return await run_agent([executable, "-p", prompt, "--allowedTools", "Bash"], env=env, cwd=workdir)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claude", default="claude", help="the claude executable")
    executable = parser.parse_args().claude
    agent = lambda home, work, proxy, prompt: claude(executable, home, work, proxy, prompt)  # noqa: E731
    sys.exit(asyncio.run(run_two_turns("claude", agent, TURN)))
