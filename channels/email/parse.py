"""``parse_mail(raw) -> ParsedMail | Rejected``: one mail's bytes to what ingest needs.

Pure: no network, no database, no files. Storing attachment bytes and finding the ticket a reply
belongs to are separate steps (:mod:`channels.email.files`, :mod:`channels.email.references`).
"""

from __future__ import annotations

import email
import email.errors
import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from enum import StrEnum
from typing import Any

from channels.base import ChannelInputError
from channels.email.charsets import clean_text, decode_header_value
from channels.email.ids import Signer
from channels.email.loops import auto_submitted_reasons, bounce_diagnostic, is_bounce
from channels.email.mime import Body, MailPart, walk
from channels.email.quotes import split_body
from gateway.models import Attachment, Channel, InboundMessage

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
_MSG_ID = re.compile(r"<([^<>\s]{1,900})>")
_TICKET_TAG = re.compile(r"\[(G\d{11,})\]")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")
_RAW_MESSAGE_IDS = re.compile(rb"^Message-ID:\s*(<[^<>\s]+>)", re.I | re.M)


class RejectReason(StrEnum):
    BOUNCE = "bounce"
    OWN_ADDRESS = "own_address"
    OWN_MESSAGE_ID = "own_message_id"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A mail that is not a customer's message: a bounce, or our own mail come back."""

    reason: RejectReason
    external_id: str
    bounced_ids: tuple[str, ...] = ()
    """For bounces: every Message-ID the report mentions (the caller keeps the ones we sent)."""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """A customer's mail, ready for threading and for storing its files."""

    external_id: str
    sender: str
    sender_name: str | None
    subject: str | None
    text: str
    parts: tuple[MailPart, ...]
    auto_submitted: bool
    subject_ref: str | None
    references: tuple[str, ...]
    """Message-IDs this mail answers, most relevant first (In-Reply-To, then References)."""
    recipients: tuple[str, ...]
    locale: str | None
    meta: dict[str, Any] = field(default_factory=dict)

    def inbound(
        self, *, ticket_ref: str | None, attachments: tuple[Attachment, ...] | None = None
    ) -> InboundMessage:
        """The :class:`InboundMessage`; ``attachments`` carry store refs once files are saved."""
        if attachments is None:
            attachments = tuple(
                Attachment(filename=p.filename, content_type=p.content_type, size=p.size)
                for p in self.parts
            )
        return InboundMessage(
            channel=Channel.EMAIL,
            external_id=self.external_id,
            external_user_id=self.sender,
            text=self.text,
            thread_key=None,  # threading is by reference (subject tag, reply address, ids)
            ticket_ref=ticket_ref,
            subject=self.subject,
            sender_name=self.sender_name,
            email=self.sender,
            email_verified=False,  # nothing proves the From address (no DKIM check here)
            locale=self.locale,
            attachments=attachments,
            channel_meta=self.meta,
            auto_submitted=self.auto_submitted,
        )


def parse_mail(
    raw: bytes,
    *,
    our_addresses: Collection[str] = (),
    signer: Signer | None = None,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
) -> ParsedMail | Rejected:
    """Parse one RFC 5322 mail.

    Raises:
        ChannelInputError: the bytes are not a mail we can attribute to a sender.
    """
    if not raw.strip():
        raise ChannelInputError("empty_mail")
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
        return _parse(raw, msg, our_addresses, signer, max_attachment_bytes)
    except ChannelInputError:
        raise
    except (email.errors.MessageError, ValueError, LookupError, TypeError, IndexError) as exc:
        # The standard parser has known crashes on malformed input (CPython issues tracker,
        # "email" component); such mail is the sender's fault, not a reason to stop the listener.
        raise ChannelInputError("unparseable_mail", f"{type(exc).__name__}: {exc}") from exc


