"""Every corpus mail through the pure parser, against the expected-results table."""

from __future__ import annotations

from typing import Any

import pytest

from channels.base import ChannelInputError
from channels.email.ids import Signer
from channels.email.parse import ParsedMail, Rejected, parse_mail
from tests.channels.email.corpus import expected, mails, raw


def _parse(entry: dict[str, Any]) -> ParsedMail | Rejected:
    table = expected()
    return parse_mail(
        raw(entry["file"]),
        our_addresses=[table["address"]],
        signer=Signer(table["secret_key"], "example.test"),
        max_attachment_bytes=table["attachment_max_bytes"],
    )


def test_corpus_is_big_enough() -> None:
    assert len(mails()) >= 30


@pytest.mark.parametrize("entry", mails(), ids=lambda e: e["file"].removesuffix(".eml"))
def test_parse(entry: dict[str, Any]) -> None:
    if entry["outcome"] == "rejected":
        with pytest.raises(ChannelInputError) as caught:
            _parse(entry)
        assert caught.value.reason == entry["reason"]
        return
    result = _parse(entry)
    if entry["outcome"] in ("bounce", "dropped"):
        assert isinstance(result, Rejected)
        assert result.reason.value == entry.get("reason", "bounce")
        for bounced in entry.get("bounced", []):
            assert bounced in result.bounced_ids
        if "diagnostic" in entry:
            assert entry["diagnostic"] in result.detail
        return
    assert isinstance(result, ParsedMail)
    inbound = result.inbound(ticket_ref=None)
    assert inbound.auto_submitted is entry.get("auto_submitted", False)
    assert inbound.email == inbound.external_user_id == inbound.external_user_id.lower()
    assert inbound.email_verified is False
    assert inbound.thread_key is None
    for key in ("sender", "sender_name", "subject", "locale"):
        if key in entry:
            actual = {"sender": inbound.external_user_id}.get(key, getattr(inbound, key, None))
            assert actual == entry[key], key
    for piece in entry.get("text_contains", []):
        assert piece in inbound.text
    for piece in entry.get("text_excludes", []):
        assert piece not in inbound.text
    for piece in entry.get("quoted_contains", []):
        assert piece in inbound.channel_meta["quoted"]
    for piece in entry.get("signature_contains", []):
        assert piece in inbound.channel_meta["signature"]
    if "attachments" in entry:
        got = [(a.filename, a.content_type, a.size) for a in inbound.attachments]
        want = [(a["filename"], a["content_type"], a["size"]) for a in entry["attachments"]]
        assert got == want
    if "inline_images" in entry:
        assert inbound.channel_meta["inline_images"] == entry["inline_images"]
    for key, value in entry.get("meta", {}).items():
        assert inbound.channel_meta[key] == value, key
    if "external_id_prefix" in entry:
        assert inbound.external_id.startswith(entry["external_id_prefix"])
    meta = inbound.channel_meta
    assert meta["message_id"] is None or meta["message_id"].startswith("<")
    assert isinstance(meta["references"], list) and isinstance(meta["to"], list)
