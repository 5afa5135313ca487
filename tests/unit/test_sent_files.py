"""What the bot keeps of a result just sent (delivery.sent_files): the file Telegram holds of
each message, of the kind that sends it again."""

from __future__ import annotations

from typing import Any

from aiogram.types import Message

from bot.services.delivery import BY_FILE_KIND, sent_files
from bot.store import DeliveredFile


def message(**content: Any) -> Message:
    return Message.model_validate({"message_id": 1, "date": 0,
                                   "chat": {"id": 42, "type": "private"}, **content})


def file(file_id: str, **more: Any) -> dict[str, Any]:
    return {"file_id": file_id, "file_unique_id": f"u-{file_id}", **more}


def test_a_photo_is_kept_at_its_largest_size_and_an_album_in_its_order() -> None:
    sizes = [file("big", width=1280, height=720), file("thumb", width=90, height=51)]
    album = [message(photo=sizes), message(photo=[file("second", width=640, height=640)])]
    assert sent_files(album) == [DeliveredFile("photo", "big"), DeliveredFile("photo", "second")]


def test_each_kind_is_kept_as_what_sends_it_again() -> None:
    video = file("v", width=1, height=1, duration=5)
    sent = [message(video=video), message(audio=file("a", duration=60)),
            message(document=file("d")),
            # Telegram sets `document` too on an animation: the animation is what it is.
            message(animation=video, document=file("v"))]
    assert sent_files(sent) == [DeliveredFile("video", "v"), DeliveredFile("audio", "a"),
                                DeliveredFile("document", "d"), DeliveredFile("animation", "v")]
    assert {f.kind for f in sent_files(sent)} <= set(BY_FILE_KIND)


def test_links_leave_nothing_to_keep() -> None:
    assert sent_files([message(text="Imagen 4\n1")]) == []
