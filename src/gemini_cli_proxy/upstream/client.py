"""What the gateway needs from an upstream: AI Studio, Code Assist and Vertex each implement it for
their kinds of credential, and the gateway picks one per credential kind, once."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol, TypeVar

from ..wire.gemini import GenerateContentResponse
from ..wire.gemini_embed import EmbedContentRequest, Embeddings
from ..wire.gemini_request import GenerateContentRequest

# A stream's events, in batches: one batch per network read (translating a read's events together
# costs one write to the client instead of one per event).
Events = AsyncGenerator[list[GenerateContentResponse], None]

Cred = TypeVar("Cred", contravariant=True)


class UpstreamClient(Protocol[Cred]):
    async def generate(
        self, cred: Cred, model: str, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        """One GenerateContentResponse; an UpstreamError for whatever else Google answers."""
        ...

    def stream(
        self,
        cred: Cred,
        model: str,
        request: GenerateContentRequest,
        *,
        answer_within: float | None = None,
    ) -> Events:
        """The events of one streamed generation. `answer_within`: seconds for the response to
        begin (its headers), else the session's timeout."""
        ...

    async def count_tokens(self, cred: Cred, model: str, request: GenerateContentRequest) -> int:
        """The tokens Google counts in `request`'s prompt (its countTokens method)."""
        ...

    async def project(self, cred: Cred) -> str | None:
        """The Google project the credential spends, found out if need be (Code Assist discovers or
        onboards it); None where it is not known (an AI Studio key without KEY@PROJECT)."""
        ...

    async def access_token(self, cred: Cred) -> str | None:
        """A valid access token for `cred` (refreshed or minted if needed); None when the
        credential has none (an API key)."""
        ...


class Embedder(Protocol[Cred]):
    """An upstream with an embedding method (AI Studio and Vertex; Code Assist has none)."""

    async def embed(self, cred: Cred, model: str, requests: Sequence[EmbedContentRequest]) -> Embeddings:
        """The vectors of `requests` (at most upstream.embedding.EMBED_BATCH_LIMIT), in order."""
        ...
