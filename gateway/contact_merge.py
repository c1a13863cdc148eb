"""One person's two contacts made one: what a supervisor's merge and a proven phone both do.

The contact kept gains the fields it lacks from the other, with their proof (an email or phone
copied unproven would later match no one, see ``Contact``), and the VIP flag if either had it.
Everything that names the other moves to it: identities, tickets and outbox rows (a row is
delivered, or retried by an admin, through its contact's identity on its channel, and the
other has none left). The other is marked ``merged_into_id`` (ingest and lookups follow it).
"""

from __future__ import annotations

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.outbox import OUTBOX
from gateway.store.tables import Contact, ContactIdentity, Ticket

CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
IDENTITIES: Table = ContactIdentity.__table__  # type: ignore[assignment]
TICKETS: Table = Ticket.__table__  # type: ignore[assignment]

FILLED = ("name", "email", "phone", "locale", "timezone")
"""Fields the kept contact takes from the other when it has none."""
PROVEN = {"email": "email_verified", "phone": "phone_verified"}
"""Fields whose proof comes with them."""


async def merge_contact(session: AsyncSession, keep_id: int, other_id: int) -> None:
    """Merge contact ``other_id`` into ``keep_id`` in the caller's transaction (both exist,
    neither is merged; the caller checks)."""
    columns = [CONTACTS.c[name] for name in (*FILLED, *PROVEN.values(), "vip")]
    rows = await session.execute(
        select(CONTACTS.c.id, *columns).where(CONTACTS.c.id.in_((keep_id, other_id)))
    )
    by_id = {row.id: row._mapping for row in rows}
    keep, other = by_id[keep_id], by_id[other_id]
    values: dict[str, object] = {}
    for field in FILLED:
        if keep[field] is None and other[field] is not None:
            values[field] = other[field]
            if field in PROVEN:
                values[PROVEN[field]] = other[PROVEN[field]]
    if other["vip"] and not keep["vip"]:
        values["vip"] = True
    if values:
        await session.execute(update(CONTACTS).where(CONTACTS.c.id == keep_id).values(values))
    await session.execute(
        update(CONTACTS).where(CONTACTS.c.id == other_id).values(merged_into_id=keep_id)
    )
    for table in (IDENTITIES, TICKETS, OUTBOX):
        await session.execute(
            update(table).where(table.c.contact_id == other_id).values(contact_id=keep_id)
        )
