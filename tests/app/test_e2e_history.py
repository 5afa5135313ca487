"""End to end: /history lists a person's generations a page at a time, and sends a delivered
result again without a charge or a new Kie task: from the file Telegram keeps of it (no
expiry), else from Kie's link while Kie keeps it, or says plainly that it has expired."""

from __future__ import annotations

import asyncio
import re

import pytest

from bot.keyboards import HistoryPage, Resend
from bot.services.delivery import RESULT_RETENTION
from bot.store import DeliveredFile, GenerationState, LedgerKind
from testkit.chat import Person, buttons
from testkit.e2e import charges, generate
from testkit.fakes.kie import TaskPlan
from testkit.fakes.telegram import UploadedFile
from testkit.timing import until

FINAL = (GenerationState.DELIVERED, GenerationState.FAILED)
DATE = r"\d{1,2} \w{3}, \d{2}:\d{2}"


async def settled(store, user_id: int, count: int) -> list:
    """The user's generations, newest first, once `count` of them are delivered or failed."""
    for _ in range(200):
        generations = await store.generations_of(user_id, limit=100)
        if len(generations) == count and all(g.state in FINAL for g in generations):
            return generations
        await asyncio.sleep(0.05)
    raise AssertionError(f"not settled: {[(g.id, g.state) for g in generations]}")


async def history(person: Person, chat: dict | None = None) -> dict:
    """Send /history; returns the list message as the fake holds it."""
    person.say("/history", chat=chat)
    call = await person.told("Your generations", chat_id=chat["id"] if chat else None)
    return person.message(call.params["chat_id"], call.response["message_id"])


def labels(message: dict) -> list[str]:
    return [b["text"] for b in buttons(message)]


def photo_id(message: dict) -> str:
    """The file_id of a photo message's largest size, as Telegram answered the send."""
    return max(message["photo"], key=lambda size: size["width"] * size["height"])["file_id"]


async def age(store, generation_id: int) -> None:
    """The result finished over a day ago: past Kie's retention (its links are gone)."""
    await store._rows("UPDATE generations SET finished_at = finished_at - ? WHERE id = ?",
                      (RESULT_RETENTION + 3600, generation_id))


async def forget_files(store, generation_id: int) -> None:
    """As a result delivered before the bot kept Telegram's file_ids."""
    await store._rows("DELETE FROM delivered_files WHERE generation_id = ?", (generation_id,))


def kie_traffic(kie) -> tuple[int, int]:
    """Requests to Kie's API, and downloads of its result files, so far."""
    return len(kie.requests), len(kie.file_requests)


async def test_history_shows_delivered_and_failed_with_state_and_price(tg, kie, bot, store):
    kie.plan_by_prompt["explode"] = TaskPlan(outcome="fail", reads_before_done=1)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a red <fox>")
    await tg.wait_for("sendPhoto")
    await generate(alice, "explode it", model="Seedream")
    await alice.told("❌ Seedream")
    await settled(store, 42, 2)

    listing = await history(alice)
    text = listing["text"]  # as the user sees it: entities parsed, HTML gone
    assert "Your generations, page 1 of 1" in text
    failed, delivered = text.split("\n\n")[1:]
    assert re.fullmatch(r"1\. 🖼 Seedream · failed \(Kie\.ai could not generate it\), refunded · "
                        rf"20 credits · {DATE}\nexplode it", failed), failed
    assert re.fullmatch(rf"2\. 🖼 Imagen 4 · delivered · 40 credits · {DATE}\na red <fox>",
                        delivered), delivered
    # Only the delivered one can be sent again; one page: no ◀ ▶.
    assert labels(listing) == ["📤 Send #2 again"]


