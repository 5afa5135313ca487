# `make run` starts the bot (settings from .env); `make test` runs the whole suite (tests/unit,
# tests/app, tests/process: 2-2.5 minutes on two cores); `make test-fast` only tests/unit,
# in seconds; `make lint` runs ruff and mypy (strict on bot/); `make bench` runs every benchmark
# of bench/ (about a quarter of an hour) and prints one table (README, "Performance"); `make demo`
# runs the bot between the fakes of the tests with a chat page at http://127.0.0.1:8088/ (no token).
# Each creates .venv and installs the pinned dependencies first, so a fresh clone needs only
# Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

.PHONY: install run test test-fast lint bench demo
install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/python -m bot

test: $(STAMP)
	$(VENV)/bin/python -m pytest

# The unit tier: no socket, no server, no child process; one process (workers cost more to start).
test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest tests/unit -n 0

lint: $(STAMP)
	$(VENV)/bin/ruff check bot tests testkit bench demo
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/python -m bench

# The bot between the fake Bot API and the fake Kie.ai, and a chat page to talk to it (README,
# "Try it without a token"); Ctrl-C stops it all.
demo: $(STAMP)
	$(VENV)/bin/python -m demo
