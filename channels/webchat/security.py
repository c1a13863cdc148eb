"""Who may talk to the web chat endpoints: the origin allow-list, CORS, and the session token."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from channels.webchat.tokens import InvalidToken, SessionClaims, verify_token

_CORS_METHODS = "GET, POST, OPTIONS"
_CORS_HEADERS = "Content-Type, Authorization"


class Refused(Exception):
    """A request we answer with ``{"error","detail","field"}`` and a 4xx status."""

    def __init__(self, status: int, error: str, detail: str, field: str | None = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.field = field

    def response(self) -> web.Response:
        body = {"error": self.error, "detail": self.detail, "field": self.field}
        return web.json_response(body, status=self.status)


def origin_allowed(request: web.Request, origins: Iterable[str]) -> bool:
    """Whether the request's ``Origin`` may use the chat.

    Browsers always send ``Origin`` on WebSocket handshakes and cross-origin requests (RFC 6455
    section 4.1, Fetch standard), and the allow-list is what stops another site's page from
    opening sessions in its visitors' browsers. A request without ``Origin`` is not from a
    browser page (a server-side client, a test) and carries no ambient credentials to abuse.
    Same-origin (the demo page, a widget served from the gateway's own host) is always allowed.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin in origins:
        return True
    return urlsplit(origin).netloc == request.host


def check_origin(request: web.Request, origins: Iterable[str]) -> None:
    if not origin_allowed(request, origins):
        raise Refused(403, "origin_not_allowed", "this site may not embed the chat", "Origin")


def cors_headers(request: web.Request, origins: Iterable[str]) -> dict[str, str]:
    """CORS response headers for an allowed cross-origin caller (none otherwise)."""
    origin = request.headers.get("Origin")
    if origin is None or not origin_allowed(request, origins):
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": _CORS_METHODS,
        "Access-Control-Allow-Headers": _CORS_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def answer(
    request: web.Request, origins: Iterable[str], body: Any, status: int = 200
) -> web.Response:
    """A JSON answer, with CORS headers for an allowed cross-origin caller."""
    return web.json_response(body, status=status, headers=cors_headers(request, origins))


def refusal(request: web.Request, origins: Iterable[str], refused: Refused) -> web.Response:
    """``refused`` as an answer, with CORS headers: the widget reads the error's body."""
    response = refused.response()
    response.headers.update(cors_headers(request, origins))
    return response


def preflight_answer(request: web.Request, origins: Iterable[str]) -> web.Response:
    """A CORS preflight's answer: 204 with the headers for an allowed origin, else 403."""
    headers = cors_headers(request, origins)
    if not headers:
        return Refused(403, "origin_not_allowed", "this site may not embed the chat").response()
    return web.Response(status=204, headers=headers)


def claims_of(request: web.Request, secret: str) -> SessionClaims:
    """The session a request is for: ``Authorization: Bearer <token>`` or ``?token=``.

    WebSocket handshakes from browsers cannot set headers, hence the query parameter; the
    access log that would record it is off by default (``GATEWAY_ACCESS_LOG``).
    """
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else request.query.get("token")
    if not token:
        raise Refused(401, "token_required", "a web chat session token is required", "token")
    try:
        return verify_token(token, secret)
    except InvalidToken:
        raise Refused(401, "invalid_token", "the session token is not valid", "token") from None