async def test_empty_history_is_one_friendly_line(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/history")
    told = await alice.told("no generations yet")
    assert "/image" in told.params["text"] and "reply_markup" not in told.params


async def test_history_pages_back_and_forth(tg, kie, bot, store):
    kie.default_plan = TaskPlan(reads_before_done=0)
    alice = Person(tg, 42, "Alice")
    for n in range(1, 7):  # six at 10 credits: two pages of five
        await generate(alice, f"fox number {n}", model="Imagen 4 Fast")
        await tg.wait_for("sendPhoto", count=n)
    await settled(store, 42, 6)

    listing = await history(alice)
    assert "page 1 of 2" in listing["text"]
    assert "1. 🖼 Imagen 4 Fast" in listing["text"] and "fox number 6" in listing["text"]
    assert "6." not in listing["text"] and "fox number 1" not in listing["text"]
    assert labels(listing) == [f"📤 Send #{n} again" for n in range(1, 6)] + ["▶"]

    await alice.press(listing, "▶")
    await alice.told("page 2 of 2")
    second = alice.refreshed(listing)
    assert "6. 🖼 Imagen 4 Fast" in second["text"] and "fox number 1" in second["text"]
    assert "fox number 2" not in second["text"]
    assert labels(second) == ["📤 Send #6 again", "◀"]

    await alice.press(second, "◀")
    await alice.told("page 1 of 2")
    assert alice.refreshed(listing)["text"] == listing["text"]

    # A forged page past the end shows the last page, not an empty one.
    await alice.press(listing, "", data=HistoryPage(owner=42, page=99).pack())
    await alice.told("page 2 of 2")


async def test_resend_sends_the_result_again_without_charge_or_new_task(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox to keep")
    [first] = await tg.wait_for("sendPhoto")
    [generation] = await settled(store, 42, 1)
    assert first.params["photo"] == generation.result_urls[0]
    # The delivery kept the file Telegram made of it (a photo: its largest size).
    assert await store.delivered_files(generation.id) == [
        DeliveredFile("photo", photo_id(first.response))]
    ledger_before = await store.ledger(42, 100)
    traffic = kie_traffic(kie)

    listing = await history(alice)
    answer = await alice.press(listing, "📤 Send #1 again")
    assert not answer.get("show_alert")
    [_, again] = await tg.wait_for("sendPhoto", count=2)
    # By Telegram's file: nothing fetched, Kie not asked.
    assert again.params["photo"] == photo_id(first.response)
    assert kie_traffic(kie) == traffic
    assert again.params["chat_id"] == 42
    assert again.params["reply_parameters"]["message_id"] == listing["message_id"]
    assert "a fox to keep" in again.params["caption"]
    assert "nothing charged" in again.params["caption"]
    assert labels(again.params)[0].startswith("🔁 Again")  # the result's own buttons

    assert await store.ledger(42, 100) == ledger_before
    assert len(kie.creates) == 1
    assert (await store.get_user(42)).balance == 60
    assert (await store.get_generation(generation.id)).state == GenerationState.DELIVERED


async def test_a_refused_file_id_falls_back_to_kies_link_and_keeps_the_new_file(tg, kie, bot,
                                                                                  store):
    """Telegram no longer takes the stored file_id: within Kie's retention, the delivery's own
    path — by URL first, then downloaded (here through Kie's fresh download link, the result
    URL answering 403) and uploaded —, and the file Telegram makes of it is kept instead."""
    kie.default_plan = TaskPlan(reads_before_done=1, file_status=403)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a guarded fox")
    await tg.wait_for("sendPhoto")
    [generation] = await settled(store, 42, 1)
    [held] = await store.delivered_files(generation.id)

    tg.forget_file(held.file_id)
    tg.refuse_urls = True
    await alice.press(await history(alice), "📤")
    [uploaded] = await tg.wait_for("sendPhoto",
                                   lambda c: isinstance(c.params["photo"], UploadedFile))
    assert uploaded.params["photo"].data.startswith(b"\x89PNG")
    [refused] = [c for c in tg.calls_of("sendPhoto") if c.params["photo"] == held.file_id]
    assert not refused.ok and "wrong file identifier" in refused.description
    assert kie.count("download-url") == 1 and len(kie.creates) == 1
    assert len(await charges(store, 42)) == 1
    fresh = DeliveredFile("photo", photo_id(uploaded.response))

    async def kept() -> bool:  # stored just after Telegram answered
        return await store.delivered_files(generation.id) == [fresh]
    await until(kept)


async def test_resend_of_an_expired_result_says_so_and_charges_nothing(tg, kie, bot, store):
    """A result Telegram holds no file of (delivered before file_ids were kept) goes by Kie's
    link: Kie's files gone early, it says so."""
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fleeting fox")
    await tg.wait_for("sendPhoto")
    [generation] = await settled(store, 42, 1)
    await forget_files(store, generation.id)
    ledger_before = await store.ledger(42, 100)

    kie.expire(generation.task_id)
    # Telegram cannot fetch a dead URL either (the fake takes any URL on trust).
    tg.fail_next("sendPhoto", description="Bad Request: failed to get HTTP URL content",
                 when=lambda p: isinstance(p.get("photo"), str))
    await alice.press(await history(alice), "📤")
    told = await alice.told("has expired")
    assert "about 24 hours" in told.params["text"] and "Nothing was charged" in told.params["text"]
    assert kie.url not in told.params["text"]  # no dead links
    assert kie.count("download-url") == 1  # a fresh link was asked for, and refused
    assert [c for c in tg.calls_of("sendPhoto") if c.ok and c.params["chat_id"] == 42][1:] == []
    assert await store.ledger(42, 100) == ledger_before
    assert len(kie.creates) == 1


async def test_forged_resend_of_someone_elses_generation_is_refused(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    mallory = Person(tg, 66, "Mallory")
    await generate(alice, "alice's private fox")
    await tg.wait_for("sendPhoto")
    [generation] = await settled(store, 42, 1)

    mallory.say("/history")
    await mallory.told("no generations yet")
    own = tg.last_bot_message(66)
    answer = await mallory.press(own, "", data=Resend(generation=generation.id).pack())
    assert answer["show_alert"] and "belongs to someone else" in answer["text"]
    await asyncio.sleep(0.2)
    assert [c for c in tg.calls_of("sendPhoto") if c.params["chat_id"] == 66] == []
    assert await charges(store, 66) == []


async def test_only_delivered_results_can_be_sent_again(tg, kie, bot, store):
    kie.default_plan = TaskPlan(outcome="fail", reads_before_done=1)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "doomed")
    await alice.told("❌")
    [generation] = await settled(store, 42, 1)
    listing = await history(alice)
    assert labels(listing) == []
    answer = await alice.press(listing, "", data=Resend(generation=generation.id).pack())
    assert answer["show_alert"] and "Only a finished result" in answer["text"]
    assert tg.calls_of("sendPhoto") == []
    assert [r.kind for r in await store.ledger(42, 100)] == [
        LedgerKind.REFUND, LedgerKind.CHARGE, LedgerKind.GRANT]


async def test_asked_in_a_group_it_is_listed_privately_and_others_cannot_use_it(tg, kie, bot,
                                                                               store):
    group = tg.group_chat()
    alice = Person(tg, 42, "Alice")
    bob = Person(tg, 43, "Bob")
    await generate(alice, "my private fox")
    await generate(alice, "our group fox", model="Seedream", chat=group)
    await tg.wait_for("sendPhoto", count=2)
    await settled(store, 42, 2)

    alice.say("/history", chat=group)  # the list comes privately, every prompt in it
    listing_call = await alice.told("Your generations")
    listing = alice.message(42, listing_call.response["message_id"])
    assert "our group fox" in listing["text"] and "private fox" in listing["text"]
    line_call = await alice.told("I sent it to you", chat_id=group["id"])
    line = alice.message(group["id"], line_call.response["message_id"])
    assert "fox" not in line["text"] and "credits" not in line["text"]

    for data in (Resend(generation=(await store.generations_of(42, limit=1))[0].id).pack(),
                 HistoryPage(owner=42, page=0).pack()):  # forged onto the group's line
        answer = await bob.press(line, "", data=data)
        assert answer["show_alert"] and "belongs to someone else" in answer["text"]
    await asyncio.sleep(0.2)
    assert len(tg.calls_of("sendPhoto")) == 2

    # Alice sends it again from her list: into her private chat, as a reply to the list.
    await alice.press(listing, "📤 Send #1 again")
    [_, _, again] = await tg.wait_for("sendPhoto", count=3)
    assert again.params["chat_id"] == 42 and "our group fox" in again.params["caption"]


async def test_help_lists_history_and_language(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/help")
    told = await alice.told("/history")
    assert "/language" in told.params["text"]


async def test_repeated_resend_presses_do_the_work_once_without_holding_the_bot(tg, kie, bot,
                                                                               store):
    """A flood of 📤 on results whose files are gone: each person's presses make one re-send
    (one download-url, one answer), the presses are answered at once, and a bystander is
    served while Kie is slow to answer."""
    people = [Person(tg, 42 + n, f"P{n}") for n in range(3)]
    for person in people:
        await generate(person, f"a fleeting fox {person.id}")
    await tg.wait_for("sendPhoto", count=3)
    for person in people:  # delivered before file_ids were kept: Kie's link it is
        [generation] = await settled(store, person.id, 1)
        await forget_files(store, generation.id)
        kie.expire(generation.task_id)
    listings = [await history(person) for person in people]
    tg.fail_next("sendPhoto", description="Bad Request: failed to get HTTP URL content",
                 times=3, when=lambda p: isinstance(p.get("photo"), str))
    kie.latency = 1.0  # Kie answers slowly: every download-url waits
    presses = [tg.press(person.user, listing, buttons(listing)[0]["callback_data"])
               for person, listing in zip(people, listings, strict=True) for _ in range(5)]
    bystander = Person(tg, 99, "Bystander")
    bystander.say("/start")
    hello = await bystander.told("Hi")
    for person in people:
        await person.told("has expired")
    ids = {press["id"] for press in presses}
    await tg.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] in ids,
                      count=len(ids))
    answers = [tg.callback_answers[press["id"]] for press in presses]
    assert sum("on its way already" in (a.get("text") or "") for a in answers) == 12
    assert kie.count("download-url") == 3  # one per person's result, not one per press
    first_expired = min(c.time for c in tg.calls_of("sendMessage")
                        if "has expired" in c.params["text"])
    assert hello.time < first_expired  # the bystander did not wait for Kie
    await asyncio.sleep(0.5)
    assert sum("has expired" in c.params["text"] for c in tg.calls_of("sendMessage")) == 3


async def test_a_result_past_kies_retention_is_sent_again_from_telegrams_file(tg, kie, bot, store):
    """A day on, Kie's links are gone but Telegram's file is not: sent by file_id, with no
    request to Kie and no download, free; presses while it is on its way send it once."""
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox for the ages")
    [first] = await tg.wait_for("sendPhoto")
    [generation] = await settled(store, 42, 1)
    await age(store, generation.id)
    kie.expire(generation.task_id)
    ledger_before = await store.ledger(42, 100)
    traffic = kie_traffic(kie)

    listing = await history(alice)
    assert labels(listing) == ["📤 Send #1 again"]
    file_id = photo_id(first.response)
    tg.slow("sendPhoto", 0.3, when=lambda p: p.get("photo") == file_id)  # presses meanwhile
    presses = [tg.press(alice.user, listing, buttons(listing)[0]["callback_data"])
               for _ in range(3)]
    [_, again] = await tg.wait_for("sendPhoto", count=2)
    assert again.params["photo"] == file_id and again.params["chat_id"] == 42
    assert "a fox for the ages" in again.params["caption"]
    assert "nothing charged" in again.params["caption"]
    ids = {press["id"] for press in presses}
    answers = await tg.wait_for("answerCallbackQuery",
                                lambda c: c.params["callback_query_id"] in ids, count=3)
    assert sum("on its way already" in (a.params.get("text") or "") for a in answers) == 2
    await asyncio.sleep(0.5)
    assert len(tg.calls_of("sendPhoto")) == 2
    assert kie_traffic(kie) == traffic
    assert await store.ledger(42, 100) == ledger_before
    assert (await store.get_generation(generation.id)).state == GenerationState.DELIVERED


async def test_an_album_is_sent_again_from_telegrams_files_in_order(tg, kie, bot, store):
    kie.default_plan = TaskPlan(urls=2)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "two foxes", model="Imagen 4 Fast", options=("2 ·",))
    [album] = await tg.wait_for("sendMediaGroup")
    [generation] = await settled(store, 42, 1)
    file_ids = [photo_id(message) for message in album.response]
    assert await store.delivered_files(generation.id) == [
        DeliveredFile("photo", file_id) for file_id in file_ids]
    await age(store, generation.id)
    kie.expire(generation.task_id)
    traffic = kie_traffic(kie)

    await alice.press(await history(alice), "📤 Send #1 again")
    [_, again] = await tg.wait_for("sendMediaGroup", count=2)
    assert [(m["type"], m["media"]) for m in again.params["media"]] == [
        ("photo", file_id) for file_id in file_ids]
    assert "two foxes" in again.params["media"][0]["caption"]
    footer = await alice.told("nothing charged")
    assert buttons(footer.params)  # the result's buttons follow the album, as at delivery
    assert kie_traffic(kie) == traffic
    assert len(await charges(store, 42)) == 1


