"""The credential pool over the state store: rotation, cooldowns, backup pool, debug views."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from gemini_cli_proxy.testing import FakeGoogle, Reply

from conftest import Proxy, StartProxy
from support import ManualClock

CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hello"}]}
KEYS = ["key-a-11111111", "key-b-22222222", "key-c-33333333"]
RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}


def post(proxy: Proxy, **extra: Any) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/chat/completions", json={**CHAT, **extra}, timeout=30)


def keys_used(fake: FakeGoogle) -> list[str | None]:
    return [r.api_key for r in fake.generate_requests()]


@pytest.fixture
def clock() -> ManualClock:
    """The proxy's time, moved by the tests instead of sleeping; it also runs with the machine's, so
    that the fake Google's real delays count as they would in production."""
    return ManualClock(follow_real_time=True)


@pytest.fixture
def start_pool(start_proxy: StartProxy, state_url: str, clock: ManualClock) -> StartProxy:
    """start_proxy on each state store (memory, SQLite, Redis) and on the test's clock."""

    def start(**overrides: Any) -> Proxy:
        return start_proxy(proxy_state_url=state_url, clock=clock.clock(), **overrides)

    return start


def wait_for_requests(fake: FakeGoogle, count: int) -> None:
    """Until the fake Google has received `count` generate calls (a call it is still delaying counts)."""
    deadline = time.monotonic() + 10
    while len(fake.generate_requests()) < count:
        assert time.monotonic() < deadline, f"{len(fake.generate_requests())} of {count} calls arrived"
        time.sleep(0.005)


def test_even_spread_over_three_keys(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS)
    for _ in range(30):
        assert post(proxy).status_code == 200
    used = keys_used(fake)
    assert {key: used.count(key) for key in KEYS} == dict.fromkeys(KEYS, 10)


def test_rate_limited_key_is_skipped_until_its_delay_passes(
    start_pool: StartProxy, fake: FakeGoogle, clock: ManualClock
) -> None:
    proxy = start_pool(gemini_api_keys=KEYS[:2])
    fake.push(Reply.rate_limited(retry_delay="10.5s"))
    assert post(proxy).status_code == 200  # retried transparently on the other key
    limited, other = keys_used(fake)
    for _ in range(4):
        assert post(proxy).status_code == 200
    clock.advance(9.5)  # a second before its delay ends
    for _ in range(2):
        assert post(proxy).status_code == 200
    assert keys_used(fake)[2:] == [other] * 6
    clock.advance(1.5)  # past it
    for _ in range(4):
        assert post(proxy).status_code == 200
    assert limited in keys_used(fake)[8:]


def test_repeated_rate_limits_grow_the_cooldown(
    start_pool: StartProxy, fake: FakeGoogle, clock: ManualClock
) -> None:
    proxy = start_pool(gemini_api_keys=KEYS[:1])
    fake.push(Reply.rate_limited(retry_delay="10.5s"))
    first = post(proxy)
    assert first.status_code == 429 and first.headers["Retry-After"] == "11"  # 10.5 s, rounded up
    clock.advance(11)  # that cooldown is over
    fake.push(Reply.rate_limited(retry_delay="10.5s"))
    second = post(proxy)
    assert second.status_code == 429
    third = post(proxy)  # answered by the pool: the second strike doubled the cooldown
    assert third.status_code == 429 and third.headers["Retry-After"] == "21"  # 21 s
    clock.advance(20)
    assert post(proxy).headers["Retry-After"] == "1"  # still cooling, a second before the end
    assert len(fake.generate_requests()) == 2  # the pool answered the last three itself
    clock.advance(1.5)
    assert post(proxy).status_code == 200  # a success clears the strikes
    fake.push(Reply.rate_limited(retry_delay="10.5s"))
    assert post(proxy).status_code == 429
    assert post(proxy).headers["Retry-After"] == "11"  # a first strike again, not a third


