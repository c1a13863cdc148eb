"""Faults on the way out, with real RQ workers: a work horse killed mid-send, Redis down for the
whole test, an SMTP server answering 451 then 250, and one refusing with 550; each alone and
within one job of several rows (the relay groups a queue's rows per channel)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from redis import Redis
from rq import Queue

from channels.email.process import MailProcessor
from gateway.models import OutboxStatus
from gateway.settings import Settings
from gateway.store import Store
from tests.channels.email.conftest import email_settings
from tests.channels.email.mailmaker import mail
from tests.channels.telegram.conftest import TOKEN as TELEGRAM_TOKEN
from tests.channels.telegram.conftest import MakeServer, telegram_settings
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.conftest import RedisServer, free_port
from tests.factories import Clock, inbound, make_ingest
from tests.workers.conftest import Courier, WorkerProcess, outbox
from workers.jobs import HANDED_OVER, deliver_async
from workers.relay import OutboxRelay, job_id


def tcp_owner(port: int, remote_port: int) -> int:
    """The pid of the process whose TCP socket goes from local port ``port`` to
    ``remote_port`` (from /proc). Both ends: an ephemeral port number is reused towards other
    destinations, so the local port alone can name another process on the machine."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
                if (local, remote) == (port, remote_port):
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        raise LookupError(f"no socket from port {port} to port {remote_port}")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
        except OSError:  # gone, or not ours to look at
            continue
    raise LookupError(f"no process has the socket from port {port} to port {remote_port}")


@dataclass
class ScriptedSink:
    """An SMTP server answering DATA from ``replies`` in turn (then 250), or for a recipient
    listed in ``replies_to`` from that recipient's own list, keeping what it took.

    With ``kill_sender``, the first DATA SIGKILLs the process on the other end of the connection
    once the server has the whole mail, before it answers: the sender dies not knowing.
    """

    port: int = 0
    replies: list[str] = field(default_factory=list)
    replies_to: dict[str, list[str]] = field(default_factory=dict)
    kill_sender: bool = False
    accepted: list[Envelope] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        script = self.replies_to.get(envelope.rcpt_tos[0], self.replies)
        reply = script.pop(0) if script else "250 OK"
        if reply.startswith("250"):
            self.accepted.append(envelope)
        if self.kill_sender:
            self.kill_sender = False  # once: other mails' DATA may arrive while this one waits
            assert session.peer is not None
            pid = await asyncio.to_thread(tcp_owner, int(session.peer[1]), self.port)
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)
        return reply

    def message_ids(self) -> list[str]:
        found = []
        for envelope in self.accepted:
            content = envelope.content
            data = content if isinstance(content, bytes) else str(content).encode()
            for line in data.split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    found.append(line.split(b":", 1)[1].strip().decode())
        return found


@pytest.fixture
def sink() -> Iterator[ScriptedSink]:
    scripted = ScriptedSink(port=free_port())
    controller = Controller(scripted, hostname="127.0.0.1", port=scripted.port)
    controller.start()
    yield scripted
    controller.stop()


def mail_settings(db_url: str, redis_url: str, sink: ScriptedSink, tmp_path: Path) -> Settings:
    settings = email_settings(
        db_url, smtp_port=sink.port, attachment_dir=str(tmp_path / "attachments")
    )
    return settings.model_copy(update={"redis_url": redis_url})


async def customers_write(store: Store, settings: Settings, count: int) -> None:
    """``count`` customers mail in: each new ticket owes its acknowledgement."""
    processor = MailProcessor(settings, store, make_ingest(store, Clock()))
    for n in range(count):
        await processor.process(mail(f"customer{n}@example.org", f"Question {n}", "Hello?"))


async def test_a_work_horse_killed_after_the_server_took_the_mail_is_not_sent_again(
    store: Store, db_url: str, redis_url: str, sink: ScriptedSink, tmp_path: Path
) -> None:
    settings = mail_settings(db_url, redis_url, sink, tmp_path)
    await customers_write(store, settings, 1)
    sink.kill_sender = True
    worker = WorkerProcess("forking", tmp_path)
    worker.start(settings)
    redis = Redis.from_url(redis_url)
    try:
        # The retry comes after RQ's first backoff interval (5 s), through RQ's scheduler.
        [row] = await Courier(store, OutboxRelay(store, redis), worker).deliver(within=60)
        job = Queue("notices", connection=redis).fetch_job(job_id(row.id))
    finally:
        worker.stop()
        redis.close()
    assert worker.process is None
    assert len(sink.killed) == 1  # a work horse died mid-send...
    assert job is not None and job.retries_left is not None and job.retries_left < 5  # ...retried
    assert len(sink.accepted) == 1  # and the mail went out once
    assert (row.status, row.last_error) == (OutboxStatus.SENT, HANDED_OVER)
    assert sink.message_ids() == [row.external_id]


