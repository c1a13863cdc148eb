"""Turning a mail's bytes into text when its charset label is wrong, missing or too narrow.

Real mail lies about its charset: Foxmail and QQ Mail label GBK text ``gb2312``, Outlook labels
Windows-1252 text ``iso-8859-1``, and some clients send raw 8-bit headers with no label at all.
"""

from __future__ import annotations

import codecs
from email.header import decode_header

# A label mapped to the superset that real senders mean by it. GB2312 and GBK are subsets of
# GB18030, so decoding with GB18030 never fails where they would and reads their extra characters
# (WHATWG Encoding Standard, "gbk" decoder = gb18030). ISO-8859-1 is read as Windows-1252 for
# the same reason (WHATWG treats the two labels as one).
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "big5": "big5hkscs",
    "cp950": "big5hkscs",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "ks_c_5601-1987": "cp949",
    "iso-2022-jp": "iso2022_jp_ext",
    "shift_jis": "cp932",
    "utf8": "utf-8",
}

# Tried in this order when the declared charset fails: UTF-8 is self-checking, GB18030 covers
# most legacy Chinese mail, and Windows-1252 decodes any byte.
_FALLBACKS = ("utf-8", "gb18030", "cp1252")


def codec_for(label: str | None) -> str | None:
    """The Python codec that best reads text labelled ``label``; ``None`` if unknown."""
    if not label:
        return None
    name = label.strip().strip('"').lower()
    name = _SUPERSETS.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(data: bytes, declared: str | None) -> str:
    """Decode ``data`` with its declared charset, falling back to likely ones; never raises."""
    tried: list[str] = []
    for candidate in (codec_for(declared), *_FALLBACKS):
        if candidate is None or candidate in tried:
            continue
        tried.append(candidate)
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("utf-8", errors="replace")  # pragma: no cover - cp1252 decodes almost all


def decode_header_value(raw: str) -> str:
    """An unfolded header with RFC 2047 encoded words decoded by :func:`decode_bytes`.

    The standard library decodes encoded words with the label as given, so a GBK subject
    labelled ``gb2312`` turns into replacement characters; this reads it with GB18030. Raw 8-bit
    bytes (which the parser keeps as surrogate escapes) are decoded the same way.
    """
    unfolded = "".join(raw.splitlines())
    try:
        pieces = decode_header(unfolded)
    except (ValueError, LookupError, AssertionError):
        return clean_text(unfolded)
    out: list[str] = []
    for chunk, charset in pieces:
        if isinstance(chunk, bytes):
            if charset is None:
                out.append(clean_text(chunk.decode("ascii", "surrogateescape")))
            else:
                out.append(decode_bytes(chunk, charset))
        else:
            out.append(clean_text(chunk))
    return "".join(out).strip()


def clean_text(text: str) -> str:
    """Text the parser read with ``surrogateescape``: decode its raw 8-bit bytes properly.

    Raw 8-bit header bytes reach Python as lone surrogates, which no database or JSON encoder
    accepts; every header string we keep passes through here.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "surrogateescape")
        return decode_bytes(data, None)
    return text
