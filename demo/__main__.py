"""`python -m demo [--port 8088] [--web-port 8089]` from the repository root (`make demo`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from demo.runner import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=(
        "The bot between a fake Telegram and a fake Kie.ai, with a chat page to talk to it. "
        "No token, no network."))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8088")),
                        help="the chat page's port on 127.0.0.1 (DEMO_PORT; default 8088)")
    parser.add_argument("--web-port", type=int, default=int(os.environ.get("DEMO_WEB_PORT", "8089")),
                        help="the bot's web server (healthz, dashboard) (DEMO_WEB_PORT; default 8089)")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args.port, args.web_port))
    except KeyboardInterrupt:  # Ctrl-C before the demo's own handler was in place
        return 130


if __name__ == "__main__":
    sys.exit(main())
