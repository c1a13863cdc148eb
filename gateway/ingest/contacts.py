"""Who sent it: each ``(channel, external_user_id)`` belongs to one contact.

A new identity joins an existing contact when its verified email or phone matches one (the same
person writing on a new channel); otherwise it gets a contact of its own. Contacts merged into
another are followed to the survivor.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ingest.lookups import keys_of, probe_each
from gateway.models import InboundMessage
from gateway.store import on_postgres
from gateway.store.bulk import BulkInsert
from gateway.store.tables import Contact, ContactIdentity

IdentityKey = tuple[str, str]
"""``(channel, external_user_id)``"""

CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
IDENTITIES: Table = ContactIdentity.__table__  # type: ignore[assignment]
_INSERT_CONTACTS = BulkInsert(CONTACTS, returning=CONTACTS.c.id)
_EMPTY_CONTACT: dict[str, Any] = dict.fromkeys(CONTACTS.c.keys())
_INSERT_IDENTITIES = BulkInsert(IDENTITIES)
_FILLED = ("name", "email", "phone", "locale", "email_verified", "phone_verified")


_KNOWN_SENDERS = (
    select(
        IDENTITIES.c.channel,
        IDENTITIES.c.external_user_id,
        IDENTITIES.c.reachable.label("identity_reachable"),
        CONTACTS,
    )
    .join(CONTACTS, CONTACTS.c.id == IDENTITIES.c.contact_id)
    .where(
        IDENTITIES.c.channel == bindparam("channel"),
        IDENTITIES.c.external_user_id.in_(bindparam("users", expanding=True)),
    )
)
"""One channel's identities among ``:users`` with their contacts (built once, values bound)."""
_USERS = keys_of("k", ("users", String()))
_KNOWN_IDENTITIES_PG = probe_each(
    _USERS,
    select(
        IDENTITIES.c.channel,
        IDENTITIES.c.external_user_id,
        IDENTITIES.c.reachable,
        IDENTITIES.c.contact_id,
    ).where(
        IDENTITIES.c.channel == bindparam("channel"),
        IDENTITIES.c.external_user_id == _USERS.c.users,
    ),
    "i",
).subquery("known")
_KNOWN_SENDERS_PG = select(
    _KNOWN_IDENTITIES_PG.c.channel,
    _KNOWN_IDENTITIES_PG.c.external_user_id,
    _KNOWN_IDENTITIES_PG.c.reachable.label("identity_reachable"),
    CONTACTS,
).join(CONTACTS, CONTACTS.c.id == _KNOWN_IDENTITIES_PG.c.contact_id)
"""The same on PostgreSQL, probing the index once per user (see ``lookups.probe_each``)."""


_MATCHED = {"email": func.lower(CONTACTS.c.email), "phone": CONTACTS.c.phone}
"""What a proven field is compared with on a contact."""

_REACHABLE_AGAIN = (
    update(IDENTITIES)
    .where(
        IDENTITIES.c.channel == bindparam("b_channel"),
        IDENTITIES.c.external_user_id.in_(bindparam("b_users", expanding=True)),
    )
    .values(reachable=True)
)
"""Identities of ``:b_users`` on ``:b_channel`` wrote again: their way is open."""


def identity_key(message: InboundMessage) -> IdentityKey:
    return (message.channel.value, message.external_user_id)


async def resolve_contacts(
    session: AsyncSession, messages: Sequence[InboundMessage], now: datetime
) -> dict[IdentityKey, dict[str, Any]]:
    """The contact (as a row dict) of every sender, creating contacts and identities as needed.

    Fields the contact lacks (name, email, phone, locale) are filled from the messages; what the
    contact or an agent set is never overwritten. An email or phone a message proves (see
    ``InboundMessage.email_verified``) is marked proven on the contact when it is the contact's.
    An identity marked unreachable (a Telegram user who blocked the bot) that writes is
    reachable again: nobody can write to a bot they block.
    """
    senders: dict[str, dict[str, None]] = {}
    for channel, user_id in map(identity_key, messages):
        senders.setdefault(channel, {})[user_id] = None
    contact_of: dict[IdentityKey, int] = {}
    known: dict[int, dict[str, Any]] = {}
    query = _KNOWN_SENDERS_PG if on_postgres(session) else _KNOWN_SENDERS
    for channel, user_ids in senders.items():
        # Identities and their contacts in one round trip per channel (one channel's range of
        # the (channel, external_user_id) index; the common case: senders we know).
        values = {"channel": channel, "users": list(user_ids)}
        returned = []
        for row in (await session.execute(query, values)).mappings():
            contact = {c.name: row[c] for c in CONTACTS.c}
            contact_of[(row["channel"], row["external_user_id"])] = contact["id"]
            known[contact["id"]] = contact
            if not row["identity_reachable"]:
                returned.append(row["external_user_id"])
        if returned:
            await session.execute(_REACHABLE_AGAIN, {"b_channel": channel, "b_users": returned})

    # New identities: the first message of each decides, in arrival order.
    new_identity: dict[IdentityKey, InboundMessage] = {}
    for message in messages:
        key = identity_key(message)
        if key not in contact_of and key not in new_identity:
            new_identity[key] = message
    if new_identity:
        await _attach_new_identities(session, new_identity, contact_of, known, now)

    contacts = await _load_following_merges(session, set(contact_of.values()), known)
    changed: dict[int, dict[str, Any]] = {}
    for message in messages:
        contact = contacts[contact_of[identity_key(message)]]
        for field, value in _offered(message).items():
            if contact[field] is None and value:
                contact[field] = value
                changed[contact["id"]] = contact
        for field, value in _proven(message).items():
            if contact[field] == value and not contact[f"{field}_verified"]:
                contact[f"{field}_verified"] = True
                changed[contact["id"]] = contact
    if changed:
        await session.execute(
            update(CONTACTS)
            .where(CONTACTS.c.id == bindparam("b_id"))
            .values({f: bindparam(f"b_{f}") for f in _FILLED}),
            [{"b_id": c["id"], **{f"b_{f}": c[f] for f in _FILLED}} for c in changed.values()],
        )
    return {key: contacts[contact_id] for key, contact_id in contact_of.items()}


