"""Test support shipped with the package: a fake Google upstream (see `fake_google`)."""

from gemini_cli_proxy.testing.fake_google import (
    FakeGoogle,
    FakeGoogleServer,
    Received,
    Reply,
    create_fake_app,
    serve_fake,
)

__all__ = ["FakeGoogle", "FakeGoogleServer", "Received", "Reply", "create_fake_app", "serve_fake"]
