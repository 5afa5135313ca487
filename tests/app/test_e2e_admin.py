"""End to end: the admins' tools — prices, hidden models (also by Kie's 505), bans, /user,
/stats, /kie — and the low-credit alert."""

from __future__ import annotations

import asyncio
import re

import pytest

from bot.kie import KieClient, RateLimiter
from bot.services.credit_watch import CreditWatch
from bot.store import LedgerKind
from testkit.bot import ADMIN_ID, make_settings
from testkit.chat import Person, buttons
from testkit.e2e import charges, generate, refunds
from testkit.fakes.kie import TaskPlan


def labels(message: dict) -> list[str]:
    return [b["text"] for b in buttons(message)]


async def started(person: Person) -> None:
    person.say("/start")
    await person.told("Hi")


async def test_a_price_override_shows_everywhere_and_is_what_is_charged(tg, kie, bot, store):
    admin, alice = Person(tg, ADMIN_ID, "Admin"), Person(tg, 42, "Alice")
    admin.say("/price imagen4 55")
    await admin.told("Imagen 4 now costs 55 credits.")
    alice.say("/models")
    assert "Imagen 4 — 55 credits" in (await alice.told("Imagen 4")).params["text"]
    _, picker = await alice.ask("/image a fox")
    assert "Imagen 4 · 55 credits" in labels(picker)
    await alice.press(picker, "Imagen 4 ·")
    assert "✅ Generate · 55 credits" in labels(alice.refreshed(picker))
    await alice.press(alice.refreshed(picker), "✅")
    await tg.wait_for("sendPhoto")
    [charge] = await charges(store, 42)
    assert charge.amount == -55

    admin.say("/price imagen4 reset")
    await admin.told("Imagen 4 now costs 40 credits.")
    alice.say("/models")
    assert "Imagen 4 — 40 credits" in (await alice.told("Imagen 4")).params["text"]


async def test_a_price_changed_under_an_open_picker_is_not_charged_unseen(tg, kie, bot, store):
    admin, alice = Person(tg, ADMIN_ID, "Admin"), Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a fox")
    await alice.press(picker, "Seedream")
    drawn = alice.refreshed(picker)
    assert "✅ Generate · 20 credits" in labels(drawn)
    admin.say("/price seedream 35")
    await admin.told("now costs 35")
    answer = await alice.press(drawn, "✅")  # the button still says 20
    assert "changed" in answer["text"] and answer["show_alert"]
    assert await charges(store, 42) == [] and kie.creates == []
    assert "✅ Generate · 35 credits" in labels(alice.refreshed(picker))
    await alice.press(alice.refreshed(picker), "✅")
    await tg.wait_for("sendPhoto")
    assert [c.amount for c in await charges(store, 42)] == [-35]


async def test_a_hidden_model_is_offered_nowhere_until_shown_again(tg, kie, bot, store):
    admin, alice = Person(tg, ADMIN_ID, "Admin"), Person(tg, 42, "Alice")
    _, open_picker = await alice.ask("/video waves")
    await alice.press(open_picker, "Wan")
    admin.say("/model wan off")
    await admin.told("Wan is hidden.")
    alice.say("/models")
    assert "• Wan 📎" not in (await alice.told("Videos")).params["text"]
    _, picker = await alice.ask("/video waves")
    assert not any(label.startswith("Wan ·") for label in labels(picker))
    _, photo_picker = await alice.ask("/video waves", photo=True)
    assert not any(label.startswith("Wan ·") for label in labels(photo_picker))  # its photo id too
    answer = await alice.press(alice.refreshed(open_picker), "✅")
    assert "no longer available" in answer["text"]
    assert await charges(store, 42) == [] and kie.creates == []

    admin.say("/model wan on")
    await admin.told("Wan is offered again.")
    _, picker = await alice.ask("/video waves")
    assert any(label.startswith("Wan ·") for label in labels(picker))


