"""The attachment store: files kept by content hash under one directory.

``<dir>/<sha256>`` holds the bytes; the same file sent twice is stored once, and a mail seen
again after a crash writes nothing new. Writes go through a temporary name and ``os.replace`` so
a reader never sees half a file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from channels.email.mime import MailPart
from gateway.models import Attachment


def _save(directory: Path, parts: tuple[MailPart, ...]) -> tuple[Attachment, ...]:
    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    for part in parts:
        ref = None
        if part.data is not None:
            path = directory / hashlib.sha256(part.data).hexdigest()
            if not path.exists():
                temporary = path.with_suffix(f".tmp{os.getpid()}")
                temporary.write_bytes(part.data)
                os.replace(temporary, path)
            ref = str(path)
        saved.append(
            Attachment(
                filename=part.filename, content_type=part.content_type, size=part.size, ref=ref
            )
        )
    return tuple(saved)


async def save_parts(directory: str | Path, parts: tuple[MailPart, ...]) -> tuple[Attachment, ...]:
    """Store the kept parts' bytes; each :class:`Attachment` ``ref`` is its file's path."""
    if not parts:
        return ()
    return await asyncio.to_thread(_save, Path(directory), parts)
