"""Email channel throughput and IDLE latency against a real Dovecot.

Usage: ``python -m bench.email [--mails 2000] [--latency 50] [--db sqlite postgres]``
(``python bench/email.py`` works too).

For each database: (1) the baseline, bare ``email.message_from_bytes(policy=default)`` over the
same mails in the same run; (2) end to end: the mails are APPENDed to a throwaway Dovecot, then
the listener starts and the clock runs until every mail is a committed ticket message (mailbox
-> IMAP fetch -> parse -> threading -> ``Pipeline.on_message`` with a knowledge base that
declines everything -> ``\\Seen``; commits are counted as ``on_message`` returns, checked
against the database at the end; the parser process is started before the clock, as a running
gateway has it); (3) latency: single mails delivered with ``dovecot-lda``
while the listener waits in IDLE, timed from delivery to the committed message. Writes
``bench/results/email.json``. Targets: end to end >= 35% of the bare parse rate; p99 < 2 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file is named like the
# standard library's ``email`` package: put the repository root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import email
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from email import policy
from typing import Any
from zoneinfo import ZoneInfo

from aioimaplib import IMAP4
from sqlalchemy import func, select

from bench.common import free_port, fresh_database, percentile, write_results
from channels.email.listener import MailboxListener
from channels.email.process import MailProcessor
from gateway.ingest import Ingest, IngestResult
from gateway.models import InboundMessage
from gateway.pipeline import OnMessage, Pipeline
from gateway.routing import Router
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import TicketMessage
from knowledge_base.base import NeverMatches

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "email"
PEERS = Path("/work/shared/peers/dovecot")
USER, PASSWORD = "support@example.test", "secret"
_MESSAGE_ID = re.compile(rb"^Message-ID:[^\r\n]*\r?\n", re.I | re.M)
_FROM = re.compile(rb"^From:[^\r\n]*\r?\n", re.I | re.M)


def corpus_mails(count: int) -> list[bytes]:
    """``count`` mails in the corpus's real shapes, each with its own sender and Message-ID."""
    table = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
    shapes = [
        (CORPUS / entry["file"]).read_bytes()
        for entry in table["mails"]
        if entry["outcome"] == "stored"
    ]
    mails = []
    for i in range(count):
        raw = shapes[i % len(shapes)]
        raw = _MESSAGE_ID.sub(b"", raw, count=1)
        raw = _FROM.sub(f"From: bench{i}@example.org\r\n".encode(), raw, count=1)
        mails.append(f"Message-ID: <bench-{i}-{uuid.uuid4().hex}@example.org>\r\n".encode() + raw)
    return mails


