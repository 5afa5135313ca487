"""What the demo's fake Kie.ai delivers: a picture painted for each prompt (a landscape in the
prompt's colour), a short video and a short tune (static/sample.mp4, static/sample.mp3), each
task finishing after a few seconds as a real one would, only sooner.

The two files were made once with ffmpeg (Debian's package), and are remade with:
    ffmpeg -f lavfi -i "gradients=s=320x180:d=3:r=15:c0=0x1e3a8a:c1=0xf97316:c2=0xfde047:n=3:speed=0.05" \
        -c:v libx264 -profile:v baseline -pix_fmt yuv420p -crf 30 -movflags +faststart -an sample.mp4
    ffmpeg -f lavfi -i "aevalsrc='0.3*sin(2*PI*t*(440+83.25*gte(t,0.5)+136*gte(t,1)+220.75*gte(t,1.5)))\
*exp(-4*mod(t,0.5))':s=22050:d=2" -c:a libmp3lame -b:a 48k sample.mp3
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import math
import struct
import zlib
from pathlib import Path
from typing import Any

from testkit.fakes.kie import SUNO_MODELS, FakeKie, Task, TaskPlan

STATIC = Path(__file__).resolve().parent / "static"
# Seconds a task takes on the demo's Kie.ai, by kind.
DURATIONS = {"image": 4.0, "video": 9.0, "audio": 7.0}
SIZE = 384  # the painted pictures are SIZE x SIZE

_COLOURS = {
    "red": 0.0, "fox": 0.05, "orange": 0.07, "autumn": 0.08, "gold": 0.12, "yellow": 0.15,
    "sun": 0.12, "green": 0.33, "forest": 0.36, "teal": 0.48, "sea": 0.55, "blue": 0.6,
    "night": 0.66, "purple": 0.78, "violet": 0.76, "pink": 0.9,
}


def _png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t),
            round(a[2] + (b[2] - a[2]) * t))


@functools.lru_cache(maxsize=64)
def paint(prompt: str, seed: str) -> bytes:
    """A landscape for `prompt`: a sky, a sun and three ridges in the hue its first colour word
    names (or one drawn from the prompt), laid out by `seed` so that every task's differs."""
    digest = hashlib.sha256(f"{prompt}\0{seed}".encode()).digest()
    words = prompt.lower()
    found = [(words.find(word), hue) for word, hue in _COLOURS.items() if word in words]
    hue = min(found)[1] if found else digest[0] / 255
    top, horizon = _rgb(hue + 0.55, 0.65, 0.35), _rgb(hue + 0.05, 0.45, 1.0)
    sun = _rgb(hue + 0.1, 0.35, 1.0)
    sun_x, sun_y, sun_r = SIZE * (0.25 + digest[1] / 512), SIZE * (0.25 + digest[2] / 1024), SIZE * 0.09
    ridges = []
    for layer in range(3):
        phase, freq = digest[3 + layer] / 40, 2 + digest[6 + layer] % 3
        base = SIZE * (0.5 + 0.14 * layer)
        heights = [base - SIZE * (0.07 * math.sin(freq * math.pi * x / SIZE + phase)
                                  + 0.03 * math.sin(5.3 * math.pi * x / SIZE + 2 * phase))
                   for x in range(SIZE)]
        colour = _rgb(hue, 0.55 + 0.1 * layer, 0.55 - 0.15 * layer)
        ridges.append((heights, bytes(colour)))
    rows = []
    for y in range(SIZE):
        sky = bytes(_mix(top, horizon, min(y / (SIZE * 0.62), 1.0)))
        row = bytearray(sky * SIZE)
        dy = y - sun_y
        if abs(dy) < sun_r:
            half = math.sqrt(sun_r * sun_r - dy * dy)
            start, end = max(int(sun_x - half), 0), min(int(sun_x + half), SIZE)
            row[start * 3:end * 3] = bytes(sun) * (end - start)
        for heights, fill in ridges:
            for x in range(SIZE):
                if y >= heights[x]:
                    row[x * 3:x * 3 + 3] = fill
        rows.append(bytes(row))
    return _png(SIZE, SIZE, rows)


def sample_photo() -> bytes:
    """The photo the page's 📷 button sends, for /image and /video from a photo."""
    return paint("a green valley", "sample")


def _kind(kie: FakeKie, body: dict[str, Any]) -> str:
    """What a create asks for, from its body: the market's model rules say; Suno is music;
    the dedicated APIs that take a duration (Runway) or are Veo make videos; the rest pictures."""
    model = body.get("model")
    if "input" in body and isinstance(model, str) and model in kie.rules:
        return kie.rules[model].kind
    if model in SUNO_MODELS:
        return "audio"
    if "duration" in body or str(model).startswith("veo"):
        return "video"
    return "image"


def result_content(task: Task, name: str) -> tuple[bytes, str] | None:
    """A task's result file: the painted picture, or the bundled video or tune."""
    if name.startswith("cover") or task.content_type.startswith("image/"):
        prompt = str(task.input.get("prompt") or task.input.get("title") or "")
        return paint(prompt, f"{task.task_id}/{name}"), "image/png"
    if task.content_type.startswith("video/"):
        return (STATIC / "sample.mp4").read_bytes(), "video/mp4"
    if task.content_type.startswith("audio/"):
        return (STATIC / "sample.mp3").read_bytes(), "audio/mpeg"
    return None


def stage(kie: FakeKie) -> None:
    """Make `kie` the demo's: tasks that take a few seconds, and real files."""
    kie.plan = lambda body: TaskPlan(finish_after=DURATIONS[_kind(kie, body)])
    kie.result_content = result_content
    kie.credits = 10_000