def _offered(message: InboundMessage) -> dict[str, str | None]:
    return {
        "name": message.sender_name,
        "email": message.email.lower() if message.email else None,
        "phone": message.phone,
        "locale": message.locale,
    }


def _new_contact(message: InboundMessage, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {f: v or None for f, v in _offered(message).items()}
    row.update(created_at=now, vip=False, email_verified=False, phone_verified=False)
    row.update({f"{field}_verified": True for field in _proven(message)})
    return row


def _proven(message: InboundMessage) -> dict[str, str]:
    """The email and phone the message proves are the sender's, as the contact stores them;
    each field's flag on the contact is ``<field>_verified``."""
    proven = {}
    if message.email and message.email_verified:
        proven["email"] = message.email.lower()
    if message.phone and message.phone_verified:
        proven["phone"] = message.phone
    return proven


async def _attach_new_identities(
    session: AsyncSession,
    new_identity: dict[IdentityKey, InboundMessage],
    contact_of: dict[IdentityKey, int],
    known: dict[int, dict[str, Any]],
    now: datetime,
) -> None:
    # Keys whose sender matches no existing contact share a new one when they share a verified
    # email or phone within this batch, exactly as if they had arrived one after the other.
    fresh: list[list[IdentityKey]] = []
    fresh_by_proof: dict[str, int] = {}
    for key, message in new_identity.items():
        proven = _proven(message)
        proofs = [f"{field}:{value}" for field, value in proven.items()]
        match = await _verified_match(session, proven) if proven else None
        if match is not None:
            contact_of[key] = match
            continue
        group = next((fresh_by_proof[p] for p in proofs if p in fresh_by_proof), None)
        if group is None:
            group = len(fresh)
            fresh.append([])
        fresh[group].append(key)
        for proof in proofs:
            fresh_by_proof.setdefault(proof, group)
    if fresh:
        # A new contact starts with what the first message of its group offers: the fill-in
        # below would set exactly those fields (they are all empty on a new contact), with an
        # UPDATE per new contact in every batch that brings new senders.
        rows = [_new_contact(new_identity[keys[0]], now) for keys in fresh]
        created = await _INSERT_CONTACTS(session, rows)
        for group_keys, row, contact_id in zip(fresh, rows, created, strict=True):
            # The stored row, as a read would give it: the other columns start empty.
            known[contact_id] = {**_EMPTY_CONTACT, **row, "id": contact_id}
            for key in group_keys:
                contact_of[key] = contact_id
    await _INSERT_IDENTITIES(
        session,
        [
            {
                "contact_id": contact_of[key],
                "channel": key[0],
                "external_user_id": key[1],
                "reachable": True,
                "created_at": now,
            }
            for key in new_identity
        ],
    )


async def _verified_match(session: AsyncSession, proven: dict[str, str]) -> int | None:
    """A contact that proved it owns one of the sender's ``proven`` fields (see :func:`_proven`).

    One that was only told it (a pre-chat form) is not the same person for sure: joining them
    would show this sender that contact's tickets, and it this sender's.
    """
    for field, value in proven.items():
        contact_id = await session.scalar(
            select(CONTACTS.c.id)
            .where(
                _MATCHED[field] == value,
                CONTACTS.c[f"{field}_verified"],
                CONTACTS.c.merged_into_id.is_(None),
            )
            .order_by(CONTACTS.c.id)
            .limit(1)
        )
        if contact_id is not None:
            return int(contact_id)
    return None


async def _load_following_merges(
    session: AsyncSession, contact_ids: set[int], known: dict[int, dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Contacts by id; a merged contact's id maps to the row of the contact it was merged into.

    ``known`` holds rows already read in this transaction; only the others are fetched.
    """
    rows: dict[int, dict[str, Any]] = dict(known)
    wanted = {i for i in contact_ids if i not in rows} | {
        r["merged_into_id"]
        for r in rows.values()
        if r["merged_into_id"] is not None and r["merged_into_id"] not in rows
    }
    while wanted:
        result = await session.execute(select(CONTACTS).where(CONTACTS.c.id.in_(wanted)))
        for found in result.mappings():
            rows[found["id"]] = dict(found)
        wanted = {
            r["merged_into_id"]
            for r in rows.values()
            if r["merged_into_id"] is not None and r["merged_into_id"] not in rows
        }
    resolved: dict[int, dict[str, Any]] = {}
    for contact_id in contact_ids:
        row, seen = rows[contact_id], {contact_id}
        while row["merged_into_id"] is not None and row["merged_into_id"] not in seen:
            seen.add(row["merged_into_id"])
            row = rows[row["merged_into_id"]]
        resolved[contact_id] = row
    return resolved
