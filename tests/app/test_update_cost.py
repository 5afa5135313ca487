"""What an update costs the bot besides its answer (bench.updates measures the rates): the
database statements each one makes, counted per update, and what makes them fewer keeping its
guarantees — the admins' overrides kept while their version holds, a statement of its own that
does not wait for the store's lock yet never lands inside another's transaction."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.handler import CallableObject
from aiogram.enums import ParseMode
from aiogram.methods import EditMessageText, GetMe, Response, SendMessage, SendPhoto
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup
from aiohttp import FormData

from bot.handlers import build_router
from bot.session import BotSession
from bot.store import Store
from bot.store.database import IntegrityError
from bot.store.sqlite import _Batch
from testkit.chat import Person, button
from testkit.databases import ENGINES, database
from testkit.fakes.telegram import FakeTelegram

# The coroutines aiogram runs each update in, as a task of its own.
UPDATE_TASKS = {"Dispatcher._process_update", "Dispatcher._process_with_semaphore"}


class Statements:
    """Every statement the SQLite engine runs for a task that handles an update: one on its own
    (into a batch: SqliteDatabase.fetch) or one of a transaction (a job of aiosqlite's)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.by_task: dict[asyncio.Task[Any], int] = {}
        execute, add = aiosqlite.Connection._execute, _Batch.add

        def count() -> None:
            task = asyncio.current_task()
            if task is not None and task.get_coro().__qualname__ in UPDATE_TASKS:  # type: ignore[union-attr]
                self.by_task[task] = self.by_task.get(task, 0) + 1

        async def executed(connection: aiosqlite.Connection, fn: Any, *args: Any,
                           **kwargs: Any) -> Any:
            count()
            return await execute(connection, fn, *args, **kwargs)

        def added(batch: _Batch, sql: str, params: Any) -> Any:
            count()
            return add(batch, sql, params)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", executed)
        monkeypatch.setattr(_Batch, "add", added)

    async def of(self, act: Callable[[], Awaitable[object]]) -> list[int]:
        """The statements of each update `act` brought, once their tasks ended."""
        before = set(self.by_task)
        await act()
        tasks = [task for task in self.by_task if task not in before]
        await asyncio.wait(tasks)
        return [self.by_task[task] for task in tasks]


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    return Statements(monkeypatch)


async def test_balance_is_two_statements_the_update_and_its_ledger(tg, bot, statements):
    alice = Person(tg, 42, "Alice")
    alice.say("/balance")
    await alice.told("Your balance")  # registered: the next ones only read her

    async def balance() -> None:
        alice.say("/balance")
        await alice.told("Your balance")

    for _ in range(3):
        # see_update (the update's id recorded, Alice read), the ledger's latest rows
        assert await statements.of(balance) == [2]


async def test_a_press_is_three_statements_update_draft_and_its_change(tg, bot, statements):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a fox")
    async def press(label: str) -> None:
        await alice.press(alice.refreshed(picker), label)

    for label in ("Imagen 4 ·", "← Models", "Seedream", "← Models"):
        # see_update; the draft with the overrides' version (the overrides kept); update_draft
        assert await statements.of(partial(press, label)) == [3]


async def test_a_price_set_by_another_instance_shows_at_the_next_press(tg, bot, store):
    """`store` is a second Store on the bot's database, as another instance is on PostgreSQL:
    the bot keeps the overrides it read, and the version read with each draft says when they
    changed."""
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a fox")
    await alice.press(picker, "Imagen 4 ·")
    assert button(alice.refreshed(picker), "✅ Generate · 40")
    await store.set_model_price("imagen4", 55)
    await alice.press(alice.refreshed(picker), "← Models")
    assert button(alice.refreshed(picker), "Imagen 4 · 55")
    await alice.press(alice.refreshed(picker), "Imagen 4 ·")
    answer = await alice.press(alice.refreshed(picker), "✅ Generate · 55")
    assert "text" not in answer  # charged at the price shown: no "the choice changed"


@pytest.mark.parametrize("engine", ENGINES)
async def test_overrides_are_kept_while_their_version_holds(engine: str, tmp_path: Path) -> None:
    async with database(engine, tmp_path) as target:
        first, second = await Store.open(target), await Store.open(target)
        try:
            await first.upsert_user(7, username=None, first_name="U", last_name=None,
                                    tg_language="en", starting_credits=0)
            draft = await first.create_draft(user_id=7, chat_id=7, request_message_id=1,
                                             kind="image", prompt="a fox")
            _, overrides = await first.draft_and_overrides(draft.id)
            assert overrides == {}
            _, kept = await first.draft_and_overrides(draft.id)
            assert kept is overrides  # the version held: not read again

            await second.set_model_price("imagen4", 55)
            read, overrides = await first.draft_and_overrides(draft.id)
            assert read == draft and overrides["imagen4"].price == 55
            assert not await second.set_model_price("imagen4", 55)  # no change, same version
            assert (await first.draft_and_overrides(draft.id))[1] is overrides

            await second.set_model_hidden("imagen4", "admin")
            _, overrides = await first.draft_and_overrides(draft.id)
            assert overrides["imagen4"].hidden_by == "admin"
            assert await first.draft_and_overrides(10**9) == (None, overrides)
        finally:
            await first.close()
            await second.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_no_overrides_read_with_the_version(engine: str, tmp_path: Path) -> None:
    """A database without any override nor version (a new one) reads as empty, not as none."""
    async with database(engine, tmp_path) as target:
        store = await Store.open(target)
        try:
            assert await store.model_overrides() == {}
            await store.set_model_price("imagen4", 55)
            assert (await store.model_overrides())["imagen4"].price == 55
        finally:
            await store.close()


async def test_a_statement_of_its_own_never_joins_an_open_transaction(tmp_path: Path) -> None:
    """SQLite runs one transaction at a time on one connection; a statement outside of it must
    run before its BEGIN or after its end, never inside, where a rollback would take it along
    (an update's id recorded, and its repeat not dropped after all)."""
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:
        inside = asyncio.Event()
        recorded: asyncio.Task[bool] | None = None
        with pytest.raises(RuntimeError):
            async with store.database.transaction() as tx:
                await tx.execute("INSERT INTO flags (name, value, updated_at) VALUES ('x', 'y', 0)")
                recorded = asyncio.create_task(store.first_sight_of_update(5))
                await asyncio.sleep(0)  # it runs as far as it can meanwhile
                inside.set()
                raise RuntimeError("rolled back")
        assert recorded is not None and await recorded
        assert not await store.first_sight_of_update(5)  # kept: the rollback did not take it
        assert await store.get_flag("x") is None

        # Unlocked, many statements go at once, each on its own, before a transaction after them.
        seen = await asyncio.gather(*(store.first_sight_of_update(n) for n in range(10, 60)))
        async with store.database.transaction() as tx:
            assert (await tx.fetch("SELECT count(*) FROM updates WHERE id >= 10"))[0][0] == 50
        assert all(seen)
    finally:
        await store.close()


async def test_statements_asked_for_at_once_go_to_the_thread_together(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """One hand-over to aiosqlite's thread for all the statements of a loop pass, each still
    its own: its answer, its error (a constraint refusing one refuses no other), and written
    whatever becomes of the others."""
    store = await Store.open(tmp_path / "bot.sqlite3")
    jobs: list[object] = []
    execute = aiosqlite.Connection._execute

    async def counted(connection: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        jobs.append(fn)
        return await execute(connection, fn, *args, **kwargs)

    try:
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        db = store.database
        results = await asyncio.gather(
            *(db.fetch("INSERT INTO updates (id, seen_at) VALUES (?, 0) RETURNING id", (n,))
              for n in (1, 2, 1, 3)),  # the second 1 breaks the primary key
            db.fetch("SELECT count(*) FROM updates"), return_exceptions=True)
        assert len(jobs) == 1
        [one], [two], refused, [three], [count] = results  # type: ignore[misc]
        assert (one[0], two[0], three[0], count[0]) == (1, 2, 3, 3)
        assert isinstance(refused, IntegrityError)
        assert (await db.fetch("SELECT count(*) FROM updates"))[0][0] == 3
        assert len(jobs) == 2  # alone, it is a job of its own
    finally:
        await store.close()


async def test_a_transaction_waits_for_the_statements_asked_for_before_it(tmp_path: Path) -> None:
    """Statements of a loop pass not yet sent to the thread when a transaction takes the lock
    run before its BEGIN: not inside it, where its rollback would take them along."""
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:
        recorded = [asyncio.ensure_future(store.first_sight_of_update(n)) for n in range(5)]
        await asyncio.sleep(0)  # they are asked for: a batch is forming
        with pytest.raises(RuntimeError):
            async with store.database.transaction() as tx:
                assert (await tx.fetch("SELECT count(*) FROM updates"))[0][0] == 5
                raise RuntimeError("rolled back")
        assert all(await asyncio.gather(*recorded))
        assert not any(await asyncio.gather(*(store.first_sight_of_update(n) for n in range(5))))
    finally:
        await store.close()


async def test_closing_waits_for_the_statements_asked_for_before(tmp_path: Path) -> None:
    """A stop right after an update was recorded loses none of it: the store closes once the
    statements asked for have run."""
    store = await Store.open(tmp_path / "bot.sqlite3")
    recorded = [asyncio.ensure_future(store.first_sight_of_update(n)) for n in range(3)]
    await asyncio.sleep(0)  # asked for, not yet run
    await store.close()
    assert all(await asyncio.gather(*recorded))
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:
        assert not any(await asyncio.gather(*(store.first_sight_of_update(n) for n in range(3))))
    finally:
        await store.close()


def test_every_filter_and_handler_runs_on_the_event_loop() -> None:
    """aiogram runs a callable that is not a coroutine function in its thread pool
    (asyncio.to_thread): a thread hop for each update that reaches it. handlers/filters.on_loop
    turns an `F…` filter into a coroutine."""
    in_threads = []
    routers = [build_router()]
    while routers:
        router = routers.pop()
        routers += router.sub_routers
        for name, observer in router.observers.items():
            for handler in observer.handlers:
                for callable_ in (handler, *(handler.filters or ())):
                    if isinstance(callable_, CallableObject) and not callable_.awaitable:
                        in_threads.append(f"{router.name}.{name}: {callable_.callback!r}")
    assert in_threads == []


# -- the Bot API session --------------------------------------------------------------------------

def _form(session: AiohttpSession, bot: Bot, method: Any) -> list[tuple[str, object]]:
    """The request's fields, from a form or a JSON body; a file's random key named "file", its
    content by its type."""
    body = session.build_form_data(bot, method)
    if isinstance(body, FormData):
        fields = [(options["name"], value) for options, _, value in body._fields]
    else:
        assert body.content_type == "application/json"
        fields = list(json.loads(body._value).items())
    keys = {value.removeprefix("attach://") for _, value in fields
            if isinstance(value, str) and value.startswith("attach://")}
    return [("file" if name in keys else name, _value(value)) for name, value in fields]


def _value(value: object) -> object:
    """A field as the Bot API reads it (a form's text, or JSON's value as that text): JSON
    parsed, a file's random key and content left out."""
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | dict | list):
        return value if isinstance(value, dict | list) else str(value)
    if not isinstance(value, str):
        return type(value)
    if value.startswith("attach://"):
        return "attach://file"
    return json.loads(value) if value[:1] in "{[" else value


METHODS = {
    "a picker's edit": EditMessageText(
        chat_id=1, message_id=2, text="<b>pick</b>", reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="✓ 16:9 · 5 cr.", callback_data="pk:1:m:a"),
                              InlineKeyboardButton(text="b", url="https://example.com")]])),
    "a message with defaults": SendMessage(chat_id=1, text="hi"),
    "a file": SendPhoto(chat_id=1, photo=BufferedInputFile(b"\x89PNG", "p.png"), caption="c"),
}


