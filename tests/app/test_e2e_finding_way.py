"""End to end: finding one's way — /start's buttons, ⭐ Buy credits, a short /help (admins see
their commands too), /models saying what each model is good for — and the texts people read:
plural forms, dates in their language, state names, units on price buttons."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.catalog import MODELS
from bot.keyboards import BuyMenu, Compose
from testkit.bot import ADMIN_ID
from testkit.chat import Person, buttons
from testkit.e2e import generate
from testkit.fakes.telegram import FakeTelegram
from testkit.timing import until

GROUP = -1007200
# Russian months as a date names them, abbreviated ("7 дек., 14:05").
RU_MONTHS = ("янв.", "февр.", "мар.", "апр.", "мая", "июн.", "июл.", "авг.", "сент.", "окт.",
             "нояб.", "дек.")
RU_DATE = r"\d{1,2} (" + "|".join(re.escape(month) for month in RU_MONTHS) + r"), \d{2}:\d{2}"


async def told_message(person: Person, contains: str, chat_id: int | None = None) -> dict:
    call = await person.told(contains, chat_id=chat_id)
    return person.message(call.params["chat_id"], call.response["message_id"])


def labels(message: dict) -> list[str]:
    return [b["text"] for b in buttons(message)]


# -- /start and ⭐ Buy credits --------------------------------------------------------------------

async def test_start_in_private_greets_with_the_balance_and_four_buttons(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/start")
    hello = await told_message(alice, "Hi, Alice! Your balance: 100 credits.")
    assert "/help" in hello["text"]
    assert labels(hello) == ["🖼 Picture", "🎬 Video", "🎵 Music", "⭐ Buy credits"]
    assert [b["callback_data"] for b in buttons(hello)] == [
        Compose(kind="image").pack(), Compose(kind="video").pack(), Compose(kind="audio").pack(),
        BuyMenu().pack()]


async def test_start_speaks_russian(tg, bot):
    boris = Person(tg, 43, "Борис", language="ru")
    boris.say("/start")
    hello = await told_message(boris, "Привет, Борис! Ваш баланс: 100 кредитов.")
    assert labels(hello)[-1] == "⭐ Купить кредиты"


async def test_buy_credits_shows_the_packages(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/start")
    hello = await told_message(alice, "Hi, Alice!")
    await alice.press(hello, "⭐")
    menu = await told_message(alice, "Choose a package")
    assert "Your balance: 100 credits" in menu["text"]
    assert labels(menu) == ["100 credits · 50 ⭐", "500 credits · 200 ⭐", "2000 credits · 700 ⭐"]
    await alice.press(menu, "500 credits")
    [invoice] = await tg.wait_for("sendInvoice")
    assert (invoice.params["chat_id"], invoice.params["payload"]) == (42, "500:200")


async def test_buy_credits_pressed_in_a_group_answers_privately(tg, bot):
    group = tg.group_chat(GROUP)
    alice = Person(tg, 42, "Alice")
    bob = Person(tg, 43, "Bob")
    alice.say("/start@testbot", chat=group)
    hello = await told_message(alice, "Hi, Alice!", chat_id=GROUP)
    await bob.press(hello, "⭐")  # anyone's press: the packages and balance of whoever pressed
    menu = await told_message(bob, "Choose a package")
    assert menu["chat"]["id"] == 43 and "100 credits" in menu["text"]
    line = await told_message(bob, "Bob, I sent it to you", chat_id=GROUP)
    assert "credit" not in line["text"]


# -- /help and /models --------------------------------------------------------------------------

async def test_help_is_short_and_leaves_prices_to_models(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/help")
    text = (await alice.told("What I can do")).params["text"]
    lines = text.split("\n")
    assert len(lines) <= 15, text
    for command in ("/image", "/video", "/music", "/models", "/balance", "/history", "/buy",
                    "/language", "/paysupport"):
        assert any(line.startswith(f"{command} — ") for line in lines), command
    assert "/models — Models and prices" in lines
    assert "credits ·" not in text and " — 40 credits" not in text  # no price list
    assert "For admins" not in text and "/topup" not in text


async def test_admins_help_adds_their_commands(tg, bot):
    admin = Person(tg, ADMIN_ID, "Admin")
    admin.say("/help")
    text = (await admin.told("What I can do")).params["text"]
    admin_part = text.split("<b>For admins</b>")[1]
    for command in ("/topup", "/user", "/ban", "/unban", "/stats", "/kie", "/refund", "/price",
                    "/model"):
        assert f"\n{command} — " in admin_part, command
    assert "/topup — Add credits to a user" in admin_part


async def test_models_lists_each_model_with_its_price_and_what_it_is_good_for(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/models")
    text = (await alice.told("Imagen 4")).params["text"]
    assert "• Imagen 4 — 40 credits · photorealistic detail and legible text" in text
    assert "• Kling 📎 — from 150 credits · lifelike motion and camera moves" in text
    assert "• Nano Banana 📎 — 30 credits · changing a photo as you describe it" in text
    # Every entry, and of the follow-ups the one each result's button runs: Recraft's upscale
    # stands behind Topaz's (first in the catalog) until Topaz is hidden.
    entries = {model.entry for model in MODELS if model.id != "crisp"}
    assert len([line for line in text.split("\n") if line.startswith("• ")]) == len(entries)
    assert "• ⬆️ Topaz Upscale — 15 credits" in text
    assert "Recraft" not in text
    for model in MODELS:  # each says what it is good for
        if model.id != "crisp":
            assert model.good_for and f" · {model.good_for}\n" in text + "\n", model.id
    admin = Person(tg, ADMIN_ID, "Admin")
    admin.say("/model topaz off")
    await admin.told("hidden")
    alice.say("/models")
    text = (await alice.told("Recraft")).params["text"]
    assert "• ⬆️ Recraft Crisp Upscale — 5 credits" in text
    assert "Topaz Upscale" not in text


async def test_models_in_russian(tg, bot):
    boris = Person(tg, 43, "Борис", language="ru")
    boris.say("/models")
    text = (await boris.told("Imagen 4")).params["text"]
    assert "• Imagen 4 — 40 кредитов · фотореалистичные детали и разборчивый текст" in text
    assert "• Озвучка ElevenLabs — 20 кредитов · озвучка вашего текста" in text
    assert "ElevenLabs speech" not in text


# -- the texts: units, plurals, dates, states ---------------------------------------------------

async def test_model_buttons_carry_their_unit(tg, bot):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a fox")
    assert "Imagen 4 · 40 credits" in labels(picker)
    _, picker = await alice.ask("/video a fox")
    assert "Kling · from 150 credits" in labels(picker)
    boris = Person(tg, 43, "Борис", language="ru")
    _, picker = await boris.ask("/music весёлая песня")
    assert "Озвучка ElevenLabs · 20 кредитов" in labels(picker)
    assert "Suno v4.5 · 60 кредитов" in labels(picker)


async def paid(tg: FakeTelegram, store, person: Person, count: int) -> None:
    """`count` packages bought by `person`, each credited."""
    for _ in range(count):
        tg.pay(person.user, currency="XTR", total_amount=50, invoice_payload="100:50")
    before = len(await store.purchases_of(person.id, 100))
    await until(lambda: _purchases_are(store, person.id, before + count))


async def _purchases_are(store, user_id: int, count: int) -> bool:
    return len(await store.purchases_of(user_id, 100)) == count


async def test_counts_take_russian_plural_forms(tg, bot, store):
    admin = Person(tg, ADMIN_ID, "Админ", language="ru")
    alice = Person(tg, 42, "Alice")
    for more, total, words in ((1, 1, "покупку"), (1, 2, "покупки"), (3, 5, "покупок"),
                               (16, 21, "покупку")):
        await paid(tg, store, alice, more)
        admin.say("/stats")
        report = (await admin.told("Статистика")).params["text"]
        assert f"Получено звёзд: {50 * total} за {total} {words} (без возвратов)" in report


async def test_english_counts_say_one_purchase(tg, bot, store):
    admin = Person(tg, ADMIN_ID, "Admin")
    await paid(tg, store, Person(tg, 42, "Alice"), 1)
    admin.say("/stats")
    assert "Stars received: 50 in 1 purchase (refunds deducted)" in (
        await admin.told("Statistics")).params["text"]


async def test_dates_are_in_the_persons_language_without_iso_stamps(tg, kie, bot, store):
    boris = Person(tg, 43, "Борис", language="ru")
    boris.say("/balance")
    text = (await boris.told("Ваш баланс")).params["text"]
    assert "(время UTC)" in text
    [row] = [line for line in text.split("\n") if line.startswith("+100")]
    assert re.fullmatch(rf"\+100 · приветственные кредиты · {RU_DATE}", row), row
    [grant] = await store.ledger(43)
    moment = datetime.fromtimestamp(grant.created_at, UTC)
    assert row.endswith(f" · {moment.day} {RU_MONTHS[moment.month - 1]}, {moment:%H:%M}"), row
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)


async def test_admins_user_card_has_local_dates_and_state_names(tg, kie, bot, store):
    boris = Person(tg, 43, "Борис", language="ru")
    await generate(boris, "лиса")
    await tg.wait_for("sendPhoto")
    await until(lambda: _delivered(store, 43))
    admin = Person(tg, ADMIN_ID, "Админ", language="ru")
    admin.say("/user 43")
    card = (await admin.told("<code>43</code>")).params["text"]
    assert re.search(rf"#\d+ {RU_DATE} · Imagen 4 · доставлено · 40 кредитов", card), card
    assert re.search(rf"{RU_DATE} · \+100 · приветственные кредиты", card), card
    assert "Время указано в UTC." in card and not re.search(r"\d{4}-\d{2}-\d{2}", card)
    admin.say("/stats")
    report = (await admin.told("Статистика")).params["text"]
    assert "доставлено: 1" in report and "delivered" not in report


async def _delivered(store, user_id: int) -> bool:
    generations = await store.generations_of(user_id, limit=1)
    return bool(generations) and generations[0].state == "delivered"
