"""Builds test mails the way a client would answer ours (for threading and listener tests)."""

from __future__ import annotations

import itertools
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from tests.factories import NOON

_ids = itertools.count(1)


def mail(
    sender: str = "ann@example.org",
    subject: str = "My order is late",
    text: str = "Where is my order?",
    *,
    to: str = "support@example.test",
    in_reply_to: str | None = None,
    references: str | None = None,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(NOON)
    msg["Message-ID"] = message_id or f"<m{next(_ids)}.{sender.split('@')[0]}@client.example>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    return msg.as_bytes(policy=policy.SMTP)  # CRLF line ends, as on the wire
