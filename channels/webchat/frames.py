"""The web chat wire format: client frames parsed and checked here, server frames built here.

Pure functions, no I/O. Client frames (JSON objects, one per WebSocket text message):

- ``{"type":"message","client_id":"<uuid>","text":"...","handoff":false,"attachments":[..]}``:
  ``client_id`` is the idempotency key; ``handoff: true`` is the widget's "talk to a person"
  button; ``attachments`` names files uploaded first (``{"file": "<sha256>", "name": ..}``,
  ``files.py``), and with one the text may be empty.
- ``{"type":"typing"}``
- ``{"type":"resume","after":<last message id seen>}``
- ``{"type":"feedback","message_id":..,"helpful":true|false}``
- ``{"type":"rating","ticket":"G...","score":1-5,"comment":"..."}``

Anything else is a :class:`FrameError`, which the socket answers with an error frame.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from channels.attachment_store import STORED_NAME

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FILE = re.compile(f"^{STORED_NAME}$")  # an upload's name in the store: its SHA-256
MAX_FILES = 10
"""Files one message names at most (as many as an agent's reply carries)."""
_MAX_NAME_CHARS = 255
_TICKET = re.compile(r"^G\d{8,16}$")
MAX_COMMENT_CHARS = 2000


class ErrorCode:
    """The ``code`` of an error frame (stable: the widget and outside clients switch on it)."""

    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID = "invalid"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"


class FrameError(ValueError):
    """A client frame we refuse; nothing of it is stored."""

    def __init__(
        self, code: str, detail: str, *, field: str | None = None, client_id: str | None = None
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.field = field
        self.client_id = client_id

    def frame(self) -> dict[str, Any]:
        """The error frame for this error."""
        return error_frame(self.code, self.detail, field=self.field, client_id=self.client_id)


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file a message names: what an upload answered (its digest, name and media type)."""

    file: str
    name: str
    media_type: str | None = None


@dataclass(frozen=True, slots=True)
class MessageFrame:
    client_id: str
    text: str
    handoff: bool = False
    attachments: tuple[FileRef, ...] = ()


@dataclass(frozen=True, slots=True)
class TypingFrame:
    pass


@dataclass(frozen=True, slots=True)
class ResumeFrame:
    after: int


@dataclass(frozen=True, slots=True)
class FeedbackFrame:
    message_id: int
    helpful: bool
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class RatingFrame:
    ticket: str
    score: int
    comment: str
    client_id: str | None = None


ClientFrame = MessageFrame | TypingFrame | ResumeFrame | FeedbackFrame | RatingFrame


def parse_frame(raw: str | bytes, *, max_text_bytes: int) -> ClientFrame:
    """Parse one client frame; raises :class:`FrameError` with the code to answer."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FrameError(ErrorCode.BAD_JSON, "the frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise FrameError(ErrorCode.BAD_JSON, "a frame is a JSON object")
    return parse_payload(data, max_text_bytes=max_text_bytes)


def parse_payload(data: dict[str, Any], *, max_text_bytes: int) -> ClientFrame:
    """Check a decoded frame (the HTTP fallback posts the same objects)."""
    kind = data.get("type")
    if kind == "message":
        client_id = _client_id(data, required=True)
        assert client_id is not None  # noqa: S101 - required=True guarantees it
        text = data.get("text")
        if not isinstance(text, str):
            raise FrameError(
                ErrorCode.INVALID, "text must be a string", field="text", client_id=client_id
            )
        if len(text.encode("utf-8", "surrogatepass")) > max_text_bytes:
            raise FrameError(
                ErrorCode.TOO_LARGE,
                f"text is longer than {max_text_bytes} bytes",
                field="text",
                client_id=client_id,
            )
        attachments = _file_refs(data.get("attachments"), client_id)
        if not text.strip() and not attachments:
            raise FrameError(ErrorCode.INVALID, "text is empty", field="text", client_id=client_id)
        handoff = data.get("handoff", False)
        if not isinstance(handoff, bool):
            raise FrameError(
                ErrorCode.INVALID,
                "handoff must be true or false",
                field="handoff",
                client_id=client_id,
            )
        return MessageFrame(client_id, text, handoff, attachments)
    if kind == "typing":
        return TypingFrame()
    if kind == "resume":
        after = data.get("after", 0)
        if after is None:
            after = 0
        if not _is_int(after) or after < 0:
            raise FrameError(ErrorCode.INVALID, "after must be a message id (>= 0)", field="after")
        return ResumeFrame(after)
    if kind == "feedback":
        client_id = _client_id(data, required=False)
        message_id, helpful = data.get("message_id"), data.get("helpful")
        if not _is_int(message_id):
            raise FrameError(
                ErrorCode.INVALID,
                "message_id must be an integer",
                field="message_id",
                client_id=client_id,
            )
        if not isinstance(helpful, bool):
            raise FrameError(
                ErrorCode.INVALID,
                "helpful must be true or false",
                field="helpful",
                client_id=client_id,
            )
        return FeedbackFrame(message_id, helpful, client_id)
    if kind == "rating":
        client_id = _client_id(data, required=False)
        ticket, score = data.get("ticket"), data.get("score")
        comment = data.get("comment") or ""
        if not isinstance(ticket, str) or not _TICKET.match(ticket):
            raise FrameError(
                ErrorCode.INVALID,
                "ticket must be a ticket number",
                field="ticket",
                client_id=client_id,
            )
        if not _is_int(score) or not 1 <= score <= 5:
            raise FrameError(
                ErrorCode.INVALID, "score must be 1 to 5", field="score", client_id=client_id
            )
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
            raise FrameError(
                ErrorCode.INVALID,
                f"comment must be text of at most {MAX_COMMENT_CHARS} characters",
                field="comment",
                client_id=client_id,
            )
        # PostgreSQL's text cannot hold a NUL; the rating counts without it.
        return RatingFrame(ticket, score, comment.replace("\x00", ""), client_id)
    if not isinstance(kind, str):
        raise FrameError(ErrorCode.INVALID, "type is missing", field="type")
    raise FrameError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}", field="type")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _file_refs(raw: object, client_id: str) -> tuple[FileRef, ...]:
    """A message's ``attachments``: uploads named by digest (whether they are stored is the
    conversation's to check)."""
    if raw is None:
        return ()

    def refused(detail: str) -> FrameError:
        return FrameError(ErrorCode.INVALID, detail, field="attachments", client_id=client_id)

    if not isinstance(raw, list) or len(raw) > MAX_FILES:
        raise refused(f"attachments must be a list of at most {MAX_FILES} uploaded files")
    refs = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("file"), str):
            raise refused('each attachment is {"file": "<sha256>", "name": ...} from an upload')
        if not _FILE.match(item["file"]):
            raise refused("an attachment's file must be the 64 hex digits an upload answered")
        name, media_type = item.get("name", ""), item.get("media_type")
        if not isinstance(name, str) or len(name) > _MAX_NAME_CHARS:
            raise refused(f"an attachment's name must be text of at most {_MAX_NAME_CHARS} chars")
        if media_type is not None and (not isinstance(media_type, str) or len(media_type) > 255):
            raise refused("an attachment's media_type must be a media type")
        refs.append(FileRef(item["file"], name, media_type))
    return tuple(refs)


def _client_id(data: dict[str, Any], *, required: bool) -> str | None:
    value = data.get("client_id")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _CLIENT_ID.match(value):
        raise FrameError(
            ErrorCode.INVALID,
            "client_id must be 1-64 letters, digits, '-' or '_' (a UUID)",
            field="client_id",
        )
    return value


def error_frame(
    code: str, detail: str, *, field: str | None = None, client_id: str | None = None
) -> dict[str, Any]:
    """``{"type":"error","code":..,"detail":..}`` (plus the field and client id when known)."""
    frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
    if field is not None:
        frame["field"] = field
    if client_id is not None:
        frame["client_id"] = client_id
    return frame


def ack_frame(client_id: str, message_id: int, ticket: str | None) -> dict[str, Any]:
    """Sent only once the message is committed."""
    return {"type": "ack", "client_id": client_id, "message_id": message_id, "ticket": ticket}
