"""What the pool learns from Google's 429s beyond a cooldown (pool/quota.py): per-minute limits it
paces by, input-token quotas, and AI Studio keys that seem to share a project. Every guess only
reorders a plan: the credential is still tried, last."""

from __future__ import annotations

import asyncio

import orjson

from gemini_cli_proxy.credentials import ApiKeyCredential, Credential
from gemini_cli_proxy.pool.quota import INPUT_TOKENS, REQUESTS, Limit, QuotaBook, per_minute_limits
from gemini_cli_proxy.pool.scheduler import Scheduler
from gemini_cli_proxy.store.base import UsageEvent
from gemini_cli_proxy.store.memory import MemoryStore
from gemini_cli_proxy.upstream.errors import UpstreamError, Verdict, from_payload

from support import Clock

MODEL = "gemini-2.5-flash"
PER_MINUTE_REQUESTS = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
PER_MINUTE_TOKENS = "GenerateContentInputTokensPerModelPerMinute-FreeTier"


def rate_limited(delay: float, *quotas: tuple[str, int]) -> UpstreamError:
    return UpstreamError(Verdict.RATE_LIMITED, 429, "quota", retry_after=delay, quota_values=tuple(quotas))


def ids(plan: list[Credential]) -> list[str]:
    return [cred.id for cred in plan]


# -- reading Google's QuotaFailure ------------------------------------------------------------------


def test_a_429s_quota_values_are_read_from_its_quota_failure() -> None:
    body = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota. Please retry in 41.2s.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {"quotaId": PER_MINUTE_REQUESTS, "quotaValue": "15"},
                        {"quotaId": PER_MINUTE_TOKENS, "quotaValue": "250000"},
                        {"quotaId": "NoValue"},
                        {"quotaId": "Weird", "quotaValue": "1e9"},
                        {"quotaId": "Superscript", "quotaValue": "\u00b2"},
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "41s"},
            ],
        }
    }
    failure = from_payload(429, body, orjson.dumps(body))
    assert failure.quota_values == ((PER_MINUTE_REQUESTS, 15), (PER_MINUTE_TOKENS, 250000))
    assert failure.retry_after == 41.2


def test_only_per_minute_limits_are_paced_by() -> None:
    limits = per_minute_limits(
        [
            (PER_MINUTE_REQUESTS, 15),
            (PER_MINUTE_TOKENS, 250000),
            ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", 250),
            (PER_MINUTE_REQUESTS, 0),
        ]
    )
    assert limits == [Limit(REQUESTS, 15), Limit(INPUT_TOKENS, 250000)]


# -- pacing ---------------------------------------------------------------------------------------


def test_a_project_that_sent_its_limit_within_a_minute_is_presumed_spent_until_that_minute_passes() -> None:
    book = QuotaBook()
    book.rate_limited("k", "p", MODEL, 1000.0, 5.0, [(PER_MINUTE_REQUESTS, 3)], infer_siblings=False)
    assert not book.presumed_spent("k", "p", MODEL, 1000.0)  # the 429 itself is the cooldown's business
    book.served("k", "p", MODEL, 1005.5, 1005.5)
    book.served("k", "p", MODEL, 1021.0, 1021.0)
    assert not book.presumed_spent("k", "p", MODEL, 1021.0)
    book.served("k", "p", MODEL, 1033.0, 1033.0)
    assert book.presumed_spent("k", "p", MODEL, 1033.0)
    # Counted in 10-second buckets: the first request (bucket 1000-1010) leaves the minute at 1060.
    assert book.presumed_spent("k", "p", MODEL, 1059.9)
    assert not book.presumed_spent("k", "p", MODEL, 1060.1)
    assert not book.presumed_spent("k", "p", "gemini-2.5-pro", 1033.0)  # quota is per model


def test_an_input_token_limit_counts_the_prompt_tokens_sent() -> None:
    book = QuotaBook()
    book.rate_limited("k", "p", MODEL, 1000.0, 1.0, [(PER_MINUTE_TOKENS, 1000)], infer_siblings=False)
    book.served("k", "p", MODEL, 1001.5, 1001.5)
    book.tokens_used("p", MODEL, 600, 1001.5)
    assert not book.presumed_spent("k", "p", MODEL, 1002.0)
    book.tokens_used("p", MODEL, 400, 1002.0)
    assert book.presumed_spent("k", "p", MODEL, 1002.0)


