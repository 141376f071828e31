"""Stored Responses API responses: kept for their time to live, up to a size, and forgotten on delete."""

from __future__ import annotations

import asyncio

from gemini_cli_proxy.store.memory import MemoryStore
from gemini_cli_proxy.stored_responses import ResponseStore, StoredResponse

from support import Clock


def stored(response_id: str, text: str = "hi") -> StoredResponse:
    output = [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}]
    return StoredResponse(
        {"id": response_id, "object": "response", "output": output},
        [{"type": "message", "role": "user", "content": "q", "id": "msg_1"}],
        [{"type": "message", "role": "user", "content": "earlier", "id": "msg_0"}],
    )


def test_a_response_is_kept_for_its_time_to_live_with_its_conversation() -> None:
    async def scenario() -> None:
        clock = Clock()
        responses = ResponseStore(MemoryStore(clock=clock), ttl=60.0, max_bytes=1 << 20)
        assert await responses.put(stored("resp_1"))
        found = await responses.get("resp_1")
        assert found is not None and found.response["id"] == "resp_1"
        assert [item["content"] for item in found.conversation()[:2]] == ["earlier", "q"]
        assert found.conversation()[2]["role"] == "assistant"
        clock.now += 61
        assert await responses.get("resp_1") is None

    asyncio.run(scenario())


def test_a_record_over_the_size_cap_is_not_kept() -> None:
    async def scenario() -> None:
        responses = ResponseStore(MemoryStore(), ttl=60.0, max_bytes=2048)
        assert not await responses.put(stored("resp_big", text="x" * 4096))
        assert await responses.get("resp_big") is None
        assert await responses.put(stored("resp_small"))

    asyncio.run(scenario())


def test_delete_forgets_and_says_whether_there_was_anything() -> None:
    async def scenario() -> None:
        responses = ResponseStore(MemoryStore(), ttl=60.0, max_bytes=1 << 20)
        await responses.put(stored("resp_1"))
        assert await responses.delete("resp_1")
        assert await responses.get("resp_1") is None
        assert not await responses.delete("resp_1")

    asyncio.run(scenario())
