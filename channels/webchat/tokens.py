"""Web chat session tokens: ``v1.<payload>.<signature>``, HMAC-SHA256 with ``GATEWAY_SECRET_KEY``.

A token binds one browser to one web chat identity (the session id the contact is reached by on
this channel) and is the only credential the widget holds: whoever has it reads and writes that
conversation, nobody else. The key is derived from the secret for this purpose alone, so a token
can never pass for another signed value of the gateway (a survey link, an email reply id).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

_VERSION = "v1"
_PURPOSE = b"gateway/webchat/session-token/v1"


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """What a valid token says: the session (identity) and contact it belongs to."""

    session_id: str
    contact_id: int
    locale: str | None = None


class InvalidToken(ValueError):
    """The token is malformed, or its signature does not match."""


def new_session_id() -> str:
    """A random, unguessable session id (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(claims: SessionClaims, secret: str) -> str:
    """The token for ``claims``."""
    body: dict[str, object] = {"s": claims.session_id, "c": claims.contact_id}
    if claims.locale:
        body["l"] = claims.locale
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signed = f"{_VERSION}.{payload}"
    signature = hmac.new(_key(secret), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_b64(signature)}"


def verify_token(token: str, secret: str) -> SessionClaims:
    """The claims of a token we signed; raises :class:`InvalidToken` otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION or len(token) > 1024:
        raise InvalidToken("malformed token")
    expected = hmac.new(_key(secret), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        signature = _unb64(parts[2])
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not hmac.compare_digest(signature, expected):
        raise InvalidToken("bad signature")
    try:  # only what we signed is parsed
        body = json.loads(_unb64(parts[1]))
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not isinstance(body, dict):
        raise InvalidToken("malformed claims")
    session_id, contact_id, locale = body.get("s"), body.get("c"), body.get("l")
    if not isinstance(session_id, str) or not isinstance(contact_id, int):
        raise InvalidToken("malformed claims")
    return SessionClaims(session_id, contact_id, locale if isinstance(locale, str) else None)
