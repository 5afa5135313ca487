"""End to end: /music → Suno (its own API: two tracks, delivered once, when complete) or
ElevenLabs speech → the audio in the chat; failures refunded once."""

from __future__ import annotations

from bot.store import GenerationState
from testkit.chat import Person, buttons
from testkit.e2e import charges, generate, refunds, states_become
from testkit.fakes.kie import TaskPlan
from testkit.timing import stays


async def test_suno_delivers_both_tracks_once_when_complete(tg, kie, bot, store):
    kie.default_plan = TaskPlan(reads_before_done=3)
    alice = Person(tg, 42, "Alice")
    request, _ = await generate(alice, "a calm song about the sea", "Suno v4.5",
                                ("Instrumental",), command="/music")
    [album] = await tg.wait_for("sendMediaGroup")
    media = album.params["media"]
    assert [m["type"] for m in media] == ["audio", "audio"]
    assert all(m.get("title") for m in media)
    assert album.params["reply_parameters"]["message_id"] == request["message_id"]
    [task] = kie.tasks.values()
    assert task.api == "suno"
    assert task.body == {"prompt": "a calm song about the sea", "customMode": False,
                         "instrumental": True, "model": "V4_5"}
    # FIRST_SUCCESS came before SUCCESS: still exactly one delivery.
    assert await states_become(store, {42: GenerationState.DELIVERED}) == \
        {42: GenerationState.DELIVERED}
    assert len(tg.calls_of("sendMediaGroup")) == 1 and tg.calls_of("sendAudio") == []
    [charge] = await charges(store, 42)
    assert charge.amount == -60


async def test_suno_tracks_keep_their_titles_when_the_album_is_sent_again(tg, kie, bot):
    kie.default_plan = TaskPlan(reads_before_done=1)
    tg.fail_next("sendMediaGroup", error_code=502)
    await generate(Person(tg, 42, "Alice"), "rain on a roof", "Suno v4.5", command="/music")
    await tg.wait_for("sendMediaGroup")
    failed, sent = tg.calls_of("sendMediaGroup")
    assert not failed.ok and sent.ok
    [task_id] = kie.tasks
    titles = [track["title"] for track in kie.record(task_id)["response"]["sunoData"]]
    for call in (failed, sent):  # the retry comes from the database, not from the first read
        assert [m.get("title") for m in call.params["media"]] == titles
        assert all(m.get("duration") for m in call.params["media"])


async def test_suno_sensitive_words_are_refunded_with_our_own_reason(tg, kie, bot, store):
    kie.default_plan = TaskPlan(outcome="fail", fail_state="SENSITIVE_WORD_ERROR",
                                fail_msg="contains banned words", reads_before_done=1)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "something rude", "Suno v5", command="/music")
    told = await alice.told("❌ Suno v5")
    assert "the content of the request was refused" in told.params["text"]
    assert "banned" not in told.params["text"]
    assert len(await refunds(store, 42)) == 1 and (await store.get_user(42)).balance == 100


async def test_suno_prompt_over_its_limit_is_not_offered_before_any_charge(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/music " + "la " * 200)
    assert not any(b["text"].startswith("Suno") for b in buttons(picker))
    assert "599 characters" in picker["text"] and "Suno v4.5 (≤ 500)" in picker["text"]
    assert kie.tasks == {} and await charges(store, 42) == []


async def test_speech_reads_the_text_in_the_chosen_voice(tg, kie, bot, store):
    kie.default_plan = TaskPlan(reads_before_done=1)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "Hello, world", "ElevenLabs speech", ("George",), command="/music")
    [audio] = await tg.wait_for("sendAudio")
    assert audio.params["chat_id"] == 42
    [create] = kie.creates
    assert create["model"] == "elevenlabs/text-to-speech-multilingual-v2"
    assert create["input"] == {"text": "Hello, world", "voice": "George"}
    [charge] = await charges(store, 42)
    assert charge.amount == -20


async def test_an_album_is_not_sent_again_when_only_the_balance_line_after_it_fails(tg, kie, bot,
                                                                                   store, timing):
    retry = timing.delivery_retry(0.25)
    kie.default_plan = TaskPlan(reads_before_done=1)
    tg.fail_next("sendMessage", error_code=502, times=10,
                 when=lambda p: "Balance" in str(p.get("text", "")))
    await generate(Person(tg, 42, "Alice"), "one album only", "Suno v4.5", command="/music")
    await tg.wait_for("sendMediaGroup")
    assert await states_become(store, {42: GenerationState.DELIVERED}) == \
        {42: GenerationState.DELIVERED}
    # Past the first delivery retry, had there been one.
    await stays(lambda: len(tg.calls_of("sendMediaGroup")) == 1, 1.5 * retry)
    assert await refunds(store, 42) == []
