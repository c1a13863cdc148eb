"""A thin, typed layer over aioimaplib 2.0.3: connect (TLS, STARTTLS, or plain on loopback),
select with UIDVALIDITY, search and fetch by UID without setting ``\\Seen``.

Every command has a deadline: a server that stops answering must not freeze the listener.
Commands run one at a time (the listener fetches the next batch while it flags the last one
``\\Seen``; aioimaplib does not order concurrent commands itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from aioimaplib import IMAP4, IMAP4_SSL, STOP_WAIT_SERVER_PUSH, Command

from gateway.settings import EmailSettings, MailSecurity
from gateway.tasks import running

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_HEAD = re.compile(rb"^\d+ FETCH \(.*?\{(\d+)\}$")
_UID = re.compile(rb"UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")

_FEED = 4096
"""Bytes handed to aioimaplib's parser at a time (see :func:`_feed_in_slices`)."""


class ImapError(Exception):
    """The server said NO/BAD, did not answer in time, or the connection is gone."""


@dataclass(frozen=True, slots=True)
class Selected:
    uidvalidity: int
    exists: int


class ImapSession:
    """One logged-in connection; ``lost`` is set when the connection drops."""

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self.timeout = settings.imap_timeout
        self.lost = asyncio.Event()
        self.client: Any = None
        self._turn = asyncio.Lock()

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file)

    async def connect(self) -> None:
        s = self.settings
        if s.imap_security is MailSecurity.TLS:
            self.client = IMAP4_SSL(
                host=s.imap_host,
                port=s.imap_port,
                timeout=self.timeout,
                ssl_context=self._context(),
            )
            # IMAP4_SSL takes no connection-lost callback; the protocol's hook gives the same.
            self.client.protocol.conn_lost_cb = self._on_lost
        else:
            self.client = IMAP4(
                host=s.imap_host, port=s.imap_port, timeout=self.timeout, conn_lost_cb=self._on_lost
            )
        _feed_in_slices(self.client.protocol)
        await self._deadline(self.client.wait_hello_from_server())
        if s.imap_security is MailSecurity.STARTTLS:
            await self._starttls()
        password = s.imap_password.get_secret_value() if s.imap_password else ""
        response = await self._deadline(self.client.login(s.imap_user or "", password))
        if response.result != "OK":
            raise ImapError("login refused")

    async def _starttls(self) -> None:
        """RFC 3501 6.2.1 / RFC 2595: upgrade, then forget pre-TLS capabilities."""
        protocol = self.client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError("server does not offer STARTTLS")
        response = await self._deadline(
            protocol.execute(Command("STARTTLS", protocol.new_tag(), loop=protocol.loop))
        )
        if response.result != "OK":
            raise ImapError("STARTTLS refused")
        loop = asyncio.get_running_loop()
        plain = protocol.transport
        try:
            protocol.transport = await self._deadline(
                loop.start_tls(
                    plain, protocol, self._context(), server_hostname=self.settings.imap_host
                )
            )
        except BaseException:
            # An unverified server gets nothing more, not even a LOGOUT in the clear.
            self.lost.set()
            plain.close()
            raise
        await self._deadline(protocol.capability())

    def _on_lost(self, _exc: Exception | None) -> None:
        self.lost.set()
        if self.client is not None:
            # Wake an IDLE wait at once rather than at its timeout.
            self.client.protocol.idle_queue.put_nowait(STOP_WAIT_SERVER_PUSH)

    async def _deadline(self, awaitable: Awaitable[T], limit: float | None = None) -> T:
        try:
            await self._turn.acquire()  # the deadline counts from when the command is sent
        except BaseException:
            _discard(awaitable)  # cancelled while waiting its turn: never sent
            raise
        try:
            if self.lost.is_set():
                _discard(awaitable)
                raise ImapError("connection lost")
            try:
                return await asyncio.wait_for(awaitable, limit or self.timeout)
            except TimeoutError as exc:
                raise ImapError("IMAP command timed out") from exc
        finally:
            self._turn.release()

    @property
    def has_idle(self) -> bool:
        return bool(self.client is not None and self.client.has_capability("IDLE"))

    async def select(self, mailbox: str) -> Selected:
        response = await self._deadline(self.client.select(_quote(mailbox)))
        if response.result != "OK":
            raise ImapError(f"cannot select {mailbox}")
        uidvalidity = exists = 0
        for line in response.lines:
            if isinstance(line, bytes | bytearray):
                found = _UIDVALIDITY.search(line)
                if found:
                    uidvalidity = int(found.group(1))
                if line.endswith(b" EXISTS"):
                    exists = int(line.split()[0])
        return Selected(uidvalidity, exists)

    async def uids(self, criteria: str) -> list[int]:
        response = await self._deadline(self.client.uid_search(criteria, charset=None))
        if response.result != "OK":
            raise ImapError("search failed")
        found: list[int] = []
        for line in response.lines[:-1] or response.lines:
            if isinstance(line, bytes | bytearray):
                found += [int(t) for t in bytes(line).split() if t.isdigit()]
        return sorted(set(found))

    async def fetch(self, uids: list[int]) -> dict[int, bytes]:
        """Raw bytes of each mail; ``BODY.PEEK[]`` leaves ``\\Seen`` unset (RFC 3501 6.4.5)."""
        if not uids:
            return {}
        response = await self._deadline(
            self.client.uid("fetch", ",".join(map(str, uids)), "(UID BODY.PEEK[])"),
            limit=self.timeout * 4,
        )
        if response.result != "OK":
            raise ImapError("fetch failed")
        found: dict[int, bytes] = {}
        lines = response.lines
        for index, line in enumerate(lines):
            if not isinstance(line, bytes) or not _FETCH_HEAD.match(line):
                continue
            literal = lines[index + 1] if index + 1 < len(lines) else None
            uid = _UID.search(line)
            if uid is None and index + 2 < len(lines) and isinstance(lines[index + 2], bytes):
                uid = _UID.search(lines[index + 2])  # some servers send UID after the body
            if uid is not None and isinstance(literal, bytes | bytearray):
                found[int(uid.group(1))] = bytes(literal)
        return found

    async def sizes(self, uids: list[int]) -> dict[int, int]:
        """Each mail's size in bytes (``RFC822.SIZE``), to bound what one fetch holds."""
        if not uids:
            return {}
        response = await self._deadline(
            self.client.uid("fetch", ",".join(map(str, uids)), "(UID RFC822.SIZE)")
        )
        if response.result != "OK":
            raise ImapError("fetch failed")
        found: dict[int, int] = {}
        for line in response.lines:
            if isinstance(line, bytes | bytearray):
                uid, size = _UID.search(line), _SIZE.search(line)
                if uid is not None and size is not None:
                    found[int(uid.group(1))] = int(size.group(1))
        return found

    async def mark_seen(self, uids: list[int]) -> None:
        if not uids:
            return
        response = await self._deadline(
            self.client.uid("store", ",".join(map(str, uids)), "+FLAGS.SILENT", r"(\Seen)")
        )
        if response.result != "OK":
            raise ImapError("store failed")

    async def idle(self, seconds: float) -> list[bytes]:
        """Wait in IDLE up to ``seconds`` (RFC 2177); the server's untagged lines, if any."""
        idle = await self._deadline(self.client.idle_start(timeout=seconds))
        if not running():
            # Asked to stop while IDLE started, and the cancel was swallowed on the way (see
            # gateway.tasks): end IDLE now, not after ``seconds`` of waiting for nothing.
            self.client.idle_done()
            await self._deadline(idle)
            raise asyncio.CancelledError
        try:
            lines = await self.client.wait_server_push(timeout=seconds + self.timeout)
        except TimeoutError:
            lines = []
        if self.lost.is_set():
            raise ImapError("connection lost during IDLE")
        self.client.idle_done()
        await self._deadline(idle)
        return [bytes(x) for x in lines if isinstance(x, bytes | bytearray)]

    async def noop(self) -> None:
        await self._deadline(self.client.noop())

    async def close(self) -> None:
        if self.client is None:
            return
        if not self.lost.is_set():
            # Best effort on the way out: the server may already be gone.
            with contextlib.suppress(Exception):
                if self.client.has_pending_idle():
                    # RFC 2177: DONE ends IDLE; LOGOUT would otherwise wait for it in vain.
                    self.client.idle_done()
                await asyncio.wait_for(self.client.logout(), 2)
        transport = getattr(self.client.protocol, "transport", None)
        if transport is not None:
            transport.close()


def _discard(awaitable: Awaitable[Any]) -> None:
    if asyncio.iscoroutine(awaitable):
        awaitable.close()  # no "never awaited" warning for a command we did not send


def _feed_in_slices(protocol: Any) -> None:
    """Make aioimaplib parse what the socket gives it a few KiB at a time.

    aioimaplib 2.0.3 parses a received chunk line by line, copying the rest of the chunk at
    each line and literal and keeping every copy alive until the chunk is done: quadratic in
    the chunk's size. A FETCH of 50 mails arrives in chunks of up to 256 KiB (asyncio's read
    size) and cost 115 ms to parse that way, 4 ms in 4 KiB slices (2.3 vs 0.08 ms a mail; the
    listener's profile under the benchmark showed it). Any split is valid input: TCP may cut
    the stream anywhere, and the parser keeps partial lines and literals between calls.
    """
    receive = protocol.data_received

    def data_received(data: bytes) -> None:
        for start in range(0, len(data), _FEED):
            receive(data[start : start + _FEED])

    protocol.data_received = data_received


def _quote(mailbox: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./-]+", mailbox):
        return mailbox
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'
