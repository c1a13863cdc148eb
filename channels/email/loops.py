"""Recognising mail no human wrote: auto-replies, list mail and bounces.

Auto-replies are stored but never answered automatically (RFC 3834 section 2: "automatic
responses SHOULD NOT be issued in response to any message which contains an Auto-Submitted
header field ... other than 'no'"); bounces are delivery reports about mail we sent (RFC 3464).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.message import Message

from channels.email.charsets import clean_text
from channels.email.fields import content_type

_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_OUT_OF_OFFICE = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|abwesenheit|"
    r"自动回复|自動回覆|休假|不在办公室|外出)",
    re.I,
)
_READ_RECEIPT = re.compile(
    r"\s*multipart/report\s*;.*\breport-type\s*=\s*\"?disposition-notification", re.I | re.S
)
_DAEMONS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon)@", re.I)


def auto_submitted_reasons(headers: Mapping[str, str], subject: str, sender: str) -> list[str]:
    """Why a mail with these (raw, lowercased-name) headers looks automatic; empty if a person
    wrote it."""
    reasons: list[str] = []
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and not auto.startswith("no"):
        reasons.append(f"auto-submitted:{clean_text(auto.split(';')[0].strip())[:40]}")
    for name in ("x-autoreply", "x-autorespond"):
        if headers.get(name, "").strip():
            reasons.append(name)
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in _PRECEDENCE:
        reasons.append(f"precedence:{precedence}")
    if "list-id" in headers or "list-unsubscribe" in headers:
        reasons.append("list")
    if _OUT_OF_OFFICE.match(subject or ""):
        reasons.append("out-of-office")
    if re.match(r"^(no-?reply|do-?not-?reply)@", sender, re.I):
        reasons.append("no-reply-sender")
    if _READ_RECEIPT.match(headers.get("content-type", "")):
        # RFC 8098: mail clients send these with no Auto-Submitted; the customer wrote nothing.
        reasons.append("read-receipt")
    return reasons


def is_bounce(msg: Message, sender: str, return_path: str | None) -> bool:
    """A delivery status notification (or a bounce from an MTA that sends none)."""
    ctype, params = content_type(msg)
    if ctype == "multipart/report":
        report = params.get("report-type", "").lower()
        return report in ("", "delivery-status")
    if _DAEMONS.match(sender):
        return True
    # RFC 5321 4.5.5: notifications go out with an empty reverse path. RFC 3834 asks the same of
    # auto-replies, which the caller has recognised before asking this.
    return return_path is not None and return_path.strip() in ("<>", "")


def bounce_diagnostic(raw: bytes) -> str:
    """The first ``Status``/``Diagnostic-Code`` a delivery report carries, for the failed row."""
    found = re.search(rb"^Diagnostic-Code:\s*(.+)$", raw, re.M | re.I) or re.search(
        rb"^Status:\s*(\d\.\d+\.\d+.*)$", raw, re.M | re.I
    )
    if found is None:
        return "bounced"
    return "bounced: " + found.group(1).decode("utf-8", "replace").strip()[:300]
