"""A stand-in for the Telegram Bot API on loopback (an aiohttp app speaking Telegram's JSON).

Adapted from ``shared/peers/telegram/fake_bot_api.py`` (verified against python-telegram-bot 22):
every call is ``POST /bot<token>/<method>``, form-encoded (multipart with files), non-string
values JSON-encoded; success is ``{"ok": true, "result": ...}``, an error its HTTP status
(400 BadRequest, 403 Forbidden, 429 with ``parameters.retry_after`` RetryAfter). Files are served
at ``/file/bot<token>/<file_path>``.

Extended here with sendPhoto/sendDocument, answerCallbackQuery, getFile and file downloads
(streamed, each counting the bytes it served: :class:`FakeFile`), replies to a chat's message
(``reply_parameters``, refused as Telegram does when the message is gone:
:attr:`FakeBotAPI.deleted`), and failure injection:
:meth:`FakeBotAPI.fail_next` (e.g. a 429), :attr:`FakeBotAPI.blocked` (chats that answer 403
"bot was blocked by the user") and :attr:`FakeBotAPI.deactivated` (403 "user is deactivated":
the account was deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

BOT_USER = {
    "id": 123456,
    "is_bot": True,
    "first_name": "Gateway Bot",
    "username": "gateway_test_bot",
}


def _param(value: str) -> Any:
    """Undo PTB's encoding: non-string values arrive JSON-encoded."""
    try:
        return json.loads(value)
    except ValueError:
        return value


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float


@dataclass
class FakeFile:
    """A file the fake serves: ``data`` ``repeat`` times over, a chunk per ``data``."""

    path: str
    data: bytes
    repeat: int = 1
    """A large body without holding it: 1,024 times 64 KiB is 64 MiB served."""
    file_size: int | None = None
    """What ``getFile`` says (``file_size`` is optional in the Bot API): None, no size."""
    cut_after: int | None = None
    """Chunks served before the connection drops (the rest of the body never comes)."""
    served: int = 0
    """Bytes written to downloaders so far (a client that stops reading stops it)."""


