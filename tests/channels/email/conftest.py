"""Peers for the email tests, on loopback: an aiosmtpd sink and a throwaway Dovecot.

Dovecot runs from ``/work/shared/peers/dovecot/start-dovecot.sh`` in a directory under
``/tmp/peers/run-<pid>-<rand>`` (mode 755: the mail processes run as uid 8 and must traverse
it; pytest's ``tmp_path`` is root-only). Mail is delivered with IMAP APPEND or ``dovecot-lda``.
``tls_dovecot`` serves the same over IMAPS and STARTTLS with a certificate from a throwaway CA.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aioimaplib import IMAP4
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import select

from channels.email.process import MailProcessor
from gateway.models import OutboxStatus
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import OutboxRow
from tests.conftest import free_port, make_settings
from tests.factories import Clock, make_ingest
from workers.jobs import deliver_async

PEERS = Path("/work/shared/peers/dovecot")
USER, PASSWORD = "support@example.test", "secret"


@dataclass
class Sink:
    """An SMTP server that keeps what it is sent; ``reply`` can make it refuse."""

    port: int = 0
    envelopes: list[Envelope] = field(default_factory=list)
    reply: str = "250 Message accepted for delivery"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.reply.startswith("250"):
            self.envelopes.append(envelope)
        return self.reply

    def mails(self) -> list[EmailMessage]:
        found = []
        for envelope in self.envelopes:
            content = envelope.content
            data = content if isinstance(content, bytes) else str(content).encode()
            mail = message_from_bytes(data, policy=policy.default)
            assert isinstance(mail, EmailMessage)
            found.append(mail)
        return found


@pytest.fixture
def smtp_sink() -> Iterator[Sink]:
    sink = Sink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


def email_settings(db_url: str, **email: Any) -> Settings:
    """Settings with the email channel on, pointing at loopback peers."""
    section: dict[str, Any] = {
        "enabled": True,
        "address": USER,
        "imap_user": USER,
        "imap_password": PASSWORD,
        "imap_security": "plain",
        "smtp_security": "plain",
        "imap_timeout": 10,
        "smtp_timeout": 10,
    }
    section.update(email)
    return make_settings(database_url=db_url, email=section, webchat={"enabled": False})


@dataclass
class Mailroom:
    """The store, a processor with a fixed clock, and a courier playing the RQ worker."""

    store: Store
    settings: Settings
    processor: MailProcessor
    clock: Clock

    async def deliver_pending(self) -> list[str]:
        async with self.store.read() as session:
            ids = (
                await session.scalars(
                    select(OutboxRow.id)
                    .where(OutboxRow.status == OutboxStatus.PENDING.value)
                    .order_by(OutboxRow.id)
                )
            ).all()
        return [await deliver_async(outbox_id, self.settings) for outbox_id in ids]


@pytest.fixture
def mailroom_factory(
    store: Store, db_url: str, smtp_sink: Sink, tmp_path: Path
) -> Iterator[Callable[..., Mailroom]]:
    built: list[MailProcessor] = []

    def build(**email: Any) -> Mailroom:
        settings = email_settings(
            db_url,
            smtp_port=smtp_sink.port,
            attachment_dir=str(tmp_path / "attachments"),
            **email,
        )
        clock = Clock()
        processor = MailProcessor(settings, store, make_ingest(store, clock))
        built.append(processor)
        return Mailroom(store, settings, processor, clock)

    yield build
    for processor in built:
        processor.close()  # its parser process, if a listener started one


@pytest.fixture
def mailroom(mailroom_factory: Any) -> Mailroom:
    room: Mailroom = mailroom_factory()
    return room


# --- Dovecot -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA, a server certificate it signed for 127.0.0.1, and an unrelated CA."""

    ca: Path
    cert: Path
    key: Path
    other_ca: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Made with the openssl CLI, like the SMTP sender's test certificate, but CA-signed."""
    directory = tmp_path_factory.mktemp("imap-tls")
    ca, ca_key = _make_ca(directory, "Gateway Test CA")
    other_ca, _ = _make_ca(directory, "Somebody Else CA")
    key, request, cert = directory / "key.pem", directory / "server.csr", directory / "cert.pem"
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(request),
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    return TlsFiles(ca=ca, cert=cert, key=key, other_ca=other_ca)


