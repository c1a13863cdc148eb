"""A customer's files: uploading one from the widget, downloading the conversation's.

``POST /api/v1/webchat/attachments``:

``Authorization: Bearer <token>`` and one multipart part named ``file``; the bytes go to the
attachment store (``files.py``) and the answer names them:
``201 {"file": "<sha256>", "name", "media_type", "size"}``; 413 past
``GATEWAY_WEBCHAT__ATTACHMENT_MAX_BYTES``, 400 naming ``file`` for a body that is not one file.
A ``message`` then names the upload in its ``attachments``.

``GET /api/v1/webchat/attachments/{sha256}`` (the bearer token, or ``?token=``) serves a file of
one of the session's own messages (an agent's reply, the customer's own upload) and nothing
else: 404 for any other, as for one that does not exist. Pictures are served inline (the widget
shows them), everything else as a download; HTML, SVG and other types a browser could run are
served as bytes, with ``nosniff`` and a sandboxing CSP (``gateway/api/attachment_routes.py``).

Uploaded first, sent second: a file whose message never comes stays unnamed in the store until
the attachment sweep (``workers/attachment_sweep.py``) removes it a day later. Uploads have a
budget of their own per session (``GATEWAY_WEBCHAT__UPLOAD_BURST``, ``__UPLOADS_PER_MINUTE``):
the message budget (5 a second) would let one session write 50 MB a second to the disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy.exc import SQLAlchemyError

from channels.attachment_store import is_stored, store_chunks
from channels.webchat.frames import ErrorCode
from channels.webchat.security import (
    Refused,
    answer,
    check_origin,
    claims_of,
    cors_headers,
    preflight_answer,
    refusal,
)
from channels.webchat.state import WEBCHAT, WebchatState
from channels.webchat.tokens import SessionClaims
from gateway.api.attachment_routes import (
    DOWNLOAD_HEADERS,
    content_disposition,
    served_type,
    stored_file,
)
from gateway.api.reply_files import NoFilePart, clean_filename, clean_media_type, file_part
from gateway.appkeys import SETTINGS

_CHUNK = 64 * 1024
_PICTURES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Served inline: raster types a browser decodes without running anything (never SVG)."""

routes = web.RouteTableDef()


def _session(request: web.Request, state: WebchatState) -> SessionClaims:
    check_origin(request, state.settings.origins)
    return claims_of(request, state.secret)


@routes.options("/api/v1/webchat/attachments")
@routes.options("/api/v1/webchat/attachments/{file}")
async def preflight(request: web.Request) -> web.Response:
    """CORS preflight (the widget uploads with an ``Authorization`` header)."""
    return preflight_answer(request, request.app[WEBCHAT].settings.origins)


class _Counted:
    """A part's bytes as they come, counted; an empty file is refused (raised after the last
    chunk, so the store keeps nothing)."""

    def __init__(self, part: BodyPartReader) -> None:
        self.part = part
        self.size = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.part.read_chunk(_CHUNK):
            self.size += len(chunk)
            yield chunk
        if not self.size:
            raise Refused(400, ErrorCode.INVALID, "the file is empty", "file")


@routes.post("/api/v1/webchat/attachments")
async def upload(request: web.Request) -> web.Response:
    """Keep a customer's file (streamed to disk, never whole in memory) and name it."""
    state = request.app[WEBCHAT]
    cap = state.settings.attachment_max_bytes
    try:
        claims = _session(request, state)
        if not state.uploads.allow(claims.session_id):
            wait = state.uploads.retry_after(claims.session_id)
            raise Refused(429, ErrorCode.RATE_LIMITED, f"too many files; try again in {wait:.0f} s")
        try:
            part = await file_part(request)
            counted = _Counted(part)
            path = await store_chunks(
                Path(state.settings.attachment_dir), counted.chunks(), max_bytes=cap
            )
        except NoFilePart as exc:
            raise Refused(400, ErrorCode.INVALID, str(exc), "file") from None
        except (ValueError, HttpProcessingError) as exc:  # UnicodeDecodeError is a ValueError
            detail = f"not a multipart body: {exc}"[:200]
            raise Refused(400, ErrorCode.INVALID, detail, "file") from None
        except OSError:
            raise Refused(503, ErrorCode.UNAVAILABLE, "try again in a moment") from None
        if path is None:
            raise Refused(413, ErrorCode.TOO_LARGE, f"files of up to {cap} bytes", "file")
        # Browsers send the name's UTF-8 as is, escaping only '"', CR and LF as %XX (WHATWG
        # multipart/form-data); other clients (aiohttp's) percent-encode all of it.
        body = {
            "file": path.name,
            "name": clean_filename(unquote(part.filename or "")),
            "media_type": clean_media_type(part.headers.get("Content-Type")),
            "size": counted.size,
        }
    except Refused as refused:
        return refusal(request, state.settings.origins, refused)
    return answer(request, state.settings.origins, body, 201)


@routes.get("/api/v1/webchat/attachments/{file}")
async def download(request: web.Request) -> web.StreamResponse:
    """A file of one of the session's own messages (404 for any other)."""
    state = request.app[WEBCHAT]
    name = request.match_info["file"]
    try:
        claims = _session(request, state)
        gone = Refused(404, ErrorCode.NOT_FOUND, "no such file in this conversation", "file")
        if not is_stored(name):
            raise gone
        try:
            attachment = await state.conversation(claims).file(name)
        except (SQLAlchemyError, OSError):
            raise Refused(503, ErrorCode.UNAVAILABLE, "try again in a moment") from None
        if attachment is None:
            raise gone
        # resolve() and is_file() touch the disk: not on the event loop.
        path = await asyncio.to_thread(stored_file, attachment.get("ref"), request.app[SETTINGS])
        if path is None:
            raise gone
    except Refused as refused:
        return refusal(request, state.settings.origins, refused)
    media_type = served_type(attachment.get("content_type"))
    disposition = content_disposition(attachment.get("filename"))
    if media_type in _PICTURES:
        disposition = "inline" + disposition.removeprefix("attachment")
    return web.FileResponse(
        path,
        headers={
            **DOWNLOAD_HEADERS,
            **cors_headers(request, state.settings.origins),
            "Content-Type": media_type,
            "Content-Disposition": disposition,
        },
    )
