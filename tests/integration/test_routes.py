"""Service routes, models, proxy-key auth and request limits, over real HTTP."""

from __future__ import annotations

import datetime as dt

import httpx
import openai
import pytest

from gemini_cli_proxy.testing import FakeGoogle

from conftest import Proxy, StartProxy
from support import assert_schema

BUILT_IN = [
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash-exp",
    "gemini-1.5-pro",
    "gemini-1.5-flash",
    "gemini-3-pro-preview",
]
CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}


def assert_openai_error(
    response: httpx.Response, status: int, type_: str, code: str | None
) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == type_ and body["error"]["code"] == code and body["error"]["message"]
    error: dict[str, object] = body["error"]
    return error


def test_service_info(proxy: Proxy) -> None:
    info = httpx.get(f"{proxy.url}/").json()
    assert info["name"] == "gemini-cli-proxy" and info["version"] and info["description"]
    assert info["authentication"] == {"required": False, "type": "none"}
    assert info["endpoints"]["chat_completions"] == "/v1/chat/completions"
    assert info["endpoints"]["models"] == "/v1/models"
    assert set(info["endpoints"]["debug"]) == {"cache", "token_test", "full_test"}
    assert info["documentation"].startswith("http")


def test_health(proxy: Proxy) -> None:
    body = httpx.get(f"{proxy.url}/health").json()
    assert body["status"] == "ok"
    stamp = dt.datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 60


def test_models_list_and_get(client: openai.OpenAI, proxy: Proxy) -> None:
    listing = httpx.get(f"{proxy.url}/v1/models").json()
    assert_schema(listing, "ListModelsResponse")
    ids = [m["id"] for m in listing["data"]]
    assert set(BUILT_IN) <= set(ids)
    for model in listing["data"]:
        assert model["created"] == 1726070400 and model["owned_by"] == "google" and model["object"] == "model"
    model = client.models.retrieve("gemini-2.5-pro")
    assert model.id == "gemini-2.5-pro" and model.owned_by == "google"
    assert_schema(httpx.get(f"{proxy.url}/models/gemini-2.5-pro").json(), "Model")


def test_unknown_model_is_404_without_upstream_call(proxy: Proxy, fake: FakeGoogle) -> None:
    assert_openai_error(
        httpx.get(f"{proxy.url}/v1/models/gpt-4o"), 404, "invalid_request_error", "model_not_found"
    )
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json={**CHAT, "model": "gpt-4o"})
    error = assert_openai_error(response, 404, "invalid_request_error", "model_not_found")
    assert error["param"] == "model"
    assert fake.generate_requests() == []


def test_extra_models_from_settings(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(proxy_models=["gemini-exp-1206", "gemini-2.5-pro"])
    ids = [m["id"] for m in httpx.get(f"{proxy.url}/v1/models").json()["data"]]
    assert ids.count("gemini-exp-1206") == 1 and ids.count("gemini-2.5-pro") == 1
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json={**CHAT, "model": "gemini-exp-1206"})
    assert response.status_code == 200
    assert fake.generate_requests()[0].model == "gemini-exp-1206"


@pytest.fixture
def keyed(start_proxy: StartProxy) -> Proxy:
    return start_proxy(proxy_api_keys=["sk-first-key"], openai_api_key="sk-second-key")


def test_auth_required_everywhere_but_health_and_the_service_page(keyed: Proxy, fake: FakeGoogle) -> None:
    assert httpx.get(f"{keyed.url}/health").status_code == 200
    # The page that tells a client a key is needed, and nothing secret.
    page = httpx.get(f"{keyed.url}/")
    assert page.status_code == 200 and page.json()["authentication"] == {
        "required": True,
        "type": "Bearer token",
    }
    assert "sk-first-key" not in page.text and "sk-second-key" not in page.text
    assert httpx.head(f"{keyed.url}/").status_code == 200
    for method, path in [
        ("GET", "/v1/models"),
        ("GET", "/models/gemini-2.5-pro"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/chat/completions"),
    ]:
        response = httpx.request(method, f"{keyed.url}{path}", json=CHAT)
        assert_openai_error(response, 401, "invalid_request_error", "invalid_api_key")
    wrong = httpx.get(f"{keyed.url}/v1/models", headers={"Authorization": "Bearer sk-wrong"})
    assert_openai_error(wrong, 401, "invalid_request_error", "invalid_api_key")
    basic = httpx.get(f"{keyed.url}/v1/models", headers={"Authorization": "Basic sk-first-key"})
    assert basic.status_code == 401
    assert fake.generate_requests() == []


def test_either_configured_key_is_accepted(keyed: Proxy, fake: FakeGoogle) -> None:
    info = httpx.get(f"{keyed.url}/", headers={"Authorization": "Bearer sk-first-key"}).json()
    assert info["authentication"]["required"] is True
    with keyed.client(api_key="sk-second-key") as sdk:
        assert sdk.chat.completions.create(**CHAT).choices[0].message.content == "Echo: x"  # type: ignore[call-overload]
    with keyed.client(api_key="sk-nope") as sdk, pytest.raises(openai.AuthenticationError):
        sdk.models.list()


def test_body_over_the_limit_is_413(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(proxy_max_body_bytes=4096)
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 10_000}]}
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json=big)
    assert_openai_error(response, 413, "invalid_request_error", "request_too_large")
    assert fake.generate_requests() == []


