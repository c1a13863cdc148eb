"""The SMTP sender against an aiosmtpd sink: headers, STARTTLS + AUTH, errors, the loop cap."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from channels.base import ChannelError, TransientChannelError
from channels.email.compose import normalize_subject
from channels.email.ids import Signer
from channels.email.sender import EmailSender
from gateway.models import Channel, OutboundMessage, OutboxKind, OutboxStatus
from gateway.store.tables import OutboxRow
from tests.channels.email.conftest import Mailroom, Sink, email_settings
from tests.channels.email.mailmaker import mail
from tests.conftest import SECRET, free_port

SIGNER = Signer(SECRET, "example.test")


def outbound(**fields: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "outbox_id": 42,
        "channel": Channel.EMAIL,
        "recipient": "ann@example.org",
        "text": "您好，我们已收到您的问题。",
        "ticket_number": "G20261122001",
        "kind": OutboxKind.REPLY,
        "subject": "Re: [G20261122001] 订单延迟",
        "reply_meta": {"message_id": "<c2@client.example>", "references": ["<c1@client.example>"]},
        "locale": "zh-CN",
    }
    values.update(fields)
    return OutboundMessage(**values)


@pytest.mark.parametrize(
    ("subject", "normal"),
    [
        ("Re: [G20261122001] Hi", "Hi"),
        ("RE: FW: 回复：[G20261122001] 订单", "订单"),
        ("Fwd:  Hello [G20261122001]", "Hello"),
        (None, ""),
    ],
)
def test_normalize_subject(subject: str | None, normal: str) -> None:
    assert normalize_subject(subject) == normal


async def test_reply_headers_and_parts(db_url: str, smtp_sink: Sink) -> None:
    sender = EmailSender(email_settings(db_url, smtp_port=smtp_sink.port, from_name="客服"))
    receipt = await sender.send(outbound())
    [sent] = smtp_sink.mails()
    assert receipt.external_id == str(sent["Message-ID"]) == SIGNER.message_id(42, "G20261122001")
    assert str(sent["Subject"]) == "[G20261122001] 订单延迟"
    assert sent["In-Reply-To"] == "<c2@client.example>"
    assert str(sent["References"]).split() == ["<c1@client.example>", "<c2@client.example>"]
    assert str(sent["Reply-To"]) == "support@example.test"
    assert sent["Auto-Submitted"] is None  # a person's reply is not automatic
    plain = sent.get_body(("plain",))
    html = sent.get_body(("html",))
    assert plain is not None and html is not None
    assert "您好" in plain.get_content() and "请直接回复本邮件" in plain.get_content()
    assert "<p>您好" in html.get_content()
    # The same outbox row always gets the same Message-ID (a retry is recognisably one mail).
    again = await sender.send(outbound())
    assert again.external_id == receipt.external_id


async def test_an_agents_files_go_as_attachment_parts(
    db_url: str, smtp_sink: Sink, tmp_path: Path
) -> None:
    pdf, notes = tmp_path / ("a" * 64), tmp_path / ("b" * 64)
    pdf.write_bytes(b"%PDF-1.7 \x00\xff invoice")
    notes.write_bytes("退货地址：上海".encode())
    files = [
        {"filename": "发票.pdf", "content_type": "application/pdf", "size": 18, "ref": str(pdf)},
        {"filename": "notes.txt", "content_type": "text/plain", "size": 21, "ref": str(notes)},
    ]
    sender = EmailSender(email_settings(db_url, smtp_port=smtp_sink.port))
    await sender.send(outbound(attachments=files))
    [sent] = smtp_sink.mails()
    assert sent.get_content_type() == "multipart/mixed"
    body = sent.get_body(("plain",))
    assert body is not None and "您好" in body.get_content()
    parts = [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
             for p in sent.iter_attachments()]  # fmt: skip
    assert parts == [
        ("发票.pdf", "application/pdf", pdf.read_bytes()),
        ("notes.txt", "text/plain", notes.read_bytes()),
    ]


async def test_an_attachment_gone_from_the_store_fails_the_mail(
    db_url: str, smtp_sink: Sink, tmp_path: Path
) -> None:
    gone = {"filename": "x.pdf", "content_type": "application/pdf", "size": 1,
            "ref": str(tmp_path / ("c" * 64))}  # fmt: skip
    sender = EmailSender(email_settings(db_url, smtp_port=smtp_sink.port))
    with pytest.raises(ChannelError, match=r"x\.pdf"):
        await sender.send(outbound(attachments=[gone]))
    assert smtp_sink.mails() == []


async def test_notice_is_marked_automatic_and_english(db_url: str, smtp_sink: Sink) -> None:
    sender = EmailSender(email_settings(db_url, smtp_port=smtp_sink.port, auto_reply_cap=0))
    await sender.send(outbound(kind=OutboxKind.NOTICE, locale="en", text="We got it."))
    [sent] = smtp_sink.mails()
    assert sent["Auto-Submitted"] == "auto-replied"
    assert "keep [G20261122001] in the subject" in sent.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_signed_reply_address(db_url: str, smtp_sink: Sink) -> None:
    sender = EmailSender(email_settings(db_url, smtp_port=smtp_sink.port, reply_tokens=True))
    await sender.send(outbound())
    reply_to = str(smtp_sink.mails()[0]["Reply-To"])
    assert SIGNER.verify_reply_address(reply_to, "support@example.test") == "G20261122001"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("451 4.3.0 Try again later", TransientChannelError),
        ("554 5.7.1 Rejected as spam", ChannelError),
    ],
)
async def test_smtp_errors_by_class(
    db_url: str, smtp_sink: Sink, reply: str, error: type[Exception]
) -> None:
    smtp_sink.reply = reply
    sender = EmailSender(email_settings(db_url, smtp_port=smtp_sink.port))
    with pytest.raises(error) as caught:
        await sender.send(outbound())
    assert reply.split()[0] in str(caught.value)
    assert type(caught.value) is error


async def test_connection_refused_is_transient(db_url: str) -> None:
    sender = EmailSender(email_settings(db_url, smtp_port=free_port(), smtp_timeout=2))
    with pytest.raises(TransientChannelError):
        await sender.send(outbound())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_sink(certificate: tuple[Path, Path]) -> Iterator[Sink]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = Sink(port=free_port())

    def authenticate(*args: Any) -> AuthResult:
        data = args[-1]
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"gateway",
            b"s3cret",
        )
        return AuthResult(success=ok)

    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=sink.port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield sink
    controller.stop()


async def test_starttls_with_auth_and_verified_certificate(
    db_url: str, tls_sink: Sink, certificate: tuple[Path, Path]
) -> None:
    common = {"smtp_port": tls_sink.port, "smtp_security": "starttls", "smtp_user": "gateway"}
    good = email_settings(db_url, ca_file=str(certificate[0]), smtp_password="s3cret", **common)
    await EmailSender(good).send(outbound())
    assert len(tls_sink.mails()) == 1
    wrong_password = email_settings(
        db_url, ca_file=str(certificate[0]), smtp_password="nope", smtp_timeout=2, **common
    )
    with pytest.raises(ChannelError):
        await EmailSender(wrong_password).send(outbound())
    untrusted = email_settings(db_url, smtp_password="s3cret", **common)
    with pytest.raises(ChannelError) as caught:
        await EmailSender(untrusted).send(outbound())
    assert "certificate" in str(caught.value)
    assert len(tls_sink.mails()) == 1


async def test_at_most_ten_automatic_mails_per_address_in_three_hours(
    mailroom: Mailroom, smtp_sink: Sink
) -> None:
    # Twelve new tickets from one address: twelve acknowledgements owed, ten may go out.
    for n in range(12):
        await mailroom.processor.process(mail(subject=f"Question {n}"))
    results = await mailroom.deliver_pending()
    assert results.count("sent") == 10
    assert [r for r in results if r != "sent"] == [
        "failed: automatic mail cap reached: 10 in 180 min to this recipient"
    ] * 2
    async with mailroom.store.read() as session:
        failed = (
            await session.scalars(
                select(OutboxRow.last_error).where(OutboxRow.status == OutboxStatus.FAILED.value)
            )
        ).all()
    assert len(failed) == 2 and len(smtp_sink.mails()) == 10
    # Someone else is not affected by that cap.
    await mailroom.processor.process(mail("bob@example.org"))
    assert await mailroom.deliver_pending() == ["sent"]
