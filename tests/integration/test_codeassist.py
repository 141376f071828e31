"""gemini-cli OAuth credentials against Code Assist, end to end: openai SDK -> proxy -> fake Google.

Each test checks what the client got and what the fake received: the token endpoint's form, the
bearer token and envelope of each Code Assist call, project discovery, and the credential file the
proxy writes back after a refresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import openai
import pytest
from aiohttp import web

from gemini_cli_proxy.settings import GEMINI_CLI_CLIENT_ID, GEMINI_CLI_CLIENT_SECRET
from gemini_cli_proxy.testing import FakeGoogle, Received, Reply

from conftest import FakeServer, Proxy, StartProxy
from support import LoopThread, assert_schema

MODEL = "gemini-2.5-flash"
REFRESH = "1//fake-refresh-token-alpha-0001"
STALE_TOKEN = "ya29.stale-access-token-0001"
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Capital of France?"},
]


# -- helpers ----------------------------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _write_creds(
    path: Path,
    refresh_token: str = REFRESH,
    *,
    access_token: str = STALE_TOKEN,
    expires_in: float = -3600.0,
    **extra: Any,
) -> Path:
    """A credential file in gemini-cli's format; the token expired an hour ago unless told otherwise."""
    data = {
        "access_token": access_token,
        "refresh_token": refresh_token,
        "scope": "https://www.googleapis.com/auth/cloud-platform openid",
        "token_type": "Bearer",
        "id_token": "eyJhbGciOiJSUzI1NiJ9.fake-id-token.sig",
        "expiry_date": _now_ms() + int(expires_in * 1000),
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    path.chmod(0o644)
    return path


def _oauth_proxy(start_proxy: StartProxy, *paths: Path, **overrides: Any) -> Proxy:
    """A proxy whose only credentials are the OAuth files (or folders) `paths`."""
    settings: dict[str, Any] = {
        "gemini_api_keys": [],
        "gemini_oauth_creds": [str(p) for p in paths],
        "gemini_project_id": None,
    }
    settings.update(overrides)
    return start_proxy(**settings)


def _dump(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.model_dump(mode="json", exclude_unset=True)
    return data


def _calls(fake: FakeGoogle, action: str) -> list[Received]:
    return [r for r in fake.received if r.action == action]


def _token_calls(fake: FakeGoogle) -> list[Received]:
    return [r for r in fake.received if r.api == "oauth"]


def _ask(client: openai.OpenAI, content: str = "Capital of France?") -> str | None:
    result = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    return result.choices[0].message.content


def _file_token(path: Path) -> str:
    token: str = json.loads(path.read_text())["access_token"]
    return token


def _assert_no_secret_logged(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    assert caplog.records, "expected the proxy to log something"
    for record in caplog.records:
        text = record.getMessage()
        assert not any(secret in text for secret in secrets), text


def _error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body: dict[str, Any] = exc.response.json()["error"]
    return body


# -- refresh, envelope, write-back ---------------------------------------------------------------------------


def test_expired_token_is_refreshed_then_code_assist_is_called(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gemini_cli_proxy")
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    creds = _write_creds(tmp_path / "oauth_creds.json")
    proxy = _oauth_proxy(
        start_proxy,
        creds,
        gemini_oauth_client_id="custom-client.apps.googleusercontent.com",
        gemini_oauth_client_secret="custom-secret",
    )
    fake.push(Reply.text("Paris.", usage={"promptTokenCount": 7, "candidatesTokenCount": 2}))

    with proxy.client() as client:
        result = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, temperature=0.2, max_tokens=50
        )

    assert_schema(_dump(result), "CreateChatCompletionResponse")
    assert result.model == MODEL
    assert result.choices[0].message.content == "Paris."
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None and result.usage.total_tokens == 9

    assert [(r.api, r.action) for r in fake.received] == [
        ("oauth", "token"),
        ("codeassist", "loadCodeAssist"),
        ("codeassist", "generateContent"),
    ]
    (token_call,) = _token_calls(fake)
    assert token_call.method == "POST" and token_call.path == "/token"
    assert token_call.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert token_call.body == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "client_id": "custom-client.apps.googleusercontent.com",
        "client_secret": "custom-secret",
    }
    assert fake.token_requests == 1

    new_token = _file_token(creds)
    assert new_token.startswith("ya29.fake-") and new_token != STALE_TOKEN
    (load,) = _calls(fake, "loadCodeAssist")
    assert load.bearer_token == new_token
    assert load.body["metadata"] == {
        "ideType": "IDE_UNSPECIFIED",
        "platform": "PLATFORM_UNSPECIFIED",
        "pluginType": "GEMINI",
    }

    (sent,) = fake.generate_requests()
    assert sent.api == "codeassist" and sent.method == "POST"
    assert sent.path == "/v1internal:generateContent"
    assert sent.bearer_token == new_token
    assert set(sent.body) == {"model", "project", "user_prompt_id", "request"}
    assert sent.body["model"] == MODEL
    assert sent.body["project"] == "proj-alpha"
    assert isinstance(sent.body["user_prompt_id"], str) and sent.body["user_prompt_id"]
    assert sent.request["contents"] == [{"role": "user", "parts": [{"text": "Capital of France?"}]}]
    assert sent.request["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert sent.request["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 50,
        "thinkingConfig": {"includeThoughts": True},
    }
    _assert_no_secret_logged(caplog, REFRESH, STALE_TOKEN, new_token)


def test_streamed_completion_through_refreshed_oauth_credential(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    creds = _write_creds(tmp_path / "oauth_creds.json")
    proxy = _oauth_proxy(start_proxy, creds)
    fake.push(Reply.text("Paris is the capital of France.", chunks=3))

    with proxy.client() as client:
        chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))

    for chunk in chunks:
        assert_schema(_dump(chunk), "CreateChatCompletionStreamResponse")
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Paris is the capital of France."
    )
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    assert chunks[-1].choices[0].finish_reason == "stop"

    (token_call,) = _token_calls(fake)
    assert token_call.body == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "client_id": GEMINI_CLI_CLIENT_ID,
        "client_secret": GEMINI_CLI_CLIENT_SECRET,
    }
    (sent,) = fake.generate_requests()
    assert sent.path == "/v1internal:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.stream
    assert sent.bearer_token == _file_token(creds) != STALE_TOKEN
    assert sent.body["model"] == MODEL and sent.body["project"] == "proj-alpha"
    assert sent.body["user_prompt_id"]
    assert sent.request["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert sent.request["contents"][-1]["role"] == "user"


def test_refreshed_token_is_written_back_atomically(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    folder = tmp_path / "creds"
    creds = _write_creds(folder / "account.json", custom_key={"kept": True}, note="written by a test")
    before = json.loads(creds.read_text())
    proxy = _oauth_proxy(start_proxy, folder)

    started_ms = _now_ms()
    with proxy.client() as client:
        assert _ask(client) == "Echo: Capital of France?"

    after = json.loads(creds.read_text())
    (sent,) = fake.generate_requests()
    assert after["access_token"] == sent.bearer_token != before["access_token"]
    assert isinstance(after["expiry_date"], int)
    # expires_in is 3599 s: milliseconds, an hour ahead (not seconds, not the past).
    assert started_ms + 3_500_000 <= after["expiry_date"] <= _now_ms() + 3_600_000
    assert after["refresh_token"] == REFRESH
    assert after["custom_key"] == {"kept": True} and after["note"] == "written by a test"
    assert after["id_token"] == before["id_token"]
    assert after["token_type"] == "Bearer"
    assert set(after) == set(before)
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir()] == ["account.json"]  # no temp file left behind

    # A second request uses the written-back token without another refresh.
    with proxy.client() as client:
        _ask(client)
    assert fake.token_requests == 1
    assert fake.generate_requests()[1].bearer_token == after["access_token"]


def test_fresh_token_is_used_without_refresh(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    token = fake.issue_access_token(REFRESH)
    creds = _write_creds(tmp_path / "oauth_creds.json", access_token=token, expires_in=3000)
    original = creds.read_bytes()
    proxy = _oauth_proxy(start_proxy, creds)

    with proxy.client() as client:
        assert _ask(client) == "Echo: Capital of France?"
        assert _ask(client, "again") == "Echo: again"

    assert fake.token_requests == 0
    assert _token_calls(fake) == []
    assert [r.bearer_token for r in fake.generate_requests()] == [token, token]
    assert _calls(fake, "loadCodeAssist")[0].bearer_token == token
    assert creds.read_bytes() == original  # nothing refreshed, nothing written


def test_token_within_five_minutes_of_expiry_is_refreshed(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    token = fake.issue_access_token(REFRESH)
    creds = _write_creds(tmp_path / "oauth_creds.json", access_token=token, expires_in=240)
    proxy = _oauth_proxy(start_proxy, creds)

    with proxy.client() as client:
        assert _ask(client) == "Echo: Capital of France?"

    assert fake.token_requests == 1
    (sent,) = fake.generate_requests()
    assert sent.bearer_token != token
    assert sent.bearer_token == _file_token(creds)


# -- single flight ----------------------------------------------------------------------------------------


@pytest.fixture
def slow_token_url(loop_thread: LoopThread, fake_server: FakeServer) -> Iterator[str]:
    """A token endpoint that forwards to the fake's after 0.3 s, so concurrent refreshes overlap."""

    async def relay(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(0.3)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{fake_server.url}/token",
                data=body,
                headers={"Content-Type": request.headers["Content-Type"]},
            ) as upstream,
        ):
            return web.Response(
                status=upstream.status, body=await upstream.read(), content_type="application/json"
            )

    app = web.Application()
    app.router.add_post("/token", relay)
    runner, url = loop_thread.start_app(app)
    yield f"{url}/token"
    loop_thread.stop_app(runner)


@pytest.mark.parametrize("project", ["my-proj", None], ids=["configured-project", "discovered-project"])
def test_concurrent_requests_share_one_refresh(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path, slow_token_url: str, project: str | None
) -> None:
    """With a configured project the 10 requests reach the token manager together; with discovery
    they wait on one shared loadCodeAssist, which does the refresh."""
    fake.add_oauth_account(REFRESH, project_id="my-proj")
    creds = _write_creds(tmp_path / "oauth_creds.json")
    proxy = _oauth_proxy(start_proxy, creds, google_oauth_token_url=slow_token_url, gemini_project_id=project)

    async def scenario() -> list[str]:
        async with proxy.async_client() as sdk:
            results = await asyncio.gather(
                *(
                    sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"q{i}"}])
                    for i in range(10)
                )
            )
        return [r.choices[0].message.content or "" for r in results]

    answers = asyncio.run(scenario())

    assert sorted(answers) == sorted(f"Echo: q{i}" for i in range(10))
    assert fake.token_requests == 1
    assert len(_token_calls(fake)) == 1
    assert len(_calls(fake, "loadCodeAssist")) == (0 if project else 1)
    generated = fake.generate_requests()
    assert len(generated) == 10
    assert {r.bearer_token for r in generated} == {_file_token(creds)}
    assert {r.body["project"] for r in generated} == {"my-proj"}


