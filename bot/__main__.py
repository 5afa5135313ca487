"""`python -m bot`: read the settings, run until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from bot.config import Settings, describe_error
from bot.logs import setup_logging


def main() -> int:
    try:
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as error:
        print(describe_error(error), file=sys.stderr)
        return 2
    setup_logging(settings.secrets())
    from bot.app import Application

    try:
        app = Application(settings)
    except ValueError as error:  # a setting the app itself checks (DEFAULT_LANGUAGE)
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    asyncio.run(app.run())
    return 0


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
