"""End to end: no secret reaches a chat — not through Kie's error texts, not through anything
the bot echoes."""

from __future__ import annotations

from testkit.bot import KIE_KEY, TOKEN
from testkit.chat import Person
from testkit.e2e import generate, refunds
from testkit.fakes.kie import TaskPlan

LEAKY = f"bad request; headers: {{'Authorization': 'Bearer {KIE_KEY}'}}, bot {TOKEN}"


def nothing_secret_sent(tg) -> None:
    for call in tg.calls:
        text = repr(call.params)
        assert KIE_KEY not in text and TOKEN not in text, f"{call.method} carried a secret"


async def test_kie_error_text_quoting_the_key_never_reaches_the_chat(tg, kie, bot, store):
    kie.fail_create_next(422, LEAKY)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox")
    told = await alice.told("❌")
    assert "the request was rejected" in told.params["text"]
    assert "headers" not in told.params["text"]  # Kie's own words stay in the log
    assert len(await refunds(store, 42)) == 1
    nothing_secret_sent(tg)


async def test_failed_task_message_quoting_the_key_never_reaches_the_chat(tg, kie, bot, store):
    kie.default_plan = TaskPlan(outcome="fail", reads_before_done=1, fail_msg=LEAKY)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox")
    told = await alice.told("❌")
    assert "Kie.ai could not generate it" in told.params["text"]
    nothing_secret_sent(tg)


async def test_whatever_the_bot_echoes_is_cut_of_secrets_on_the_way_out(tg, kie, bot):
    """The prompt is echoed in the picker and the caption: a secret in it goes out as ***."""
    alice = Person(tg, 42, "Alice")
    await generate(alice, f"the key is {KIE_KEY} and the token {TOKEN}")
    [photo] = await tg.wait_for("sendPhoto")
    assert "the key is *** and the token ***" in photo.params["caption"]
    assert kie.creates[0]["input"]["prompt"].startswith(f"the key is {KIE_KEY}")  # Kie gets it as asked
    nothing_secret_sent(tg)
