"""A Telegram message as the chat page shows it: its text rendered from Telegram's entities into
HTML in which everything is escaped but the tags Telegram itself formats with."""

from __future__ import annotations

import html
import re
from typing import Any

Message = dict[str, Any]

# Entity type -> (opening tag, closing tag); links and code blocks are built below.
_TAGS = {
    "bold": ("<b>", "</b>"), "italic": ("<i>", "</i>"), "underline": ("<u>", "</u>"),
    "strikethrough": ("<s>", "</s>"), "spoiler": ('<span class="spoiler">', "</span>"),
    "code": ("<code>", "</code>"), "blockquote": ("<blockquote>", "</blockquote>"),
    "expandable_blockquote": ("<blockquote>", "</blockquote>"),
}
_SAFE_SCHEMES = ("http://", "https://", "tg://")
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)]")


def _link(url: str) -> str:
    return f'<a href="{html.escape(url)}" target="_blank" rel="noopener noreferrer">'


def _tags(entity: dict[str, Any], text: str) -> tuple[str, str]:
    kind = entity.get("type")
    if kind == "text_link":
        url = str(entity.get("url", ""))
        return (_link(url), "</a>") if url.startswith(_SAFE_SCHEMES) else ("", "")
    if kind == "url":
        return (_link(text), "</a>") if text.startswith(_SAFE_SCHEMES) else ("", "")
    if kind == "pre":
        return "<pre>", "</pre>"
    return _TAGS.get(str(kind), ("", ""))


def _plain(text: str, in_link: bool) -> str:
    """Escaped text; a bare http(s) URL outside a link becomes one (the bot's links often are)."""
    if in_link:
        return html.escape(text)
    out, last = [], 0
    for match in _URL.finditer(text):
        out.append(html.escape(text[last:match.start()]))
        out.append(f"{_link(match.group())}{html.escape(match.group())}</a>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def to_html(text: str, entities: list[dict[str, Any]] | None) -> str:
    """`text` with its entities as HTML. Offsets count UTF-16 code units, as Telegram's do;
    entities nest (Telegram's parser makes them so), so one stack closes them in order."""
    units = text.encode("utf-16-le", "surrogatepass")

    def part(start: int, end: int) -> str:
        return units[start * 2:end * 2].decode("utf-16-le", "surrogatepass")

    spans = sorted(((int(e["offset"]), int(e["offset"]) + int(e["length"]), e)
                    for e in entities or [] if int(e.get("length", 0)) > 0),
                   key=lambda s: (s[0], -s[1]))
    out: list[str] = []
    stack: list[tuple[int, str, bool]] = []  # (end, closing tag, is a link)
    position = 0

    def advance(to: int) -> None:
        nonlocal position
        if to > position:
            out.append(_plain(part(position, to), any(link for _, _, link in stack)))
            position = to

    for start, end, entity in spans:
        while stack and stack[-1][0] <= start:
            advance(stack[-1][0])
            out.append(stack.pop()[1])
        advance(start)
        opening, closing = _tags(entity, part(start, end))
        out.append(opening)
        stack.append((min(end, stack[-1][0]) if stack else end, closing, closing == "</a>"))
    while stack:
        advance(stack[-1][0])
        out.append(stack.pop()[1])
    advance(len(units) // 2)
    return "".join(out).replace("\n", "<br>")