def test_counts_from_the_store_include_other_instances_sends() -> None:
    book = QuotaBook()
    book.rate_limited("k", "p", MODEL, 1000.0, 1.0, [(PER_MINUTE_REQUESTS, 10)], infer_siblings=False)
    book.served("k", "p", MODEL, 1002.0, 1002.0)
    taken = book.take_pending(1002.0)
    # The minute's six buckets: this one with what was sent here, the five before it read.
    assert taken == [("p", MODEL, REQUESTS, bucket, 1 if bucket == 100 else 0) for bucket in range(95, 101)]
    assert not book.presumed_spent("k", "p", MODEL, 1002.0)
    book.counted("p", MODEL, REQUESTS, 100, 4, 1002.0)  # three more went through the other instance
    book.counted("p", MODEL, REQUESTS, 99, 6, 1002.0)  # and six in the bucket before
    assert book.presumed_spent("k", "p", MODEL, 1002.0)
    assert book.presumed_spent("k", "p", MODEL, 1049.9)
    assert not book.presumed_spent("k", "p", MODEL, 1050.1)  # bucket 99 has left the minute
    assert [entry[4] for entry in book.take_pending(1003.0)] == [0] * 6  # reads only


def test_nothing_is_counted_for_a_project_without_a_known_limit() -> None:
    book = QuotaBook()
    for _ in range(100):
        book.served("k", "p", MODEL, 1000.0, 1000.0)
    assert not book.active
    assert book.take_pending(1000.0) == []


# -- siblings -------------------------------------------------------------------------------------


def spend(book: QuotaBook, key: str, now: float, end: float) -> None:
    book.rate_limited(key, key, MODEL, now, end - now, [(PER_MINUTE_REQUESTS, 10)], infer_siblings=True)


def test_keys_spent_together_in_two_windows_are_taken_for_siblings() -> None:
    book = QuotaBook()
    spend(book, "a", 1050.0, 1060.0)
    spend(book, "b", 1050.5, 1060.0)
    spend(book, "a", 1110.0, 1120.0)
    spend(book, "b", 1110.2, 1120.0)
    # A third window: a's 429 presumes b spent too, until that window ends.
    spend(book, "a", 1170.0, 1180.0)
    assert book.presumed_spent("b", "b", MODEL, 1170.1)
    assert not book.presumed_spent("b", "b", MODEL, 1180.1)


def test_one_window_together_is_not_enough() -> None:
    book = QuotaBook()
    spend(book, "a", 1050.0, 1060.0)
    spend(book, "b", 1050.5, 1060.0)
    spend(book, "b", 1050.8, 1060.0)  # the same window again: still one window of evidence
    spend(book, "a", 1170.0, 1180.0)
    assert not book.presumed_spent("b", "b", MODEL, 1170.1)


def test_a_key_that_served_while_another_was_spent_is_no_sibling_of_it() -> None:
    book = QuotaBook()
    spend(book, "a", 1050.0, 1060.0)
    book.served("c", "c", MODEL, 1051.0, 1051.2)  # sent after a's 429, well before its window ended
    spend(book, "c", 1055.0, 1060.0)
    spend(book, "a", 1110.0, 1120.0)
    spend(book, "c", 1110.1, 1120.0)
    spend(book, "a", 1170.0, 1180.0)
    assert not book.presumed_spent("c", "c", MODEL, 1170.1)


def test_a_request_sent_before_the_429_proves_nothing() -> None:
    book = QuotaBook()
    spend(book, "a", 1050.0, 1060.0)
    book.served("b", "b", MODEL, 1049.9, 1050.3)  # left before a's 429 came: may have spent the last unit
    spend(book, "b", 1050.5, 1060.0)
    spend(book, "a", 1110.0, 1120.0)
    spend(book, "b", 1110.2, 1120.0)
    spend(book, "a", 1170.0, 1180.0)
    assert book.presumed_spent("b", "b", MODEL, 1170.1)


def test_a_presumed_sibling_that_serves_is_no_longer_presumed_spent() -> None:
    book = QuotaBook()
    for start in (1050.0, 1110.0):
        spend(book, "a", start, start + 10)
        spend(book, "b", start + 0.2, start + 10)
    spend(book, "a", 1170.0, 1180.0)
    assert book.presumed_spent("b", "b", MODEL, 1170.1)
    book.served("b", "b", MODEL, 1170.2, 1170.3)
    assert not book.presumed_spent("b", "b", MODEL, 1170.4)
    # ...and it was sent after a's 429: never siblings again.
    spend(book, "a", 1230.0, 1240.0)
    assert not book.presumed_spent("b", "b", MODEL, 1230.1)