@pytest.mark.parametrize("command, told", [
    ("/price", "Say which model and what price."),
    ("/price imagen4 -3", "whole number of credits"),
    ("/price imagen4 ten", "whole number of credits"),
    ("/price nosuch 10", "There is no model nosuch."),
    ("/model imagen4", "Say which model, and on or off."),
    ("/model nosuch off", "There is no model nosuch."),
])
async def test_price_and_model_misuse_answer_with_usage(tg, bot, store, command, told):
    admin = Person(tg, ADMIN_ID, "Admin")
    admin.say(command)
    answer = await admin.told("Usage:")
    assert told in answer.params["text"] and "Example:" in answer.params["text"]
    assert await store.model_overrides() == {}


async def test_kie_disabling_a_model_refunds_hides_it_and_tells_admins_once(tg, kie, bot, store):
    admin, alice, bob = Person(tg, ADMIN_ID, "Admin"), Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    kie.fail_create_next(505, "This model is currently disabled")
    _, alice_picker = await alice.ask("/image one")
    _, bob_picker = await bob.ask("/image two")
    await alice.press(alice_picker, "Grok")
    await bob.press(bob_picker, "Grok")
    await alice.press(alice.refreshed(alice_picker), "✅")
    await alice.told("credits returned")
    await bob.press(bob.refreshed(bob_picker), "✅")  # its picker was open before the hiding
    answer = await bob.tg.wait_for("answerCallbackQuery", lambda c: "no longer available"
                                   in (c.params.get("text") or ""))
    assert answer
    alerts = [c for c in tg.sent_to(ADMIN_ID) if "disabled" in c.params.get("text", "")]
    assert len(alerts) == 1 and "/model grok on" in alerts[0].params["text"]
    assert len(await refunds(store, 42)) == 1 and await charges(store, 43) == []
    _, picker = await alice.ask("/image three")
    assert not any(label.startswith("Grok") for label in labels(picker))

    admin.say("/model grok on")
    await admin.told("Grok Imagine is offered again.")
    _, picker = await alice.ask("/image four")  # on Grok again: her last choice
    assert picker["text"].startswith("🖼 Grok Imagine")
    await alice.press(picker, "✅")
    await tg.wait_for("sendPhoto")


async def test_a_banned_user_gets_one_short_answer_and_can_start_nothing(tg, kie, bot, store):
    admin, mallory = Person(tg, ADMIN_ID, "Admin"), Person(tg, 66, "Mallory", username="mal")
    _, picker = await mallory.ask("/image before the ban")
    admin.say("/ban @mal")
    await admin.told("@mal is banned.")
    admin.say("/ban 66")
    await admin.told("@mal was already banned.")
    mallory.say("/image a thing")
    await mallory.told("You are banned")
    answer = await mallory.press(picker, "Imagen 4 ·")
    assert "banned" in answer["text"]
    await asyncio.sleep(0.2)
    assert [c.params["text"] for c in tg.sent_to(66)][-1].startswith("You are banned")
    assert len([c for c in tg.sent_to(66) if c.method == "sendMessage"]) == 2  # picker + 1 answer
    assert await charges(store, 66) == [] and kie.creates == []

    admin.say("/unban @mal")
    await admin.told("@mal is no longer banned.")
    mallory.say("/balance")
    await mallory.told("Your balance")


async def test_admins_cannot_be_banned_and_others_cannot_use_admin_commands(tg, bot, store):
    admin, mallory = Person(tg, ADMIN_ID, "Admin"), Person(tg, 66, "Mallory")
    admin.say(f"/ban {ADMIN_ID}")
    await admin.told("An admin cannot be banned.")
    for command in ("/stats", "/user 1000", "/ban 1000", "/price imagen4 1", "/model grok off",
                    "/kie"):
        mallory.say(command)
        await mallory.told("for admins only")
    assert await store.model_overrides() == {}
    assert not (await store.get_user(ADMIN_ID)).banned