def test_cooldown_is_per_model(start_pool: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_pool(gemini_api_keys=KEYS[:1])
    fake.push(Reply.rate_limited(retry_delay="30s"))
    assert post(proxy, model="gemini-2.5-pro").status_code == 429
    assert post(proxy, model="gemini-2.5-pro").status_code == 429  # the pool's answer: Google not asked
    assert post(proxy, model="gemini-2.5-flash").status_code == 200
    assert [(r.model, r.api_key) for r in fake.generate_requests()] == [
        ("gemini-2.5-pro", KEYS[0]),
        ("gemini-2.5-flash", KEYS[0]),
    ]


def test_keys_of_one_project_cool_down_together(
    start_pool: StartProxy, fake: FakeGoogle, clock: ManualClock
) -> None:
    proxy = start_pool(gemini_api_keys=KEYS)
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "RATE_LIMIT_EXCEEDED",
        "domain": "googleapis.com",
        "metadata": {"consumer": "projects/424242", "service": "generativelanguage.googleapis.com"},
    }
    limited = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}
    for _ in range(2):  # two keys report the same project
        fake.push(Reply.error(429, "Resource exhausted.", "RESOURCE_EXHAUSTED", details=[info, limited]))
    for _ in range(3):
        assert post(proxy).status_code == 200
    first, second, third = keys_used(fake)[:3]
    assert len({first, second, third}) == 3
    # Both keys of project 424242 are now cooling (for 31 s: a whole-second delay gets a second
    # more); the third key carries everything.
    assert keys_used(fake)[3:] == [third, third]
    clock.advance(30)
    for _ in range(3):
        assert post(proxy).status_code == 200
    assert keys_used(fake)[5:] == [third] * 3
    clock.advance(1.5)
    for _ in range(6):
        assert post(proxy).status_code == 200
    assert {first, second} <= set(keys_used(fake)[8:])  # back together


def test_backup_pool_only_while_primaries_are_out(
    start_pool: StartProxy, fake: FakeGoogle, clock: ManualClock
) -> None:
    proxy = start_pool(gemini_api_keys=KEYS[:1], gemini_backup_api_keys=["backup-key-9999"])
    for _ in range(3):
        assert post(proxy).status_code == 200
    assert set(keys_used(fake)) == {KEYS[0]}
    fake.push(Reply.rate_limited(retry_delay="10.5s"))
    assert post(proxy).status_code == 200  # the primary is limited: the backup answers
    assert keys_used(fake)[-2:] == [KEYS[0], "backup-key-9999"]
    assert post(proxy).status_code == 200
    assert keys_used(fake)[-1] == "backup-key-9999"
    clock.advance(11)
    assert post(proxy).status_code == 200
    assert keys_used(fake)[-1] == KEYS[0]  # back on the primary once it recovered


def test_capacity_errors_retry_elsewhere_without_marking(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS[:2])
    fake.push(Reply.rate_limited(retry_delay="30s", reason="MODEL_CAPACITY_EXHAUSTED"))
    assert post(proxy).status_code == 200
    first = keys_used(fake)[0]
    for _ in range(4):
        post(proxy)
    assert first in keys_used(fake)[2:]  # not cooled down: the capacity was Google's


def test_attempts_are_bounded(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS, proxy_retry_attempts=2)
    fake.push_many([Reply.unavailable()] * 3)
    assert post(proxy).status_code == 502
    assert len(fake.generate_requests()) == 2


def test_retries_after_googles_failures_back_off_on_the_apps_clock(
    start_proxy: StartProxy, fake: FakeGoogle
) -> None:
    """Two 503s, then the third key serves: the proxy waited twice, on its clock (so this test did
    not), the n-th wait within [0.5, 1.5] x n x the mean backoff (0.2 s)."""
    clock = ManualClock()
    proxy = start_proxy(gemini_api_keys=KEYS, clock=clock.clock())
    fake.push_many([Reply.unavailable(), Reply.unavailable()])
    assert post(proxy).status_code == 200
    assert len(set(keys_used(fake))) == 3
    assert len(clock.sleeps) == 2
    assert 0.1 <= clock.sleeps[0] <= 0.3 and 0.2 <= clock.sleeps[1] <= 0.6


def test_a_backoff_that_would_pass_the_retry_deadline_ends_the_request(
    start_proxy: StartProxy, fake: FakeGoogle
) -> None:
    """PROXY_RETRY_DEADLINE=0.05: the first wait (at least 0.1 s) would pass it, so the client gets
    the 503 as a 502 at once, without the wait and without trying another key."""
    clock = ManualClock()
    proxy = start_proxy(gemini_api_keys=KEYS, proxy_retry_deadline=0.05, clock=clock.clock())
    fake.push(Reply.unavailable())
    response = post(proxy)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_error" and "HTTP 503" in error["message"]
    assert len(fake.generate_requests()) == 1 and clock.sleeps == []


@pytest.fixture
def keyed(start_proxy: StartProxy) -> Proxy:
    return start_proxy(gemini_api_keys=KEYS[:2], proxy_api_keys=["sk-admin"])