# -- in the scheduler -----------------------------------------------------------------------------

TWO_PROJECTS = [
    ApiKeyCredential("key-a-00000000", project="p1"),
    ApiKeyCredential("key-b-00000000", project="p2"),
]


def test_the_plan_asks_a_paced_out_project_last_and_still_asks_it() -> None:
    async def scenario() -> None:
        clock = Clock()
        keys = TWO_PROJECTS
        pool = Scheduler(keys, MemoryStore(clock=clock), clock=clock)
        await pool.report_failure(keys[0], MODEL, rate_limited(0.5, (PER_MINUTE_REQUESTS, 2)))
        clock.now += 1.0  # the cooldown and the window are over
        for _ in range(2):
            await pool.report_success(keys[0], MODEL)
        for _ in range(4):  # whatever the rotation's turn, p1 comes last this window
            assert ids(await pool.plan(MODEL)) == [keys[1].id, keys[0].id]
        clock.now += 60.0
        firsts = {ids(await pool.plan(MODEL))[0] for _ in range(2)}
        assert firsts == {keys[0].id, keys[1].id}  # a new window: the rotation as before

    asyncio.run(scenario())


def test_two_instances_pace_by_their_shared_count() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = MemoryStore(clock=clock)
        keys = TWO_PROJECTS
        first, second = (Scheduler(keys, store, clock=clock) for _ in range(2))
        for pool in (first, second):
            await pool.report_failure(keys[0], MODEL, rate_limited(0.5, (PER_MINUTE_REQUESTS, 4)))
        clock.now += 1.0
        for pool in (first, second):
            for _ in range(2):
                await pool.report_success(keys[0], MODEL)
        # Each sent 2 of p1's 4: neither alone knows p1 is spent.
        assert {ids(await first.plan(MODEL))[0] for _ in range(2)} == {keys[0].id, keys[1].id}
        for pool in (first, second, first):  # each batch of usage: shares its sends, reads the totals
            await pool.count_usage([UsageEvent(keys[0].id, MODEL, at=clock.now)])
        for pool in (first, second):
            for _ in range(2):
                assert ids(await pool.plan(MODEL)) == [keys[1].id, keys[0].id]

    asyncio.run(scenario())


def test_input_tokens_reported_by_usage_count_against_an_input_token_quota() -> None:
    async def scenario() -> None:
        clock = Clock()
        keys = TWO_PROJECTS
        pool = Scheduler(keys, MemoryStore(clock=clock), clock=clock)
        await pool.report_failure(keys[0], MODEL, rate_limited(0.5, (PER_MINUTE_TOKENS, 1000)))
        clock.now += 1.0
        await pool.report_success(keys[0], MODEL)
        await pool.count_usage([UsageEvent(keys[0].id, MODEL, tokens_in=999, at=clock.now)])
        assert {ids(await pool.plan(MODEL))[0] for _ in range(2)} == {keys[0].id, keys[1].id}
        await pool.count_usage([UsageEvent(keys[0].id, MODEL, tokens_in=1, at=clock.now)])
        for _ in range(2):
            assert ids(await pool.plan(MODEL)) == [keys[1].id, keys[0].id]

    asyncio.run(scenario())


def test_where_projects_windows_end_together_no_keys_are_taken_for_siblings() -> None:
    """Aligned windows: every project's 429s name the same end, so the same end says nothing. Keys
    known to be of different projects keep naming the same ends, and the inference turns off."""
    book = QuotaBook()
    keys = [f"k{i}" for i in range(12)]
    for start in (1050.0, 1110.0, 1170.0):
        end = start + 10
        # Half the keys are spent; the other half serve after that (so they are known apart), then are
        # spent too, all naming the same end.
        for i, key in enumerate(keys[:6]):
            spend(book, key, start + i * 0.01, end)
        for key in keys[6:]:
            book.served(key, key, MODEL, start + 1.0, start + 1.1)
        for i, key in enumerate(keys[6:]):
            spend(book, key, start + 2 + i * 0.01, end)
    assert not book.inferring_siblings
    assert book.sibling_links() == []
    spend(book, "k0", 1230.0, 1240.0)
    assert not any(book.presumed_spent(key, key, MODEL, 1230.1) for key in keys[1:])


