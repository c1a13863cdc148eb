"""The files of web chat messages: checking the uploads a customer's message names.

A customer uploads first (``file_routes.py``: ``POST /api/v1/webchat/attachments`` keeps the
bytes in the attachment store, ``channels.attachment_store``, as
``<GATEWAY_WEBCHAT__ATTACHMENT_DIR>/<sha256>``, where email and Telegram keep theirs), then a
``message`` names the upload in ``attachments``. The message is stored with the file as a
Telegram photo is, so the console shows it and its download route finds it.
"""

from __future__ import annotations

from pathlib import Path

from channels.webchat.frames import ErrorCode, FileRef, FrameError
from gateway.api.reply_files import clean_filename, clean_media_type
from gateway.models import Attachment


def stored_uploads(
    refs: tuple[FileRef, ...], directory: Path, *, client_id: str
) -> tuple[Attachment, ...]:
    """The files a message names, each checked to be in the web chat's store (blocking: call
    it in a thread); an ``invalid`` error naming ``attachments`` for the first that is not."""
    directory = directory.resolve()
    found = []
    for ref in refs:
        path = directory / ref.file  # 64 hex digits (frames.py): no path in it
        try:
            size = path.stat().st_size if path.is_file() else None
        except OSError:
            size = None
        if size is None:
            raise FrameError(
                ErrorCode.INVALID,
                f"no uploaded file {ref.file[:12]}…: upload it first",
                field="attachments",
                client_id=client_id,
            )
        found.append(
            Attachment(
                filename=clean_filename(ref.name),
                content_type=clean_media_type(ref.media_type),
                size=size,
                ref=str(path),
            )
        )
    return tuple(found)