class APIError(Exception):
    def __init__(
        self, code: int, description: str, retry_after: int | None = None, *, after: int = 0
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.after = after
        """Calls to let through before this failure."""


class FakeBotAPI:
    """Records every call; serves updates (long poll), files, and injected failures."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.port = 0
        """Where the test server listens (set by the fixture that starts it)."""
        self.calls: list[Call] = []
        self.sent: list[dict[str, Any]] = []
        """Messages the bot sent (sendMessage/sendPhoto/sendDocument): params plus ``method``."""
        self.webhook: dict[str, Any] | None = None
        self.blocked: set[int] = set()
        self.deactivated: set[int] = set()
        self.deleted: set[tuple[int, int]] = set()
        """``(chat_id, message_id)`` of messages deleted from their chat: a reply to one is
        refused unless ``allow_sending_without_reply``, and is sent as no reply if allowed."""
        self.files: dict[str, FakeFile] = {}
        self._failures: dict[str, list[APIError]] = {}
        self._updates: list[dict[str, Any]] = []
        self._polls = 0
        self.poll_conflicts = 0
        """getUpdates calls ended by another one (two pollers at once)."""
        self._tail = 0
        """The next update id the server would give out (``tail_id`` in tdlib's TQueue)."""
        self._new_update = asyncio.Event()
        self._message_ids = itertools.count(5000)
        self.app = web.Application()
        self.app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        self.app.router.add_get("/file/bot{token}/{path:.+}", self._download)

    # ---- for tests -----------------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates (polling mode)."""
        self._updates.append(update)
        self._tail = update["update_id"] + 1
        self._new_update.set()

    def add_file(
        self,
        file_id: str,
        data: bytes,
        file_path: str,
        *,
        repeat: int = 1,
        file_size: int | Literal["actual"] | None = "actual",
    ) -> FakeFile:
        """Serve ``data`` (``repeat`` times over) at ``file_path``; ``getFile`` says its
        ``file_size`` truly, or says ``file_size`` (a lie), or says none."""
        size = len(data) * repeat if file_size == "actual" else file_size
        self.files[file_id] = FakeFile(file_path, data, repeat, size)
        return self.files[file_id]

    def fail_next(
        self,
        method: str,
        code: int,
        description: str,
        *,
        retry_after: int | None = None,
        after: int = 0,
    ) -> None:
        """Make the next call of ``method`` fail (queue several for several calls), or the
        call after ``after`` more calls that succeed."""
        self._failures.setdefault(method.lower(), []).append(
            APIError(code, description, retry_after, after=after)
        )

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        return list(self._updates)

    async def wait_sent(self, n: int = 1, *, within: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while len(self.sent) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.sent)} messages sent: {self.sent}")
            await asyncio.sleep(0.02)
        return self.sent

    # ---- the API ---------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(APIError(401, "Unauthorized"))
        method = request.match_info["method"]
        params: dict[str, Any] = {}
        if request.content_type == "application/json":
            params = await request.json()
        elif request.can_read_body:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    params[key] = _param(value)
                elif isinstance(value, web.FileField):  # an uploaded file
                    params[key] = {"filename": value.filename, "size": len(value.file.read())}
        params.update({k: _param(v) for k, v in request.query.items()})
        self.calls.append(Call(method, params, time.monotonic()))
        queued = self._failures.get(method.lower())
        if queued and queued[0].after:
            queued[0].after -= 1
        elif queued:
            return _error(queued.pop(0))
        handler = getattr(self, "m_" + method.lower(), None)
        if handler is None:
            return _error(APIError(404, "Not Found: method not found"))
        try:
            result = await handler(params)
        except APIError as exc:
            return _error(exc)
        return web.json_response({"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        for file in self.files.values():
            if file.path == request.match_info["path"]:
                return await self._serve(request, file)
        return web.Response(status=404)

    async def _serve(self, request: web.Request, file: FakeFile) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = len(file.data) * file.repeat
        await response.prepare(request)
        for sent in range(file.repeat):
            if sent == file.cut_after and request.transport is not None:
                request.transport.close()
                return response
            await response.write(file.data)  # raises once the client has gone
            file.served += len(file.data)
        await response.write_eof()
        return response

    async def m_getme(self, p: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    async def m_getupdates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(p.get("offset") or 0)
        timeout = float(p.get("timeout") or 0)
        limit = int(p.get("limit") or 100)
        # Asking from an offset confirms everything before it, unless the offset lies more
        # than 10 past the last id given out: the server then answers from the oldest pending
        # update and confirms nothing (tdlib's telegram-bot-api: ``TQueue::get`` refuses a
        # ``from_id`` "in the future", ``Client::do_get_updates`` falls back to the head).
        if offset and offset <= self._tail + 10:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        # One getUpdates at a time: a second one ends the first with 409 (Bot API server,
        # "terminated by other getUpdates request").
        self._polls += 1
        mine = self._polls
        self._new_update.set()  # wakes the one waiting, which finds itself ended
        self._new_update.clear()
        if not self._updates and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
        if mine != self._polls:
            self.poll_conflicts += 1
            raise APIError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot"
                " instance is running",
            )
        return self._updates[:limit]

    def _message(self, p: dict[str, Any], method: str) -> dict[str, Any]:
        chat_id = int(p["chat_id"])
        if chat_id in self.blocked:
            raise APIError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.deactivated:
            raise APIError(403, "Forbidden: user is deactivated")
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
        }
        replied = self._replied(chat_id, p.get("reply_parameters"))
        if replied is not None:
            message["reply_to_message"] = {
                "message_id": replied,
                "date": message["date"],
                "chat": message["chat"],
            }
        self.sent.append({"method": method, **p, "message_id": message["message_id"]})
        return message

    def _replied(self, chat_id: int, reply: Any) -> int | None:
        """The message a send's ``reply_parameters`` answers, if it is still there
        (https://core.telegram.org/bots/api#replyparameters): the Bot API's checks of it. It
        arrives as a JSON object, serialised in a form field like ``reply_markup``."""
        if reply is None:
            return None
        if not isinstance(reply, dict) or not isinstance(reply.get("message_id"), int):
            raise APIError(400, "Bad Request: can't parse reply parameters JSON object")
        if (chat_id, reply["message_id"]) not in self.deleted:
            return int(reply["message_id"])
        if reply.get("allow_sending_without_reply") is True:
            return None
        raise APIError(400, "Bad Request: message to be replied not found")

    async def m_sendmessage(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("text"):
            raise APIError(400, "Bad Request: message text is empty")
        if len(p["text"].encode("utf-16-le")) // 2 > 4096:  # Telegram counts UTF-16 units
            raise APIError(400, "Bad Request: message is too long")
        return {**self._message(p, "sendMessage"), "text": p["text"]}

    async def m_senddocument(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._message(p, "sendDocument")

    async def m_sendphoto(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._message(p, "sendPhoto")

    async def m_sendvideo(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._message(p, "sendVideo")

    async def m_sendaudio(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._message(p, "sendAudio")

    async def m_sendvoice(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._message(p, "sendVoice")

    async def m_answercallbackquery(self, p: dict[str, Any]) -> bool:
        return True

    async def m_getfile(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = str(p["file_id"])
        if file_id not in self.files:
            raise APIError(400, "Bad Request: invalid file_id")
        file = self.files[file_id]
        result: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": "u" + file_id,
            "file_path": file.path,
        }
        if file.file_size is not None:
            result["file_size"] = file.file_size
        return result

    async def m_setwebhook(self, p: dict[str, Any]) -> bool:
        self.webhook = p
        return True

    async def m_deletewebhook(self, p: dict[str, Any]) -> bool:
        self.webhook = None
        return True


def _error(exc: APIError) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
    if exc.retry_after is not None:
        body["parameters"] = {"retry_after": exc.retry_after}
    return web.json_response(body, status=exc.code)
