"""GET /metrics: Prometheus's text format, scraped after real traffic, the numbers checked."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from gemini_cli_proxy.testing import FakeGoogle, Reply

from .test_workers import port_of, start_workers
from conftest import FakeServer, StartProxy
from support import free_port

FLASH = "gemini-2.5-flash"
KEYS = ["pool-key-a-1111", "pool-key-b-2222"]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, **headers: str) -> Samples:
    reply = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=")  # the text format
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def test_the_numbers_after_traffic(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS, proxy_api_keys=["sk-client"])
    fake.push(Reply.rate_limited(retry_delay="30s"), model=FLASH)
    with proxy.client("sk-client") as client:
        for _ in range(3):
            client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "hi"}])
        stream = client.chat.completions.create(
            model=FLASH, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        client.embeddings.create(model="gemini-embedding-001", input=["one", "two"])
        with contextlib.suppress(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    httpx.post(
        f"{proxy.url}/v1beta/models/{FLASH}:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "hello"}]}]},
        headers={"x-goog-api-key": "sk-client"},
    )
    assert httpx.get(f"{proxy.url}/metrics").status_code == 401  # the key guards it
    samples = scrape(proxy.url, authorization="Bearer sk-client")

    ok_chat = value(samples, "gemini_proxy_requests_total", door="openai", model=FLASH, status="200")
    assert ok_chat == 4  # three plain, one stream
    assert value(samples, "gemini_proxy_requests_total", door="openai", model="", status="404") == 1
    assert value(samples, "gemini_proxy_requests_total", door="gemini", model=FLASH, status="200") == 1
    assert value(
        samples, "gemini_proxy_requests_total", door="openai", model="gemini-embedding-001", status="200"
    )
    # Google's 429 on the first call, then its failover: one retry, one cooldown of the cooled key.
    assert (
        value(
            samples,
            "gemini_proxy_upstream_attempts_total",
            kind="aistudio",
            method="generateContent",
            outcome="rate_limited",
        )
        == 1
    )
    assert (
        value(
            samples,
            "gemini_proxy_upstream_attempts_total",
            kind="aistudio",
            method="generateContent",
            outcome="ok",
        )
        == 4
    )
    assert (
        value(
            samples,
            "gemini_proxy_upstream_attempts_total",
            kind="aistudio",
            method="streamGenerateContent",
            outcome="ok",
        )
        == 1
    )
    assert (
        value(samples, "gemini_proxy_upstream_attempts_total", kind="aistudio", method="embed", outcome="ok")
        == 1
    )
    assert value(samples, "gemini_proxy_retries_total", reason="rate_limited") == 1
    assert total(samples, "gemini_proxy_cooldowns_total", reason="rate_limited") == 1
    assert (
        value(
            samples, "gemini_proxy_upstream_latency_seconds_count", kind="aistudio", method="generateContent"
        )
        == 4
    )
    assert value(samples, "gemini_proxy_upstream_ttfb_seconds_count", kind="aistudio") == 1
    assert value(samples, "gemini_proxy_open_streams", door="openai") == 0
    assert value(samples, "gemini_proxy_tokens_total", model=FLASH, type="input") > 0
    assert value(samples, "gemini_proxy_tokens_total", model=FLASH, type="output") > 0
    # The pool: one key cooling (for the model), the other ok.
    states = {
        dict(labels)["label"]: dict(labels)["state"]
        for (name, labels), v in samples.items()
        if name == "gemini_proxy_credential_state" and v == 1
    }
    assert sorted(states.values()) == ["cooling", "ok"]
    assert total(samples, "gemini_proxy_credential_cooldown_seconds", model=FLASH) > 25


def test_a_disconnected_stream_is_counted(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy()
    fake.push(Reply.stream([{"candidates": [{"content": {"parts": [{"text": "x"}]}}]}] * 50, delay=0.05))
    with httpx.stream(
        "POST",
        f"{proxy.url}/v1/chat/completions",
        json={"model": FLASH, "messages": [{"role": "user", "content": "x"}], "stream": True},
    ) as response:
        chunks = response.iter_bytes()  # kept: a dropped iterator closes the response
        next(chunks)
        during = scrape(proxy.url)
    assert value(during, "gemini_proxy_open_streams", door="openai") == 1
    for _ in range(50):
        after = scrape(proxy.url)
        if value(after, "gemini_proxy_client_disconnects_total", door="openai") == 1:
            break
    assert value(after, "gemini_proxy_client_disconnects_total", door="openai") == 1
    assert value(after, "gemini_proxy_open_streams", door="openai") == 0


def test_public_metrics_need_no_key(start_proxy: StartProxy) -> None:
    proxy = start_proxy(proxy_api_keys=["sk-client"], proxy_metrics_public=True)
    assert "gemini_proxy_credential_state" in httpx.get(f"{proxy.url}/metrics").text
    assert httpx.get(f"{proxy.url}/v1/models").status_code == 401  # nothing else opened


def test_every_workers_counts_are_in_one_scrape(fake_server: FakeServer, tmp_path: Path) -> None:
    """Under `serve --workers 2` a scrape, whichever worker answers it, adds up both workers' counts."""
    process = start_workers(fake_server, tmp_path)
    assert process.stdout is not None
    try:
        url = f"http://127.0.0.1:{port_of(process.stdout.readline().strip())}"
        body = {"model": FLASH, "messages": [{"role": "user", "content": "hello"}]}
        for _ in range(20):  # a new connection each: the kernel spreads them over both workers
            assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).status_code == 200
        for _ in range(6):  # whichever worker answers
            samples = scrape(url)
            assert (
                value(samples, "gemini_proxy_requests_total", door="openai", model=FLASH, status="200") == 20
            )
            assert (
                value(
                    samples,
                    "gemini_proxy_upstream_attempts_total",
                    kind="aistudio",
                    method="generateContent",
                    outcome="ok",
                )
                == 20
            )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_an_unreachable_state_store_is_shown_by_health_metrics_and_status(start_proxy: StartProxy) -> None:
    """An instance whose shared store does not answer serves on its own state: still up (200), but
    /health, /metrics and the status page say so, since it no longer shares cooldowns."""
    proxy = start_proxy(proxy_state_url=f"redis://127.0.0.1:{free_port()}/0")
    with proxy.client() as client:
        client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "hi"}])
    health = httpx.get(f"{proxy.url}/health")
    assert health.status_code == 200 and health.json()["state_store"] == "degraded"
    assert value(scrape(proxy.url), "gemini_proxy_state_store_degraded") == 1
    assert httpx.get(f"{proxy.url}/status.json").json()["state_store"] == "degraded"


def test_a_reachable_store_is_ok_everywhere(start_proxy: StartProxy) -> None:
    proxy = start_proxy()
    assert httpx.get(f"{proxy.url}/health").json()["state_store"] == "ok"
    assert value(scrape(proxy.url), "gemini_proxy_state_store_degraded") == 0