def _parse(
    raw: bytes,
    msg: Message,
    our_addresses: Collection[str],
    signer: Signer | None,
    max_attachment_bytes: int,
) -> ParsedMail | Rejected:
    headers = _raw_headers(msg)
    message_id = _first_id(headers.get("message-id", ""))
    external_id = _external_id(message_id, raw)
    name, sender = _sender(headers.get("from", ""))
    ours = {a.lower() for a in our_addresses}
    if _is_ours(sender, ours):
        return Rejected(RejectReason.OWN_ADDRESS, external_id)
    if signer is not None and message_id and signer.verify_message_id(message_id):
        return Rejected(RejectReason.OWN_MESSAGE_ID, external_id)

    subject = decode_header_value(headers["subject"]) if "subject" in headers else None
    reasons = auto_submitted_reasons(headers, subject or "", sender)
    return_path = headers.get("return-path")
    auto_reply = any(r.startswith(("auto-submitted", "x-auto")) for r in reasons)
    if is_bounce(msg, sender, None if auto_reply else return_path):
        ids = {m.decode("ascii", "replace") for m in _RAW_MESSAGE_IDS.findall(raw)}
        ids.update(_ids(headers.get("in-reply-to", "")) + _ids(headers.get("references", "")))
        ids.discard(message_id or "")
        return Rejected(
            RejectReason.BOUNCE,
            external_id,
            bounced_ids=tuple(sorted(ids)),
            detail=bounce_diagnostic(raw),
        )

    body = Body()
    walk(msg, body)
    own_text = body.text()
    split = split_body(own_text)
    text = "\n\n".join(t for t in (split.new, *body.forward_texts) if t)
    parts, oversize = _cap(body.parts, max_attachment_bytes)
    if oversize:
        listing = ", ".join(f"{p.filename} ({p.size / 1048576:.1f} MB)" for p in oversize)
        cap_mb = max_attachment_bytes / 1048576
        text += (
            f"\n\n[附件超过 {cap_mb:g} MB，未保存 / attachment over {cap_mb:g} MB, "
            f"not kept: {listing}]"
        )
    in_reply_to = _ids(headers.get("in-reply-to", ""))
    references = _ids(headers.get("references", ""))
    to = _addresses(headers.get("to", ""))
    cc = _addresses(headers.get("cc", ""))
    when = _date(headers.get("date"))
    meta: dict[str, Any] = {
        "message_id": message_id,
        "in_reply_to": in_reply_to,
        "references": references,
        "to": to,
        "cc": cc,
        "date": when.isoformat() if when is not None else None,
        "quoted": split.quoted,
        "signature": split.signature,
        "digest": content_digest(sender, _date_key(headers.get("date"), when), subject, text),
    }
    if "reply-to" in headers:
        meta["reply_to"] = _addresses(headers["reply-to"])
    if reasons:
        meta["auto_reasons"] = reasons
    if "list-id" in headers:
        meta["list_id"] = decode_header_value(headers["list-id"])[:255]
    inline = {p.content_id: p.filename for p in parts if p.content_id}
    if inline:
        meta["inline_images"] = inline
    if body.forwarded:
        meta["forwarded"] = body.forwarded
    if oversize:
        meta["oversize_attachments"] = [{"filename": p.filename, "size": p.size} for p in oversize]
    if not body.plain and body.html:
        meta["html_only"] = True
    chosen = tuple(dict.fromkeys((*in_reply_to, *reversed(references))))
    return ParsedMail(
        external_id=external_id,
        sender=sender,
        sender_name=decode_header_value(name) or None if name else None,
        subject=subject or None,
        text=text,
        parts=parts,
        auto_submitted=bool(reasons),
        subject_ref=_subject_ref(subject),
        references=chosen[:50],
        recipients=tuple(dict.fromkeys((*to, *cc, *_addresses(headers.get("delivered-to", ""))))),
        locale=_locale(subject or "", text, headers.get("content-language")),
        meta=meta,
    )


