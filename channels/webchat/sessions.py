"""Opening a chat session: a contact, its web chat identity, and the signed token.

The identity's ``external_user_id`` is a fresh random session id, which is also the thread key of
the session's tickets; ingest finds the contact through it for every later message. Pre-chat
fields are what the visitor typed and are stored unverified, so they never merge this contact
with another one (only verified email or phone does, see ``gateway/ingest/contacts.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from channels.webchat.conversation import Services
from channels.webchat.security import Refused
from channels.webchat.tokens import SessionClaims, new_session_id, sign_token
from gateway.models import Channel
from gateway.store.tables import Contact, ContactIdentity

_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{3,40}$")
_LIMITS = {"name": 200, "email": 320, "phone": 40, "locale": 20}


@dataclass(frozen=True, slots=True)
class PreChat:
    """The optional fields of the pre-chat form."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    locale: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> PreChat:
        """Check the posted fields; raises :class:`Refused` (422) naming the bad one."""
        values: dict[str, str | None] = {}
        for field, limit in _LIMITS.items():
            value = data.get(field)
            if value is None or value == "":
                values[field] = None
                continue
            if not isinstance(value, str) or len(value) > limit:
                raise Refused(422, "invalid", f"{field} must be text of at most {limit}", field)
            if "\x00" in value:  # PostgreSQL's text cannot hold it: a retried 503 for ever
                raise Refused(422, "invalid", f"{field} holds a NUL character", field)
            values[field] = value.strip() or None
        checks = (("email", _EMAIL), ("phone", _PHONE), ("locale", _LOCALE))
        for field, pattern in checks:
            value = values[field]
            if value is not None and not pattern.match(value):
                raise Refused(422, "invalid", f"{field} is not valid", field)
        return cls(**values)


async def open_session(
    services: Services, prechat: PreChat, secret: str
) -> tuple[SessionClaims, str]:
    """Create the contact and its identity; returns the claims and their token."""
    session_id = new_session_id()
    async with services.store.write() as session:
        now = services.router.clock()
        contact = Contact(
            name=prechat.name,
            email=prechat.email.lower() if prechat.email else None,
            phone=prechat.phone,
            locale=prechat.locale,
            vip=False,
            created_at=now,
        )
        session.add(contact)
        await session.flush()
        session.add(
            ContactIdentity(
                contact_id=contact.id,
                channel=Channel.WEBCHAT.value,
                external_user_id=session_id,
                reachable=True,
                created_at=now,
            )
        )
    claims = SessionClaims(session_id, contact.id, prechat.locale)
    return claims, sign_token(claims, secret)
