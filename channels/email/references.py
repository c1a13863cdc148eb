"""Which ticket a mail answers: the one I/O step of threading.

Candidates, in order (issue 5): the ticket tag in the subject, a signed reply address, then the
Message-IDs in ``In-Reply-To``/``References`` matched against ids we signed (checked by HMAC)
and ids of customer mail we stored. A candidate counts only if the ticket belongs to the sender
(ingest checks that again); the first that does wins. A mail with none of these is a new ticket,
even if its subject matches an old one (subjects like "Question" repeat).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.email.ids import Signer
from channels.email.parse import ParsedMail
from gateway.models import Channel
from gateway.store import Store
from gateway.store.tables import Contact, ContactIdentity, Ticket, TicketMessage


def signed_candidates(mail: ParsedMail, signer: Signer, address: str | None) -> list[str]:
    """Ticket numbers named without the database: subject tag, reply address, signed ids."""
    found: list[str] = []
    if mail.subject_ref:
        found.append(mail.subject_ref)
    if address:
        for recipient in mail.recipients:
            number = signer.verify_reply_address(recipient, address)
            if number:
                found.append(number)
    for reference in mail.references:
        ours = signer.verify_message_id(reference)
        if ours is not None and ours.ticket_number:
            found.append(ours.ticket_number)
    return list(dict.fromkeys(found))


async def find_ticket(
    store: Store, mail: ParsedMail, signer: Signer, address: str | None
) -> str | None:
    """The number of the sender's ticket this mail belongs to, or ``None`` for a new ticket."""
    return (await find_tickets(store, [mail], signer, address))[0]


async def find_tickets(
    store: Store, mails: list[ParsedMail], signer: Signer, address: str | None
) -> list[str | None]:
    """:func:`find_ticket` for each mail, in one read session (a batch's senders side by side
    each took a session of their own: more than the pool holds, so most opened a connection)."""
    found: list[str | None] = [None] * len(mails)
    async with AsyncExitStack() as stack:
        session: AsyncSession | None = None
        for index, mail in enumerate(mails):
            candidates = signed_candidates(mail, signer, address)
            foreign = [r for r in mail.references if signer.verify_message_id(r) is None]
            if not candidates and not foreign:
                continue  # nothing to look up: no session either
            if session is None:
                session = await stack.enter_async_context(store.read())
            found[index] = await _find(session, mail.sender, candidates, foreign)
    return found


async def _find(
    session: AsyncSession, sender: str, candidates: list[str], foreign: list[str]
) -> str | None:
    contact_id = await _sender_contact(session, sender)
    if contact_id is None:
        return None  # a first mail from this address can own no ticket yet
    if foreign:
        by_id = await _tickets_of_messages(session, foreign)
        candidates += [by_id[r] for r in foreign if r in by_id]
    if not candidates:
        return None
    rows = await session.execute(
        select(Ticket.number, Ticket.contact_id).where(Ticket.number.in_(candidates))
    )
    owners = {number: owner for number, owner in rows.all()}
    for number in candidates:
        owner = owners.get(number)
        if owner is not None and await _same_contact(session, owner, contact_id):
            return number
    return None


async def _sender_contact(session: AsyncSession, address: str) -> int | None:
    contact_id = await session.scalar(
        select(ContactIdentity.contact_id).where(
            ContactIdentity.channel == Channel.EMAIL.value,
            ContactIdentity.external_user_id == address,
        )
    )
    return None if contact_id is None else await _survivor(session, int(contact_id))


async def _survivor(session: AsyncSession, contact_id: int) -> int:
    """Follow merges to the contact that absorbed this one (as ingest does)."""
    seen = {contact_id}
    while True:
        merged = await session.scalar(
            select(Contact.merged_into_id).where(Contact.id == contact_id)
        )
        if merged is None or merged in seen:
            return contact_id
        seen.add(merged)
        contact_id = int(merged)


async def _same_contact(session: AsyncSession, owner: int, contact_id: int) -> bool:
    return owner == contact_id or await _survivor(session, owner) == contact_id


async def _tickets_of_messages(session: AsyncSession, ids: list[str]) -> dict[str, str]:
    rows = await session.execute(
        select(TicketMessage.external_id, Ticket.number)
        .join(Ticket, Ticket.id == TicketMessage.ticket_id)
        .where(
            TicketMessage.channel == Channel.EMAIL.value,
            TicketMessage.external_id.in_(ids[:50]),
        )
    )
    return {external_id: number for external_id, number in rows.all() if external_id}
