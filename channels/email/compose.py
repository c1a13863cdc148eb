"""Building the mail that delivers an :class:`OutboundMessage` (pure; no network)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from channels.email.ids import Signer
from gateway.models import Attachment, OutboundMessage, OutboxKind
from workers.templates import pick_locale

_TAG = re.compile(r"\s*\[G\d{11,}\]\s*")
_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|回复|答复|转发)\s*[:：]\s*)+", re.I)
_MAX_REFERENCES = 20

_FOOTER = {
    "zh-CN": "如需补充，请直接回复本邮件（请保留主题中的工单号 {number}）。",
    "en": "To add anything, just reply to this email (keep {number} in the subject).",
}
_OVERSIZE = {
    "zh-CN": "注意：以下附件超过大小限制，未能保存，请压缩后重新发送或提供下载链接：{files}",
    "en": "Note: these attachments were over the size limit and were not kept; please send them "
    "compressed or as a download link: {files}",
}


def normalize_subject(subject: str | None) -> str:
    """A subject without reply prefixes and ticket tags: ``Re: [G1..] Hi`` -> ``Hi``."""
    text = subject or ""
    previous = None
    while previous != text:
        previous = text
        text = _PREFIX.sub("", _TAG.sub(" ", text)).strip()
    return text


def compose(
    msg: OutboundMessage,
    *,
    sender: str,
    sender_name: str | None,
    signer: Signer,
    reply_tokens: bool,
    now: datetime,
    files: Sequence[tuple[Attachment, bytes]] = (),
) -> EmailMessage:
    """The RFC 5322 mail for ``msg``: signed Message-ID, threading headers, text and HTML,
    and ``files`` (an agent's attachments, with their bytes) as attachment parts."""
    mail = EmailMessage()
    number = msg.ticket_number
    subject = normalize_subject(msg.subject) or (
        "Support" if pick_locale(msg.locale) == "en" else "客服"
    )
    mail["Subject"] = f"[{number}] {subject}" if number else subject
    mail["From"] = formataddr((sender_name or "", sender))
    mail["To"] = msg.recipient
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = signer.message_id(msg.outbox_id, number)
    if reply_tokens and number:
        mail["Reply-To"] = signer.reply_address(sender, number)
    else:
        mail["Reply-To"] = sender
    parent = msg.reply_meta.get("message_id")
    if isinstance(parent, str) and parent:
        # RFC 5322 3.6.4: In-Reply-To is the parent's id; References its References plus it.
        earlier = [r for r in msg.reply_meta.get("references") or [] if isinstance(r, str)]
        chain = [*earlier, parent][-_MAX_REFERENCES:]
        mail["In-Reply-To"] = parent
        mail["References"] = " ".join(chain)
    if msg.kind is not OutboxKind.REPLY:
        # RFC 3834 5.1: mark automatic mail so other systems' auto-responders stay quiet.
        mail["Auto-Submitted"] = "auto-replied"
        mail["X-Auto-Response-Suppress"] = "All"
    lang = pick_locale(msg.locale)
    mail["Content-Language"] = lang
    quoted = _quoted_words(msg)
    paragraphs = [msg.text.strip()]
    oversize = msg.reply_meta.get("oversize_attachments")
    if oversize and msg.template == "ticket_received":
        names = ", ".join(str(o.get("filename", "")) for o in oversize if isinstance(o, dict))
        paragraphs.append(_OVERSIZE[lang].format(files=names))
    if number:
        paragraphs.append(_FOOTER[lang].format(number=f"[{number}]"))
    text = "\n\n".join(paragraphs) + "\n"
    body = "".join(f"<p>{_html_lines(p)}</p>" for p in paragraphs)
    if quoted is not None:
        # The reply's words follow the quoted ones, as a person's reply in a mail client does.
        cited = "\n".join(f"> {line}".rstrip() for line in quoted.splitlines())
        text = f"{cited}\n\n{text}"
        body = f'<blockquote type="cite">{_html_lines(quoted)}</blockquote>{body}'
    mail.set_content(text, charset="utf-8")
    mail.add_alternative(
        f'<!DOCTYPE html><html lang="{lang}"><body>{body}</body></html>', subtype="html"
    )
    for attachment, data in files:
        # The text and HTML stay one multipart/alternative part; the files go beside it
        # (multipart/mixed), each base64 with its name (RFC 2231-encoded when not ASCII).
        maintype, _, subtype = attachment.content_type.partition("/")
        if not (maintype and subtype) or maintype in ("multipart", "message"):
            maintype, subtype = "application", "octet-stream"
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return mail


def _quoted_words(msg: OutboundMessage) -> str | None:
    """The words of the customer's message the agent answers, to quote as text: when the
    reply cannot thread on it, as it came on another channel (a Telegram message in a ticket
    the customer also mailed) or without a Message-ID. In-Reply-To names it otherwise, and the
    customer's client shows the thread."""
    if msg.quoted_text is None:
        return None
    parent = msg.reply_meta.get("message_id")
    if msg.quote and isinstance(parent, str) and parent:
        return None
    return msg.quoted_text


def _html_lines(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")