async def test_stats_and_user_agree_with_the_ledger_after_a_scripted_run(tg, kie, tmp_path,
                                                                          start_bot, store):
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=100))
    admin, alice, bob = Person(tg, ADMIN_ID, "Admin"), Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    await started(alice)
    await started(bob)
    admin.say("/topup 42 50")
    await admin.told("Added 50")
    await store.record_purchase(43, charge_id="ch-1", package="100:50", credits=100, stars=50)
    await store.record_purchase(43, charge_id="ch-2", package="500:200", credits=500, stars=200)
    await store.hold_purchase_refund("ch-2", admin_id=ADMIN_ID, force=True)
    await store.confirm_purchase_refund("ch-2")
    await generate(alice, "delivered", "Imagen 4")  # 40
    await tg.wait_for("sendPhoto")
    kie.default_plan = TaskPlan(outcome="fail", reads_before_done=0, fail_msg="nope")
    await generate(bob, "failed", "Seedream")  # 20, refunded
    await bob.told("credits returned")

    admin.say("/stats")
    report = (await admin.told("Statistics")).params["text"]
    assert "Users: 3, active in 24 h: 2" in report  # the admin is a user too
    assert "delivered: 1" in report and "failed, refunded: 1" in report
    assert "Imagen 4: 1" in report and "Seedream: 1" in report
    ledger = {kind: 0 for kind in LedgerKind}
    for user_id in (42, 43, ADMIN_ID):
        for row in await store.ledger(user_id, 100):
            ledger[LedgerKind(row.kind)] += row.amount
    expected = (f"charged {-ledger[LedgerKind.CHARGE]}, refunded {ledger[LedgerKind.REFUND]}, "
                f"bought {ledger[LedgerKind.PURCHASE] + ledger[LedgerKind.PURCHASE_REFUND]}, "
                f"granted {ledger[LedgerKind.GRANT]}, added by admins {ledger[LedgerKind.TOPUP]}")
    assert expected == "charged 60, refunded 20, bought 100, granted 300, added by admins 50"
    assert expected in report
    assert "Stars received: 50 in 2 purchases" in report
    assert "Kie.ai credits: 1000" in report

    admin.say("/user 43")
    card = (await admin.told("<code>43</code>")).params["text"]
    bob_user = await store.get_user(43)
    assert bob_user.balance == await store.ledger_sum(43) == 100 + 100
    assert f"Balance: {bob_user.balance} credits" in card
    assert re.search(r"\+500 · bought with Stars", card) and "-500 · Stars refunded" in card
    assert "Seedream · failed, refunded · 20 credits" in card
    assert "<code>ch-1</code> · 50 ⭐ · 100 credits" in card
    assert "<code>ch-2</code> · 200 ⭐ · 500 credits · refunded" in card


async def test_kie_reports_the_account_credits_or_why_not(tg, kie, bot):
    admin = Person(tg, ADMIN_ID, "Admin")
    kie.credits = 1234
    admin.say("/kie")
    await admin.told("Kie.ai credits: 1234")
    kie.fail_reads_next(401, times=1)  # the credit read is a read
    kie.api_key = "rotated"
    admin.say("/kie")
    told = await admin.told("Kie.ai did not say its credits")
    assert "rotated" not in told.params["text"]


class RecordingNotifier:
    def __init__(self) -> None:
        self.alerts: list[dict[str, str]] = []

    async def alert_admins(self, cause: str, message: str, **params: str) -> None:
        self.alerts.append(params)


async def test_low_kie_credits_alert_once_per_crossing(kie, settings, store):
    client = KieClient(settings.kie.api_key, base_url=kie.url, upload_url=kie.url,
                       limiter=RateLimiter(20, 0.5), backoff=0.01)
    notifier = RecordingNotifier()
    watch = CreditWatch(store, client, notifier, threshold=500)  # type: ignore[arg-type]
    try:
        for credits in (900, 400, 300, 450, 600, 700, 200, 100):
            kie.credits = credits
            await watch.check()
        # A restart while still low does not alert again: the crossing is in the database.
        await CreditWatch(store, client, notifier, threshold=500).check()  # type: ignore[arg-type]
    finally:
        await client.aclose()
    assert [a["credits"] for a in notifier.alerts] == ["400", "200"]
    assert kie.count("/chat/credit") == 9


async def test_low_kie_credits_reach_the_admin_from_the_running_bot(tg, kie, tmp_path, start_bot):
    kie.credits = 10
    Person(tg, ADMIN_ID, "Admin").say("/start")  # an admin who has a chat with the bot
    await start_bot(make_settings(tmp_path, tg, kie, kie_low_credit_alert=100))
    [alert] = await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN_ID
                                and "credits left" in c.params["text"])
    assert "10 credits left, below 100" in alert.params["text"]
