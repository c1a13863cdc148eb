"""Parts sent as one (an album): the wordless parts go with the words, or reach people once.

Real clocks throughout: the router decides by the parts' ages as stored.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import gateway.routing as routing
from channels.telegram.edits import apply_edit
from gateway import parts
from gateway.models import Attachment, EventKind, MessageKind
from gateway.parts import PartGroup
from gateway.pipeline import Pipeline
from gateway.routing import Route, Router
from gateway.store import Store
from gateway.store.tables import Ticket, TicketEvent, TicketMessage
from tests.factories import RunningClock, inbound, make_ingest
from tests.test_routing import TableKB, outbox
from tests.timed_tickets import T0, close_with_survey

WAIT = 0.3
SLOW_WAIT = 3.0
"""The wait of a :func:`pipeline`, whose parts arrive in real time, one after another: on a
loaded machine storing three parts took longer than ``WAIT``, and the group fell quiet
between them."""
ANSWERED = [("notice", "ticket_received"), ("reply", "message")]
ESCALATED = [("notice", "ticket_received"), ("notice", "escalated")]


def part(text: str = "", album: str = "album-1", **extra: object) -> dict[str, object]:
    """The fields of one part of what a customer sent as one (a photo of an album)."""
    photo = Attachment(filename="p.jpg", content_type="image/jpeg", size=3, ref="/p.jpg")
    return {"text": text, "attachments": (photo,), "channel_meta": {"part_of": album}, **extra}


async def ticket_of(store: Store, ticket_id: int) -> Ticket:
    async with store.read() as session:
        return await session.get_one(Ticket, ticket_id)


async def unrouted(store: Store) -> int:
    async with store.read() as session:
        query = select(func.count()).where(
            TicketMessage.kind == MessageKind.INCOMING.value, TicketMessage.routed_at.is_(None)
        )
        return int(await session.scalar(query.select_from(TicketMessage)) or 0)


async def escalations(store: Store) -> int:
    async with store.read() as session:
        query = select(func.count()).where(TicketEvent.kind == EventKind.ESCALATED.value)
        return int(await session.scalar(query.select_from(TicketEvent)) or 0)


def pipeline(
    store: Store, clock: RunningClock, kb: TableKB | None = None, *, wait: float = SLOW_WAIT
) -> Pipeline:
    router = Router(store, kb or TableKB(), clock=clock, part_wait=wait)
    return Pipeline(make_ingest(store, clock), router)


async def test_a_part_after_its_words_is_attached_to_them_at_once(store: Store) -> None:
    clock = RunningClock()
    ingest, router = make_ingest(store, clock), Router(store, TableKB(), clock=clock)
    words = await ingest(inbound(**part("where is my invoice?")))
    photo = await ingest(inbound(**part()))
    assert (await router.route(words.message_id, seen=words)).route is Route.ANSWERED
    assert (await router.route(photo.message_id, seen=photo)).route is Route.SILENT
    assert (await ticket_of(store, photo.ticket_id)).escalated_at is None
    assert await outbox(store) == ANSWERED
    assert await unrouted(store) == 0


async def test_parts_before_their_words_wait_for_them(store: Store) -> None:
    # The parts come one by one, the words not always first: the wordless part escalated
    # while the words got the bot's answer, and the customer was told both at once.
    clock = RunningClock()
    gateway = pipeline(store, clock)
    first = await gateway.on_message(inbound(**part()))
    await gateway.on_message(inbound(**part()))
    await gateway.on_message(inbound(**part("where is my invoice?")))
    await gateway.drain(later=True)
    assert (await ticket_of(store, first.ticket_id)).escalated_at is None
    assert await outbox(store) == ANSWERED
    assert await unrouted(store) == 0


async def test_words_after_many_slow_parts_are_still_waited_for(store: Store) -> None:
    # Review E: parts handed over one at a time, each after its file's download, each well
    # within part_wait of the one before: the words came part_wait after the first part,
    # which had escalated by then (its wait ran from its own routing).
    clock = RunningClock()
    gateway = pipeline(store, clock)
    first = await gateway.on_message(inbound(**part()))
    for _ in range(2):
        await asyncio.sleep(SLOW_WAIT * 0.6)  # the next part's download
        await gateway.on_message(inbound(**part()))
    await asyncio.sleep(SLOW_WAIT * 0.6)
    await gateway.on_message(inbound(**part("where is my invoice?")))
    await gateway.drain(later=True)
    assert (await ticket_of(store, first.ticket_id)).escalated_at is None
    assert await outbox(store) == ANSWERED
    assert await unrouted(store) == 0


async def test_a_redelivered_part_waits_for_the_words_too(store: Store) -> None:
    # Review E: a redelivery (a webhook retry) is routed read back from the store (seen=None),
    # which was taken for "every part is in": it escalated before the caption came.
    clock = RunningClock()
    gateway = pipeline(store, clock)
    photo = inbound(**part())
    first = await gateway.on_message(photo)
    assert (await gateway.on_message(photo)).duplicate
    assert (await gateway.router.route(first.message_id)).route is Route.LATER
    await asyncio.sleep(SLOW_WAIT / 3)
    await gateway.on_message(inbound(**part("where is my invoice?")))
    await gateway.drain(later=True)
    assert (await ticket_of(store, first.ticket_id)).escalated_at is None
    assert await outbox(store) == ANSWERED


async def test_an_album_without_words_reaches_people_once_when_it_falls_quiet(
    store: Store,
) -> None:
    clock, kb = RunningClock(), TableKB()
    gateway = pipeline(store, clock, kb)
    photos = [await gateway.on_message(inbound(**part())) for _ in range(3)]
    outcome = await gateway.router.route(photos[0].message_id)
    assert outcome.route is Route.LATER
    assert outcome.wait is not None and 0 < outcome.wait <= SLOW_WAIT
    await gateway.drain(later=True)
    assert (await ticket_of(store, photos[0].ticket_id)).escalated_at is not None
    assert await escalations(store) == 1
    assert await outbox(store) == ESCALATED
    assert kb.asked == []
    assert await unrouted(store) == 0


async def test_a_stream_of_parts_is_not_waited_for_beyond_the_cap(store: Store) -> None:
    clock = RunningClock()
    ingest = make_ingest(store, clock)
    router = Router(store, TableKB(), clock=clock, part_wait=WAIT)
    first = await ingest(inbound(**part()))
    clock.skip(timedelta(seconds=29))
    await ingest(inbound(**part()))  # just in: the group is not quiet
    assert (await router.route(first.message_id)).route is Route.LATER
    clock.skip(timedelta(seconds=2))  # the first part is 31 s old
    assert (await router.route(first.message_id)).route is Route.ESCALATED


async def test_a_rating_beside_a_photo_does_not_speak_for_it(store: Store) -> None:
    # Review E: an album answering a closed ticket's survey, "5" on one photo (a rating,
    # stored routed: nothing asked) and the other photo reopening the ticket. Taken for the
    # album's words, the rating silenced the photo: a reopened ticket nobody was told of.
    clock = RunningClock(T0)
    ingest = make_ingest(store, clock)
    opened = await ingest(inbound(external_user_id="u1", thread_key="u1", text="hello"))
    await close_with_survey(store, opened.ticket_id)  # bot-handled: never escalated
    clock.skip(timedelta(hours=1))
    router = Router(store, TableKB(), clock=clock, part_wait=WAIT)
    gateway = Pipeline(ingest, router)
    rating = await gateway.on_message(inbound(**part("5", external_user_id="u1", thread_key="u1")))
    photo = await gateway.on_message(inbound(**part(external_user_id="u1", thread_key="u1")))
    await gateway.drain(later=True)
    assert rating.routed and rating.message.channel_meta["rating"] == 5
    assert photo.ticket_id == opened.ticket_id and photo.reopened
    ticket = await ticket_of(store, opened.ticket_id)
    assert ticket.status == "reopened"
    assert ticket.escalated_at is not None  # someone must look at the photo


@pytest.mark.parametrize(("words", "expected"), [(True, ANSWERED), (False, ESCALATED)])
async def test_a_shutdown_mid_album_leaves_the_part_to_the_sweep(
    store: Store, words: bool, expected: list[tuple[str, str]]
) -> None:
    # Review E: the shutdown's drain waited out the part's wait and escalated it, for words
    # that could only reach the next process (which then answered them as well).
    clock = RunningClock()
    old = pipeline(store, clock, wait=10.0)  # "young" below holds on a stalled machine too
    first = await old.on_message(inbound(**part()))
    await old.drain()  # the gateway stops: the part waits for no one
    assert await unrouted(store) == 1
    new = pipeline(store, clock, wait=10.0)
    if words:
        await new.on_message(inbound(**part("where is my invoice?")))
        await new.drain()
    else:
        assert await new.router.sweep(older_than=timedelta(0)) == 0  # young: still waiting
        assert await unrouted(store) == 1
    clock.skip(timedelta(seconds=31))
    assert await new.router.sweep() == 1  # decided, without waiting again
    assert await unrouted(store) == 0
    assert ((await ticket_of(store, first.ticket_id)).escalated_at is None) is words
    assert await outbox(store) == expected


async def test_a_caption_committed_after_the_parts_group_was_read_is_seen_before_escalating(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The part read its group in a transaction of its own and escalated later, in the
    router's batch: a caption committed (and answered) between the two was missed, and the
    customer got the answer and "passed to an agent" at once."""
    clock = RunningClock()
    ingest = make_ingest(store, clock)
    router = Router(store, TableKB(), clock=clock, part_wait=WAIT)
    photo = await ingest(inbound(**part()))
    read_group = parts.part_group
    reads = 0

    async def caption_after_the_first_read(
        session: AsyncSession, ticket_id: int, part_of: str
    ) -> PartGroup:
        nonlocal reads
        reads += 1
        group = await read_group(session, ticket_id, part_of)
        if reads == 1:
            clock.skip(timedelta(seconds=-WAIT * 0.05))  # stored within the wait
            words = await ingest(inbound(**part("where is my invoice?")))
            assert (await router.route(words.message_id, seen=words)).route is Route.ANSWERED
        return group

    clock.skip(timedelta(seconds=WAIT * 1.01))  # the part's timer: the group fell quiet
    monkeypatch.setattr(routing, "part_group", caption_after_the_first_read)
    assert (await router.route(photo.message_id)).route is Route.SILENT
    assert (await ticket_of(store, photo.ticket_id)).escalated_at is None
    assert await outbox(store) == ANSWERED


async def test_words_edited_onto_a_part_that_went_with_the_caption_are_routed(
    store: Store,
) -> None:
    """A photo routed silently with its album's caption asked nothing of its own: a question
    the customer then edited onto it was neither asked nor seen by anyone."""
    clock = RunningClock()
    ingest = make_ingest(store, clock)
    router = Router(store, TableKB(), clock=clock, part_wait=WAIT)
    words = await ingest(inbound(**part("where is my invoice?")))
    photo = await ingest(inbound(**part()))
    assert (await router.route(words.message_id, seen=words)).route is Route.ANSWERED
    assert (await router.route(photo.message_id, seen=photo)).route is Route.SILENT
    assert photo.message.external_id is not None
    async with store.write() as session:
        applied = await apply_edit(
            session,
            photo.message.external_id,
            "and my refund for order 42?",
            1_800_000_000,
            clock(),
            reopen_window=timedelta(days=7),
            update_id=99,
        )
    assert applied is not None and applied.to_route