def content_digest(sender: str, date: str | None, subject: str | None, text: str) -> str:
    """What tells two mails under one Message-ID apart: the same mail delivered twice (another
    folder, another alias's copy) has the same sender, date, subject and words; a different mail
    whose client reused the id (RFC 5322 3.6.4 asks for a unique one; some mint one per
    install) does not."""
    fields = (sender, (date or "").strip(), subject or "", text)
    return hashlib.sha256("\0".join(fields).encode("utf-8", "replace")).hexdigest()[:32]


def _raw_headers(msg: Message) -> dict[str, str]:
    """First value of each header as the mail wrote it (undecoded; our decoders are kinder)."""
    found: dict[str, str] = {}
    for name, value in msg.raw_items():
        found.setdefault(clean_text(name).lower(), clean_text(str(value)))
    return found


def _ids(value: str) -> list[str]:
    return list(dict.fromkeys(f"<{m}>" for m in _MSG_ID.findall(value)))


def _first_id(value: str) -> str | None:
    ids = _ids(value)
    if ids:
        return ids[0]
    token = value.strip()
    return f"<{token}>" if token and " " not in token and len(token) < 900 else None


def _external_id(message_id: str | None, raw: bytes) -> str:
    if message_id and len(message_id) <= 255:
        return message_id
    source = message_id.encode() if message_id else raw
    return "sha256:" + hashlib.sha256(source).hexdigest()


def _sender(value: str) -> tuple[str, str]:
    name, address = parseaddr(" ".join(value.splitlines()))
    address = address.strip().lower()
    if not _ADDRESS.match(address) or len(address) > 255:
        raise ChannelInputError("no_sender", "the mail has no usable From address")
    return name, address


def _is_ours(sender: str, ours: set[str]) -> bool:
    if sender in ours:
        return True
    local, _, domain = sender.partition("@")
    return f"{local.split('+', 1)[0]}@{domain}" in ours


def _addresses(value: str) -> list[str]:
    try:
        pairs = getaddresses([" ".join(value.splitlines())])
    except (ValueError, IndexError):
        return []
    return [a.lower() for _, a in pairs if _ADDRESS.match(a)][:100]


def _date(value: str | None) -> datetime | None:
    """The Date header's moment, or None if it names none."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value.strip())
    except (ValueError, TypeError, IndexError, OverflowError):
        return None


def _date_key(value: str | None, when: datetime | None) -> str | None:
    """The instant a Date header names (``when``, its parse), however a relay folded or wrote it
    (RFC 5322 3.3: ``GMT`` and ``+0000``, a trailing comment); the header unfolded if it names
    none."""
    if not value:
        return None
    if when is None:
        return " ".join(value.split())
    if when.tzinfo is None:  # "-0000": UTC, the sender's zone unknown (RFC 5322 3.3)
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC).isoformat()
    except (ValueError, OverflowError):  # a year 1 with a zone east of UTC
        return " ".join(value.split())


def _subject_ref(subject: str | None) -> str | None:
    found = _TICKET_TAG.search(subject or "")
    return found.group(1) if found else None


def _locale(subject: str, text: str, declared: str | None) -> str | None:
    if _CJK.search(subject) or _CJK.search(text[:2000]):
        return "zh-CN"
    if declared and declared.strip():
        return declared.strip().split(",")[0][:20]
    return "en" if re.search(r"[A-Za-z]{3}", text[:2000] or subject) else None


def _cap(parts: list[MailPart], cap: int) -> tuple[tuple[MailPart, ...], tuple[MailPart, ...]]:
    """Keep files while their total stays under ``cap``; the rest keep only their metadata."""
    kept: list[MailPart] = []
    oversize: list[MailPart] = []
    total = 0
    for part in parts:
        if total + part.size > cap:
            oversize.append(part)
            kept.append(
                MailPart(part.filename, part.content_type, part.size, None, part.content_id)
            )
            continue
        total += part.size
        kept.append(part)
    return tuple(kept), tuple(oversize)
