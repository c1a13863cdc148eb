"""``POST /api/v1/webchat/attachments``: a customer uploads a file from the widget.

``Authorization: Bearer <token>`` and one multipart part named ``file``; the bytes go to the
attachment store (``files.py``) and the answer names them:
``201 {"file": "<sha256>", "name", "media_type", "size"}``; 413 past
``GATEWAY_WEBCHAT__ATTACHMENT_MAX_BYTES``, 400 naming ``file`` for a body that is not one file.
A ``message`` then names the upload in its ``attachments``.

Uploaded first, sent second: a file whose message never comes stays unnamed in the store until
the attachment sweep (``workers/attachment_sweep.py``) removes it a day later. Uploads spend
the session's message budget (``GATEWAY_WEBCHAT__RATE_BURST``): a file counts as a message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from channels.attachment_store import store_chunks
from channels.webchat.frames import ErrorCode
from channels.webchat.security import Refused, check_origin, claims_of, cors_headers
from channels.webchat.state import WEBCHAT, WebchatState
from channels.webchat.tokens import SessionClaims
from gateway.api.reply_files import clean_filename, clean_media_type

_CHUNK = 64 * 1024

routes = web.RouteTableDef()


def _session(request: web.Request, state: WebchatState) -> SessionClaims:
    check_origin(request, state.settings.origins)
    return claims_of(request, state.secret)


def _answer(request: web.Request, state: WebchatState, body: Any, status: int) -> web.Response:
    return web.json_response(
        body, status=status, headers=cors_headers(request, state.settings.origins)
    )


def _refused(request: web.Request, state: WebchatState, refused: Refused) -> web.Response:
    response = refused.response()
    response.headers.update(cors_headers(request, state.settings.origins))
    return response


@routes.options("/api/v1/webchat/attachments")
async def preflight(request: web.Request) -> web.Response:
    """CORS preflight (the widget uploads with an ``Authorization`` header)."""
    state = request.app[WEBCHAT]
    headers = cors_headers(request, state.settings.origins)
    if not headers:
        return Refused(403, "origin_not_allowed", "this site may not embed the chat").response()
    return web.Response(status=204, headers=headers)


async def _file_part(request: web.Request) -> BodyPartReader:
    if not request.content_type.startswith("multipart/"):
        raise Refused(400, ErrorCode.INVALID, "send the file as multipart/form-data", "file")
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name == "file":
            return part
        await part.release()
    raise Refused(400, ErrorCode.INVALID, "no part named file", "file")


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
        if not state.messages.allow(claims.session_id):
            raise Refused(429, ErrorCode.RATE_LIMITED, "too many messages; slow down")
        try:
            part = await _file_part(request)
            counted = _Counted(part)
            path = await store_chunks(
                Path(state.settings.attachment_dir), counted.chunks(), max_bytes=cap
            )
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
        return _refused(request, state, refused)
    return _answer(request, state, body, 201)