def bare_rate(mails: list[bytes]) -> tuple[float, float]:
    """Mails per second, and CPU milliseconds per mail."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for raw in mails:
        email.message_from_bytes(raw, policy=policy.default)
    cpu = time.process_time() - cpu_started
    return len(mails) / (time.perf_counter() - started), cpu / len(mails) * 1000


class Dovecot:
    def __init__(self) -> None:
        self.root = Path(f"/tmp/peers/run-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        self.root.mkdir(parents=True)
        os.chmod(self.root, 0o755)  # noqa: S103 - Dovecot's mail uid 8 must traverse it
        self.port = free_port()
        self.conf = str(self.root / "dovecot" / "dovecot.conf")

    def __enter__(self) -> Dovecot:
        subprocess.run(
            ["bash", str(PEERS / "start-dovecot.sh"), str(self.root / "dovecot"), str(self.port),
             str(self.root / "mail")],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "IMAP_USER": USER, "IMAP_PASS": PASSWORD},
        )  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(
            ["bash", str(PEERS / "stop-dovecot.sh"), str(self.root / "dovecot")],
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)

    async def append(self, mails: list[bytes]) -> None:
        client = IMAP4(host="127.0.0.1", port=self.port, timeout=30)
        await client.wait_hello_from_server()
        await client.login(USER, PASSWORD)
        for raw in mails:
            await client.append(raw, mailbox="INBOX")
        await client.logout()

    def lda(self, raw: bytes) -> None:
        subprocess.run(
            ["/usr/lib/dovecot/dovecot-lda", "-c", self.conf, "-d", USER, "-f", "b@example.org"],
            input=raw, check=True,
        )  # fmt: skip


class Committed:
    """Counts the messages ``on_message`` committed (it returns once they are), so the clock
    stops at the last commit without polling the database from the measured process."""

    def __init__(self, on_message: OnMessage) -> None:
        self._on_message = on_message
        self.count = 0
        self._changed = asyncio.Event()

    async def on_message(self, inbound: InboundMessage) -> IngestResult:
        result = await self._on_message(inbound)
        if not result.duplicate:
            self.count += 1
            self._changed.set()
        return result

    async def reach(self, count: int) -> None:
        while self.count < count:
            self._changed.clear()
            await self._changed.wait()


async def stored(store: Store) -> int:
    async with store.read() as session:
        return int(await session.scalar(select(func.count()).select_from(TicketMessage)) or 0)


async def run_one(db: str, mails: list[bytes], latency_count: int, bare: float) -> dict[str, Any]:
    async with fresh_database(db) as url:
        attachments = Path(f"/tmp/bench-email-attachments-{uuid.uuid4().hex[:6]}")
        settings = Settings(
            _env_file=None,
            database_url=url,
            secret_key="bench-secret",
            webchat={"enabled": False},
            email={
                "enabled": True, "address": USER, "imap_user": USER, "imap_password": PASSWORD,
                "imap_security": "plain", "smtp_security": "plain",
                "attachment_dir": str(attachments),
            },
        )  # fmt: skip
        store = Store(url)
        ingest = Ingest(store, zone=ZoneInfo("Asia/Shanghai"))
        pipeline = Pipeline(ingest, Router(store, NeverMatches()))
        committed = Committed(pipeline.on_message)
        processor = MailProcessor(settings, store, committed.on_message)
        try:
            with Dovecot() as dovecot:
                await dovecot.append(mails)
                email_settings = settings.email.model_copy(update={"imap_port": dovecot.port})
                listener = MailboxListener(email_settings, store, processor)
                # A running gateway has its parser process by the time mail comes.
                await processor.pool.wait_ready()
                started, cpu_started = time.perf_counter(), time.process_time()
                task = asyncio.create_task(listener.run())
                await committed.reach(len(mails))
                elapsed = time.perf_counter() - started
                cpu = time.process_time() - cpu_started
                await pipeline.drain()
                latencies = []
                for i in range(latency_count):
                    while listener.drained == 0:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                    raw = mails[i % len(mails)].replace(b"<bench-", f"<lat-{i}-".encode(), 1)
                    t0 = time.perf_counter()
                    await asyncio.to_thread(dovecot.lda, raw)
                    await committed.reach(len(mails) + i + 1)
                    latencies.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.05)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await pipeline.drain()
                found = await stored(store)
                if found != len(mails) + latency_count:  # what was counted is what is stored
                    raise RuntimeError(f"{found} messages stored, {committed.count} counted")
        finally:
            processor.close()
            await store.close()
            shutil.rmtree(attachments, ignore_errors=True)
    rate = len(mails) / elapsed
    return {
        "end_to_end_mails_per_s": round(rate, 1),
        "ratio_to_bare_parse": round(rate / bare, 3),
        # CPU of this process (the event loop and its threads; not the parser process) per
        # mail: on a shared machine, a figure that load moves less than the rates.
        "gateway_process_cpu_ms_per_mail": round(cpu / len(mails) * 1000, 2),
        "latency_p50_s": round(percentile(latencies, 50), 3),
        "latency_p99_s": round(percentile(latencies, 99), 3),
        "latency_samples": len(latencies),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--latency", type=int, default=50)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    mails = corpus_mails(args.mails)
    bare, bare_cpu = max(bare_rate(mails) for _ in range(3))
    results: dict[str, Any] = {
        "mails": len(mails),
        "mail_bytes_mean": round(sum(map(len, mails)) / len(mails)),
        "bare_parse_mails_per_s": round(bare, 1),
        "bare_parse_cpu_ms_per_mail": round(bare_cpu, 3),
        "targets": {"ratio_to_bare_parse": 0.35, "latency_p99_s": 2.0},
    }
    for db in args.db:
        results[db] = await run_one(db, mails, args.latency, bare)
        print(db, results[db], flush=True)
    print(f"bare parse: {bare:.0f} mails/s")
    print("wrote", write_results("email", results))


if __name__ == "__main__":
    asyncio.run(main())