def test_where_projects_windows_end_apart_siblings_are_told_apart() -> None:
    book = QuotaBook()
    # Project x (keys x1, x2) ends its windows at :10, project y (y1, y2) at :40; z always serves.
    for minute in (1000.0, 1060.0, 1120.0):
        spend(book, "x1", minute + 5, minute + 10)
        spend(book, "x2", minute + 5.1, minute + 10)
        book.served("z", "z", MODEL, minute + 6, minute + 6.1)
        spend(book, "y1", minute + 35, minute + 40)
        spend(book, "y2", minute + 35.1, minute + 40)
    assert book.inferring_siblings
    assert book.sibling_links() == [("x1", "x2"), ("y1", "y2")]


def test_a_project_that_serves_more_than_twice_its_limit_in_a_minute_is_not_paced_by_it() -> None:
    """No per-minute window lets a project serve over twice its limit within a minute: when one does,
    the quota's window is shorter than its name says, and counting a minute would defer a project
    that has quota."""
    book = QuotaBook()
    book.rate_limited("k", "p", MODEL, 1000.0, 1.0, [(PER_MINUTE_REQUESTS, 3)], infer_siblings=False)
    for second in range(1001, 1007):
        book.served("k", "p", MODEL, second, second)
    assert book.presumed_spent("k", "p", MODEL, 1006.0)  # six: two windows' worth at most
    book.served("k", "p", MODEL, 1007.0, 1007.0)
    assert not book.presumed_spent("k", "p", MODEL, 1007.0)
    for second in range(1008, 1020):
        book.served("k", "p", MODEL, second, second)
    assert not book.presumed_spent("k", "p", MODEL, 1020.0)


def test_a_quota_shown_shorter_than_a_minute_paces_no_project_of_that_model() -> None:
    """Pacing some projects and not others defers the paced ones: once one project shows the window
    is shorter than a minute, no project of that model is paced by it."""
    book = QuotaBook()
    for project in ("p", "q"):
        book.rate_limited(
            project, project, MODEL, 1000.0, 1.0, [(PER_MINUTE_REQUESTS, 3)], infer_siblings=False
        )
    for second in range(1001, 1004):
        book.served("q", "q", MODEL, second, second)
    assert book.presumed_spent("q", "q", MODEL, 1004.0)
    for second in range(1001, 1008):
        book.served("p", "p", MODEL, second, second)
    assert not book.presumed_spent("q", "q", MODEL, 1008.0)
    book.served("q", "q", MODEL, 1009.0, 1009.0)
    assert not book.presumed_spent("q", "q", MODEL, 1009.0)
    assert book.take_pending(1010.0) == []  # its counts are neither shared nor read any more


def test_429s_naming_window_ends_less_than_a_minute_apart_stop_pacing_by_that_quota() -> None:
    """A key alone (its project not known) may send its project's limit within a minute through
    several short windows and never over twice it: the window ends its 429s name show the windows
    are short, and a minute's count is not used for that model again."""
    book = QuotaBook()
    limit = [(PER_MINUTE_REQUESTS, 3)]
    book.rate_limited("k", "p", MODEL, 1000.0, 9.5, limit, infer_siblings=False)  # the window ends 1009.5
    book.rate_limited("k", "p", MODEL, 1009.0, 0.4, limit, infer_siblings=False)  # the same window
    for second in (1010.0, 1011.0, 1012.0):
        book.served("k", "p", MODEL, second, second)
    assert book.presumed_spent("k", "p", MODEL, 1012.0)  # nothing says the window is short yet
    book.rate_limited("k", "p", MODEL, 1013.0, 6.5, limit, infer_siblings=False)  # ends 1019.5: 10 s on
    assert not book.presumed_spent("k", "p", MODEL, 1013.0)
    for second in (1020.0, 1021.0, 1022.0):
        book.served("k", "p", MODEL, second, second)
    assert not book.presumed_spent("k", "p", MODEL, 1022.0)


def test_window_ends_a_minute_apart_keep_pacing() -> None:
    book = QuotaBook()
    limit = [(PER_MINUTE_REQUESTS, 3)]
    book.rate_limited("k", "p", MODEL, 1000.0, 20.0, limit, infer_siblings=False)  # ends 1020
    book.rate_limited("k", "p", MODEL, 1050.0, 30.6, limit, infer_siblings=False)  # ends 1080.6
    for second in (1081.0, 1082.0, 1083.0):
        book.served("k", "p", MODEL, second, second)
    assert book.presumed_spent("k", "p", MODEL, 1083.0)
