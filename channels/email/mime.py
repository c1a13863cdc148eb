"""Walking a MIME tree: the body texts a person reads, and the files that came with them."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Any

from channels.email.charsets import clean_text, decode_bytes, decode_header_value
from channels.email.fields import content_type, disposition, raw_field
from channels.email.html_text import html_to_text

_MAX_DEPTH = 20
_MAX_PARTS = 500


@dataclass(frozen=True, slots=True)
class MailPart:
    """One attachment or inline image; ``data`` is ``None`` when it was over the size cap."""

    filename: str
    content_type: str
    size: int
    data: bytes | None
    content_id: str | None = None
    inline: bool = False


@dataclass(slots=True)
class Body:
    """What a walk collects."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    parts: list[MailPart] = field(default_factory=list)
    cids_shown: list[str] = field(default_factory=list)
    forwarded: list[dict[str, Any]] = field(default_factory=list)
    forward_texts: list[str] = field(default_factory=list)
    charsets: set[str] = field(default_factory=set)
    seen: int = 0

    def text(self) -> str:
        """Plain text parts if the mail has any (RFC 2046 5.1.4: the sender's own), else HTML."""
        if any(t.strip() for t in self.plain):
            texts = [t.strip("\n") for t in self.plain]
        else:
            texts = []
            for html in self.html:
                text, cids = html_to_text(html)
                self.cids_shown.extend(cids)
                texts.append(text)
        return "\n\n".join(t for t in texts if t.strip())


def walk(part: Message, body: Body, *, text_wanted: bool = True, depth: int = 0) -> None:
    """Collect ``part``'s texts and files into ``body``."""
    body.seen += 1
    if depth > _MAX_DEPTH or body.seen > _MAX_PARTS:
        return
    ctype, params = content_type(part)
    if ctype == "message/rfc822":
        # A forward (or a mail attached as a file): its text and files are the customer's too.
        _forwarded(part, body, text_wanted=text_wanted, depth=depth)
        return
    if part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        if ctype == "multipart/alternative" and children:
            chosen = _preferred(children)
            for child in children:
                walk(child, body, text_wanted=text_wanted and child is chosen, depth=depth + 1)
        else:
            for child in children:
                walk(child, body, text_wanted=text_wanted, depth=depth + 1)
        return
    shown = disposition(part)
    filename = _filename(part) if shown is not None or not ctype.startswith("text/") else None
    if ctype in ("text/plain", "text/html") and shown != "attachment" and not filename:
        if text_wanted:
            data = part.get_payload(decode=True)
            charset = params.get("charset") or None
            if charset:
                body.charsets.add(charset.lower())
            text = decode_bytes(data if isinstance(data, bytes) else b"", charset)
            if ctype == "text/plain":
                body.plain.append(_unflow(text, params))
            else:
                body.html.append(text)
        return
    data = part.get_payload(decode=True)
    payload = data if isinstance(data, bytes) else b""
    content_id = _content_id(part)
    body.parts.append(
        MailPart(
            filename=filename or _invented_name(ctype, len(body.parts) + 1),
            content_type=ctype,
            size=len(payload),
            data=payload,
            content_id=content_id,
            inline=shown == "inline" or (shown is None and content_id is not None),
        )
    )


def _preferred(children: list[Message]) -> Message:
    for child in children:
        if content_type(child)[0] == "text/plain":
            return child
    for child in reversed(children):  # RFC 2046 5.1.4: the last part is the richest
        if content_type(child)[0] == "text/html" or child.is_multipart():
            return child
    return children[-1]


def _forwarded(part: Message, body: Body, *, text_wanted: bool, depth: int) -> None:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        return
    headers = {
        name: decode_header_value(clean_text(str(inner.get(name, "") or "")))
        for name in ("From", "Date", "Subject", "To")
    }
    body.forwarded.append({k.lower(): v for k, v in headers.items()})
    inner_body = Body()
    walk(inner, inner_body, text_wanted=text_wanted, depth=depth + 1)
    body.parts.extend(inner_body.parts)
    body.cids_shown.extend(inner_body.cids_shown)
    if text_wanted:
        head = "\n".join(f"{k}: {v}" for k, v in headers.items() if v)
        inner_text = "\n\n".join(t for t in (inner_body.text(), *inner_body.forward_texts) if t)
        marker = "---------- Forwarded message ----------"
        body.forward_texts.append(f"{marker}\n{head}\n\n{inner_text}")


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except (ValueError, TypeError, IndexError, LookupError):
        return None
    if not name:
        return None
    name = clean_text(name)
    if "=?" in name:
        # Foxmail, QQ Mail and Outlook put RFC 2047 words inside the quoted parameter, which
        # RFC 2231 forbids but every client reads.
        name = decode_header_value(name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip().strip(".") or None
    return name[:200] if name else None


def _content_id(part: Message) -> str | None:
    value = raw_field(part, "Content-ID")
    if value is None:
        return None
    text = value.strip().strip("<>").strip()
    return text[:255] or None


def _invented_name(ctype: str, index: int) -> str:
    extension = mimetypes.guess_extension(ctype) or ".bin"
    return f"part-{index}{extension}"


def _unflow(text: str, params: dict[str, str]) -> str:
    """Join RFC 3676 format=flowed soft line breaks (Apple Mail and Thunderbird send these)."""
    if params.get("format", "").lower() != "flowed":
        return text
    delsp = params.get("delsp", "").lower() == "yes"
    out: list[str] = []
    pending = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(" "):
            line = line[1:]  # space-stuffing (RFC 3676 4.4)
        if line.endswith(" ") and line != "-- ":
            pending += line[:-1] if delsp else line
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return "\n".join(out)


def as_email_message(message: Message) -> EmailMessage:
    """Narrow the parser's result type for mypy (``policy.default`` makes ``EmailMessage``)."""
    if not isinstance(message, EmailMessage):  # pragma: no cover
        raise TypeError("parse with email.policy.default")
    return message
