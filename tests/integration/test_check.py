"""`gemini-cli-proxy check`: the real command against the fake Google, every credential kind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from gemini_cli_proxy.testing import FakeGoogle

from .test_hostile_upstream import REFRESH, _oauth_file
from .test_vertex import _key_file, _register
from conftest import FakeServer

GOOD, BAD = "studio-key-good-0001", "studio-key-bad-0002"


def run_check(
    fake_server: FakeServer, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    base = {
        **os.environ,
        "GEMINI_API_BASE_URL": fake_server.url,
        "CODE_ASSIST_ENDPOINT": fake_server.url,
        "GOOGLE_OAUTH_TOKEN_URL": f"{fake_server.url}/token",
        "VERTEX_API_BASE_URL": fake_server.url,
        # The fleet's store: a check must leave it alone.
        "PROXY_STATE_URL": f"sqlite:///{tmp_path / 'fleet.sqlite3'}",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "gemini_cli_proxy", "check", *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_kind_is_checked_and_a_bad_key_fails_the_check(
    fake_server: FakeServer, fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.api_keys = {GOOD}
    fake.add_oauth_account(REFRESH, project_id="proj-oauth")
    _register(fake)
    sa = _key_file(tmp_path / "sa.json", f"{fake_server.url}/token")
    done = run_check(
        fake_server,
        tmp_path,
        "--json",
        GEMINI_API_KEYS=f"{GOOD},{BAD}",
        GEMINI_OAUTH_CREDS=str(_oauth_file(tmp_path)),
        VERTEX_CREDENTIALS=str(sa),
    )
    assert done.returncode == 1, done.stderr
    results: list[dict[str, Any]] = orjson.loads(done.stdout)
    by_kind = {(r["kind"], r["state"]) for r in results}
    assert by_kind == {("aistudio", "ok"), ("aistudio", "failed"), ("codeassist", "ok"), ("vertex", "ok")}
    bad = next(r for r in results if r["state"] == "failed")
    assert "API key not valid" in bad["error"] and bad["error"].startswith("400")
    oauth = next(r for r in results if r["kind"] == "codeassist")
    assert oauth["project"] == "proj-oauth" and oauth["latency_ms"] > 0
    assert all(secret not in done.stdout + done.stderr for secret in (GOOD, BAD, REFRESH))
    assert len(fake.generate_requests()) == 4  # one minimal call each
    assert not (tmp_path / "fleet.sqlite3").exists()  # the fleet's store untouched


def test_all_good_is_exit_0_and_the_table_names_each(
    fake_server: FakeServer, fake: FakeGoogle, tmp_path: Path
) -> None:
    done = run_check(fake_server, tmp_path, GEMINI_API_KEYS=GOOD)
    assert done.returncode == 0, done.stderr
    assert "1 of 1 credentials work" in done.stdout
    assert "…0001" in done.stdout and "ok" in done.stdout and GOOD not in done.stdout


def test_a_dry_run_makes_no_generate_call(fake_server: FakeServer, fake: FakeGoogle, tmp_path: Path) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-oauth")
    done = run_check(
        fake_server,
        tmp_path,
        "--dry-run",
        "--json",
        GEMINI_API_KEYS="",
        GEMINI_OAUTH_CREDS=str(_oauth_file(tmp_path)),
    )
    assert done.returncode == 0, done.stderr
    (result,) = orjson.loads(done.stdout)
    assert (result["state"], result["project"]) == ("ready", "proj-oauth")
    assert fake.generate_requests() == []
    assert [r.action for r in fake.received if r.api == "oauth"] == ["token"]  # the refresh happened


def test_a_revoked_oauth_grant_is_a_token_failure(
    fake_server: FakeServer, fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-oauth")
    fake.revoke(REFRESH)
    done = run_check(
        fake_server, tmp_path, "--json", GEMINI_API_KEYS="", GEMINI_OAUTH_CREDS=str(_oauth_file(tmp_path))
    )
    assert done.returncode == 1
    (result,) = orjson.loads(done.stdout)
    assert result["state"] == "token failed" and "invalid_grant" in result["error"]
