"""Parsing off the event loop: worker processes turn fetched bytes into :class:`ParsedMail`.

Parsing is CPU-bound pure Python (``email.message_from_bytes`` is most of it, ~1-2 ms a mail).
On the event loop it would stall everything else the process does (ingest, routing, the web
server) and leave the second core idle. With ``workers >= 1`` a batch is parsed in a worker
process while the loop commits the batch before it; ``workers=0`` parses in the loop.

The workers are started with ``spawn``, never ``fork``: the gateway runs threads (aiosqlite's,
``to_thread``'s) whose locks a forked child could inherit held. They start on first use and are
warmed at once, so the first mail does not wait for the interpreter to start. If a worker dies
(``BrokenProcessPool``: killed, out of memory), that batch is parsed in the loop and a new pool
is made for the next one. What a worker returns is what :func:`parse_mail` would: a
:class:`ParsedMail`, a :class:`Rejected`, or the :class:`ChannelInputError` it raised.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from channels.base import ChannelInputError
from channels.email.ids import Signer
from channels.email.parse import ParsedMail, Rejected, parse_mail

log = logging.getLogger(__name__)

Parsed = ParsedMail | Rejected | ChannelInputError
"""One mail's parse: the result, or why the mail is unusable (the sender's fault)."""


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """Everything :func:`parse_mail` needs besides the bytes (sent to each worker once)."""

    our_addresses: tuple[str, ...]
    signer: Signer | None
    max_attachment_bytes: int

    def parse(self, raw: bytes) -> Parsed:
        try:
            return parse_mail(
                raw,
                our_addresses=self.our_addresses,
                signer=self.signer,
                max_attachment_bytes=self.max_attachment_bytes,
            )
        except ChannelInputError as exc:
            return exc


_options: ParseOptions | None = None
"""In a worker: the options its pool was made with."""


def _start_worker(options: ParseOptions) -> None:
    global _options
    _options = options


def _parse_in_worker(raws: list[bytes]) -> list[Parsed]:
    if _options is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("parse worker started without options")
    return [_options.parse(raw) for raw in raws]


def _ready() -> bool:
    return True


class ParsePool:
    """``await pool.parse(raws)``: one :data:`Parsed` per raw mail, in order."""

    def __init__(self, options: ParseOptions, *, workers: int = 1) -> None:
        self.options = options
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    def start(self) -> ProcessPoolExecutor:
        """Start the workers now (else on first use); they are warmed in the background."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=max(1, self.workers),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.options,),
            )
            self._executor.submit(_ready)  # the interpreter starts now, not on the first mail
        return self._executor

    def warm(self) -> None:
        """Start the workers ahead of the first batch (nothing to do with ``workers=0``)."""
        if self.workers > 0:
            self.start()

    async def wait_ready(self) -> None:
        """Start the workers and wait until one answers (benchmarks start their clock after)."""
        if self.workers > 0:
            await asyncio.get_running_loop().run_in_executor(self.start(), _ready)

    async def parse(self, raws: Sequence[bytes]) -> list[Parsed]:
        if not raws:
            return []
        if self.workers <= 0:
            return [self.options.parse(raw) for raw in raws]
        executor = self.start()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                executor, _parse_in_worker, list(raws)
            )
        except BrokenProcessPool as exc:
            log.warning("mail parser process died; parsing in the loop", extra={"error": repr(exc)})
            if self._executor is executor:
                self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
            return [self.options.parse(raw) for raw in raws]

    def close(self) -> None:
        """Stop the workers (a parse under way is abandoned: its caller is gone)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
