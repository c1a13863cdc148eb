"""Where an agent's files for a reply are kept, how large they may be, and checking a reply's.

A file is kept in the attachment store of the ticket's channel (the directory its inbound files
go to, ``<dir>/<sha256>``), so the download route and the channel's sender find it as they find
a customer's; the web chat shows it in the widget, which downloads it with the customer's session
token (``channels/webchat/file_routes.py``).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from aiohttp import BodyPartReader, web

from channels.attachment_store import store_dir
from gateway.api.errors import ApiError
from gateway.api.schemas import AttachmentRef
from gateway.models import Attachment, Channel
from gateway.settings import Settings

TELEGRAM_UPLOAD_BYTES = 50 * 1024 * 1024
"""The Bot API takes files of up to 50 MB sent by upload
(https://core.telegram.org/bots/api#sending-files)."""

_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$")


def upload_limit(channel: str, settings: Settings) -> int:
    """The largest file the channel delivers: the Bot API's upload limit, the web chat's cap
    (``GATEWAY_WEBCHAT__ATTACHMENT_MAX_BYTES``, the same both ways), or the mail cap
    (``GATEWAY_EMAIL__ATTACHMENT_MAX_BYTES``, within what mail servers commonly accept)."""
    if channel == Channel.TELEGRAM.value:
        return TELEGRAM_UPLOAD_BYTES
    if channel == Channel.WEBCHAT.value:
        return settings.webchat.attachment_max_bytes
    return settings.email.attachment_max_bytes


def clean_filename(raw: str | None) -> str:
    """A file name fit to show and send: its last path part, without control characters
    (``attachment`` if nothing is left)."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(" .")
    return name[:255] or "attachment"


def clean_media_type(raw: str | None) -> str:
    """The declared media type without parameters, or ``application/octet-stream``."""
    media = (raw or "").split(";", 1)[0].strip().lower()
    return media if _MEDIA_TYPE.match(media) else "application/octet-stream"


class NoFilePart(Exception):
    """The request holds no ``file`` part to upload; the message says why."""


async def file_part(request: web.Request) -> BodyPartReader:
    """The upload's ``multipart/form-data`` part named ``file`` (an agent's for a reply, a
    customer's from the widget); :class:`NoFilePart` when there is none."""
    if not request.content_type.startswith("multipart/"):
        raise NoFilePart("send the file as multipart/form-data")
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name == "file":
            return part
        await part.release()
    raise NoFilePart("no part named file")


def stored_upload(
    directory: Path, ref: str, filename: str, media_type: str | None
) -> Attachment | None:
    """The uploaded file ``ref`` (64 hex digits: no path in it) of the store ``directory``, as
    a message's attachment under the name and type its uploader gave; None when the store has
    no such file (blocking: call it in a thread)."""
    path = directory.resolve() / ref
    try:
        size = path.stat().st_size if path.is_file() else None
    except OSError:
        size = None
    if size is None:
        return None
    return Attachment(
        filename=clean_filename(filename),
        content_type=clean_media_type(media_type),
        size=size,
        ref=str(path),
    )


def stored_attachments(
    refs: list[AttachmentRef], channel: str, settings: Settings
) -> list[Attachment]:
    """A reply's files as stored attachments, each one checked to be in the channel's store
    (blocking: call it in a thread). Raises a 400 naming the first that is not."""
    if not refs:
        return []
    directory = store_dir(channel, settings)
    if directory is None:
        raise ApiError(400, "invalid", f"{channel} replies carry text only", field="attachments")
    found = []
    for index, named in enumerate(refs):
        attachment = stored_upload(directory, named.ref, named.filename, named.content_type)
        if attachment is None:
            raise ApiError(
                400, "invalid", "no uploaded file has this ref", field=f"attachments.{index}.ref"
            )
        found.append(attachment)
    return found
