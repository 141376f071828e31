"""The gateway's retry loop on a clock the test moves: the backoff after Google's own failures, the
retry deadline (PROXY_RETRY_DEADLINE), and 429 failovers that never wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from itertools import pairwise
from typing import Any

import pytest

from gemini_cli_proxy.credentials import ApiKeyCredential
from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.pool.dispatch import Gateway, RetryPolicy
from gemini_cli_proxy.pool.scheduler import Scheduler
from gemini_cli_proxy.pool.usage import UsageRecorder
from gemini_cli_proxy.store.memory import MemoryStore
from gemini_cli_proxy.upstream.errors import UpstreamError, Verdict

from support import ManualClock

MODEL = "gemini-2.5-flash"
OK: dict[str, Any] = {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}]}


def server_error(message: str = "The service is currently unavailable.", status: int = 503) -> UpstreamError:
    return UpstreamError(Verdict.SERVER, status, message, google_status="UNAVAILABLE")


def rate_limited(message: str = "Resource exhausted.") -> UpstreamError:
    return UpstreamError(
        Verdict.RATE_LIMITED, 429, message, google_status="RESOURCE_EXHAUSTED", retry_after=60
    )


class ScriptedGoogle:
    """An AI Studio client that answers each call with the next outcome of `script` (an error is
    raised, None serves), after `call_seconds` of the test's clock: Google's latency. Records each
    call's key, the monotonic time it was made, and the `answer_within` a stream was given."""

    def __init__(self, clock: ManualClock, script: Sequence[UpstreamError | None], call_seconds: float = 0.0):
        self.clock = clock
        self.script = list(script)
        self.call_seconds = call_seconds
        self.calls: list[tuple[str, float]] = []
        self.answer_within: list[float | None] = []

    async def _call(self, cred: ApiKeyCredential) -> dict[str, Any]:
        self.calls.append((cred.key, self.clock.monotonic()))
        self.clock.advance(self.call_seconds)
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return OK

    async def generate(self, cred: ApiKeyCredential, model: str, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call(cred)

    async def stream(
        self,
        cred: ApiKeyCredential,
        model: str,
        request: dict[str, Any],
        *,
        answer_within: float | None = None,
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        self.answer_within.append(answer_within)
        yield [await self._call(cred)]

    async def access_token(self, cred: ApiKeyCredential) -> None:
        return None


def keys(count: int) -> list[ApiKeyCredential]:
    return [ApiKeyCredential(f"key-{number:02d}-0000000000") for number in range(count)]


def gateway(
    clock: ManualClock, google: ScriptedGoogle, policy: RetryPolicy, credentials: int = 5
) -> tuple[Gateway, Scheduler]:
    store = MemoryStore(clock=clock.time)
    scheduler = Scheduler(keys(credentials), store, clock=clock.time, monotonic=clock.monotonic)
    usage = UsageRecorder(store, clock=clock.time)
    return Gateway(scheduler, usage, {"aistudio": google}, retry=policy, clock=clock.clock()), scheduler


def refused(gateway: Gateway) -> ProxyError:
    async def call() -> None:
        await gateway.generate(MODEL, {})

    with pytest.raises(ProxyError) as caught:
        asyncio.run(call())
    return caught.value


def test_backoff_waits_grow_with_the_failures_and_stay_within_their_jitter() -> None:
    """After the n-th failure of Google's own the wait is uniform in [0.5, 1.5] x n x backoff_seconds,
    awaited on the clock (the next call is made that much later); over many requests each wait's mean
    is n x backoff_seconds, and the waits do spread over the jitter."""
    backoff, failures, requests = 0.2, 4, 200
    clock = ManualClock()
    google = ScriptedGoogle(clock, [])
    gate, _ = gateway(
        clock, google, RetryPolicy(max_attempts=5, deadline_seconds=60, backoff_seconds=backoff)
    )
    waits: list[list[float]] = []

    async def scenario() -> None:
        for _ in range(requests):
            google.script = [server_error()] * failures + [None]
            google.calls.clear()
            clock.sleeps.clear()
            reply, served = await gate.generate(MODEL, {})
            assert reply == OK
            assert served.key == google.calls[-1][0] and len(google.calls) == failures + 1
            assert len(clock.sleeps) == failures
            # Each wait passed on the clock between one call and the next.
            gaps = [later - earlier for (_, earlier), (_, later) in pairwise(google.calls)]
            assert gaps == pytest.approx(clock.sleeps)
            waits.append(list(clock.sleeps))

    asyncio.run(scenario())
    for n in range(1, failures + 1):
        nth = [request[n - 1] for request in waits]
        mean = backoff * n
        assert all(0.5 * mean <= wait <= 1.5 * mean for wait in nth), (n, min(nth), max(nth))
        assert sum(nth) / requests == pytest.approx(mean, rel=0.1), n
        assert min(nth) < 0.7 * mean and max(nth) > 1.3 * mean, n  # jittered, not one fixed wait
    # The bounds leave no overlap between the first wait and the fourth: the waits grow.
    assert all(request[3] > request[0] for request in waits)


@pytest.mark.parametrize(
    "failure",
    [
        server_error(),
        UpstreamError(Verdict.CAPACITY, 429, "No capacity.", reason="MODEL_CAPACITY_EXHAUSTED"),
        UpstreamError(Verdict.UNREACHABLE, 0, "Could not reach Google: refused.", from_google=False),
    ],
    ids=["server", "capacity", "unreachable"],
)
def test_each_of_googles_own_failures_waits_before_the_next_credential(failure: UpstreamError) -> None:
    clock = ManualClock()
    google = ScriptedGoogle(clock, [failure, None])
    gate, _ = gateway(clock, google, RetryPolicy(max_attempts=5, deadline_seconds=60, backoff_seconds=1.0))
    asyncio.run(gate.generate(MODEL, {}))
    assert len(google.calls) == 2 and google.calls[0][0] != google.calls[1][0]
    assert len(clock.sleeps) == 1 and 0.5 <= clock.sleeps[0] <= 1.5


@pytest.mark.parametrize(
    "failure",
    [
        rate_limited(),
        UpstreamError(Verdict.QUOTA_EXHAUSTED, 429, "Daily quota.", reason="QUOTA_EXHAUSTED"),
        UpstreamError(Verdict.CREDENTIAL_INVALID, 400, "API key not valid.", reason="API_KEY_INVALID"),
        UpstreamError(Verdict.PERMISSION, 403, "Permission denied."),
    ],
    ids=["rate_limited", "quota_exhausted", "credential_invalid", "permission"],
)
def test_failovers_for_the_credentials_own_trouble_do_not_wait(failure: UpstreamError) -> None:
    clock = ManualClock()
    google = ScriptedGoogle(clock, [failure] * 3 + [None])
    gate, _ = gateway(clock, google, RetryPolicy(max_attempts=2, deadline_seconds=60, backoff_seconds=1.0))
    _, served = asyncio.run(gate.generate(MODEL, {}))
    # Past the attempt budget too: these cost Google milliseconds.
    assert len(google.calls) == 4 and served.key == google.calls[-1][0]
    assert clock.sleeps == [] and clock.moved == 0


def test_only_googles_own_failures_count_against_the_attempts_and_the_backoff() -> None:
    """429, 503, 429, 503 with two attempts: the second 503 ends the request; the one wait, after the
    first 503, is that of one failure (the 429 before it counts for nothing)."""
    clock = ManualClock()
    script = [rate_limited(), server_error(), rate_limited(), server_error("the last one", 500), None]
    google = ScriptedGoogle(clock, script)
    gate, _ = gateway(clock, google, RetryPolicy(max_attempts=2, deadline_seconds=60, backoff_seconds=1.0), 6)
    error = refused(gate)
    assert (error.status, error.code) == (502, "upstream_error")
    assert "HTTP 500" in error.message and "the last one" in error.message
    assert len(google.calls) == 4
    assert len(clock.sleeps) == 1 and 0.5 <= clock.sleeps[0] <= 1.5


def test_a_wait_that_would_pass_the_deadline_ends_the_request_instead_of_sleeping() -> None:
    """The call took 0.9 s of a 1 s deadline; the wait, at least 0.5 s, would pass it: the client
    hears the failure now instead of after a wait that leaves no time to try another key."""
    clock = ManualClock()
    google = ScriptedGoogle(clock, [server_error("Backend overloaded.")] + [None] * 4, call_seconds=0.9)
    gate, _ = gateway(clock, google, RetryPolicy(max_attempts=5, deadline_seconds=1.0, backoff_seconds=1.0))
    error = refused(gate)
    assert (error.status, error.code) == (502, "upstream_error")
    assert "HTTP 503" in error.message and "Backend overloaded." in error.message
    assert len(google.calls) == 1
    assert clock.sleeps == [] and clock.moved == pytest.approx(0.9)


def test_a_request_stops_retrying_once_its_deadline_has_passed() -> None:
    """Calls of 4 s on a 10 s deadline, with ten keys and ten attempts: the third failure leaves no
    time, and the client gets that last failure, not the first one's."""
    clock = ManualClock()
    script = [server_error("first"), server_error("second"), server_error("third", 500)] + [None] * 7
    google = ScriptedGoogle(clock, script, call_seconds=4.0)
    policy = RetryPolicy(max_attempts=10, deadline_seconds=10.0, backoff_seconds=0.01)
    gate, _ = gateway(clock, google, policy, credentials=10)
    error = refused(gate)
    assert error.status == 502 and "HTTP 500" in error.message and "third" in error.message
    assert len(google.calls) == 3
    assert len(clock.sleeps) == 2  # after the first two; the third's would pass the deadline


def test_rate_limit_failovers_stop_at_the_deadline_with_a_429() -> None:
    """429s do not wait, but the deadline bounds them too: ten keys, calls of 4 s, a 10 s deadline.
    The other keys are free, so the pool says so: retry now."""
    clock = ManualClock()
    google = ScriptedGoogle(clock, [rate_limited()] * 10, call_seconds=4.0)
    gate, scheduler = gateway(
        clock, google, RetryPolicy(max_attempts=5, deadline_seconds=10.0, backoff_seconds=1.0), 10
    )
    error = refused(gate)
    assert (error.status, error.code, error.retry_after) == (429, "rate_limit_exceeded", 1.0)
    assert "others are free" in error.message
    assert len(google.calls) == 3 and clock.sleeps == []
    cooling = asyncio.run(scheduler.state(MODEL)).cooldowns
    assert len(cooling) == 3  # the three keys that said 429 are cooling down; the rest were not asked


def test_a_retried_stream_may_wait_only_for_what_is_left_of_the_deadline() -> None:
    """The first attempt has the upstream timeout (None); a retry after a 429 at 3 s of a 10 s
    deadline may wait 7 s for its stream to begin; the next, after a 503 and its wait, less again."""
    clock = ManualClock()
    google = ScriptedGoogle(clock, [rate_limited(), server_error(), None], call_seconds=3.0)
    gate, _ = gateway(clock, google, RetryPolicy(max_attempts=5, deadline_seconds=10.0, backoff_seconds=0.5))

    async def scenario() -> None:
        first, rest, _ = await gate.open_stream(MODEL, {})
        assert first == [OK]
        await rest.aclose()

    asyncio.run(scenario())
    assert len(clock.sleeps) == 1
    assert google.answer_within == pytest.approx([None, 7.0, 4.0 - clock.sleeps[0]])


def test_a_retry_that_times_out_past_the_deadline_answers_what_made_the_request_retry() -> None:
    """A 429, then a retry that waits out the rest of the deadline and times out: the client hears the
    429 (the pool's account), and the key that timed out is not held against it."""
    clock = ManualClock()
    timeout = UpstreamError(Verdict.TIMEOUT, 0, "Google did not begin its answer in time.", from_google=False)
    google = ScriptedGoogle(clock, [rate_limited(), timeout], call_seconds=5.0)
    gate, scheduler = gateway(
        clock, google, RetryPolicy(max_attempts=5, deadline_seconds=10.0, backoff_seconds=1.0), 3
    )

    async def scenario() -> None:
        await gate.open_stream(MODEL, {})

    with pytest.raises(ProxyError) as caught:
        asyncio.run(scenario())
    assert (caught.value.status, caught.value.code) == (429, "rate_limit_exceeded")
    assert len(google.calls) == 2 and clock.sleeps == []
    state = asyncio.run(scheduler.state(MODEL))
    timed_out = next(cred for cred in scheduler.credentials if cred.key == google.calls[1][0])
    assert len(state.cooldowns) == 1 and timed_out.id not in state.cooldowns and not state.disabled
