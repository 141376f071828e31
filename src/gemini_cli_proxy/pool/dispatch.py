"""One request to Google through the pool: plan the credentials, call, on failure try the next.

Retries happen only before anything reached the client: for a stream, until its first event.
They are bounded by a number of attempts and a total deadline, and failures that are Google's
(capacity, 5xx, unreachable) wait a short jittered backoff before the next credential.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..credentials import Credential
from ..errors import ProxyError
from ..metrics import Metrics
from ..upstream.client import Embedder, Events, UpstreamClient
from ..upstream.embedding import EMBED_BATCH_LIMIT
from ..upstream.errors import RETRY_ELSEWHERE, UpstreamError, Verdict, garbage, to_proxy_error
from ..wire.gemini import GenerateContentResponse
from ..wire.gemini_embed import EmbedContentRequest, estimated_tokens
from ..wire.gemini_request import GenerateContentRequest
from .scheduler import Scheduler
from .usage import UsageRecorder

Result = TypeVar("Result")

_POOL_VERDICTS = frozenset({Verdict.RATE_LIMITED, Verdict.QUOTA_EXHAUSTED, Verdict.CREDENTIAL_INVALID})
_BACKOFF_VERDICTS = frozenset({Verdict.CAPACITY, Verdict.SERVER, Verdict.UNREACHABLE})
# Failures that mark the credential (cooled down or disabled) and cost Google milliseconds: a request
# goes on past them to every usable credential it has not tried, bounded only by the deadline, so a
# client sees a 429 only when the whole pool is out. Google's own failures (5xx, unreachable,
# capacity) count against PROXY_RETRY_ATTEMPTS.
_FREE_FAILOVERS = frozenset(
    {Verdict.RATE_LIMITED, Verdict.QUOTA_EXHAUSTED, Verdict.CREDENTIAL_INVALID, Verdict.PERMISSION}
)


# The calls to Google one embedding request makes at once (see Gateway.embed).
EMBED_CALLS_AT_ONCE = 8


@dataclass(frozen=True, slots=True)
class Embedded:
    """A batch's vectors, in order, and what made them."""

    vectors: list[list[float]]
    tokens: int  # Google's count, or the proxy's estimate where Google's answer had none
    counted: bool  # Google counted every token (Vertex does, AI Studio's batch answer does not)
    credentials: list[Credential]  # one per call to Google


@dataclass(frozen=True, slots=True)
class ProbeFailure:
    """Why a debug probe of one credential failed: Google's status (0 when it never answered) and
    its words, scrubbed of the credential's secrets."""

    status: int
    message: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    deadline_seconds: float = 30.0
    backoff_seconds: float = 0.2  # the mean wait before retrying after Google's own failure


