"""End to end: ✨ Improve on the picker (issue 26 item 6). Kie's chat model rewrites the prompt
(the system prompt from the catalog file, `stream: false`), the picker shows it with Use it /
Keep mine; PROMPT_IMPROVE_PRICE charged once per press and refunded once when the rewrite fails;
free at 0 (no ledger row); a second press while one runs charges nothing; in a group only the
picker's owner may press."""

from __future__ import annotations

import pytest

import bot.kie.client as client_module
from bot.catalog import MODELS
from bot.kie import constants
from bot.store import LedgerKind
from testkit.bot import make_settings
from testkit.chat import Person, button, buttons
from testkit.e2e import charges
from testkit.fakes.kie_chat import ChatScript
from testkit.timing import until

PROMPT = "a red fox in the snow"
IMPROVED = "A red fox in fresh snow at dawn, soft golden light, shallow depth of field"


def texts_of(message: dict) -> list[str]:
    return [b["text"] for b in buttons(message)]


async def improve_rows(store, user_id: int) -> list:
    return [r for r in await store.ledger(user_id, 100)
            if r.kind in (LedgerKind.IMPROVE, LedgerKind.IMPROVE_REFUND)]


async def assert_balanced(store, user_id: int, balance: int) -> None:
    user = await store.get_user(user_id)
    assert user.balance == balance == await store.ledger_sum(user_id)


async def improved_picker(alice: Person, tg, picker: dict) -> dict:
    """Press ✨ and wait until the picker shows the improved prompt."""
    await alice.press(picker, "✨")
    await until(lambda: "Use it" in texts_of(alice.refreshed(picker)))
    return alice.refreshed(picker)


async def test_improve_used_becomes_the_prompt_kie_is_sent(tg, kie, bot, store):
    kie.chat.answer_next(ChatScript(content=f'Here is the improved prompt:\n\n"{IMPROVED}"'))
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask(f"/image {PROMPT}")
    assert "✨ Improve · 1 credit" in texts_of(picker)
    shown = await improved_picker(alice, tg, picker)
    assert IMPROVED in shown["text"] and PROMPT in shown["text"]
    assert texts_of(shown) == ["Use it", "Keep mine"]
    # What Kie was asked: the catalog's system prompt for pictures, the prompt, no streaming.
    [(model, body)] = kie.chat.requests
    assert model == MODELS.improve.model == "gemini-2.5-flash"
    assert body["stream"] is False and body["include_thoughts"] is False
    assert body["messages"] == [{"role": "system", "content": MODELS.improve.system["image"]},
                                {"role": "user", "content": PROMPT}]
    assert [r.amount for r in await improve_rows(store, 42)] == [-1]

    await alice.press(shown, "Use it")
    picker = alice.refreshed(picker)
    assert IMPROVED in picker["text"] and "Use it" not in texts_of(picker)
    if any(t.startswith("Imagen 4") for t in texts_of(picker)):
        await alice.press(picker, "Imagen 4")
    await alice.press(alice.refreshed(picker), "✅")
    await tg.wait_for("sendPhoto")
    [create] = kie.creates
    assert create["input"]["prompt"] == IMPROVED
    assert [c.amount for c in await charges(store, 42)] == [-40]
    await assert_balanced(store, 42, 100 - 1 - 40)


