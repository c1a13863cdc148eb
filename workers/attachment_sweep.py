"""The attachment sweep: removes stored files that no message names, once they are old enough.

A file enters the attachment store (``channels.attachment_store``) before the message that
names it is committed: a customer's photo is downloaded, then its message ingested; an agent's
upload waits for the reply that sends it. When that message never comes (the agent closed the
console without sending, an update was parked), nothing names the file and it would stay for
good. The sweep removes such files once they are older than the grace period (a day by
default: an upload kept that long unsent is abandoned), and the temporary files of writes a
crash cut short.

Files are matched by name, the SHA-256 of their bytes: a message's ``ref`` is the path the file
was written to, relative or absolute, in whichever channel's directory. Storing the same bytes
again refreshes the file's age, and each file is checked again just before it goes, so an
upload of bytes already in the store is not taken from under its reply. The one window left: a
reply sent with an upload older than the grace period while the sweep runs.

``gateway attachments sweep`` runs it once; ``gateway cron`` every six hours. It reads the
``attachments`` of every message that has some, and holds the paths of the old files it found
in memory: made for stores of up to a few hundred thousand files.

Relative directories (the default ``var/attachments``) are resolved against the working
directory, as the channels resolve them when they store and send: run the sweep where the
gateway runs (``gateway up`` runs every process in one directory).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from channels.attachment_store import is_stored, is_temporary, store_directories
from gateway.models import OutboxKind
from gateway.outbox import QUEUE_BY_KIND
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import TicketMessage

log = logging.getLogger(__name__)

GRACE = timedelta(days=1)
"""How old an unnamed file must be before it goes."""
EVERY = timedelta(hours=6)
"""How often ``gateway cron`` runs the sweep."""
QUEUE = QUEUE_BY_KIND[OutboxKind.SURVEY]
"""The last queue workers take: on a large store the sweep reads for a while, and the SLA
sweep, replies and notices must not wait behind it."""


@dataclass(frozen=True, slots=True)
class SweepReport:
    removed: int = 0
    """Files removed: unnamed stored files and left-over temporary files."""
    freed_bytes: int = 0
    kept: int = 0
    """Files old enough to go, kept because a message names them."""


async def sweep_attachments(
    store: Store, directories: Iterable[Path], *, older_than: timedelta = GRACE
) -> SweepReport:
    """One pass: remove the files in ``directories`` older than ``older_than`` that no stored
    message names."""
    cutoff = time.time() - older_than.total_seconds()
    old = await asyncio.to_thread(_old_files, list(directories), cutoff)
    if not old:
        return SweepReport()
    named = await _named(store, {path.name for path in old if is_stored(path.name)})
    doomed = [path for path in old if path.name not in named]
    removed, freed = await asyncio.to_thread(_remove, doomed, cutoff)
    report = SweepReport(removed=removed, freed_bytes=freed, kept=len(old) - len(doomed))
    if removed:
        log.info(
            "attachment sweep removed unnamed files",
            extra={"removed": removed, "freed_bytes": freed, "kept": report.kept},
        )
    return report


def _old_files(directories: list[Path], cutoff: float) -> list[Path]:
    """Stored and temporary files last written before ``cutoff`` (blocking)."""
    old = []
    for directory in directories:
        try:
            entries = list(directory.iterdir())
        except FileNotFoundError:
            continue  # the channel never stored a file
        for path in entries:
            if not (is_stored(path.name) or is_temporary(path.name)):
                continue  # not the store's: left alone
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    old.append(path)
            except FileNotFoundError:
                continue
    return old


async def _named(store: Store, names: set[str]) -> set[str]:
    """Which of ``names`` a stored message's attachments refer to."""
    if not names:
        return set()
    named: set[str] = set()
    query = select(TicketMessage.attachments).where(
        func.json_array_length(TicketMessage.attachments) > 0
    )
    async with store.read() as session:
        rows = await session.stream_scalars(query.execution_options(yield_per=1000))
        async for attachments in rows:
            for attachment in attachments:
                ref = attachment.get("ref") if isinstance(attachment, dict) else None
                if ref and (name := Path(ref).name) in names:
                    named.add(name)
    return named


def _remove(paths: list[Path], cutoff: float) -> tuple[int, int]:
    """Remove ``paths`` still older than ``cutoff`` (blocking); how many, and their bytes."""
    removed = freed = 0
    for path in paths:
        try:
            stat = path.stat()
            if stat.st_mtime >= cutoff:
                continue  # stored again meanwhile: its new message may be on its way
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
        freed += stat.st_size
    return removed, freed


def attachment_sweep_job() -> str:
    """The RQ job: one sweep with the settings of the worker's environment."""
    settings = Settings()

    async def run() -> SweepReport:
        store = Store(settings.database_url)
        try:
            return await sweep_attachments(store, store_directories(settings))
        finally:
            await store.close()

    report = asyncio.run(run())
    return f"removed {report.removed} ({report.freed_bytes} bytes), kept {report.kept}"
