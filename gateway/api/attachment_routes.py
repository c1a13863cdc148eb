"""Downloading a message's attachment from the attachment store.

The bytes live in the store the channels write (``<attachment_dir>/<sha256>``,
the message's ``Attachment.ref`` is that path). An agent downloads a file of a ticket they may
see; the response is always a download (``Content-Disposition: attachment``, RFC 6266, with an
RFC 5987 ``filename*`` for names that are not ASCII), never rendered by the browser: script-capable
types are served as ``application/octet-stream``, with ``nosniff`` and a sandboxing CSP.
The console's thread embeds the inert image, audio and video ones (``<img>``, ``<audio>``,
``<video>``), which the disposition does not stop; ``FileResponse`` answers a player's Range
requests (206, ``Accept-Ranges: bytes``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import select

from channels.attachment_store import is_stored, store_directories
from gateway.api.access import principal
from gateway.api.endpoints import ApiTable
from gateway.api.errors import ApiError
from gateway.api.reply_files import clean_filename, clean_media_type
from gateway.api.ticket_routes import visible_to
from gateway.appkeys import SETTINGS, STORE
from gateway.models import AgentRole
from gateway.settings import Settings
from gateway.store.tables import Ticket, TicketMessage

api = ApiTable()

_INLINE_SAFE_PREFIXES = ("image/", "audio/", "video/")
_INLINE_SAFE = frozenset(
    {
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "text/plain",
        "text/csv",
    }
)
_SCRIPTABLE = frozenset({"image/svg+xml"})
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Were a browser to render it anyway, nothing in it could run or load.
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
}
"""Sent with every download (the web chat's too, ``channels/webchat/file_routes.py``)."""


def served_type(declared: object) -> str:
    """The media type to send: the declared one when it is a plain, inert type, else bytes.

    The declared type came from the customer's mail or client; ``text/html``, SVG, XML and the
    like could run script if a browser ever displayed them, so they go out as octet streams.
    """
    media = clean_media_type(str(declared or ""))
    if media in _SCRIPTABLE:
        return "application/octet-stream"
    if media in _INLINE_SAFE or media.startswith(_INLINE_SAFE_PREFIXES):
        return media
    return "application/octet-stream"


def content_disposition(filename: object) -> str:
    """``attachment`` with an ASCII ``filename`` and, when needed, an RFC 5987 ``filename*``.

    The name is the customer's: path parts, control characters, quotes and backslashes are
    dropped so it can neither break the header nor name a directory on the agent's machine.
    """
    name = clean_filename(str(filename or ""))[:200]
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%' else "_" for c in name)
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


def stored_file(ref: object, settings: Settings) -> Path | None:
    """The file a ``ref`` names, if it is one of the attachment store's files and exists.

    A ref is a path written by a channel; checking it is inside a configured store directory
    (and named by a hash) means a row edited by hand cannot make this route read other files.
    """
    if not isinstance(ref, str) or not ref:
        return None
    path = Path(ref).resolve()
    if not is_stored(path.name) or path.parent not in store_directories(settings):
        return None
    return path if path.is_file() else None


def _index(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 9:
        raise ApiError(404, "not_found", f"no {name.replace('_', ' ')} {raw[:20]!r}")
    return int(raw)


@api.route(
    "GET",
    "/api/v1/tickets/{number}/messages/{message_id}/attachments/{index}",
    summary="Download a message's attachment (Content-Disposition: attachment; the console"
    " embeds images, audio and video)",
    role=AgentRole.AGENT,
)
async def download_attachment(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    number = request.match_info["number"]
    message_id = _index(request, "message_id")
    index = _index(request, "index")
    async with request.app[STORE].read() as session:
        message = await session.scalar(
            select(TicketMessage)
            .join(Ticket, Ticket.id == TicketMessage.ticket_id)
            .where(Ticket.number == number, TicketMessage.id == message_id, visible_to(who))
        )
        # A ticket the agent may not see looks like one that does not exist.
        if message is None:
            raise ApiError(404, "not_found", f"no message {message_id} on ticket {number}")
        attachments = list(message.attachments or [])
    if index >= len(attachments) or not isinstance(attachments[index], dict):
        raise ApiError(404, "not_found", f"no attachment {index} on message {message_id}")
    attachment = attachments[index]
    # resolve() and is_file() touch the disk: not on the event loop.
    path = await asyncio.to_thread(stored_file, attachment.get("ref"), request.app[SETTINGS])
    if path is None:
        # Listed but never stored (over the size cap, or refused by the channel).
        raise ApiError(404, "not_found", "this attachment's file was not kept")
    return web.FileResponse(
        path,
        headers={
            **DOWNLOAD_HEADERS,
            "Content-Type": served_type(attachment.get("content_type")),
            "Content-Disposition": content_disposition(attachment.get("filename")),
        },
    )
