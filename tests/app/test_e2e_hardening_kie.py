"""End to end, what an attack run found (issue 23): garbage in Kie's finished records costs no
good file, and a graceful stop during a send does not send it twice."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.store import GenerationState
from testkit.chat import Person
from testkit.e2e import charges, generate, refunds, states_become
from testkit.fakes.kie import TaskPlan
from testkit.fakes.telegram import FakeTelegram


async def test_a_null_among_the_result_urls_costs_only_itself(tg, kie, bot, store):
    kie.default_plan = TaskPlan(reads_before_done=1, bad_urls=[None])
    await generate(Person(tg, 42, "Alice"), "a fox and a null")
    [photo] = await tg.wait_for("sendPhoto")
    [task] = kie.tasks.values()
    assert photo.params["photo"] == task.result_urls[0]
    assert await states_become(store, {42: GenerationState.DELIVERED}) == \
        {42: GenerationState.DELIVERED}
    assert await refunds(store, 42) == []


async def test_a_song_whose_length_is_nan_is_delivered_without_it(tg, kie, bot, store):
    kie.default_plan = TaskPlan(reads_before_done=1, track_duration="NaN")
    await generate(Person(tg, 42, "Alice"), "a song of no length", "Suno v4.5",
                   command="/music")
    [album] = await tg.wait_for("sendMediaGroup")
    assert [m["type"] for m in album.params["media"]] == ["audio", "audio"]
    assert not any("duration" in m for m in album.params["media"])
    assert await states_become(store, {42: GenerationState.DELIVERED}) == \
        {42: GenerationState.DELIVERED}


def photos_in(tg: FakeTelegram, chat_id: int) -> list[dict[str, Any]]:
    return [m for m in tg.messages.get(chat_id, {}).values() if "photo" in m]


async def test_a_graceful_stop_during_a_send_lets_it_finish_and_never_sends_it_twice(
        tg, kie, settings, start_bot, store):
    """SIGTERM (a deploy) while Telegram takes the photo: the send is waited for and recorded,
    so the next start has nothing left to send."""
    taken = asyncio.Event()
    send_photo = tg._handlers["sendphoto"]

    async def slow_send_photo(params: dict[str, Any]) -> Any:
        message = send_photo(params)  # Telegram has the photo; its answer is slow to come
        taken.set()
        await asyncio.sleep(0.5)
        return message

    tg._handlers["sendphoto"] = slow_send_photo
    kie.default_plan = TaskPlan(reads_before_done=1)
    first = await start_bot(settings)
    await generate(Person(tg, 42, "Alice"), "a fox through a deploy")
    await asyncio.wait_for(taken.wait(), 10)
    await first.stop()
    assert len(photos_in(tg, 42)) == 1

    await start_bot(settings)
    # (Had the stop cut the send off, the restart would send the photo again, then record it.)
    assert await states_become(store, {42: GenerationState.DELIVERED}) == \
        {42: GenerationState.DELIVERED}
    await asyncio.sleep(0.5)
    assert len(photos_in(tg, 42)) == 1
    assert len(await charges(store, 42)) == 1 and await refunds(store, 42) == []
