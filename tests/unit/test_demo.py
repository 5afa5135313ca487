"""The demo's pieces that need no server: a message's text as the page's HTML (escaped but for
Telegram's own tags), and what the demo's Kie.ai makes (pictures, durations by kind, files)."""

from __future__ import annotations

from typing import Any

from demo.media import DURATIONS, SIZE, STATIC, paint, result_content, stage
from demo.render import to_html
from testkit.fakes.kie import FakeKie, Task, TaskPlan
from testkit.fakes.telegram import image_size, parse_html


def rendered(source: str) -> str:
    """What the page shows of a text the bot sent with parse_mode=HTML."""
    return to_html(*parse_html(source))


def test_everything_is_escaped_but_telegrams_own_tags() -> None:
    assert rendered("<b>Hi</b> &lt;img src=x onerror=alert(1)&gt; &amp; <i>you</i>") == (
        "<b>Hi</b> &lt;img src=x onerror=alert(1)&gt; &amp; <i>you</i>")
    assert to_html('<script>alert("x")</script>', []) == (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;")


def test_nested_entities_close_in_order_and_offsets_count_utf16() -> None:
    assert rendered("🦊 <b>fox <i>in <u>snow</u></i></b> 🌨 <s>x</s>") == (
        "🦊 <b>fox <i>in <u>snow</u></i></b> 🌨 <s>x</s>")
    assert rendered("<pre>a\nb</pre><code>&lt;c&gt;</code>") == "<pre>a<br>b</pre><code>&lt;c&gt;</code>"
    assert rendered("<tg-spoiler>secret</tg-spoiler>") == '<span class="spoiler">secret</span>'


def test_links_keep_only_safe_schemes_and_bare_urls_become_links() -> None:
    link = '<a href="{0}" target="_blank" rel="noopener noreferrer">{1}</a>'
    assert rendered('<a href="https://kie.ai/?a=1&amp;b=2">Kie</a>') == link.format(
        "https://kie.ai/?a=1&amp;b=2", "Kie")
    assert to_html("click", [{"type": "text_link", "offset": 0, "length": 5,
                              "url": "javascript:alert(1)"}]) == "click"
    assert to_html('Open http://127.0.0.1:8089/dashboard/login?t=a"b. Then', []) == (
        "Open " + link.format("http://127.0.0.1:8089/dashboard/login?t=a", "http://127.0.0.1:8089/dashboard/login?t=a")
        + "&quot;b. Then")


def test_pictures_are_png_of_the_prompt_and_differ_per_task() -> None:
    fox = paint("a red fox", "task-1")
    assert fox.startswith(b"\x89PNG") and image_size(fox) == (SIZE, SIZE)
    assert paint("a red fox", "task-1") == fox
    assert paint("a red fox", "task-2") != fox


def task(body: dict[str, Any], content_type: str) -> Task:
    return Task("task_1", str(body.get("model")), body, TaskPlan(), [], create_time=0,
                update_time=0, content_type=content_type)


def test_tasks_take_a_few_seconds_by_kind_and_deliver_real_files() -> None:
    kie = FakeKie()
    stage(kie)
    assert kie.plan is not None
    image = {"model": "google/imagen4", "input": {"prompt": "a fox"}}
    video = {"model": "kling/v2-1-master-text-to-video", "input": {"prompt": "a boat"}}
    for body, kind in ((image, "image"), (video, "video"),
                       ({"model": "V4_5", "prompt": "a tune"}, "audio"),
                       ({"prompt": "a boat", "duration": 5, "quality": "720p"}, "video"),
                       ({"prompt": "a boat", "model": "veo3_fast"}, "video"),
                       ({"prompt": "a fox", "size": "1:1"}, "image")):
        assert kie.plan(body).finish_after == DURATIONS[kind], body
    assert kie.result_content is not None
    picture = result_content(task(image, "image/png"), "0.png")
    assert picture is not None and picture[0].startswith(b"\x89PNG") and picture[1] == "image/png"
    assert result_content(task(video, "video/mp4"), "0.mp4") == (
        (STATIC / "sample.mp4").read_bytes(), "video/mp4")
    song = result_content(task({"model": "V4_5"}, "audio/mpeg"), "0.mp3")
    assert song is not None and song[1] == "audio/mpeg" and len(song[0]) > 1000
