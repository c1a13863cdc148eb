"""Fast reads of MIME header fields from their raw text.

``policy.default`` builds a full header object (RFC 5322 parse tree) on every ``msg.get``; that
was two thirds of our parse time. The few fields we branch on (Content-Type, its charset and
format, Content-Disposition, the loop markers) are read from the raw text instead; the structure
of the mail is still the standard parser's.
"""

from __future__ import annotations

import re
from email.message import Message

from channels.email.charsets import clean_text

_PARAM = re.compile(r';\s*([A-Za-z0-9*_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')


def raw_field(part: Message, name: str) -> str | None:
    """The first ``name`` header of ``part`` as written, unfolded; ``None`` if absent."""
    wanted = name.lower()
    for key, value in part.raw_items():
        if key.lower() == wanted:
            return " ".join(clean_text(str(value)).splitlines()).strip()
    return None


def split_field(value: str | None) -> tuple[str, dict[str, str]]:
    """``text/plain; charset="gbk"`` -> ``("text/plain", {"charset": "gbk"})``."""
    if not value:
        return "", {}
    main, _, rest = value.partition(";")
    params = {k.lower(): v.strip('"') for k, v in _PARAM.findall(";" + rest)}
    return main.strip().lower(), params


def content_type(part: Message) -> tuple[str, dict[str, str]]:
    """The part's type and parameters, with RFC 2045 5.2's default for a missing or bad one."""
    ctype, params = split_field(raw_field(part, "Content-Type"))
    if ctype.count("/") != 1 or " " in ctype:
        return part.get_default_type(), {}
    return ctype, params


def disposition(part: Message) -> str | None:
    value, _ = split_field(raw_field(part, "Content-Disposition"))
    return value or None