# -- 401 from Code Assist ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_unauthenticated_reply_forces_one_refresh_and_retry(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path, stream: bool
) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    token = fake.issue_access_token(REFRESH)
    creds = _write_creds(tmp_path / "oauth_creds.json", access_token=token, expires_in=3000)
    proxy = _oauth_proxy(start_proxy, creds)

    with proxy.client() as client:
        assert _ask(client, "first") == "Echo: first"
        assert fake.token_requests == 0
        fake.expire_access_tokens()  # Google forgets the token the proxy still thinks is fresh

        if stream:
            chunks = list(
                client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "second"}], stream=True
                )
            )
            for chunk in chunks:
                assert_schema(_dump(chunk), "CreateChatCompletionStreamResponse")
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert chunks[-1].choices[0].finish_reason == "stop"
        else:
            result = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "second"}]
            )
            assert_schema(_dump(result), "CreateChatCompletionResponse")
            text = result.choices[0].message.content or ""
            assert result.choices[0].finish_reason == "stop"
    assert text == "Echo: second"

    assert fake.token_requests == 1
    new_token = _file_token(creds)
    assert new_token != token
    generated = fake.generate_requests()
    assert [r.bearer_token for r in generated] == [token, token, new_token]
    assert generated[1].body == generated[2].body  # the same envelope, retried once
    assert len(_calls(fake, "loadCodeAssist")) == 1  # the project stayed cached


