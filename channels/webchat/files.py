"""The files of web chat messages: checking the uploads a customer's message names, and how
the widget is told of a message's files.

A customer uploads first (``file_routes.py``: ``POST /api/v1/webchat/attachments`` keeps the
bytes in the attachment store, ``channels.attachment_store``, as
``<GATEWAY_WEBCHAT__ATTACHMENT_DIR>/<sha256>``, where email and Telegram keep theirs), then a
``message`` names the upload in ``attachments``. The message is stored with the file as a
Telegram photo is, so the console shows it and its download route finds it. An agent's files
for a reply go to the same store (``gateway/api/reply_attachments.py``). The widget downloads
both from ``GET /api/v1/webchat/attachments/<sha256>`` with the session token, which serves a
session only the files of its own conversation's messages (``file_routes.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from channels.attachment_store import is_stored
from channels.webchat.frames import ErrorCode, FileRef, FrameError
from gateway.api.reply_files import stored_upload
from gateway.models import Attachment

DOWNLOAD = "/api/v1/webchat/attachments/{file}"
"""Where the widget downloads a file (relative to the gateway; the session token in the
``Authorization`` header or ``?token=``)."""


def stored_uploads(
    refs: tuple[FileRef, ...], directory: Path, *, client_id: str
) -> tuple[Attachment, ...]:
    """The files a message names, each checked to be in the web chat's store (blocking: call
    it in a thread); an ``invalid`` error naming ``attachments`` for the first that is not."""
    found = []
    for ref in refs:
        attachment = stored_upload(directory, ref.file, ref.name, ref.media_type)
        if attachment is None:
            raise FrameError(
                ErrorCode.INVALID,
                f"no uploaded file {ref.file[:12]}…: upload it first",
                field="attachments",
                client_id=client_id,
            )
        found.append(attachment)
    return tuple(found)


def shown_files(attachments: object) -> list[dict[str, Any]]:
    """A stored message's files as the widget shows them: ``{"url", "name", "media_type",
    "size"}`` each, ``url`` None when the bytes were not kept (never the server's path)."""
    shown: list[dict[str, Any]] = []
    if not isinstance(attachments, list | tuple):
        return shown
    for item in attachments:
        if not isinstance(item, dict):
            continue
        ref = item.get("ref")
        name = Path(ref).name if isinstance(ref, str) and ref else ""
        size = item.get("size")
        shown.append(
            {
                "url": DOWNLOAD.format(file=name) if is_stored(name) else None,
                "name": str(item.get("filename") or ""),
                "media_type": str(item.get("content_type") or ""),
                "size": size if isinstance(size, int) and size >= 0 else None,
            }
        )
    return shown