async def test_a_refused_file_id_past_kies_retention_says_expired_and_asks_kie_nothing(
        tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox Telegram forgot")
    await tg.wait_for("sendPhoto")
    [generation] = await settled(store, 42, 1)
    [held] = await store.delivered_files(generation.id)
    tg.forget_file(held.file_id)
    await age(store, generation.id)
    ledger_before = await store.ledger(42, 100)
    traffic = kie_traffic(kie)

    await alice.press(await history(alice), "📤")
    told = await alice.told("has expired")
    assert "Nothing was charged" in told.params["text"]
    [_, refused] = tg.calls_of("sendPhoto")
    assert refused.params["photo"] == held.file_id and not refused.ok
    assert kie_traffic(kie) == traffic  # Kie's links are known gone: not tried
    assert await store.ledger(42, 100) == ledger_before


async def test_send_again_is_offered_only_where_it_can_work(tg, kie, bot, store):
    """📤 for a result Telegram holds a file of, whatever its age, and for one it holds none of
    while Kie keeps it; none for one past Kie's retention with no file (a forged press is told
    it expired, and Kie is not asked)."""
    kie.default_plan = TaskPlan(reads_before_done=0)
    alice = Person(tg, 42, "Alice")
    prompts = ("an old fox kept", "an old fox lost", "a new fox lost")
    for n, prompt in enumerate(prompts, 1):
        await generate(alice, prompt, model="Imagen 4 Fast")
        await tg.wait_for("sendPhoto", count=n)
    kept, old_lost, new_lost = reversed(await settled(store, 42, 3))
    for generation in (kept, old_lost):
        await age(store, generation.id)
    for generation in (old_lost, new_lost):
        await forget_files(store, generation.id)
    traffic = kie_traffic(kie)

    listing = await history(alice)  # newest first: 1 new fox lost, 2 old fox lost, 3 kept
    assert "2. 🖼 Imagen 4 Fast · delivered" in listing["text"]
    assert labels(listing) == ["📤 Send #1 again", "📤 Send #3 again"]
    answer = await alice.press(listing, "", data=Resend(generation=old_lost.id).pack())
    assert answer["show_alert"] and "has expired" in answer["text"]
    await asyncio.sleep(0.2)
    assert len(tg.calls_of("sendPhoto")) == 3
    assert kie_traffic(kie) == traffic


@pytest.mark.parametrize("kind, command, model, plan, method", [
    ("video", "/video", "Wan", TaskPlan(reads_before_done=1, content_type="video/mp4"), "sendVideo"),
    ("audio", "/music", "Suno v4.5", TaskPlan(reads_before_done=1), "sendMediaGroup"),
])
async def test_videos_and_songs_are_sent_again_as_their_own_kind_of_file(
        tg, kie, bot, store, kind, command, model, plan, method):
    kie.default_plan = plan
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox by the sea", model, command=command)
    [first] = await tg.wait_for(method)
    [generation] = await settled(store, 42, 1)
    messages = first.response if isinstance(first.response, list) else [first.response]
    held = [DeliveredFile(kind, message[kind]["file_id"]) for message in messages]
    assert await store.delivered_files(generation.id) == held
    await age(store, generation.id)
    kie.expire(generation.task_id)
    traffic = kie_traffic(kie)

    await alice.press(await history(alice), "📤")
    [_, again] = await tg.wait_for(method, count=2)
    media = again.params.get("media") or [{"type": kind, "media": again.params[kind]}]
    assert [(m["type"], m["media"]) for m in media] == [(f.kind, f.file_id) for f in held]
    assert kie_traffic(kie) == traffic
