"""gemini-cli-proxy: an OpenAI-compatible gateway to Google Gemini."""

__version__ = "0.1.0"
