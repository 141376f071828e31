"""`python -m gemini_cli_proxy.testing --port 8090` runs the fake Google upstream by itself."""

from gemini_cli_proxy.testing.fake_google import main

main()