@pytest.mark.parametrize("method", METHODS.values(), ids=METHODS.keys())
async def test_the_session_sends_what_aiograms_sends(method: Any) -> None:
    """BotSession.build_form_data sends a JSON body where no file goes (a multipart form where
    one does), leaves out the None fields before aiogram's prepare_value, which drops them
    anyway, and has pydantic dump a keyboard: the same fields as aiogram's form, as the Bot API
    reads them (JSON read as JSON: pydantic's is compact and keeps ✓ as it is)."""
    api = TelegramAPIServer.from_base("http://127.0.0.1:1")
    ours, aiograms = BotSession(api=api), AiohttpSession(api=api)
    bot = Bot("42:TOKEN", session=ours, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    try:
        assert _form(ours, bot, method) == _form(aiograms, bot, method)
        uploads = method is METHODS["a file"]
        assert isinstance(ours.build_form_data(bot, method), FormData) is uploads
    finally:
        await ours.close()
        await aiograms.close()


async def test_the_session_builds_each_answer_model_once(tg: FakeTelegram) -> None:
    """pydantic caches `Response[User]` weakly: aiogram's session builds it again after a
    collection freed it; BotSession keeps it."""
    session = BotSession(api=TelegramAPIServer.from_base(tg.url))
    bot = Bot(tg.token, session=session)
    try:
        await bot.get_me()
        gc.collect()
        assert Response[GetMe.__returning__] is BotSession._answer_models[GetMe.__returning__]
    finally:
        await session.close()