def test_wrong_content_type_is_400(proxy: Proxy, fake: FakeGoogle) -> None:
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        content=b"model=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_openai_error(response, 400, "invalid_request_error", "invalid_content_type")
    plain = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        content=b'{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"x"}]}',
    )
    assert plain.status_code == 200  # no Content-Type at all: read as JSON, as curl users expect


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b'{"model":"gemini-2.5-flash","messages":[]}', "messages"),
        (b'{"model":"gemini-2.5-flash","messages":[{"role":"robot","content":"x"}]}', "messages[0].role"),
        (
            b'{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"x"}],"temperature":3}',
            "temperature",
        ),
        (b'{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"x"}],"top_p":-1}', "top_p"),
        (
            b'{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"x"}],"max_tokens":0}',
            "max_tokens",
        ),
        (
            b'{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"x"}],"stop":["1","2","3","4","5"]}',
            "stop",
        ),
        (b'{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"x"}],"n":"2"}', "n"),
    ],
)
def test_invalid_requests_are_400_and_never_reach_google(
    proxy: Proxy, fake: FakeGoogle, body: bytes, param: str | None
) -> None:
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
    )
    error = assert_openai_error(response, 400, "invalid_request_error", response.json()["error"]["code"])
    assert error["param"] == param
    assert fake.generate_requests() == []


def test_sdk_raises_bad_request_for_invalid_input(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gemini-2.5-flash", messages=[], temperature=5)
    assert caught.value.status_code == 400
    # The first problem, named: no messages (the temperature would be the next).
    assert (caught.value.param, caught.value.code) == ("messages", "invalid_value")
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "invalid_request_error"


def test_unknown_route_and_wrong_method_are_openai_errors(proxy: Proxy) -> None:
    assert_openai_error(httpx.get(f"{proxy.url}/v1/nothing"), 404, "invalid_request_error", "unknown_url")
    assert_openai_error(
        httpx.get(f"{proxy.url}/v1/chat/completions"), 405, "invalid_request_error", "method_not_allowed"
    )


def test_every_response_has_a_request_id(proxy: Proxy) -> None:
    assert httpx.get(f"{proxy.url}/v1/models").headers["x-request-id"]
    echoed = httpx.get(f"{proxy.url}/v1/models", headers={"x-request-id": "abc123"})
    assert echoed.headers["x-request-id"] == "abc123"


def test_every_v1_route_also_answers_without_the_prefix(proxy: Proxy) -> None:
    routes = {
        (route.method, info.get("formatter") or info.get("path"))
        for route in proxy.app.router.routes()
        if (info := route.resource.get_info() if route.resource else {})
    }
    prefixed = {(method, path) for method, path in routes if path and path.startswith("/v1/")}
    assert prefixed, routes
    missing = {
        (method, path) for method, path in prefixed if (method, path.removeprefix("/v1")) not in routes
    }
    assert not missing


@pytest.mark.parametrize("path", ["/debug/credentials", "/debug/cache", "/token-test", "/test"])
def test_debug_routes_answer_without_the_prefix(keyed: Proxy, path: str) -> None:
    headers = {"Authorization": "Bearer sk-first-key"}
    assert httpx.get(f"{keyed.url}{path}", timeout=30).status_code == 401
    response = httpx.get(f"{keyed.url}{path}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "list"


def test_an_unknown_model_of_any_length_is_quoted_short(proxy: Proxy, fake: FakeGoogle) -> None:
    body = {"model": "m" * 100_000, "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 404
    assert len(response.content) < 1000 and "(100000 characters)" in response.json()["error"]["message"]
    assert not fake.generate_requests()
