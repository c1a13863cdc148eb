"""The attachment store: files named by the SHA-256 of their bytes, in one directory per channel.

The same bytes are stored once however often they arrive, and storing them again after a crash
writes nothing new. A write goes to a temporary file of its own and is renamed into place, so a
reader never sees half a file and two writers of the same bytes at once (two mails with the same
logo, in two threads) cannot trip over each other's temporary file. Files no message names are
removed after a day by the attachment sweep (``workers/attachment_sweep.py``).

Bytes that arrive a chunk at a time (a Telegram download) are stored by :func:`store_chunks`,
which holds one chunk in memory and stops at a size cap, however big the file said it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path

from channels.base import ChannelError
from gateway.models import Attachment, Channel
from gateway.settings import Settings

STORED_NAME = r"[0-9a-f]{64}"
"""A stored file's name: the SHA-256 of its bytes (an upload's ``ref``)."""
_STORED = re.compile(f"^{STORED_NAME}$")
_PARTIAL = "partial"
"""The temporary file of :func:`store_chunks`, named before its digest is known."""
_TEMPORARY = re.compile(rf"^\.({STORED_NAME}|{_PARTIAL})\..*\.tmp$")  # as the writes name them


def store_dir(channel: str, settings: Settings) -> Path | None:
    """Where the channel keeps attachments; None if it carries none."""
    if channel == Channel.WEBCHAT.value:
        return Path(settings.webchat.attachment_dir)
    if channel == Channel.TELEGRAM.value:
        return Path(settings.telegram.attachment_dir)
    if channel == Channel.EMAIL.value:
        return Path(settings.email.attachment_dir)
    return None


def store_directories(settings: Settings) -> set[Path]:
    """Every channel's attachment directory, resolved (several channels may share one)."""
    return {d.resolve() for c in Channel if (d := store_dir(c.value, settings)) is not None}


def is_stored(name: str) -> bool:
    """Whether ``name`` is a stored file's."""
    return _STORED.match(name) is not None


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`store_bytes` (one a crash cut short)."""
    return _TEMPORARY.match(name) is not None


def store_bytes(directory: Path, data: bytes) -> Path:
    """Store ``data`` under its digest in ``directory`` (blocking: call it in a thread)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / hashlib.sha256(data).hexdigest()
    if path.exists():
        # Stored again: its age starts over, so the attachment sweep (workers/attachment_sweep)
        # does not take it from the message now on its way.
        path.touch()
        return path
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


async def store_chunks(
    directory: Path, chunks: AsyncIterable[bytes], *, max_bytes: int
) -> Path | None:
    """Store bytes that arrive a chunk at a time under their digest, as :func:`store_bytes`.

    Each chunk goes to a temporary file as it comes, so memory holds one chunk. None, and
    nothing stored, once more than ``max_bytes`` have come: the rest is not read.
    """
    partial = await asyncio.to_thread(_Partial, directory)
    try:
        async for chunk in chunks:
            if partial.size + len(chunk) > max_bytes:
                return None
            await asyncio.to_thread(partial.write, chunk)
        return await asyncio.to_thread(partial.keep)
    finally:
        await asyncio.to_thread(partial.discard)


class _Partial:
    """The temporary file of :func:`store_chunks` (blocking: each step runs in a thread)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        handle, name = tempfile.mkstemp(dir=directory, prefix=f".{_PARTIAL}.", suffix=".tmp")
        self.path = Path(name)
        self.file = os.fdopen(handle, "wb")
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)

    def keep(self) -> Path:
        """Rename the file to its digest, unless those bytes are stored already."""
        self.file.close()
        path = self.directory / self.digest.hexdigest()
        if path.exists():
            path.touch()  # its age starts over, as in store_bytes
        else:
            os.replace(self.path, path)
        return path

    def discard(self) -> None:
        """Remove the temporary file, if :meth:`keep` did not rename it."""
        self.file.close()
        self.path.unlink(missing_ok=True)


def check_stored(attachment: Attachment) -> None:
    """Raise as :func:`read_stored` would, without reading the file (blocking: call it in a
    thread): a delivery checks all its files before its first part goes."""
    if not attachment.ref:
        raise ChannelError(f"attachment {attachment.filename!r} has no stored file")
    try:
        with Path(attachment.ref).open("rb"):
            pass
    except OSError as exc:
        raise ChannelError(f"attachment {attachment.filename!r} unreadable: {exc}") from None


def read_stored(attachment: Attachment) -> bytes:
    """The bytes of a stored attachment, for a channel to send (blocking: call it in a thread).

    Raises :class:`ChannelError` (the delivery fails for good) when the file was never kept or
    is gone from the store.
    """
    if not attachment.ref:
        raise ChannelError(f"attachment {attachment.filename!r} has no stored file")
    try:
        return Path(attachment.ref).read_bytes()
    except OSError as exc:
        raise ChannelError(f"attachment {attachment.filename!r} unreadable: {exc}") from None
