"""Stored Responses API responses (`store: true`, the default, as at OpenAI): kept in the state store,
so that `previous_response_id`, `GET` and `DELETE` work across workers and instances.

Each response is kept with the input items of its request and the history before them (the items
of the earlier responses of its `previous_response_id` chain): a next turn needs nothing else. A
response whose record would pass the size cap is not kept (its client then gets a 404 for it as
`previous_response_id`, as for one that expired).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from .store.base import StateStore

log = logging.getLogger("gemini_cli_proxy.responses")

_KEY = "response:"
_ITEM_KEY = "response-item:"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]  # what this response's request sent
    history: list[dict[str, Any]]  # the items of the chain before it, oldest first

    def conversation(self) -> list[dict[str, Any]]:
        """The items a next turn continues from: the history, this input, this output."""
        return [*self.history, *self.input_items, *self.response.get("output", [])]


class ResponseStore:
    def __init__(self, store: StateStore, *, ttl: float, max_bytes: int) -> None:
        self._store = store
        self._ttl = ttl
        self._max_bytes = max_bytes

    async def put(self, stored: StoredResponse) -> bool:
        """Keep `stored`; False when it is over the size cap (and so not kept)."""
        record = orjson.dumps(
            {"response": stored.response, "input_items": stored.input_items, "history": stored.history}
        )
        if len(record) > self._max_bytes:
            log.info(
                "response %s not stored: %d bytes, over PROXY_RESPONSES_MAX_BYTES",
                stored.response.get("id"),
                len(record),
            )
            return False
        # Each item by its id too, for the `item_reference` inputs that clients (the Vercel AI SDK)
        # send instead of repeating an earlier turn's items: one round trip for all.
        items = [item for item in (*stored.input_items, *stored.response.get("output", [])) if item.get("id")]
        await self._store.set_values(
            [
                (_KEY + str(stored.response["id"]), record.decode(), self._ttl),
                *((_ITEM_KEY + str(item["id"]), orjson.dumps(item).decode(), self._ttl) for item in items),
            ]
        )
        return True

    async def items(self, item_ids: list[str]) -> list[dict[str, Any] | None]:
        """The stored items with these ids (None for one not kept), in one round trip."""
        found = await self._store.get_values([_ITEM_KEY + item_id for item_id in item_ids])
        return [orjson.loads(raw) if raw else None for raw in found]

    async def get(self, response_id: str) -> StoredResponse | None:
        raw = await self._store.get_value(_KEY + response_id)
        if raw is None:
            return None
        record = orjson.loads(raw)
        return StoredResponse(record["response"], record["input_items"], record["history"])

    async def delete(self, response_id: str) -> bool:
        """Forget it; False when there was nothing to forget."""
        if await self._store.get_value(_KEY + response_id) is None:
            return False
        await self._store.set_value(_KEY + response_id, "", ttl=0)
        return True
