"""`python -m bench.scaled_bot`: `python -m bot` with the catalog's durations (each model's
expected duration and poll interval) multiplied by BENCH_TIME_SCALE, so that a benchmark that
shrinks Kie's window and the tasks' durations by that factor also shrinks the bot's schedule.
Nothing else differs from `python -m bot`; the environment configures the rest (harness.py)."""

from __future__ import annotations

import logging
import os
import sys

from bot import catalog
from bot.__main__ import main

SCALED_FIELDS = ("expected_seconds", "poll_interval")


def scale_catalog(factor: float) -> None:
    """Every model's durations × factor, in place: the frozen Model objects are the ones every
    module already holds (MODELS, get_model), so they are changed rather than replaced."""
    for model in catalog.MODELS:
        for name in SCALED_FIELDS:
            object.__setattr__(model, name, getattr(model, name) * factor)


if __name__ == "__main__":
    scale_catalog(float(os.environ.get("BENCH_TIME_SCALE", "1")))
    logging.captureWarnings(True)
    sys.exit(main())
