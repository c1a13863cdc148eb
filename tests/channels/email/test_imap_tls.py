"""The listener over IMAPS and STARTTLS against a Dovecot with a certificate from a throwaway CA:
it verifies the certificate and the host name, and refuses (logs, retries) rather than fall back
to plain text."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest

from channels.email.listener import MailboxListener
from gateway.backoff import Backoff
from gateway.settings import MailSecurity
from gateway.store.tables import TicketMessage
from tests.channels.email.conftest import Dovecot, Mailroom, TlsFiles
from tests.channels.email.mailmaker import mail
from tests.channels.email.test_listener import count, eventually, running

pytestmark = pytest.mark.slow

LOGIN = re.compile(r"imap-login: Info: Login: user=<support@example\.test>.*")


def tls_listener(room: Mailroom, dovecot: Dovecot, security: str, **email: Any) -> MailboxListener:
    port = dovecot.imaps_port if security == "tls" else dovecot.port
    settings = room.settings.email.model_copy(
        update={"imap_security": MailSecurity(security), "imap_port": port, "imap_timeout": 5}
        | email
    )
    return MailboxListener(
        settings, room.store, room.processor, backoff=Backoff(base=0.1, cap=0.3, jitter=0.1)
    )


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_verified_tls_connection_processes_mail(
    mailroom: Mailroom, tls_dovecot: Dovecot, tls_files: TlsFiles, security: str
) -> None:
    listener = tls_listener(mailroom, tls_dovecot, security, ca_file=str(tls_files.ca))
    async with running(listener):
        await asyncio.wait_for(listener.connected.wait(), 15)
        await asyncio.to_thread(tls_dovecot.lda, mail("tls@example.org", subject="over TLS"))

        async def stored() -> bool:
            return await count(mailroom.store, TicketMessage) == 1

        await eventually(stored)
    logins = LOGIN.findall(tls_dovecot.log)
    # Dovecot marks a login made inside TLS ("TLS" after the addresses, before the session id).
    assert len(logins) == 1 and ", TLS," in logins[0], logins
    assert all("\\Seen" in f for f in (await tls_dovecot.flags()).values())


@pytest.mark.parametrize("security", ["tls", "starttls"])
@pytest.mark.parametrize("wrong", ["unknown_ca", "wrong_host"])
async def test_unverified_server_is_refused_never_read_in_plain_text(
    mailroom: Mailroom,
    tls_dovecot: Dovecot,
    tls_files: TlsFiles,
    security: str,
    wrong: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Through the LDA, not APPEND: no login of the test's own may appear in Dovecot's log.
    await asyncio.to_thread(tls_dovecot.lda, mail("waiting@example.org"))
    if wrong == "unknown_ca":
        settings: dict[str, Any] = {"ca_file": str(tls_files.other_ca)}
    else:
        # The right CA, but the certificate is for 127.0.0.1 and we asked for "localhost".
        settings = {"ca_file": str(tls_files.ca), "imap_host": "localhost"}
    listener = tls_listener(mailroom, tls_dovecot, security, **settings)
    caplog.set_level(logging.WARNING, logger="channels.email.listener")

    def refusals() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.getMessage() == "email listener failed; reconnecting"
            and "CERTIFICATE_VERIFY_FAILED" in getattr(r, "error", "")
        ]

    async def retried() -> bool:
        return len(refusals()) >= 3

    async with running(listener):
        await eventually(retried, within=15)
        assert not listener.connected.is_set()
    expected = "unable to get local issuer" if wrong == "unknown_ca" else "Hostname mismatch"
    assert expected in refusals()[0].error  # type: ignore[attr-defined]
    assert LOGIN.findall(tls_dovecot.log) == []  # the password never went out, in any form
    assert await count(mailroom.store, TicketMessage) == 0
    assert all("\\Seen" not in f for f in (await tls_dovecot.flags()).values())