AUTH = {"Authorization": "Bearer sk-admin"}


def test_debug_credentials_shows_state_and_usage(keyed: Proxy, fake: FakeGoogle) -> None:
    fake.api_keys = frozenset({KEYS[1]})
    for _ in range(3):
        assert httpx.post(f"{keyed.url}/v1/chat/completions", json=CHAT, headers=AUTH).status_code == 200
    assert httpx.get(f"{keyed.url}/v1/debug/credentials").status_code == 401
    rows = httpx.get(f"{keyed.url}/v1/debug/credentials", headers=AUTH).json()["data"]
    by_label = {row["label"][-4:]: row for row in rows}
    bad, good = by_label["1111"], by_label["2222"]
    assert bad["state"] == "disabled" and "API key not valid" in bad["disabled_reason"]
    assert good["state"] == "ok"
    usage = good["usage"]["gemini-2.5-flash"]
    assert usage["requests"] == 3 and usage["tokens_in"] > 0 and usage["tokens_out"] > 0
    assert bad["usage"]["gemini-2.5-flash"]["errors"] == 1
    text = str(rows)
    assert KEYS[0] not in text and KEYS[1] not in text
    enabled = httpx.post(f"{keyed.url}/v1/debug/credentials/{bad['id']}/enable", headers=AUTH)
    assert enabled.status_code == 200
    rows = httpx.get(f"{keyed.url}/v1/debug/credentials", headers=AUTH).json()["data"]
    assert {row["state"] for row in rows} == {"ok"}


def test_debug_full_test_and_token_test(keyed: Proxy, fake: FakeGoogle) -> None:
    fake.api_keys = frozenset({KEYS[0]})
    fake.push(Reply.delay(0.2))  # the valid key's probe: Google takes 200 ms (the invalid one is refused)
    result = httpx.post(f"{keyed.url}/v1/test", headers=AUTH).json()
    assert result["model"] == "gemini-2.5-flash"
    outcomes = {row["label"][-4:]: row for row in result["data"]}
    good, bad = outcomes["1111"], outcomes["2222"]
    # A real call through each key, timed: the one Google took 200 ms over reports at least that.
    assert sorted(r.api_key or "" for r in fake.generate_requests()) == KEYS[:2]
    assert good["ok"] is True and "error" not in good
    assert isinstance(good["latency_ms"], float) and 200 <= good["latency_ms"] < 10_000
    assert isinstance(bad["latency_ms"], float) and bad["latency_ms"] < good["latency_ms"]
    # The failing key reports Google's status and words, without the key.
    assert bad["ok"] is False and bad["status"] == 400
    assert "API key not valid" in bad["error"] and KEYS[1] not in bad["error"]
    tokens = httpx.get(f"{keyed.url}/v1/token-test", headers=AUTH).json()["data"]
    assert sorted(row["label"][-4:] for row in tokens) == ["1111", "2222"]
    assert all(row["ok"] is True and row["token"] == "not applicable (API key)" for row in tokens)
    cache = httpx.get(f"{keyed.url}/v1/debug/cache", headers=AUTH).json()
    assert cache["data"] == []  # no OAuth credentials configured


def test_unreachable_state_store_degrades_to_process_state(
    start_proxy: StartProxy, fake: FakeGoogle, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS[:2], proxy_state_url="redis://127.0.0.1:9/0")
    fake.push(Reply.rate_limited(retry_delay="30s"))
    for _ in range(4):
        assert post(proxy).status_code == 200
    limited = keys_used(fake)[0]
    assert limited not in keys_used(fake)[2:]  # cooldowns still work, in this process
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "store" in r.getMessage().lower()]
    assert len(warnings) == 1


def _in_parallel(proxy: Proxy, count: int) -> list[httpx.Response]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: post(proxy), range(count)))


def test_concurrent_429s_of_one_episode_are_one_strike(start_pool: StartProxy, fake: FakeGoogle) -> None:
    """On every store: "already cooling?", the strikes read and the cooldown written take several
    round trips on SQLite and Redis, where concurrent 429s interleaved and added a second strike."""
    proxy = start_pool(gemini_api_keys=KEYS[:1])
    fake.push_many([Reply.delay(0.3, then=Reply.rate_limited(retry_delay="10.5s")) for _ in range(4)])
    assert {r.status_code for r in _in_parallel(proxy, 4)} == {429}
    assert len(fake.generate_requests()) == 4  # all four were in flight together
    assert post(proxy).headers["Retry-After"] == "11"  # 10.5 s, not 10.5 * 2**3


