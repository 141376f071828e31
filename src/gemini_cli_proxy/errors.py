"""The one error type every front door answers from, and the errors the proxy raises.

A `ProxyError` says what went wrong in neutral terms (status, message, a code, the parameter at
fault, when to retry); each front door turns it into its API's shape in one function (OpenAI's:
wire/openai.py `error_body`; see frontdoor.py). The status / code table of CONTRACT.md lives here.
"""

from __future__ import annotations

import math


class ProxyError(Exception):
    """An error answered to the client, in the shape of the API it called."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        overloaded: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after
        # Google had no capacity for the model (not this pool's quota): a door with its own word for
        # that says so (Anthropic's 529 overloaded_error); OpenAI's calls it a 429.
        self.overloaded = overloaded

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}

    def __repr__(self) -> str:
        return f"ProxyError({self.status}, {self.code!r}, {self.message!r})"


def invalid_request(message: str, *, param: str | None = None, code: str | None = None) -> ProxyError:
    return ProxyError(400, message, param=param, code=code)


def invalid_value(param: str, message: str, code: str = "invalid_value") -> ProxyError:
    """A 400 for a value the request holds at `param` that cannot be taken as it is."""
    return ProxyError(400, message, param=param, code=code)


def unsupported_parameter(param: str, what: str) -> ProxyError:
    """A parameter whose meaning cannot be carried to Gemini: refused, never silently dropped."""
    return ProxyError(
        400,
        f"{what} is not supported by this proxy; remove '{param}' from the request.",
        param=param,
        code="unsupported_parameter",
    )


def invalid_api_key() -> ProxyError:
    return ProxyError(
        401,
        "Incorrect API key provided. Send the proxy key as 'Authorization: Bearer <key>'.",
        code="invalid_api_key",
    )


def shown(value: str, limit: int = 100) -> str:
    """A client's value as an error message quotes it: whole when short, cut when not (a message
    must not grow with whatever a client sends)."""
    return value if len(value) <= limit else f"{value[:limit]}… ({len(value)} characters)"


def model_not_found(model: str) -> ProxyError:
    return ProxyError(
        404,
        f"The model '{shown(model)}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def wrong_model_kind(model: str, *, embedding_wanted: bool) -> ProxyError:
    """A generating model asked for embeddings, or an embedding model asked to generate: Google
    would refuse the method, so the proxy does before spending a call."""
    if embedding_wanted:
        message = (
            f"The model '{shown(model)}' does not make embeddings: "
            "use an embedding model such as gemini-embedding-001."
        )
    else:
        message = f"The model '{shown(model)}' is an embedding model: it makes embeddings, not content."
    return ProxyError(400, message, param="model", code="model_not_supported")


def request_too_large(limit: int) -> ProxyError:
    return ProxyError(
        413, f"Request body is larger than the limit of {limit} bytes.", code="request_too_large"
    )


def not_found_route(path: str) -> ProxyError:
    return ProxyError(404, f"Unknown route: {shown(path)}", code="unknown_url")


def method_not_allowed(method: str, path: str) -> ProxyError:
    return ProxyError(
        405, f"Method {shown(method)} is not allowed on {shown(path)}.", code="method_not_allowed"
    )


def permission_denied(message: str) -> ProxyError:
    return ProxyError(403, message, code="permission_denied")


def rate_limited(
    message: str, retry_after: float | None, *, daily: bool = False, overloaded: bool = False
) -> ProxyError:
    code = "insufficient_quota" if daily else "rate_limit_exceeded"
    return ProxyError(429, message, code=code, retry_after=retry_after, overloaded=overloaded)


def upstream_error(message: str, *, overloaded: bool = False) -> ProxyError:
    return ProxyError(502, message, code="upstream_error", overloaded=overloaded)


def upstream_timeout(message: str) -> ProxyError:
    return ProxyError(504, message, code="upstream_timeout")


def no_credentials(message: str) -> ProxyError:
    return ProxyError(503, message, code="no_credentials")


class ConnectionClosingError(ProxyError):
    """An error after which the connection closes: the rest of the request was never read, so the
    bytes after the error are not the start of a next request."""

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Connection": "close"}


def request_timeout(seconds: float) -> ProxyError:
    return ConnectionClosingError(
        408,
        f"The request body did not arrive in time ({seconds:g} seconds, and a second more for each KiB).",
        code="request_timeout",
    )


def invalid_http_request(reason: str) -> ProxyError:
    return ConnectionClosingError(400, f"Malformed HTTP request: {reason}.", code="invalid_http_request")


def shutting_down() -> ProxyError:
    return ProxyError(
        503,
        "The server is shutting down and could not finish this request; send it again.",
        code="shutting_down",
        retry_after=1,
    )


def internal_error() -> ProxyError:
    return ProxyError(500, "The proxy failed to handle the request.", code="internal_error")
