"""Separating what the customer just wrote from the history they quoted and their signature.

Each client marks history its own way; the markers below are the ones real clients write
(Gmail "On ... wrote:", Outlook's "From:/Sent:" block and "-----Original Message-----", Apple
Mail, Foxmail/QQ Mail "------------------ 原始邮件 ------------------", NetEase "在 ... 写道：").
Signatures start at RFC 3676's ``-- `` line or a mobile client's "Sent from my iPhone".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_QUOTE_HEADERS = [
    re.compile(r"^\s*On\b.{0,200}\bwrote:\s*$", re.I),
    re.compile(r"^\s*在\s?.{0,200}写道[:：]\s*$"),
    re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}\s*$", re.I),
    re.compile(r"^\s*-{2,}\s*原始邮件\s*-{2,}\s*$"),
    re.compile(r"^\s*-{2,}\s*回复的原邮件\s*-{2,}\s*$"),
    re.compile(r"^\s*_{10,}\s*$"),
    re.compile(r"^\s*(From|发件人)\s*[:：].+$", re.I),
    re.compile(r"^\s*Le\b.{0,200}\ba écrit\s*:\s*$", re.I),
    re.compile(r"^\s*Am\b.{0,200}\bschrieb.{0,80}:\s*$", re.I),
]
# A header-block line counts as the start of history only if a "Sent:"/"发送时间" line follows
# (Outlook); a lone "From:" is just as often the customer's own text.
_OUTLOOK_FOLLOWERS = re.compile(r"^\s*(Sent|Date|发送时间|时间|日期|To|收件人)\s*[:：]", re.I)
_FORWARD_MARKERS = re.compile(
    r"^\s*(-{2,}\s*(Forwarded message|转发的邮件|转发邮件信息|Original Message)\s*-{2,}|"
    r"Begin forwarded message:|开始转发的邮件[:：]?)\s*$",
    re.I,
)
_SIGNATURE_LINES = [
    re.compile(r"^-- ?$"),
    re.compile(r"^\s*(Sent from|Get Outlook for|Sent via)\b.{0,60}$", re.I),
    re.compile(r"^\s*(发自我的|来自我的|从我的).{0,30}$"),
]


@dataclass(frozen=True, slots=True)
class SplitBody:
    """A body in three parts; ``new`` + ``signature`` + ``quoted`` keep all of it."""

    new: str
    quoted: str
    signature: str


def split_body(text: str) -> SplitBody:
    """Split a plain-text body into the new text, the signature and the quoted history."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = _history_start(lines)
    head, quoted = lines[:cut], lines[cut:]
    sig = _signature_start(head)
    new, signature = head[:sig], head[sig:]
    return SplitBody(
        new="\n".join(new).strip(),
        quoted="\n".join(quoted).strip(),
        signature="\n".join(signature).strip(),
    )


def _history_start(lines: list[str]) -> int:
    for index, line in enumerate(lines):
        if _FORWARD_MARKERS.match(line) and "original message" not in line.lower():
            # A forward: what follows is the content the customer wants us to read.
            return len(lines)
        if _is_quote_header(lines, index):
            if index == 0 or not "".join(lines[:index]).strip():
                # Nothing new above it: top-posting with nothing written, or a forward whose
                # marker the client wrote its own way. Keep it all as the text.
                return len(lines)
            return index
        if line.startswith(">") and _rest_is_quote(lines, index):
            return index
    return len(lines)


def _is_quote_header(lines: list[str], index: int) -> bool:
    line = lines[index]
    for pattern in _QUOTE_HEADERS:
        if pattern.match(line):
            if pattern.pattern.startswith(r"^\s*(From|发件人)"):
                following = [ln for ln in lines[index + 1 : index + 4] if ln.strip()]
                return any(_OUTLOOK_FOLLOWERS.match(ln) for ln in following)
            return True
    return False


def _rest_is_quote(lines: list[str], index: int) -> bool:
    """A ``>`` block that runs to the end (blank lines and a signature aside) is history."""
    rest = [ln for ln in lines[index:] if ln.strip()]
    quoted = sum(1 for ln in rest if ln.startswith(">"))
    return quoted >= max(1, int(len(rest) * 0.8))


def _signature_start(lines: list[str]) -> int:
    for index, line in enumerate(lines):
        # Only near the end: a signature is short (RFC 3676 suggests at most 4 lines).
        if (
            index > 0
            and any(p.match(line) for p in _SIGNATURE_LINES)
            and len([ln for ln in lines[index:] if ln.strip()]) <= 8
        ):
            return index
    return len(lines)
