"""The status page: behind the proxy key or the cookie set from it, its JSON after real traffic, and
the page itself rendered by a real headless Chromium (Debian's, installed by .ci/run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from gemini_cli_proxy.testing import FakeGoogle, Reply

from conftest import Proxy, StartProxy

FLASH = "gemini-2.5-flash"
KEYS = ["pool-key-a-1111", "pool-key-b-2222", "pool-key-c-3333"]
CLIENT_KEY = "sk-status-page"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def busy_proxy(start_proxy: StartProxy, fake: FakeGoogle) -> Proxy:
    """Three keys after some traffic: one cooling (a 429), one disabled (Google refused it)."""
    fake.api_keys = set(KEYS[:2])  # the third is not a key Google knows
    proxy = start_proxy(gemini_api_keys=KEYS, proxy_api_keys=[CLIENT_KEY])
    fake.push(Reply.rate_limited(retry_delay="40s"), model=FLASH)
    with proxy.client(CLIENT_KEY) as client:
        for _ in range(4):
            client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "hello there"}])
    return proxy


def test_the_key_opens_it_once_and_the_cookie_from_then_on(busy_proxy: Proxy) -> None:
    url = busy_proxy.url
    with httpx.Client(base_url=url) as browser:
        assert browser.get("/status").status_code == 401  # the sign-in form
        assert "Proxy key" in browser.get("/status").text
        refused = browser.get("/status", params={"key": "sk-wrong"})
        assert refused.status_code == 401 and "not one of this proxy" in refused.text
        assert browser.get("/status.json").status_code == 401
        signed = browser.get("/status", params={"key": CLIENT_KEY})
        assert signed.status_code == 303 and signed.headers["location"] == "status"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and CLIENT_KEY not in cookie
        page = browser.get("/status")
        assert page.status_code == 200 and "<script>" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert browser.get("/status.json").status_code == 200
        # The cookie opens the status page and nothing else.
        assert browser.get("/v1/models").status_code == 401
    posted = httpx.post(f"{url}/status", data={"key": CLIENT_KEY})
    assert posted.status_code == 303 and "set-cookie" in posted.headers


def test_the_json_has_each_credentials_state_and_todays_counts(busy_proxy: Proxy) -> None:
    data = httpx.get(
        f"{busy_proxy.url}/status.json", headers={"authorization": f"Bearer {CLIENT_KEY}"}
    ).json()
    by_label = {c["label"]: c for c in data["credentials"]}
    states = sorted(c["state"] for c in data["credentials"])
    assert states == ["cooling", "disabled", "ok"]
    cooling = next(c for c in data["credentials"] if c["state"] == "cooling")
    assert 30 < cooling["cooldown_seconds"] <= 41 and cooling["cooling_models"] == [FLASH]
    assert "rate_limited" in (cooling["last_error"] or "")
    disabled = next(c for c in data["credentials"] if c["state"] == "disabled")
    assert "API key not valid" in disabled["last_error"]
    assert data["pool"] == {"ok": 1, "cooling": 1, "disabled": 1}
    assert data["today"]["requests"] == sum(c["requests_today"] for c in by_label.values()) == 6
    assert sum(c["requests_today"] for c in data["credentials"] if c["state"] == "ok") == 4
    assert data["today"]["tokens"] > 0
    assert all(key not in str(data) for key in KEYS)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_a_real_browser_renders_the_pool(busy_proxy: Proxy, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    url = f"{busy_proxy.url}/status?key={CLIENT_KEY}"
    dom = _chromium(url, tmp_path, "--dump-dom")
    for label in ("…1111", "…2222", "…3333"):
        assert label in dom, dom[-2000:]
    assert 'class="state cooling"' in dom and 'class="state disabled"' in dom and 'class="state ok"' in dom
    assert '<b id="requests">6</b>' in dom
    # A phone's screen: the page still renders, as cards.
    shots = Path(os.environ.get("STATUS_SCREENSHOTS") or tmp_path)  # docs/: the README's pictures
    for name, size in (("status-phone.png", "390,844"), ("status.png", "1100,520")):
        shot = shots / name
        _chromium(url, tmp_path, f"--screenshot={shot}", f"--window-size={size}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def _chromium(url: str, tmp_path: Path, *args: str) -> str:
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=4000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