def test_a_success_begun_before_a_429_does_not_end_its_cooldown(
    start_pool: StartProxy, fake: FakeGoogle, clock: ManualClock
) -> None:
    proxy = start_pool(gemini_api_keys=KEYS[:1])
    fake.push(Reply.delay(0.5))  # the slow success
    fake.push(Reply.rate_limited(retry_delay="30.5s"))
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(post, proxy)
        wait_for_requests(fake, 1)  # Google is working on it
        limited = pool.submit(post, proxy)
        assert limited.result().status_code == 429
        assert not slow.done()  # the 429 came back while the success was still on its way
        assert slow.result().status_code == 200
    again = post(proxy)
    assert again.status_code == 429 and len(fake.generate_requests()) == 2
    clock.advance(31)
    assert post(proxy).status_code == 200


def test_quota_failovers_go_on_past_the_attempt_budget_while_a_key_is_free(
    start_proxy: StartProxy, fake: FakeGoogle
) -> None:
    """A 429 costs milliseconds: a client sees one only when no untried, usable key is left."""
    proxy = start_proxy(gemini_api_keys=KEYS, proxy_retry_attempts=2)
    fake.push_many([Reply.rate_limited(retry_delay="60s"), Reply.rate_limited(retry_delay="60s")])
    assert post(proxy).status_code == 200  # the third key, though the budget was two attempts
    assert len(set(keys_used(fake))) == 3


def test_googles_own_failures_keep_their_attempt_budget(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS, proxy_retry_attempts=2)
    fake.push_many([Reply.unavailable(), Reply.unavailable()])
    response = post(proxy)
    assert response.status_code == 502, response.text
    assert len(fake.generate_requests()) == 2  # the third key was not tried