@dataclass
class Dovecot:
    root: Path
    port: int
    tls: TlsFiles | None = None
    imaps_port: int = 0
    """With ``tls``: the IMAPS port (the plain ``port`` then offers STARTTLS)."""

    @property
    def directory(self) -> Path:
        return self.root / "dovecot"

    @property
    def conf(self) -> str:
        return str(self.directory / "dovecot.conf")

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / "example.test" / "support" / "Maildir"

    @property
    def log(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _tls_wrapper(self) -> Path:
        """A ``dovecot`` first on PATH that adds TLS to the config start-dovecot.sh has just
        written (the shared script has no TLS option), then runs the real one."""
        assert self.tls is not None
        real = shutil.which("dovecot")
        assert real is not None
        extra = self.root / "tls.conf"
        extra.write_text(
            f"ssl = yes\nssl_cert = <{self.tls.cert}\nssl_key = <{self.tls.key}\n"
            "service imap-login {\n  inet_listener imaps {\n    address = 127.0.0.1\n"
            f"    port = {self.imaps_port}\n    ssl = yes\n  }}\n}}\n"
        )
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        wrapper = bin_dir / "dovecot"
        # Called as `dovecot -c <conf>`: later settings override earlier ones.
        wrapper.write_text(f'#!/bin/bash\ncat {extra} >> "$2"\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
        return bin_dir

    def start(self) -> None:
        env = {**os.environ, "IMAP_USER": USER, "IMAP_PASS": PASSWORD}
        if self.tls is not None:
            env["PATH"] = f"{self._tls_wrapper()}:{env['PATH']}"
        subprocess.run(
            ["bash", str(PEERS / "start-dovecot.sh"), str(self.directory), str(self.port),
             str(self.root / "mail")],
            check=True,
            env=env,
            # Not captured: the daemon inherits the pipes and would hold them open forever.
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(PEERS / "stop-dovecot.sh"), str(self.directory)],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def lda(self, raw: bytes) -> None:
        """Deliver as an MTA would (dovecot-lda), waking IDLE like real mail."""
        subprocess.run(
            [
                "/usr/lib/dovecot/dovecot-lda",
                "-c",
                self.conf,
                "-d",
                USER,
                "-f",
                "sender@example.org",
            ],
            input=raw,
            check=True,
        )

    async def append(self, raws: list[bytes], mailbox: str = "INBOX") -> None:
        client = IMAP4(host="127.0.0.1", port=self.port, timeout=10)
        await client.wait_hello_from_server()
        await client.login(USER, PASSWORD)
        for raw in raws:
            response = await client.append(raw, mailbox=mailbox)
            assert response.result == "OK", response
        await client.logout()

    async def flags(self, mailbox: str = "INBOX") -> dict[int, str]:
        client = IMAP4(host="127.0.0.1", port=self.port, timeout=10)
        await client.wait_hello_from_server()
        await client.login(USER, PASSWORD)
        await client.select(mailbox)
        response = await client.fetch("1:*", "(UID FLAGS)")
        await client.logout()
        found: dict[int, str] = {}
        for line in response.lines:
            if isinstance(line, bytes) and b"FETCH" in line and b"UID" in line:
                text = line.decode()
                uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                found[uid] = text.split("FLAGS (")[1].split(")")[0]
        return found


_STOPPING: list[subprocess.Popen[bytes]] = []
"""Dovecots told to stop; stopping takes about 3 s, so tests do not wait for it one by one."""


@pytest.fixture(scope="session")
def dovecot_root() -> Iterator[Path]:
    if shutil.which("dovecot") is None:
        pytest.fail("dovecot is not installed (see shared/peers/README.md)")
    # Not tmp_path (mode 0700): Dovecot's mail processes run as uid 8 and must traverse it.
    root = Path(f"/tmp/peers/run-{os.getpid()}-{uuid.uuid4().hex[:6]}")  # noqa: S108
    root.mkdir(parents=True)
    os.chmod(root, 0o755)  # noqa: S103 - uid 8 must traverse it
    yield root
    for process in _STOPPING:
        process.wait(30)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def dovecot(dovecot_root: Path) -> AsyncIterator[Dovecot]:
    """A fresh Dovecot with an empty mailbox for each test."""
    async for server in _fresh_dovecot(dovecot_root):
        yield server


@pytest.fixture
async def tls_dovecot(dovecot_root: Path, tls_files: TlsFiles) -> AsyncIterator[Dovecot]:
    """A fresh Dovecot that speaks IMAPS on ``imaps_port`` and offers STARTTLS on ``port``."""
    async for server in _fresh_dovecot(dovecot_root, tls_files):
        yield server


async def _fresh_dovecot(root: Path, tls: TlsFiles | None = None) -> AsyncIterator[Dovecot]:
    root = root / uuid.uuid4().hex[:6]
    root.mkdir()
    os.chmod(root, 0o755)  # noqa: S103 - uid 8 must traverse it
    server = Dovecot(root, free_port(), tls, free_port() if tls else 0)
    await asyncio.to_thread(server.start)
    yield server
    _STOPPING.append(
        subprocess.Popen(  # noqa: ASYNC220 - does not block: started, reaped at session end
            ["bash", str(PEERS / "stop-dovecot.sh"), str(server.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
