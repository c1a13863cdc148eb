"""Ids we mint and can recognise later: signed Message-IDs and signed reply addresses.

A reply's ``In-Reply-To`` names one of our Message-IDs; if that id alone decided the ticket,
anyone could attach mail to any ticket by guessing one. So each id carries an HMAC of what it
names (FreeScout's approach), checked with ``hmac.compare_digest`` before it is trusted.

- Message-ID: ``<G20261122001.o42.<hmac>@domain>`` (ticket number, outbox id); the same outbox
  row always gets the same id, so a retried send is recognisably the same mail (RFC 5322 3.6.4).
- Reply address: ``support+G20261122001.<hmac>@domain``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

_TAG = 10
_ID = re.compile(
    r"^<?(?:(?P<ticket>G\d{11,})\.)?o(?P<outbox>\d+)\.(?P<mac>[0-9a-z]+)@(?P<domain>[^>]+)>?$"
)
_TOKEN = re.compile(r"^(?P<ticket>G\d{11,})\.(?P<mac>[0-9a-z]+)$")


@dataclass(frozen=True, slots=True)
class OurMessageId:
    ticket_number: str | None
    outbox_id: int


class Signer:
    """Mints and verifies our ids with a key derived from ``GATEWAY_SECRET_KEY``."""

    def __init__(self, secret: str, domain: str) -> None:
        # A key of its own, so these tags never equal tags the web chat makes with the secret.
        self._key = hmac.new(secret.encode(), b"email-ids", hashlib.sha256).digest()
        self.domain = domain.lower()

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:_TAG]

    def message_id(self, outbox_id: int, ticket_number: str | None) -> str:
        """The Message-ID of the mail that delivers outbox row ``outbox_id``."""
        local = f"{ticket_number}.o{outbox_id}" if ticket_number else f"o{outbox_id}"
        return f"<{local}.{self._mac(local)}@{self.domain}>"

    def verify_message_id(self, value: str) -> OurMessageId | None:
        """What one of our Message-IDs names, or ``None`` if it is not ours or is forged."""
        match = _ID.match(value.strip())
        if match is None or match["domain"].lower() != self.domain:
            return None
        ticket = match["ticket"]
        local = f"{ticket}.o{match['outbox']}" if ticket else f"o{match['outbox']}"
        if not hmac.compare_digest(self._mac(local), match["mac"]):
            return None
        return OurMessageId(ticket, int(match["outbox"]))

    def reply_address(self, address: str, ticket_number: str) -> str:
        """``support@domain`` -> ``support+G20261122001.<hmac>@domain``."""
        local, _, domain = address.partition("@")
        token = f"{ticket_number}.{self._mac('reply:' + ticket_number)}"
        return f"{local}+{token}@{domain}"

    def verify_reply_address(self, address: str, ours: str) -> str | None:
        """The ticket number a signed reply address names, or ``None``."""
        local, _, domain = address.lower().partition("@")
        our_local, _, our_domain = ours.lower().partition("@")
        base, plus, token = local.partition("+")
        if not plus or base != our_local or domain != our_domain:
            return None
        match = _TOKEN.match(token.replace("g", "G", 1) if token.startswith("g") else token)
        if match is None:
            return None
        expected = self._mac("reply:" + match["ticket"])
        if not hmac.compare_digest(expected, match["mac"]):
            return None
        return match["ticket"]
