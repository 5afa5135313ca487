"""What tests/ and bench/ share: the fake Bot API and Kie.ai servers (fakes/), the people who
talk to the bot (chat.py), the load mixes (load.py), the databases (databases.py), the settings
and the in-process bot (bot.py), the end-to-end walk (e2e.py), `python -m bot` forked for the
process tier (bot_process.py), and the chaos runs (chaos.py, chaos_pg.py). It imports nothing of
tests/ or bench/."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: PYTHONPATH of `python -m bot`
