"""Parsing in a worker process gives what parsing in the loop gives, and survives the worker's
death; aioimaplib fed in slices reads a large FETCH response exactly."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from aioimaplib import aioimaplib

from channels.base import ChannelInputError
from channels.email.ids import Signer
from channels.email.imap import _feed_in_slices
from channels.email.parse_pool import Parsed, ParseOptions, ParsePool
from tests.channels.email.corpus import expected, mails, raw
from tests.channels.email.mailmaker import mail

OPTIONS = ParseOptions(
    our_addresses=("support@example.test",),
    signer=Signer("test-secret", "example.test"),
    max_attachment_bytes=expected()["attachment_max_bytes"],
)


@pytest.fixture
def pool() -> Iterator[ParsePool]:
    found = ParsePool(OPTIONS, workers=1)
    yield found
    found.close()


def _same(a: Parsed, b: Parsed) -> bool:
    if isinstance(a, ChannelInputError) or isinstance(b, ChannelInputError):
        return type(a) is type(b) and (a.reason, a.detail) == (b.reason, b.detail)  # type: ignore[union-attr]
    return a == b


async def test_worker_parses_the_corpus_as_the_loop_does(pool: ParsePool) -> None:
    raws = [raw(m["file"]) for m in mails()] + [b"", b"not a mail at all"]
    in_worker = await pool.parse(raws)
    in_loop = await ParsePool(OPTIONS, workers=0).parse(raws)
    assert len(in_worker) == len(raws)
    assert all(_same(a, b) for a, b in zip(in_worker, in_loop, strict=True))
    reasons = [p.reason for p in in_worker if isinstance(p, ChannelInputError)]
    assert reasons == ["no_sender", "empty_mail", "no_sender"]


async def test_a_dead_worker_costs_one_batch_in_the_loop_then_a_new_worker(
    pool: ParsePool,
) -> None:
    raws = [mail(f"w{n}@example.org") for n in range(3)]
    first = await pool.parse(raws)
    executor: Any = pool._executor
    for pid in list(executor._processes):
        os.kill(pid, signal.SIGKILL)  # the OOM killer, say
    await asyncio.sleep(0.2)
    assert await pool.parse(raws) == first  # parsed in the loop this once
    assert pool._executor is not executor
    assert await pool.parse(raws) == first
    assert pool._executor is not None and pool._executor._processes  # a new worker


async def test_fetch_response_in_one_large_chunk_is_read_exactly() -> None:
    """asyncio hands over up to 256 KiB at once; the slices must not lose or shift a byte,
    whatever falls on a slice boundary (CRLF, literal size, the literal itself)."""
    loop = asyncio.get_running_loop()
    protocol = aioimaplib.IMAP4ClientProtocol(loop, conn_lost_cb=None)
    _feed_in_slices(protocol)
    protocol.state = aioimaplib.SELECTED
    bodies = [mail(f"f{n}@example.org", text="x" * (n * 131 % 9000)) for n in range(80)]
    response = (
        b"".join(
            b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (n + 1, n + 101, len(body)) + body + b")\r\n"
            for n, body in enumerate(bodies)
        )
        + b"A1 OK Fetch completed.\r\n"
    )
    assert len(response) > 256 * 1024
    for split in (len(response), 4095, 7):  # one chunk, odd chunks, tiny chunks
        command = aioimaplib.Command("UID", "A1", "fetch", loop=loop)
        protocol.pending_sync_command = command
        for start in range(0, len(response), split):
            protocol.data_received(response[start : start + split])
        lines = command.response.lines
        assert command.response.result == "OK"
        assert [bytes(x) for x in lines[1:-1:3]] == bodies
        assert lines[0] == b"1 FETCH (UID 101 BODY[] {%d}" % len(bodies[0])
