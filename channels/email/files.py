"""A mail's kept parts, saved to the attachment store (``channels/attachment_store.py``):
``<dir>/<sha256>`` holds the bytes, the same file sent twice is stored once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from channels.attachment_store import store_bytes
from channels.email.mime import MailPart
from gateway.models import Attachment


def _save(directory: Path, parts: tuple[MailPart, ...]) -> tuple[Attachment, ...]:
    saved = []
    for part in parts:
        ref = None
        if part.data is not None:
            ref = str(store_bytes(directory, part.data))
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