def test_each_model_has_its_own_rotation(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    """One cursor for all models made two models alternating on two keys each keep to one key."""
    proxy = start_proxy(gemini_api_keys=KEYS[:2])
    for _ in range(4):
        for model in ("gemini-2.5-flash", "gemini-2.5-pro"):
            assert post(proxy, model=model).status_code == 200
    by_model: dict[str, list[str | None]] = {}
    for sent in fake.generate_requests():
        by_model.setdefault(str(sent.model), []).append(sent.api_key)
    for model, keys in by_model.items():
        assert sorted(keys) == sorted(KEYS[:2] * 2), (model, keys)


def test_a_successful_probe_ends_a_cooldown_early(start_pool: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_pool(gemini_api_keys=KEYS[:1])
    fake.push(Reply.rate_limited(retry_delay="120s"))
    assert post(proxy).status_code == 429
    assert post(proxy).status_code == 429
    probe = httpx.get(f"{proxy.url}/v1/test?model=gemini-2.5-flash").json()["data"][0]
    assert probe["ok"] is True
    assert post(proxy).status_code == 200


def test_a_429_in_a_quota_windows_last_second_is_no_strike(
    start_pool: StartProxy, fake: FakeGoogle, clock: ManualClock
) -> None:
    proxy = start_pool(gemini_api_keys=KEYS[:1])
    fake.push(Reply.rate_limited(retry_delay="0.4s"))  # RetryInfo "0s": the window ends now
    first = post(proxy)
    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    clock.advance(0.5)
    fake.push(Reply.rate_limited(retry_delay="10.5s"))
    assert post(proxy).status_code == 429
    assert len(fake.generate_requests()) == 2  # the window had ended: Google was asked again
    # The first strike's delay (10.5 s), not a second's (21 s): the last-second 429 counted for nothing.
    assert post(proxy).headers["Retry-After"] == "11"


def test_a_cooldown_runs_from_when_the_call_left_not_from_when_its_429_came_back(
    start_pool: StartProxy, fake: FakeGoogle, clock: ManualClock
) -> None:
    """Google's delay counts from when it looked at the call: somewhere between sending and the
    answer. Counting from the answer kept a key cooling after its quota was back (by the answer's
    way back, and under load by the event loop's lag) and refused requests it could have served."""
    proxy = start_pool(gemini_api_keys=KEYS[:1])
    fake.push(Reply.delay(0.5, Reply.rate_limited(retry_delay="10.5s")))
    first = post(proxy)
    assert first.status_code == 429 and first.headers["Retry-After"] == "10"  # 10.5 s from 0.5 s ago
    clock.advance(10.1)  # 10.6 s after the call left: its window has ended
    assert post(proxy).status_code == 200


def test_keys_declared_in_one_project_cool_down_together(start_pool: StartProxy, fake: FakeGoogle) -> None:
    """AI Studio's 429s never name the project; the operator can (KEY@PROJECT)."""
    proxy = start_pool(gemini_api_keys=["key-a-11111111@proj-x", "key-b-22222222@proj-x", "key-c-33333333"])
    fake.push(Reply.rate_limited(retry_delay="60s"))
    for _ in range(5):
        assert post(proxy).status_code == 200
    used = keys_used(fake)
    limited = used[0]
    assert limited in {"key-a-11111111", "key-b-22222222"}
    sibling = ({"key-a-11111111", "key-b-22222222"} - {limited}).pop()
    # The sibling shares the spent quota: never tried, and the key sent without its project.
    assert sibling not in used and set(used[1:]) == {"key-c-33333333"}


def test_a_project_that_sent_its_per_minute_limit_is_asked_last(
    start_proxy: StartProxy, fake: FakeGoogle, clock: ManualClock
) -> None:
    """A 429's QuotaFailure says the project's limit (the fake's: 10 a minute) and its delay when the
    window ends: within the next window the pool sends that project its 10, then asks the other first
    instead of hearing 429 again."""
    proxy = start_proxy(
        gemini_api_keys=["key-a-11111111@proj-x", "key-b-22222222@proj-y"], clock=clock.clock()
    )
    fake.push(Reply.rate_limited(retry_delay="0.5s"))
    assert post(proxy).status_code == 200  # proj-x said 429; proj-y served
    limited = keys_used(fake)[0]
    clock.advance(0.6)  # the window proj-x was spent in is over
    for _ in range(30):
        assert post(proxy).status_code == 200
    used = keys_used(fake)[2:]
    assert used.count(limited) == 10 and len(used) == 30
    # Paced out, not shut out: when the other project cools down, proj-x is still asked.
    fake.push(Reply.rate_limited(retry_delay="30s"))
    assert post(proxy).status_code == 200
    assert keys_used(fake)[-2:] == [({"key-a-11111111", "key-b-22222222"} - {limited}).pop(), limited]


def test_keys_seen_spent_together_are_asked_last_when_one_is_spent_again(
    start_proxy: StartProxy, fake: FakeGoogle, clock: ManualClock
) -> None:
    """AI Studio keys that said 429 for the same window, twice, while a third key served: taken for
    keys of one project, so a 429 on one sends the request to the third key, not to its sibling."""
    proxy = start_proxy(gemini_api_keys=KEYS, clock=clock.clock())

    def window(turns: int) -> None:
        """`turns` requests; the last one's first two keys say 429 (a lap's turns start it at a)."""
        for _ in range(turns - 1):
            assert post(proxy).status_code == 200
        fake.push_many([Reply.rate_limited(retry_delay="0.6s")] * 2)
        assert post(proxy).status_code == 200
        clock.advance(0.7)  # that window is over

    window(1)
    a, b, c = keys_used(fake)  # the rotation's order: a and b said 429, c served
    window(3)
    assert keys_used(fake)[-3:] == [a, b, c]
    for _ in range(2):
        assert post(proxy).status_code == 200
    fake.push(Reply.rate_limited(retry_delay="0.6s"))
    assert post(proxy).status_code == 200
    assert keys_used(fake)[-2:] == [a, c]


def test_a_key_another_request_saw_rate_limited_is_not_asked_again(
    start_pool: StartProxy, fake: FakeGoogle
) -> None:
    """Two requests in flight: the second planned its keys before the first heard a key's 429; when
    its turn comes to that key, it knows the key is cooling and does not ask Google again."""
    proxy = start_pool(gemini_api_keys=KEYS[:2])
    fake.push_many(
        [
            Reply.delay(0.3, then=Reply.rate_limited(retry_delay="30s")),  # first request, first key
            Reply.delay(0.5, then=Reply.rate_limited(retry_delay="30s")),  # second request, other key
        ]
    )
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, proxy)
        wait_for_requests(fake, 1)
        second = pool.submit(post, proxy)
        assert first.result().status_code == 200  # the first key said 429; the other served
        answer = second.result()
    # The second request's plan had both keys; by the time it could try the first one, that key was
    # cooling for 30 s.
    assert answer.status_code == 429
    assert len(fake.generate_requests()) == 3