def test_second_unauthenticated_reply_is_not_retried_again(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    token = fake.issue_access_token(REFRESH)
    creds = _write_creds(tmp_path / "oauth_creds.json", access_token=token, expires_in=3000)
    proxy = _oauth_proxy(start_proxy, creds, gemini_project_id="proj-alpha")
    unauthenticated = Reply.error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")
    fake.push_many([unauthenticated, unauthenticated])

    with proxy.client() as client, pytest.raises(openai.PermissionDeniedError) as caught:
        _ask(client)

    assert caught.value.status_code == 403
    assert _error_of(caught.value)["code"] == "permission_denied"
    assert fake.token_requests == 1  # one forced refresh, no loop
    assert [r.bearer_token for r in fake.generate_requests()] == [token, _file_token(creds)]
    assert _file_token(creds) != token


# -- project discovery -------------------------------------------------------------------------------------


def test_project_is_discovered_once_with_load_code_assist(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-standard")
    proxy = _oauth_proxy(start_proxy, _write_creds(tmp_path / "oauth_creds.json"))

    with proxy.client() as client:
        assert _ask(client, "one") == "Echo: one"
        assert _ask(client, "two") == "Echo: two"

    (load,) = _calls(fake, "loadCodeAssist")
    assert load.path == "/v1internal:loadCodeAssist"
    assert "cloudaicompanionProject" not in load.body
    assert _calls(fake, "onboardUser") == []
    assert [r.body["project"] for r in fake.generate_requests()] == ["proj-standard", "proj-standard"]
    assert [r.action for r in fake.received if r.api == "codeassist"] == [
        "loadCodeAssist",
        "generateContent",
        "generateContent",
    ]


def test_free_tier_account_is_onboarded_and_operation_polled(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read when the proxy builds its Code Assist client at start-up, so patch before starting it.
    monkeypatch.setattr("gemini_cli_proxy.upstream.codeassist.ONBOARD_POLL_SECONDS", 0.01)
    fake.add_oauth_account(REFRESH, onboard_polls=3, managed_project_id="gen-lang-client-0123456789")
    proxy = _oauth_proxy(start_proxy, _write_creds(tmp_path / "oauth_creds.json"))

    with proxy.client() as client:
        assert _ask(client, "one") == "Echo: one"
        assert _ask(client, "two") == "Echo: two"

    assert [r.action for r in fake.received if r.api == "codeassist"] == [
        "loadCodeAssist",
        "onboardUser",
        "getOperation",
        "getOperation",
        "getOperation",
        "generateContent",
        "generateContent",
    ]
    (onboard,) = _calls(fake, "onboardUser")
    assert onboard.body["tierId"] == "free-tier"
    assert "cloudaicompanionProject" not in onboard.body
    polls = _calls(fake, "getOperation")
    assert all(p.method == "GET" for p in polls)
    assert len({p.path for p in polls}) == 1 and polls[0].path.startswith("/v1internal/operations/")
    assert all(r.bearer_token == _file_token(tmp_path / "oauth_creds.json") for r in fake.received[1:])
    assert [r.body["project"] for r in fake.generate_requests()] == ["gen-lang-client-0123456789"] * 2


def test_configured_project_skips_discovery(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.add_oauth_account(REFRESH)
    proxy = _oauth_proxy(
        start_proxy, _write_creds(tmp_path / "oauth_creds.json"), gemini_project_id="my-proj"
    )

    with proxy.client() as client:
        assert _ask(client) == "Echo: Capital of France?"
        chunks = list(
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "streamed"}], stream=True
            )
        )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: streamed"

    assert _calls(fake, "loadCodeAssist") == [] and _calls(fake, "onboardUser") == []
    assert [r.body["project"] for r in fake.generate_requests()] == ["my-proj", "my-proj"]


# -- revoked refresh token ---------------------------------------------------------------------------------


def test_revoked_refresh_token_disables_the_only_credential(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gemini_cli_proxy")
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    fake.revoke(REFRESH)
    creds = _write_creds(tmp_path / "oauth_creds.json")
    original = creds.read_bytes()
    proxy = _oauth_proxy(start_proxy, creds)

    with proxy.client() as client:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError) as caught:
                _ask(client)
            assert caught.value.status_code == 503
            error = _error_of(caught.value)
            assert error["code"] == "no_credentials" and error["type"] == "server_error"
            assert error["message"]
            text = caught.value.response.text
            assert REFRESH not in text and STALE_TOKEN not in text
            assert "fake-refresh-token" not in text and "stale-access-token" not in text

    assert fake.token_requests == 1  # the second request did not try the disabled credential
    (token_call,) = _token_calls(fake)
    assert token_call.body["refresh_token"] == REFRESH
    assert fake.generate_requests() == []
    assert [r for r in fake.received if r.api == "codeassist"] == []
    assert creds.read_bytes() == original
    _assert_no_secret_logged(caplog, REFRESH, STALE_TOKEN)


def test_revoked_oauth_credential_falls_back_to_aistudio_key(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    fake.revoke(REFRESH)
    proxy = _oauth_proxy(start_proxy, _write_creds(tmp_path / "oauth_creds.json"), gemini_api_keys=["k"])

    with proxy.client() as client:
        # Round robin puts the OAuth credential first for one of the first two requests.
        assert [_ask(client, f"q{i}") for i in range(3)] == ["Echo: q0", "Echo: q1", "Echo: q2"]

    assert fake.token_requests == 1  # tried once, disabled, never tried again
    generated = fake.generate_requests()
    assert [(r.api, r.api_key) for r in generated] == [("aistudio", "k")] * 3
    assert [r for r in fake.received if r.api == "codeassist"] == []


# -- several credentials, GCP_SERVICE_ACCOUNT ---------------------------------------------------------------


def test_folder_of_credentials_is_used_round_robin(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path
) -> None:
    accounts = {"1//fake-refresh-token-a-000001": "proj-a", "1//fake-refresh-token-b-000002": "proj-b"}
    folder = tmp_path / "accounts"
    for i, (refresh, project) in enumerate(accounts.items()):
        fake.add_oauth_account(refresh, project_id=project)
        _write_creds(folder / f"account-{i}.json", refresh)
    (folder / "notes.txt").write_text("not a credential")
    proxy = _oauth_proxy(start_proxy, folder)

    with proxy.client() as client:
        for i in range(4):
            assert _ask(client, f"q{i}") == f"Echo: q{i}"

    generated = fake.generate_requests()
    used = [fake.authenticate(f"Bearer {r.bearer_token}") for r in generated]
    assert used[0] != used[1] and used[:2] == used[2:]
    assert set(used) == set(accounts)
    assert [r.body["project"] for r in generated] == [accounts[str(refresh)] for refresh in used]
    assert fake.token_requests == 2
    assert sorted(r.body["refresh_token"] for r in _token_calls(fake)) == sorted(accounts)
    tokens = {_file_token(folder / f"account-{i}.json") for i in range(2)}
    assert tokens == {r.bearer_token for r in generated}
    assert sorted(p.name for p in folder.iterdir()) == ["account-0.json", "account-1.json", "notes.txt"]


def test_gcp_service_account_json_text(start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    text = _write_creds(tmp_path / "source" / "oauth_creds.json").read_text()
    (tmp_path / "source" / "oauth_creds.json").unlink()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proxy = start_proxy(gemini_api_keys=[], gcp_service_account=text, gemini_project_id=None)

    with proxy.client() as client:
        assert _ask(client, "one") == "Echo: one"
        assert _ask(client, "two") == "Echo: two"

    assert fake.token_requests == 1  # the refreshed token is kept in memory
    (token_call,) = _token_calls(fake)
    assert token_call.body["refresh_token"] == REFRESH
    generated = fake.generate_requests()
    assert len({r.bearer_token for r in generated}) == 1
    assert generated[0].bearer_token not in (None, STALE_TOKEN)
    assert [r.body["project"] for r in generated] == ["proj-alpha", "proj-alpha"]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


# -- Code Assist errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_rate_limit_wrapped_in_array_is_429_with_retry_after(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path, stream: bool
) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    proxy = _oauth_proxy(start_proxy, _write_creds(tmp_path / "oauth_creds.json"))
    fake.push(
        Reply.error(
            429,
            "You have exhausted your capacity on this model. Your quota will reset after 7s.",
            "RESOURCE_EXHAUSTED",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
            ],
            wrap_in_array=True,
        )
    )

    with proxy.client() as client:
        with pytest.raises(openai.RateLimitError) as caught:
            if stream:
                list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
            else:
                client.chat.completions.create(model=MODEL, messages=MESSAGES)
        # The credential now cools down: the next request is refused without calling Google.
        with pytest.raises(openai.RateLimitError) as again:
            _ask(client)

    for exc in (caught.value, again.value):
        assert exc.status_code == 429
        error = _error_of(exc)
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
        assert 1 <= int(exc.response.headers["Retry-After"]) <= 8
        assert REFRESH not in exc.response.text
    # "7s" in whole seconds, truncated as Google's are: one more, so the quota has really reset.
    assert caught.value.response.headers["Retry-After"] == "8"
    (sent,) = fake.generate_requests()
    assert sent.action == ("streamGenerateContent" if stream else "generateContent")
    assert fake.token_requests == 1


def test_debug_cache_and_token_test_show_oauth_tokens_without_secrets(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.add_oauth_account(REFRESH, project_id="proj-alpha")
    proxy = _oauth_proxy(
        start_proxy, _write_creds(tmp_path / "oauth_creds.json"), proxy_api_keys=["sk-admin"]
    )
    auth = {"Authorization": "Bearer sk-admin"}
    before = httpx.get(f"{proxy.url}/v1/debug/cache", headers=auth).json()["data"]
    assert len(before) == 1 and before[0]["is_expired"] is True and before[0]["cached_at"] is None
    tested = httpx.post(f"{proxy.url}/v1/token-test", headers=auth).json()["data"]
    assert (
        tested[0]["ok"] is True and tested[0]["refreshed"] is True and tested[0]["expires_in_seconds"] > 3000
    )
    after = httpx.get(f"{proxy.url}/v1/debug/cache", headers=auth).json()["data"][0]
    assert after["cached"] is True and after["is_expired"] is False and after["cached_at"]
    assert after["time_until_expiry_seconds"] > 3000
    probe = httpx.get(f"{proxy.url}/v1/test", headers=auth).json()["data"][0]
    assert probe["ok"] is True
    assert after["project_id"] is None  # not discovered until a call needed it
    assert (
        httpx.get(f"{proxy.url}/v1/debug/cache", headers=auth).json()["data"][0]["project_id"] == "proj-alpha"
    )
    everything = json.dumps([before, tested, after, probe])
    assert REFRESH not in everything and STALE_TOKEN not in everything
    assert _file_token(tmp_path / "oauth_creds.json") not in everything
    assert httpx.get(f"{proxy.url}/v1/debug/cache").status_code == 401