async def test_with_redis_down_for_the_whole_test_every_owed_mail_goes_out_once_after(
    store: Store,
    db_url: str,
    redis_url: str,
    redis_server: RedisServer,
    sink: ScriptedSink,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    settings = mail_settings(db_url, redis_url, sink, tmp_path)
    worker.start(settings)  # a worker that was running when Redis went away
    redis = Redis.from_url(redis_url, socket_connect_timeout=1)
    relay = OutboxRelay(store, redis)
    relay_task = asyncio.create_task(relay.run(asyncio.Event(), poll_seconds=0.05))
    await worker.ready(redis)
    redis_server.stop()
    try:
        await customers_write(store, settings, 5)  # accepted while Redis is down
        await asyncio.sleep(2)
        assert {r.status for r in await outbox(store)} == {OutboxStatus.PENDING.value}
        assert sink.accepted == []
    finally:
        redis_server.start()
    try:
        rows = await Courier(store, relay, worker).deliver(within=60)
    finally:
        relay_task.cancel()
        redis.close()
    assert len(rows) == 5
    assert {r.status for r in rows} == {OutboxStatus.SENT.value}
    assert sorted(sink.message_ids()) == sorted(str(r.external_id) for r in rows)


@pytest.mark.parametrize(
    ("reply", "status", "attempts"),
    [
        ("451 4.3.0 Try again later", OutboxStatus.SENT, 2),
        ("550 5.1.1 No such mailbox", OutboxStatus.FAILED, 1),
    ],
    ids=["451-then-250-delivered", "550-parked"],
)
async def test_a_451_is_retried_and_a_550_parks_the_row_which_the_cli_lists(
    store: Store,
    db_url: str,
    redis_url: str,
    sink: ScriptedSink,
    tmp_path: Path,
    reply: str,
    status: OutboxStatus,
    attempts: int,
) -> None:
    from tests.cli_runner import environment, gateway

    settings = mail_settings(db_url, redis_url, sink, tmp_path)
    await customers_write(store, settings, 1)
    sink.replies = [reply]
    worker = WorkerProcess("simple", tmp_path)
    worker.start(settings)
    redis = Redis.from_url(redis_url)
    try:
        [row] = await Courier(store, OutboxRelay(store, redis), worker).deliver(within=60)
    finally:
        worker.stop()
        redis.close()
    assert (row.status, row.attempts) == (status, attempts)
    env = environment(GATEWAY_DATABASE_URL=db_url, GATEWAY_REDIS_URL=redis_url)
    listed = await asyncio.to_thread(gateway, "outbox", "failed", env=env, cwd=tmp_path)
    if status is OutboxStatus.SENT:  # on the retry, 5 s later (RQ's scheduler)
        assert row.last_error is None
        assert sink.message_ids() == [row.external_id]
        assert listed.stdout.strip() == ""
        return
    assert sink.accepted == []
    fields = listed.stdout.strip().split("\t")
    assert fields[:3] == [str(row.id), "email", "ticket_received"]
    assert "550" in fields[-1] and "No such mailbox" in fields[-1]


async def test_one_job_of_several_mails_marks_each_row_on_its_own(
    store: Store, db_url: str, redis_url: str, sink: ScriptedSink, tmp_path: Path
) -> None:
    settings = mail_settings(db_url, redis_url, sink, tmp_path)
    await customers_write(store, settings, 4)
    sink.replies_to = {
        "customer0@example.org": ["550 5.1.1 No such mailbox"],
        "customer1@example.org": ["451 4.3.0 Try again later"],
    }
    redis = Redis.from_url(redis_url)
    relay = OutboxRelay(store, redis)
    assert await relay.run_once() == 4
    assert Queue("notices", connection=redis).job_ids == [job_id(1, 2, 3, 4)]  # one job
    worker = WorkerProcess("simple", tmp_path)
    worker.start(settings)
    try:
        rows = await Courier(store, relay, worker).deliver(within=60)
    finally:
        worker.stop()
        redis.close()
    outcomes = [(r.status, r.attempts) for r in rows]
    assert outcomes == [
        (OutboxStatus.FAILED, 1),  # 550: parked at once
        (OutboxStatus.SENT, 2),  # 451: sent by the job's retry...
        (OutboxStatus.SENT, 1),  # ...which did not send the others again
        (OutboxStatus.SENT, 1),
    ]
    assert "550" in str(rows[0].last_error)
    assert sorted(sink.message_ids()) == sorted(str(r.external_id) for r in rows[1:])


async def test_a_job_of_several_mails_killed_mid_send_sends_each_once(
    store: Store, db_url: str, redis_url: str, sink: ScriptedSink, tmp_path: Path
) -> None:
    settings = mail_settings(db_url, redis_url, sink, tmp_path)
    await customers_write(store, settings, 5)
    sink.kill_sender = True  # at the first mail's end of data; others are under way beside it
    worker = WorkerProcess("forking", tmp_path)
    worker.start(settings)
    redis = Redis.from_url(redis_url)
    try:
        rows = await Courier(store, OutboxRelay(store, redis), worker).deliver(within=60)
    finally:
        worker.stop()
        redis.close()
    assert len(sink.killed) == 1
    assert {r.status for r in rows} == {OutboxStatus.SENT.value}
    ids = sink.message_ids()
    assert sorted(ids) == sorted(str(r.external_id) for r in rows)  # each mail once
    assert HANDED_OVER in {r.last_error for r in rows}  # the killed one, taken as delivered


async def test_a_transient_failure_on_the_last_try_parks_the_row(
    store: Store, db_url: str, redis_url: str, sink: ScriptedSink, tmp_path: Path
) -> None:
    settings = mail_settings(db_url, redis_url, sink, tmp_path)
    await customers_write(store, settings, 1)
    sink.replies = ["451 4.3.0 Try again later"] * 2
    [row] = await outbox(store)
    with pytest.raises(Exception, match="451"):  # a try with tries left: RQ retries it
        await deliver_async(row.id, settings)
    assert await deliver_async(row.id, settings, last_try=True) == (
        "failed: SMTP 451 4.3.0 Try again later"
    )
    [row] = await outbox(store)
    assert (row.status, row.attempts, row.external_id) == (OutboxStatus.FAILED, 2, None)
    assert row.last_error == "SMTP 451 4.3.0 Try again later"


@pytest.fixture
async def killing_bot_api(aiohttp_server: MakeServer) -> FakeBotAPI:
    """The Bot API stand-in, SIGKILLing the sender of the first sendMessage once it has taken
    the message, before it answers (as :class:`ScriptedSink` does at SMTP's end of data)."""
    api = FakeBotAPI(TELEGRAM_TOKEN)
    killed: list[int] = []

    @web.middleware
    async def kill_first_sender(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path.endswith("/sendMessage") and not killed:
            killed.append(0)
            peer = request.transport.get_extra_info("peername") if request.transport else None
            assert peer is not None
            pid = await asyncio.to_thread(tcp_owner, int(peer[1]), api.port)
            os.kill(pid, signal.SIGKILL)
            killed[0] = pid
        return response

    api.app.middlewares.append(kill_first_sender)
    server = await aiohttp_server(api.app)
    assert server.port is not None
    api.port = server.port
    api.killed = killed  # type: ignore[attr-defined]
    return api


async def test_a_work_horse_killed_after_telegram_took_the_message_is_not_sent_again(
    store: Store, db_url: str, redis_url: str, killing_bot_api: FakeBotAPI, tmp_path: Path
) -> None:
    api = killing_bot_api
    settings = telegram_settings(api, db_url, redis_url, tmp_path)
    await make_ingest(store)(inbound(external_user_id="4242", thread_key="4242"))
    worker = WorkerProcess("forking", tmp_path)
    worker.start(settings)
    redis = Redis.from_url(redis_url)
    try:
        [row] = await Courier(store, OutboxRelay(store, redis), worker).deliver(within=60)
    finally:
        worker.stop()
        redis.close()
    assert len(api.killed) == 1 and api.killed[0] > 0  # type: ignore[attr-defined]
    assert [m["chat_id"] for m in api.sent] == [4242]  # sent once, though its sender died
    assert (row.status, row.last_error) == (OutboxStatus.SENT, HANDED_OVER)
