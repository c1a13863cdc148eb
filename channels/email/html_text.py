"""HTML mail to clean plain text, keeping quoted history recognisable (``> `` prefixes)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = frozenset({"script", "style", "head", "title", "xml", "o:p"})
_BLOCK = frozenset(
    {
        "p", "div", "table", "tr", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
        "pre", "hr", "section", "article", "header", "footer", "center", "dl", "dt", "dd",
    }
)  # fmt: skip
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip = 0
        self.quote = 0
        self.pre = 0
        self.images: list[str] = []

    def _break(self) -> None:
        line = "".join(self.current)
        if not self.pre:
            line = _SPACES.sub(" ", line).strip()
        self.lines.append(("> " * self.quote) + line if line or self.quote else line)
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "br":
            self._break()
        elif tag == "blockquote":
            self._break()
            self.quote += 1
        elif tag == "li":
            self._break()
            self.current.append("- ")
        elif tag == "img":
            src = dict(attrs).get("src") or ""
            if src.lower().startswith("cid:"):
                self.images.append(src[4:])
        elif tag in ("td", "th"):
            self.current.append(" ")
        elif tag in _BLOCK:
            if tag == "pre":
                self.pre += 1
            self._break()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "blockquote":
            self._break()
            self.quote = max(0, self.quote - 1)
        elif tag in _BLOCK or tag == "li":
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            self._break()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            parts = data.split("\n")
            for part in parts[:-1]:
                self.current.append(part)
                self._break()
            self.current.append(parts[-1])
        else:
            self.current.append(data.replace("\n", " "))


def html_to_text(html: str) -> tuple[str, tuple[str, ...]]:
    """Readable text of an HTML body, and the ``cid:`` ids of the images it shows inline."""
    converter = _Converter()
    try:
        converter.feed(html)
        converter.close()
    except AssertionError:  # pragma: no cover - html.parser asserts on some broken markup
        pass
    converter._break()
    text = "\n".join(line.rstrip() for line in converter.lines)
    text = _BLANKS.sub("\n\n", text).strip()
    return text, tuple(converter.images)