async def test_keep_mine_leaves_the_prompt_and_the_charge(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask(f"/image {PROMPT}")
    shown = await improved_picker(alice, tg, picker)
    await alice.press(shown, "Keep mine")
    picker = alice.refreshed(picker)
    assert "Use it" not in texts_of(picker) and "✨ Improve · 1 credit" in texts_of(picker)
    await alice.press(picker, "Imagen 4")
    await alice.press(alice.refreshed(picker), "✅")
    await tg.wait_for("sendPhoto")
    assert kie.creates[0]["input"]["prompt"] == PROMPT
    assert [r.amount for r in await improve_rows(store, 42)] == [-1]  # the service was given
    await assert_balanced(store, 42, 100 - 1 - 40)


async def test_a_second_improve_is_another_attempt_charged_again(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask(f"/video {PROMPT}")
    shown = await improved_picker(alice, tg, picker)
    assert kie.chat.requests[0][1]["messages"][0]["content"] == MODELS.improve.system["video"]
    await alice.press(shown, "Use it")
    shown = await improved_picker(alice, tg, alice.refreshed(picker))
    # The second rewrite starts from the first.
    assert kie.chat.user_messages == [PROMPT, f"{PROMPT}, highly detailed, dramatic lighting"]
    assert [r.amount for r in await improve_rows(store, 42)] == [-1, -1]


FAILURES = {
    "400": ChatScript(status=400, message="messages is invalid"),
    "401": ChatScript(status=401, message="Invalid API key"),
    "429": ChatScript(status=429, message="Too many requests"),
    "500": ChatScript(status=500, message="upstream error"),
    "garbage": ChatScript(raw="<html>502 Bad Gateway</html>"),
    "empty": ChatScript(content=""),
    "only quotes": ChatScript(content='"" '),
    "timeout": ChatScript(content=IMPROVED, delay=1.0),
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_a_failed_improve_is_refunded_once_and_keeps_the_prompt(
        tg, kie, bot, store, monkeypatch, failure):
    monkeypatch.setattr(constants, "CHAT_TIMEOUT", 0.3)  # read when the call is made
    monkeypatch.setattr(client_module, "RATE_LIMIT_PAUSE", 0.01)
    bot.app.parts.kie._backoff = 0.01  # 429 is retried like a create's: quickly here
    script = FAILURES[failure]
    kie.chat.answer_next(*[script] * (4 if failure == "429" else 1))
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask(f"/image {PROMPT}")
    await alice.press(picker, "✨")
    told = await alice.told("could not improve")
    assert "1 credit returned" in told.params["text"]
    picker = alice.refreshed(picker)
    assert PROMPT in picker["text"] and "✨ Improve · 1 credit" in texts_of(picker)
    rows = await improve_rows(store, 42)
    assert sorted((r.kind, r.amount) for r in rows) == [
        (LedgerKind.IMPROVE, -1), (LedgerKind.IMPROVE_REFUND, 1)]
    await assert_balanced(store, 42, 100)
    # The picker still generates from the person's own prompt.
    await alice.press(picker, "Imagen 4")
    await alice.press(alice.refreshed(picker), "✅")
    await tg.wait_for("sendPhoto")
    assert kie.creates[0]["input"]["prompt"] == PROMPT


async def test_free_improve_shows_no_price_and_writes_no_ledger_row(
        tg, kie, start_bot, store, tmp_path):
    await start_bot(make_settings(tmp_path, tg, kie, prompt_improve_price=0))
    kie.chat.answer_next(ChatScript(content=IMPROVED), ChatScript(status=500))
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask(f"/image {PROMPT}")
    assert "✨ Improve" in texts_of(picker)
    assert not [t for t in texts_of(picker) if t.startswith("✨") and "·" in t]
    shown = await improved_picker(alice, tg, picker)
    await alice.press(shown, "Use it")
    await alice.press(alice.refreshed(picker), "✨")
    told = await alice.told("could not improve")
    assert "returned" not in told.params["text"]
    assert await improve_rows(store, 42) == []
    await assert_balanced(store, 42, 100)


async def test_a_press_while_improving_is_answered_and_charges_nothing(tg, kie, bot, store):
    kie.chat.answer_next(ChatScript(content=IMPROVED, delay=0.5))
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask(f"/image {PROMPT}")
    first = tg.press(alice.user, picker, button(picker, "✨"))
    await until(lambda: len(kie.chat.requests) == 1)
    tg.redeliver(first)  # the same update again: dropped
    answer = await alice.press(picker, "✨")  # a second press of the same button
    assert "Already improving" in answer["text"] and answer.get("show_alert")
    await until(lambda: "Use it" in texts_of(alice.refreshed(picker)))
    assert len(kie.chat.requests) == 1
    assert [r.amount for r in await improve_rows(store, 42)] == [-1]


async def test_in_a_group_only_the_pickers_owner_may_improve(tg, kie, bot, store):
    group = tg.group_chat()
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    _, picker = await alice.ask(f"/image {PROMPT}", chat=group)
    answer = await bob.press(picker, "✨")
    assert answer.get("show_alert") and "✨" in texts_of(alice.refreshed(picker))[-2]
    assert kie.chat.requests == [] and await improve_rows(store, 43) == []
    shown = await improved_picker(alice, tg, picker)
    answer = await bob.press(shown, "Use it")
    assert answer.get("show_alert")
    assert "Use it" in texts_of(alice.refreshed(picker))  # still Alice's to decide


async def test_out_of_credits_improve_says_so_and_asks_nothing(tg, kie, start_bot, store,
                                                               tmp_path):
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=0))
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask(f"/image {PROMPT}")
    answer = await alice.press(picker, "✨")
    assert "Not enough credits" in answer["text"]
    await alice.told("Buy credits")
    assert kie.chat.requests == [] and await improve_rows(store, 42) == []


async def test_the_chat_call_counts_in_kies_budget(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask(f"/image {PROMPT}")
    await improved_picker(alice, tg, picker)
    [request] = [r for r in kie.requests if r.path.endswith("/v1/chat/completions")]
    assert request.status == 200 and request.key == bot.app.settings.kie.api_key.get_secret_value()
    # (the bot's limiter holding it back: tests/app/test_kie_chat.py)


async def test_no_improve_for_a_model_that_reads_the_prompt_aloud(tg, kie, bot, store):
    """Speech reads the prompt as it is: its picker offers no ✨ (a rewrite would change, and
    translate, what is read), and the model list's ✨ pressed after choosing it charges nothing
    and asks Kie nothing."""
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/music Привет! Это мой текст.")
    on_the_list = button(picker, "✨")  # a song's description may still be improved
    await alice.press(picker, "ElevenLabs")
    picker = alice.refreshed(picker)
    assert "✅" in "".join(texts_of(picker)) and not any(t.startswith("✨") for t in texts_of(picker))
    await alice.press(picker, "", data=on_the_list)
    picker = alice.refreshed(picker)
    assert not any(t.startswith("✨") for t in texts_of(picker))
    assert kie.chat.requests == [] and await improve_rows(store, 42) == []
    await assert_balanced(store, 42, 100)
    await alice.press(picker, "✅")
    await until(lambda: len(kie.creates) == 1)
    assert kie.creates[0]["input"]["text"] == "Привет! Это мой текст."
