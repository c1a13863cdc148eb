"""``POST /api/v1/tickets/{number}/attachments``: an agent uploads a file for a reply.

One ``multipart/form-data`` part named ``file``; its bytes go to the attachment store of the
ticket's channel (``gateway.api.reply_files``), and the answer names the stored file by its
digest. A reply then lists the files it carries (``ReplyIn.attachments``), and its delivery
sends them on the customer's channel: Telegram as media (photos, videos, songs, voice notes)
or documents, email as MIME parts, the web chat as files the widget shows (pictures) or links.

Uploaded first, sent second: a file uploaded for a reply the agent then drops stays in the
store (named by its bytes, so never kept twice) until the attachment sweep
(``workers/attachment_sweep.py``) removes it, a day later.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy import select

from channels.attachment_store import store_bytes, store_dir
from gateway.api.access import principal
from gateway.api.endpoints import ApiTable
from gateway.api.errors import ApiError, respond
from gateway.api.reply_files import (
    NoFilePart,
    clean_filename,
    clean_media_type,
    file_part,
    upload_limit,
)
from gateway.api.schemas import Uploaded
from gateway.api.ticket_routes import visible_to
from gateway.appkeys import SETTINGS, STORE
from gateway.models import AgentRole
from gateway.store.tables import Ticket

api = ApiTable()

_CHUNK = 64 * 1024


async def _read_file(request: web.Request, limit: int) -> tuple[BodyPartReader, bytes]:
    """The ``file`` part and its bytes, read up to ``limit``: 400 for a body aiohttp cannot
    parse as multipart (a bad boundary, a part header with control characters), 413 past the
    limit."""
    data = bytearray()
    try:
        part = await file_part(request)
        while chunk := await part.read_chunk(_CHUNK):
            data += chunk
            if len(data) > limit:
                raise ApiError(413, "too_large", f"files of up to {limit} bytes", field="file")
    except NoFilePart as exc:
        raise ApiError(400, "invalid", str(exc), field="file") from None
    except (ValueError, HttpProcessingError) as exc:  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "invalid", f"not a multipart body: {exc}"[:200], field="file") from None
    if not data:
        raise ApiError(400, "invalid", "the file is empty", field="file")
    return part, bytes(data)


@api.route(
    "POST",
    "/api/v1/tickets/{number}/attachments",
    summary="Upload a file (multipart part `file`) for a reply on this ticket",
    role=AgentRole.AGENT,
    response=Uploaded,
    status=201,
    upload="file",
)
async def upload_attachment(request: web.Request) -> web.Response:
    who = principal(request)
    number = request.match_info["number"]
    settings = request.app[SETTINGS]
    async with request.app[STORE].read() as session:
        channel = await session.scalar(
            select(Ticket.channel).where(Ticket.number == number, visible_to(who))
        )
    if channel is None:  # a ticket the agent may not see looks like one that does not exist
        raise ApiError(404, "not_found", f"no ticket {number[:40]!r}")
    directory = store_dir(channel, settings)
    if directory is None:
        raise ApiError(400, "invalid", f"{channel} replies carry text only", field="file")
    part, data = await _read_file(request, upload_limit(channel, settings))
    path = await asyncio.to_thread(store_bytes, directory, data)
    uploaded = Uploaded(
        ref=path.name,
        # Browsers send the name's UTF-8 as is, escaping only '"', CR and LF as %XX (WHATWG
        # multipart/form-data); other clients (aiohttp's) percent-encode all of it.
        filename=clean_filename(unquote(part.filename or "")),
        content_type=clean_media_type(part.headers.get("Content-Type")),
        size=len(data),
    )
    return respond(uploaded, status=201)
