"""Delivery by kind, driven directly: videos and audios by URL, uploaded when Telegram refuses the
URL, links past the upload limit (streamed, never held in memory), albums of one kind."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from aiohttp import web

from bot.services.delivery import UPLOAD_LIMIT, Delivery, Outcome, sniff
from bot.store import Generation, GenerationState
from testkit.fakes.kie import TaskPlan
from testkit.fakes.server import AppServer
from testkit.fakes.telegram import UploadedFile
from tests.app import test_tracker
from tests.app.test_tracker import Rig, create_task

rig = test_tracker.rig  # the tracker's rig: the real Delivery against both fakes

MB = 1024 * 1024
MODELS = {"image": "imagen4", "video": "kling", "audio": "suno"}


async def finished(rig: Rig, kind: str, urls: list[str], user_id: int = 42) -> Generation:
    """A charged generation of `kind` whose task succeeded with `urls`, due for delivery."""
    await rig.store.upsert_user(user_id, username=None, first_name="Alice", last_name=None,
                                tg_language="en", starting_credits=500)
    draft = await rig.store.create_draft(user_id=user_id, chat_id=user_id,
                                         request_message_id=None, kind=kind,
                                         prompt="a fox at dawn", model=MODELS[kind])
    generation = await rig.store.start_generation(
        draft.id, revision=draft.revision, input={"prompt": "a fox at dawn"}, price=100,
        deadline_at=time.time() + 600)
    await rig.store.mark_submitted(generation.id, "task_x", time.time() + 600)
    done = await rig.store.mark_succeeded(generation.id, urls, deliver_by=time.time() + 600,
                                          lease_until=time.time() + 600)
    assert done is not None
    return done


async def result_of(rig: Rig, kie, kind: str, plan: TaskPlan) -> Generation:
    task_id = await create_task(kie, plan)
    return await finished(rig, kind, kie.tasks[task_id].result_urls)


def delivery_of(rig: Rig) -> Delivery:
    delivery = rig.tracker.delivery
    assert isinstance(delivery, Delivery)
    return delivery


async def state_of(rig: Rig, generation: Generation) -> GenerationState:
    return (await rig.store.get_generation(generation.id)).state


def uploads(tg, method: str) -> list[UploadedFile]:
    field = method.removeprefix("send").lower()
    return [c.params[field] for c in tg.calls_of(method)
            if c.ok and isinstance(c.params.get(field), UploadedFile)]


async def test_a_video_is_sent_with_send_video_by_url(rig, kie, tg):
    generation = await result_of(rig, kie, "video", TaskPlan(content_type="video/mp4"))
    assert await delivery_of(rig).deliver(generation) is Outcome.DELIVERED
    [video] = await tg.wait_for("sendVideo")
    assert video.params["video"] == generation.result_urls[0]
    assert video.params["supports_streaming"] in (True, "true")
    assert "a fox at dawn" in video.params["caption"] and "reply_markup" in video.params
    assert not tg.calls_of("sendPhoto") and not tg.calls_of("sendDocument")
    assert await state_of(rig, generation) is GenerationState.DELIVERED


async def test_a_video_telegram_cannot_fetch_is_downloaded_and_uploaded(rig, kie, tg):
    """Over the 10 MB photo limit, still a video (not a document): the limit is the photo's."""
    tg.refuse_urls = True
    generation = await result_of(rig, kie, "video",
                                 TaskPlan(content_type="video/mp4", file_size=12 * MB))
    assert await delivery_of(rig).deliver(generation) is Outcome.DELIVERED
    [upload] = uploads(tg, "sendVideo")
    assert upload.size == 12 * MB and upload.filename == "0.mp4"
    assert [c.ok for c in tg.calls_of("sendVideo")] == [False, True]  # the URL, then the upload
    assert not tg.calls_of("sendDocument")
    assert await state_of(rig, generation) is GenerationState.DELIVERED


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting the body bytes the bot actually reads."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.read = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = response.stream
        assert isinstance(body, httpx.AsyncByteStream)
        counter = self

        class Counted(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for chunk in body:
                    counter.read += len(chunk)
                    yield chunk

            async def aclose(self) -> None:
                await body.aclose()

        return httpx.Response(response.status_code, headers=response.headers, stream=Counted(),
                              extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_video_past_the_upload_limit_becomes_links_and_counts_as_delivered(rig, kie, tg):
    tg.refuse_urls = True
    generation = await result_of(rig, kie, "video",
                                 TaskPlan(content_type="video/mp4", file_size=60 * MB))
    real = delivery_of(rig)
    counting = CountingTransport()
    async with httpx.AsyncClient(transport=counting) as http:
        delivery = Delivery(real.bot, real.store, kie=real.kie, notifier=real.notifier,
                            i18n=real.i18n, http=http)
        assert await delivery.deliver(generation) is Outcome.DELIVERED
    [links] = await tg.wait_for("sendMessage", lambda c: "<a href" in c.params["text"])
    assert generation.result_urls[0] in links.params["text"]
    assert "Too large" in links.params["text"] and "reply_markup" in links.params
    assert counting.read < MB  # its declared length was enough: the body was never read
    assert kie.count("download-url") == 0  # a fresh link would not make it smaller
    assert not uploads(tg, "sendVideo") and not uploads(tg, "sendDocument")
    assert await state_of(rig, generation) is GenerationState.DELIVERED
    assert await rig.refunds() == 0


@pytest.fixture
async def endless_video() -> AsyncIterator[str]:
    """A host streaming a 60 MB video with no declared length, from one reused buffer."""
    chunk = bytes(MB)

    async def video(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(60):
                await response.write(chunk)
        except ConnectionError:
            pass  # the bot hung up once it had seen enough
        return response

    app = web.Application()
    app.router.add_get("/big.mp4", video)
    async with AppServer(app) as server:
        yield f"{server.url}/big.mp4"


async def test_a_download_without_a_declared_length_streams_and_stops_at_the_limit(
        rig, tg, endless_video):
    """The download goes to disk chunk by chunk: memory stays far below the file's size."""
    tg.refuse_urls = True
    generation = await finished(rig, "video", [endless_video])
    tracemalloc.start()
    try:
        outcome = await delivery_of(rig).deliver(generation)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome is Outcome.DELIVERED
    assert peak < 10 * MB < UPLOAD_LIMIT
    [links] = await tg.wait_for("sendMessage", lambda c: "<a href" in c.params["text"])
    assert endless_video in links.params["text"] and "Too large" in links.params["text"]
    assert await state_of(rig, generation) is GenerationState.DELIVERED


async def test_two_audio_tracks_are_one_album_of_audios_then_the_balance(rig, kie, tg):
    generation = await result_of(rig, kie, "audio", TaskPlan(content_type="audio/mpeg", urls=2))
    generation = replace(generation, result_files=[
        {"title": "Dawn Fox", "performer": "Suno", "duration": 121.6}, {"title": "Dusk Fox"}])
    assert await delivery_of(rig).deliver(generation) is Outcome.DELIVERED
    [album] = await tg.wait_for("sendMediaGroup")
    media = album.params["media"]
    assert [m["type"] for m in media] == ["audio", "audio"]
    assert [m["media"] for m in media] == generation.result_urls
    assert "a fox at dawn" in media[0]["caption"] and not media[1].get("caption")
    assert (media[0]["title"], media[0]["performer"], media[0]["duration"]) == \
        ("Dawn Fox", "Suno", 122)
    assert media[1]["title"] == "Dusk Fox" and "performer" not in media[1]
    [balance] = await tg.wait_for("sendMessage", lambda c: "Balance" in c.params["text"])
    assert balance.time >= album.time and "reply_markup" in balance.params
    assert not tg.calls_of("sendAudio") and not tg.calls_of("sendPhoto")
    assert await state_of(rig, generation) is GenerationState.DELIVERED


async def test_one_uploaded_audio_carries_its_title_and_an_mp3_name(rig, kie, tg):
    tg.refuse_urls = True
    generation = await result_of(rig, kie, "audio", TaskPlan(content_type="audio/mpeg"))
    generation = replace(generation, result_files=[{"title": "Fox", "performer": "Suno"}])
    assert await delivery_of(rig).deliver(generation) is Outcome.DELIVERED
    [sent] = await tg.wait_for("sendAudio")
    assert isinstance(sent.params["audio"], UploadedFile)
    assert sent.params["audio"].filename == "0.mp3"
    assert (sent.params["title"], sent.params["performer"]) == ("Fox", "Suno")


async def test_an_html_page_where_a_video_was_expected_is_not_uploaded(rig, kie, tg):
    tg.refuse_urls = True
    generation = await result_of(rig, kie, "video", TaskPlan(content_type="text/html"))
    assert await delivery_of(rig).deliver(generation) is Outcome.DELIVERED
    [links] = await tg.wait_for("sendMessage", lambda c: "<a href" in c.params["text"])
    assert generation.result_urls[0] in links.params["text"]
    assert "Too large" not in links.params["text"]
    for method in ("sendVideo", "sendDocument", "sendPhoto"):
        assert not uploads(tg, method)
    assert await rig.refunds() == 0


async def test_eleven_pictures_go_as_two_albums_and_no_lone_one(rig, kie, tg):
    generation = await result_of(rig, kie, "image", TaskPlan(urls=11))
    assert await delivery_of(rig).deliver(generation) is Outcome.DELIVERED
    albums = [c for c in tg.calls_of("sendMediaGroup") if c.ok]
    assert [len(c.params["media"]) for c in albums] == [5, 6]
    sent = [m["media"] for c in albums for m in c.params["media"]]
    assert sent == generation.result_urls  # each once, in order
    assert [bool(m.get("caption")) for c in albums for m in c.params["media"]].count(True) == 1
    assert not [c for c in tg.calls if c.method == "sendMessage" and "<a href" in
                str(c.params.get("text"))]  # no fallback to links
    assert await state_of(rig, generation) is GenerationState.DELIVERED


async def test_a_picture_served_as_octet_stream_is_uploaded_by_its_first_bytes(rig, kie, tg):
    tg.refuse_urls = True
    generation = await result_of(rig, kie, "image",
                                 TaskPlan(content_type="application/octet-stream"))
    assert await delivery_of(rig).deliver(generation) is Outcome.DELIVERED
    [photo] = uploads(tg, "sendPhoto")
    assert photo.filename.endswith(".png")
    assert not [c for c in tg.calls if c.method == "sendMessage" and "<a href" in
                str(c.params.get("text"))]


@pytest.mark.parametrize("head, kind", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00", "video/mp4"),
    (b"ID3\x04\x00\x00\x00", "audio/mpeg"),
    (b"\xff\xfb\x90\x64\x00", "audio/mpeg"),
    (b"<!DOCTYPE html><html>", None),
    (b"<html><body>403", None),
    (b"{\"code\": 404}", None),
    (b"", None),
])
def test_first_bytes_say_what_a_file_is(head, kind):
    assert sniff(head) == kind
