"""Cutting a long text into messages Telegram accepts (4,096 characters each).

Telegram counts the text's characters after entity parsing
(https://core.telegram.org/bots/api#sendmessage); we send plain text (no parse mode; at most a
quote's blockquote entity), so Python's ``len`` is the measure... almost: Telegram counts
UTF-16 code units, so a character outside the BMP (most emoji) counts twice. We measure in
UTF-16 units to be safe, as entities' offsets and lengths are.
"""

from __future__ import annotations

LIMIT = 4096
_SEPARATORS = ("\n\n", "\n", " ")


def split_text(text: str, *, limit: int = LIMIT, ahead: int = 0) -> list[str]:
    """``text`` as parts of at most ``limit`` UTF-16 units, cut at the last paragraph break
    before the limit, else the last line break, else the last space, else anywhere.

    ``ahead``: UTF-16 units that go before the first part in its message (a quote of the
    message answered), which leaves that part less room. Measured here rather than split
    with the text: a cut in or just after them would send them as a message of their own.
    """
    parts: list[str] = []
    rest = text
    room = limit - ahead
    while utf16_units(rest) > room:
        window = _prefix(rest, room)
        cut = -1
        for separator in _SEPARATORS:
            cut = window.rfind(separator)
            if cut > 0:
                head, rest = rest[:cut], rest[cut + len(separator) :]
                break
        else:
            head, rest = window, rest[len(window) :]
        if head.strip():
            parts.append(head.rstrip())
            room = limit
    if rest.strip() or not parts:
        parts.append(rest)
    return parts


def utf16_units(text: str) -> int:
    """``text``'s length as Telegram counts it, lengths and offsets of entities included."""
    return len(text.encode("utf-16-le")) // 2


def _prefix(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` UTF-16 units."""
    if len(text) * 2 <= limit:
        return text
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return text[:index]
    return text