class Gateway:
    def __init__(
        self,
        scheduler: Scheduler,
        usage: UsageRecorder,
        clients: Mapping[str, UpstreamClient[Any]],
        *,
        embedders: Mapping[str, Embedder[Any]] | None = None,
        metrics: Metrics | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`clients`: the upstream for each credential kind (`Credential.kind`) the pool holds;
        `embedders`: those of them with an embedding method (the scheduler plans an embedding
        model over these kinds' credentials only: see Scheduler's `serves`)."""
        missing = {cred.kind for cred in scheduler.credentials} - clients.keys()
        if missing:
            raise ValueError(f"no upstream client for the credential kinds {sorted(missing)}")
        self._scheduler = scheduler
        self._usage = usage
        self._clients = dict(clients)
        self._embedders = dict(embedders or {})
        self._metrics = metrics or Metrics()
        self._retry = retry or RetryPolicy()
        self._random = random.Random()
        self._clock = clock

    def _client(self, cred: Credential) -> UpstreamClient[Any]:
        return self._clients[cred.kind]

    async def generate(
        self, model: str, request: GenerateContentRequest
    ) -> tuple[GenerateContentResponse, Credential]:
        return await self._through_pool(
            model,
            lambda cred: self._client(cred).generate(cred, model, request),
            method="generateContent",
            counts_quota=True,
        )

    async def count_tokens(self, model: str, request: GenerateContentRequest) -> int:
        """Google's count of `request`'s prompt tokens, through the pool like a generation."""
        count, _ = await self._through_pool(
            model,
            lambda cred: self._client(cred).count_tokens(cred, model, request),
            method="countTokens",
            counts_quota=False,
        )
        return count

    async def embed(self, model: str, requests: Sequence[EmbedContentRequest]) -> Embedded:
        """The vectors of `requests`, in order. A batch over Google's limit goes as several calls at
        once, each through the pool on its own (a 429 on one fails it over alone); the first that
        fails for good cancels the rest."""
        chunks = [requests[i : i + EMBED_BATCH_LIMIT] for i in range(0, len(requests), EMBED_BATCH_LIMIT)]
        if len(chunks) == 1:
            done = [await self._embed_chunk(model, chunks[0])]
        else:
            # A bound on the calls one request makes at once: a Gemini-door batch may be huge.
            slots = asyncio.Semaphore(EMBED_CALLS_AT_ONCE)

            async def in_turn(chunk: Sequence[EmbedContentRequest]) -> Embedded:
                async with slots:
                    return await self._embed_chunk(model, chunk)

            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(in_turn(chunk)) for chunk in chunks]
            except ExceptionGroup as failed:
                raise failed.exceptions[0] from None  # the client hears one error, the first
            done = [task.result() for task in tasks]
        return Embedded(
            [vector for part in done for vector in part.vectors],
            sum(part.tokens for part in done),
            all(part.counted for part in done),
            [cred for part in done for cred in part.credentials],
        )

    async def _embed_chunk(self, model: str, requests: Sequence[EmbedContentRequest]) -> Embedded:
        answer, cred = await self._through_pool(
            model,
            lambda cred: self._embedder(cred).embed(cred, model, requests),
            method="embed",
            counts_quota=True,
        )
        counted = answer.prompt_tokens is not None
        tokens = answer.prompt_tokens if answer.prompt_tokens is not None else estimated_tokens(requests)
        self.record(cred, model, tokens_in=tokens)
        return Embedded(answer.vectors, tokens, counted, [cred])

    def _embedder(self, cred: Credential) -> Embedder[Any]:
        embedder = self._embedders.get(cred.kind)
        if embedder is None:  # the scheduler's `serves` keeps such credentials out of embedding plans
            raise ProxyError(503, f"{cred.kind} credentials have no embedding method.", code="no_credentials")
        return embedder

    async def _through_pool(
        self,
        model: str,
        call: Callable[[Credential], Awaitable[Result]],
        *,
        method: str,
        counts_quota: bool,
    ) -> tuple[Result, Credential]:
        """`call` through the plan's credentials until one answers; `counts_quota`: its success
        spends the model's generation quota (countTokens spends none of it)."""
        attempts = self._attempts(model)
        for cred in attempts.each(await attempts.plan()):
            sent_at, started = self._clock.time(), self._clock.monotonic()
            try:
                reply = await call(cred)
            except UpstreamError as failure:
                self._metrics.attempt(cred.kind, method, failure.verdict.value)
                await attempts.failed(cred, failure, sent_at)
                continue
            self._metrics.attempt(cred.kind, method, "ok", self._clock.monotonic() - started)
            if counts_quota:
                await self._scheduler.report_success(cred, model, sent_at=sent_at)
            return reply, cred
        raise await attempts.give_up()

    async def open_stream(
        self, model: str, request: GenerateContentRequest
    ) -> tuple[list[GenerateContentResponse], GoogleStream, Credential]:
        """The first batch of a stream's events and the iterator of the rest; every failure up to
        the first event is retried on another credential."""
        attempts = self._attempts(model)
        for cred in attempts.each(await attempts.plan()):
            sent_at, started = self._clock.time(), self._clock.monotonic()
            events = self._client(cred).stream(cred, model, request, answer_within=attempts.answer_within())
            try:
                first = await anext(events)
            except StopAsyncIteration:
                failure = garbage("the stream ended before its first event")
                self._metrics.attempt(cred.kind, "streamGenerateContent", failure.verdict.value)
                await attempts.failed(cred, failure, sent_at)
                continue
            except UpstreamError as failure:
                await events.aclose()
                self._metrics.attempt(cred.kind, "streamGenerateContent", failure.verdict.value)
                await attempts.failed(cred, failure, sent_at)
                continue
            self._metrics.attempt(cred.kind, "streamGenerateContent", "ok")
            self._metrics.first_event(cred.kind, self._clock.monotonic() - started)
            await self._scheduler.report_success(cred, model, sent_at=sent_at)
            return first, GoogleStream(events, cred, model, self._scheduler, self._usage), cred
        raise await attempts.give_up()

    async def probe(
        self, cred: Credential, model: str, request: GenerateContentRequest
    ) -> ProbeFailure | None:
        """One call through exactly this credential, outside the pool's rotation (the debug tests):
        None when it served, else what Google said. A success ends the credential's cooldown for
        that model early."""
        try:
            await self._client(cred).generate(cred, model, request)
        except UpstreamError as failure:
            scrub_failure(failure, cred)
            return ProbeFailure(failure.status, failure.message)
        await self._scheduler.report_success(cred, model, probe=True)
        return None

    async def probe_token(self, cred: Credential) -> str | ProbeFailure | None:
        """A valid access token for a token-based credential (refreshed if needed), None for a key,
        or why Google would not give one."""
        try:
            return await self._client(cred).access_token(cred)
        except UpstreamError as failure:
            scrub_failure(failure, cred)
            return ProbeFailure(failure.status, failure.message)

    async def probe_project(self, cred: Credential) -> str | ProbeFailure | None:
        """The Google project behind a credential (Code Assist's discovered, or onboarded, now if
        need be), None where none is known, or why Google would not say."""
        try:
            return await self._client(cred).project(cred)
        except UpstreamError as failure:
            scrub_failure(failure, cred)
            return ProbeFailure(failure.status, failure.message)

    def _attempts(self, model: str) -> _Attempts:
        return _Attempts(
            self._scheduler, self._usage, self._retry, self._random, self._clock, model, self._metrics
        )

    def record(
        self, cred: Credential, model: str, *, tokens_in: int = 0, tokens_out: int = 0, reasoning: int = 0
    ) -> None:
        """A served request's tokens (`reasoning`: the part of `tokens_out` spent thinking)."""
        self._usage.record(cred.id, model, tokens_in=tokens_in, tokens_out=tokens_out)
        self._metrics.tokens(model, tokens_in=tokens_in, tokens_out=tokens_out, reasoning=reasoning)


def scrub_failure(failure: UpstreamError, cred: Credential) -> None:
    """Every text of Google's is scrubbed where it is parsed; this is the second line, at the one
    place every failure of every credential kind passes, so that no path can miss the secrets."""
    failure.scrub(cred.secrets())


class GoogleStream:
    """The rest of a stream after its first batch. A failure in it is Google's stream breaking after
    the client got bytes: scrubbed of the credential's secrets, reported to the pool (a 429 still
    cools the key) and counted as the credential's error, then raised as the ProxyError that ends
    the client's stream. `aclose()` always closes Google's response, also when iteration never
    began (a generator wrapper's would not)."""

    __slots__ = ("_cred", "_events", "_model", "_scheduler", "_usage")

    def __init__(
        self, events: Events, cred: Credential, model: str, scheduler: Scheduler, usage: UsageRecorder
    ) -> None:
        self._events = events
        self._cred = cred
        self._model = model
        self._scheduler = scheduler
        self._usage = usage

    def __aiter__(self) -> GoogleStream:
        return self

    async def __anext__(self) -> list[GenerateContentResponse]:
        try:
            return await anext(self._events)
        except UpstreamError as failure:
            scrub_failure(failure, self._cred)
            # The request itself is counted when the stream ends (with its tokens): this adds its error.
            self._usage.record(
                self._cred.id, self._model, requests=0, error=f"{failure.status} {failure.verdict.value}"
            )
            await self._scheduler.report_failure(self._cred, self._model, failure)
            raise to_proxy_error(failure) from None

    async def aclose(self) -> None:
        await self._events.aclose()


class _Attempts:
    """The bookkeeping of one request's tries."""

    def __init__(
        self,
        scheduler: Scheduler,
        usage: UsageRecorder,
        policy: RetryPolicy,
        rng: random.Random,
        clock: Clock,
        model: str,
        metrics: Metrics,
    ) -> None:
        self._scheduler = scheduler
        self._metrics = metrics
        self._usage = usage
        self._policy = policy
        self._random = rng
        self._clock = clock
        self._model = model
        self._deadline = clock.monotonic() + policy.deadline_seconds
        self._count = 0  # failed attempts
        self._spent = 0  # those that count against max_attempts (see _FREE_FAILOVERS)
        self._cooled_projects: set[str] = set()
        self.last: UpstreamError | None = None

    async def plan(self) -> list[Credential]:
        """Every usable credential, each at most once: how many are tried is up to failed()."""
        return await self._scheduler.plan(self._model)

    def each(self, plan: list[Credential]) -> Iterator[Credential]:
        """The plan's credentials in turn, without those whose project this request just saw rate
        limited (they share that limit) or that became unusable since the plan was made (a concurrent
        request's 429, here or in another instance); after a 429, the rest in the order the scheduler
        now gives them (a 429 can make it presume some of them spent: see pool/quota.py)."""
        remaining = plan[::-1]  # popped from the end
        while remaining:
            cred = remaining.pop()
            if cred.project_key() in self._cooled_projects:
                continue
            if self._scheduler.known_unusable(cred, self._model):
                continue
            failures = self._count
            if self.last is not None:  # an attempt after a failure: a retry, counted by its cause
                self._metrics.retry(self.last.verdict.value)
            yield cred
            if self._count > failures and self.last is not None and self.last.verdict is Verdict.RATE_LIMITED:
                remaining = self._scheduler.deferring(remaining[::-1], self._model)[::-1]

    def answer_within(self) -> float | None:
        """How long an attempt may wait for its stream to begin (headers, not the generation): the
        first has the upstream timeout; a retry only what is left of the retry deadline, so that a
        request that failed once does not wait past it for another credential to answer at all."""
        if self._count == 0:
            return None
        return max(0.0, self._deadline - self._clock.monotonic())

    async def failed(self, cred: Credential, failure: UpstreamError, sent_at: float) -> None:
        scrub_failure(failure, cred)
        if (
            failure.verdict is Verdict.TIMEOUT
            and self._count > 0
            and self._clock.monotonic() >= self._deadline
        ):
            # The retry deadline ran out while this retry waited: nothing is known against the
            # credential, and the client hears what made the request retry (a 429, say).
            raise await self.give_up()
        await self._scheduler.report_failure(cred, self._model, failure, sent_at=sent_at)
        self._usage.record(cred.id, self._model, error=f"{failure.status} {failure.verdict.value}")
        if failure.verdict not in RETRY_ELSEWHERE:
            raise to_proxy_error(failure)
        self.last = failure
        self._count += 1
        if failure.verdict in (Verdict.RATE_LIMITED, Verdict.QUOTA_EXHAUSTED):
            self._cooled_projects.add(cred.project_key())
        if failure.verdict not in _FREE_FAILOVERS:
            self._spent += 1
            if self._spent >= self._policy.max_attempts:
                raise await self.give_up()
        if failure.verdict in _BACKOFF_VERDICTS:
            mean = self._policy.backoff_seconds * self._spent
            wait = self._random.uniform(0.5 * mean, 1.5 * mean)
            if self._clock.monotonic() + wait >= self._deadline:
                raise await self.give_up()
            await self._clock.sleep(wait)
        if self._clock.monotonic() >= self._deadline:
            raise await self.give_up()

    async def give_up(self) -> ProxyError:
        if self.last is None or self.last.verdict in _POOL_VERDICTS:
            # The pool's own account (how many cooling, until when) says more than the last error.
            return await self._scheduler.exhausted(self._model)
        return to_proxy_error(self.last)
