"""End to end: a finished result always ends delivered, or refunded and told — through Telegram
outages, a group upgraded to a supergroup, a group that removed the bot, refusals for good."""

from __future__ import annotations

from bot.store import GenerationState, Store
from testkit.bot import make_settings
from testkit.chat import Person
from testkit.e2e import generate, refunds, states_become
from testkit.fakes.kie import TaskPlan
from testkit.timing import stays, until


async def generation_of(store: Store, user_id: int):
    [generation] = [g for g in await store.generations_in(list(GenerationState))
                    if g.user_id == user_id]
    return generation


async def test_a_result_waits_out_a_long_outage_with_backoff_then_arrives_once(tg, kie, bot,
                                                                             store, timing):
    retry = timing.delivery_retry(0.25)  # the tracker's backoff: 0.5 s, 1 s, 2 s... (1 s, 2 s... live)
    kie.default_plan = TaskPlan(reads_before_done=2)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "patience")
    await alice.told("⏳")
    tg.outage(502)  # everything, getUpdates included, for longer than one call's own retries

    async def tried_several_times() -> bool:
        generation = await generation_of(store, 42)
        return generation.state is GenerationState.SUCCEEDED and generation.deliveries >= 3
    await until(tried_several_times)
    failed = [c for c in tg.calls_of("sendPhoto") if not c.ok]
    assert len(failed) >= 3  # the first attempt, then attempts spaced by the tracker's backoff
    assert failed[2].time - failed[1].time > failed[1].time - failed[0].time - 0.2
    tg.end_outage()

    [photo] = await tg.wait_for("sendPhoto", timeout=10)
    assert photo.params["chat_id"] == 42
    assert await states_become(store, {42: GenerationState.DELIVERED}) == \
        {42: GenerationState.DELIVERED}
    assert await refunds(store, 42) == [] and (await store.get_user(42)).balance == 60
    # A due retry that was already scheduled must not send it again.
    await stays(lambda: len([c for c in tg.calls_of("sendPhoto") if c.ok]) == 1, 1.5 * retry)


async def test_a_result_telegram_never_takes_is_refunded_once_at_its_deadline_and_told(
        tg, kie, tmp_path, start_bot, store, timing):
    retry = timing.delivery_retry(0.25)
    await start_bot(make_settings(tmp_path, tg, kie, delivery_deadline=1.5))
    kie.default_plan = TaskPlan(reads_before_done=2)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "never arrives")
    await alice.told("⏳")
    tg.outage(500, methods=("sendPhoto", "sendMediaGroup", "sendDocument", "sendMessage",
                            "editMessageText"))

    async def refunded() -> bool:
        return bool(await refunds(store, 42))
    await until(refunded)
    tg.end_outage()
    told = await alice.told("Telegram did not take the result in time", timeout=15)
    assert "40 credits returned" in told.params["text"]
    [refund] = await refunds(store, 42)
    assert refund.note == "undelivered"
    assert (await store.get_user(42)).balance == 100 == await store.ledger_sum(42)
    # Refunded: never delivered after, not even by a retry scheduled before the deadline.
    await stays(lambda: not [c for c in tg.calls_of("sendPhoto") if c.ok], 1.5 * retry)
    assert (await generation_of(store, 42)).state is GenerationState.FAILED


async def test_a_result_telegram_refuses_for_good_is_refunded_at_once(tg, kie, bot, store):
    refuse = {"error_code": 400, "description": "Bad Request: chat not found", "times": 10}
    tg.fail_next("sendPhoto", **refuse)
    tg.fail_next("sendMessage", when=lambda p: "<a href" in p.get("text", ""), **refuse)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "refused")
    told = await alice.told("Telegram did not take the result in time")
    assert "40 credits returned" in told.params["text"]
    [refund] = await refunds(store, 42)
    assert refund.note == "undelivered"


async def test_a_group_upgraded_to_a_supergroup_gets_its_results_at_the_new_id(
        tg, kie, bot, store):
    kie.default_plan = TaskPlan(reads_before_done=4)
    group = tg.group_chat(-4000, "Friends", type="group")
    alice = Person(tg, 42, "Alice")
    await generate(alice, "moving house", chat=group)
    await alice.told("⏳", chat_id=-4000)
    tg.upgrade_group(-4000, -1004000)

    [photo] = await tg.wait_for("sendPhoto")
    assert photo.params["chat_id"] == -1004000
    assert await states_become(store, {42: GenerationState.DELIVERED}) == \
        {42: GenerationState.DELIVERED}
    assert (await generation_of(store, 42)).chat_id == -1004000
    assert await refunds(store, 42) == []


async def test_a_group_that_removed_the_bot_gets_nothing_and_the_person_gets_it_privately(
        tg, kie, bot, store):
    kie.default_plan = TaskPlan(reads_before_done=4)
    group = tg.group_chat(-1005000, "Gone")
    alice = Person(tg, 42, "Alice")
    await generate(alice, "left behind", chat=group)
    await alice.told("⏳", chat_id=-1005000)
    tg.kick(-1005000)

    [photo] = await tg.wait_for("sendPhoto")
    assert photo.params["chat_id"] == 42 and "reply_parameters" not in photo.params
    assert await states_become(store, {42: GenerationState.DELIVERED}) == \
        {42: GenerationState.DELIVERED}
    assert not (await store.get_user(42)).blocked  # the group is unreachable, not Alice
    rows = await store._rows("SELECT unreachable FROM chats WHERE id = ?", (-1005000,))
    assert [tuple(r) for r in rows] == [(1,)]


async def test_the_upgrade_notice_moves_open_work_before_anything_is_sent(tg, kie, bot, store):
    kie.default_plan = TaskPlan(outcome="never")
    group = tg.group_chat(-4100, "Friends", type="group")
    alice = Person(tg, 42, "Alice")
    await generate(alice, "moving early", chat=group)
    await alice.told("⏳", chat_id=-4100)
    tg.upgrade_group(-4100, -1004100)

    async def moved() -> bool:
        return (await generation_of(store, 42)).chat_id == -1004100
    await until(moved)
    rows = await store._rows("SELECT migrated_to FROM chats WHERE id = ?", (-4100,))
    assert [tuple(r) for r in rows] == [(-1004100,)]


async def test_removing_the_bot_and_adding_it_back_is_remembered(tg, kie, bot, store):
    group = tg.group_chat(-1005100, "Flaky")
    tg.kick(-1005100)

    async def unreachable() -> bool:
        rows = await store._rows("SELECT unreachable FROM chats WHERE id = ?", (-1005100,))
        return [tuple(r) for r in rows] == [(1,)]
    await until(unreachable)
    assert group["id"] == -1005100


async def test_a_group_that_removed_the_bot_gets_no_more_status_edits(tg, kie, bot, store, timing):
    gap = timing.status_edit_gap(0.2)  # 5 s live; the line's text changes once a second
    kie.default_plan = TaskPlan(outcome="never")
    group = tg.group_chat(-1005200, "Gone quiet")
    alice = Person(tg, 42, "Alice")
    await generate(alice, "still waiting", chat=group)
    await alice.told("⏳", chat_id=-1005200)
    tg.kick(-1005200)

    def refused() -> list:
        return [c for c in tg.calls if not c.ok and c.params.get("chat_id") == -1005200]
    await until(lambda: len(refused()) >= 1, timeout=1.0 + 2 * gap + 5)  # the next tick: refused
    # Then silence, for longer than the next second's text and its gap would have taken.
    await stays(lambda: len(refused()) == 1, 1.0 + 2 * gap)
    assert not (await store.get_user(42)).blocked
