"""What a customer sends that is neither words nor a file (a forwarded story, a checklist, paid
media, a kind Telegram added after this gateway was written), through the real app's webhook:
stored as a message an agent reads, where each was dropped as ``unsupported_message``. A
service message, which nobody wrote, is still only counted."""

from __future__ import annotations

from typing import Any

import pytest

from channels.telegram.content_kinds import SERVICE, UNKNOWN
from channels.telegram.parse import Ignored, parse_update
from gateway.appkeys import PIPELINE
from gateway.models import InboundMessage
from gateway.settings import Settings
from gateway.store import Store
from tests.channels.telegram.conftest import (
    AsksRecorded,
    MakeGateway,
    load_fixture,
    messages,
    outbox,
    post_fixture,
    post_update,
    rejected,
    tickets,
)

UNKNOWN_TEXT = "A Telegram message of a kind the gateway cannot show yet (hologram)"


def parsed_with(**content: Any) -> InboundMessage:
    """The ``private_text`` update with ``content`` in place of its words, parsed."""
    update = load_fixture("private_text")
    del update["message"]["text"]
    update["message"].update(content)
    result = parse_update(update)
    assert isinstance(result, InboundMessage), result
    return result


async def test_a_story_checklist_paid_media_and_unknown_kind_reach_people(
    settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """All four were acknowledged to Telegram and stored nowhere: the customer's forwarded
    story or checklist never reached an agent. Each is a message of the chat's one ticket,
    for people (nothing asked of the knowledge base), and a redelivery is stored once."""
    kb = AsksRecorded()
    app, client = await make_gateway(settings, kb=kb)
    for name in ("story", "checklist", "paid_media", "unknown_kind", "story"):
        assert await post_fixture(client, name) == 200
    await app[PIPELINE].drain()

    assert rejected(app, "unsupported_message") == 0
    [ticket] = await tickets(db)
    assert (ticket.channel, ticket.thread_key) == ("telegram", "777")
    assert ticket.escalated_at is not None
    assert kb.asked == []
    story, checklist, paid, unknown = await messages(db)
    assert [m.external_id for m in (story, checklist, paid, unknown)] == [
        "777:28",
        "777:29",
        "777:30",
        "777:31",
    ]
    assert {m.ticket_id for m in (story, checklist, paid, unknown)} == {ticket.id}
    assert story.text == "📖 A story from Shop News"
    assert story.channel_meta["story"] == {"chat_id": -1001234567890, "id": 42, "from": "Shop News"}
    assert checklist.text == (
        "☑️ Before the repair\n- [x] Back up the phone\n- [ ] Take out the SIM card"
    )
    assert checklist.channel_meta["checklist"]["tasks"][1] == {
        "id": 2,
        "text": "Take out the SIM card",
        "done": False,
    }
    assert paid.text == "⭐ Paid media (2 items, 25 stars)"
    assert paid.channel_meta["paid_media"] == {"star_count": 25, "types": ["preview", "preview"]}
    assert unknown.text == UNKNOWN_TEXT
    assert unknown.channel_meta[UNKNOWN] == {"fields": ["hologram"]}
    assert [m.channel_meta["text_from"] for m in (story, checklist, paid, unknown)] == [
        "story",
        "checklist",
        "paid_media",
        UNKNOWN,
    ]
    assert [r.template for r in await outbox(db)] == ["ticket_received", "escalated"]


async def test_a_pinned_message_is_counted_not_stored(
    settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """Telegram's note that the customer pinned a message: nobody wrote it to us, so it opens
    no ticket; it is counted under the label it always had (a metric's label is a contract)."""
    app, client = await make_gateway(settings)
    assert await post_fixture(client, "pinned_message") == 200
    await app[PIPELINE].drain()
    assert rejected(app, "unsupported_message") == 1
    assert await tickets(db) == []
    assert await messages(db) == []


async def test_a_checklist_ticked_in_an_edit_changes_the_stored_text(
    settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """An edit of a message made into text here is one like any other: the agent reads the
    checklist as it is now, and what it replaced is kept."""
    app, client = await make_gateway(settings)
    assert await post_fixture(client, "checklist") == 200
    update = load_fixture("checklist")
    message = update.pop("message")
    message["checklist"]["tasks"][1]["completion_date"] = 1795320050
    update.update(update_id=1040, edited_message={**message, "edit_date": 1795320060})
    assert await post_update(client, update) == 200
    await app[PIPELINE].drain()
    [stored] = await messages(db)
    assert stored.text.splitlines()[1:] == [
        "- [x] Back up the phone",
        "- [x] Take out the SIM card",
    ]
    assert stored.channel_meta["edits"][0]["text"].endswith("- [ ] Take out the SIM card")


async def test_an_edited_checklist_replaces_the_kept_one_once(
    settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """Regression, "kind meta stale after edit": the text followed an edit, but
    ``channel_meta["checklist"]`` kept the checklist as first sent, so what read the object
    (the console, a report) found a task undone that the customer had ticked. The edit puts
    the new one in its place, keeping the old with what the edit replaced, and touches no
    other key; its redelivery changes nothing."""
    app, client = await make_gateway(settings)
    assert await post_fixture(client, "checklist") == 200
    await app[PIPELINE].drain()
    [sent] = await messages(db)
    first = dict(sent.channel_meta)
    update = load_fixture("checklist")
    message = update.pop("message")
    message["checklist"]["title"] = "Before the repair, please"
    message["checklist"]["tasks"][1]["completion_date"] = 1795320050
    update.update(update_id=1040, edited_message={**message, "edit_date": 1795320060})
    assert await post_update(client, update) == 200
    await app[PIPELINE].drain()

    [edited] = await messages(db)
    assert edited.channel_meta["checklist"] == {
        "title": "Before the repair, please",
        "tasks": [
            {"id": 1, "text": "Back up the phone", "done": True},
            {"id": 2, "text": "Take out the SIM card", "done": True},
        ],
    }
    [replaced] = edited.channel_meta["edits"]
    assert replaced["checklist"] == first["checklist"]
    assert replaced["text"] == sent.text
    changed = {k for k in first.keys() | edited.channel_meta.keys()
               if first.get(k) != edited.channel_meta.get(k)}  # fmt: skip
    assert changed == {"checklist", "edits", "edit_date", "edit_update_id"}

    assert await post_update(client, update) == 200  # Telegram delivers it again
    await app[PIPELINE].drain()
    [again] = await messages(db)
    assert (again.text, again.channel_meta) == (edited.text, edited.channel_meta)


def invoice(currency: str, total: int) -> dict[str, Any]:
    return {
        "invoice": {
            "title": "Screen repair",
            "description": "A new screen, fitted",
            "start_parameter": "repair",
            "currency": currency,
            "total_amount": total,
        }
    }


ANN = {"id": 777, "is_bot": False, "first_name": "Ann", "last_name": "Lee", "username": "ann_lee"}


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ({"game": {"title": "Lucky Wheel", "description": "Spin", "photo": []}}, "🎮 Lucky Wheel"),
        # Amounts come in the currency's smallest units: cents, but whole yen, and Telegram
        # Stars counted whole; a dinar has three decimals.
        (invoice("USD", 1250), "🧾 Screen repair: 12.50 USD"),
        (invoice("JPY", 1250), "🧾 Screen repair: 1250 JPY"),
        (invoice("XTR", 50), "🧾 Screen repair: 50 XTR"),
        (invoice("KWD", 12500), "🧾 Screen repair: 12.500 KWD"),
        (
            {
                "giveaway": {
                    "chats": [{"id": -100123, "type": "channel", "title": "Shop News"}],
                    "winners_selection_date": 1795400000,
                    "winner_count": 3,
                    "prize_description": "A free repair",
                }
            },
            "🎁 A giveaway (3 winners)\nA free repair",
        ),
        (
            {
                "giveaway_winners": {
                    "chat": {"id": -100123, "type": "channel", "title": "Shop News"},
                    "giveaway_message_id": 5,
                    "winners_selection_date": 1795400000,
                    "winner_count": 2,
                    "winners": [ANN, {"id": 9, "is_bot": False, "first_name": "Bo"}],
                }
            },
            "🎁 A giveaway's winners: Ann Lee (@ann_lee), Bo",
        ),
        (
            {
                "users_shared": {
                    "request_id": 1,
                    "users": [{"user_id": 9}, {"user_id": 8, "username": "li"}],
                }
            },
            "👤 9, @li",
        ),
        ({"chat_shared": {"request_id": 1, "chat_id": -100123, "title": "Fans"}}, "👥 Fans"),
        (
            {
                "gift": {
                    "gift": {"id": "g1", "sticker": {"emoji": "🧸"}, "star_count": 15},
                    "text": "Thanks for the fast repair",
                }
            },
            "🎁 A gift 🧸\nThanks for the fast repair",
        ),
        (
            {
                "unique_gift": {
                    "gift": {
                        "gift_id": "g2",
                        "base_name": "Plush Pepe",
                        "name": "PlushPepe-7",
                        "number": 7,
                    },
                    "origin": "transfer",
                }
            },
            "🎁 A gift: Plush Pepe #7",
        ),
        (
            {"web_app_data": {"button_text": "Order form", "data": '{"order": "A1024"}'}},
            '🌐 Order form\n{"order": "A1024"}',
        ),
        # The owner of a story is a person too: their name, where no title is.
        (
            {"story": {"chat": {"id": 9, "type": "private", "first_name": "Bo"}, "id": 3}},
            "📖 A story from Bo",
        ),
    ],
    ids=[
        "game",
        "invoice_in_cents",
        "invoice_in_yen",
        "invoice_in_stars",
        "invoice_in_fils",
        "giveaway",
        "giveaway_winners",
        "users_shared",
        "chat_shared",
        "gift",
        "unique_gift",
        "web_app_data",
        "story_of_a_person",
    ],
)
def test_each_kind_is_a_line_an_agent_reads(content: dict[str, Any], text: str) -> None:
    message = parsed_with(**content)
    [kind] = content
    assert (message.text, message.channel_meta["text_from"]) == (text, kind)
    assert kind in message.channel_meta


def test_a_checklist_task_with_a_completion_date_of_0_is_not_done() -> None:
    """The Bot API says 0 for a task not done: not a date."""
    task = {"id": 1, "text": "Back up the phone", "completion_date": 0}
    message = parsed_with(checklist={"title": "Before", "tasks": [task]})
    assert message.text == "☑️ Before\n- [ ] Back up the phone"


def test_paid_medias_caption_follows_its_line() -> None:
    """The caption is the customer's own words: kept, after the line saying what came."""
    update = load_fixture("paid_media")
    update["message"]["caption"] = "Is this the right part?"
    message = parse_update(update)
    assert isinstance(message, InboundMessage)
    assert message.text == "⭐ Paid media (2 items, 25 stars)\nIs this the right part?"
    assert message.channel_meta["text_from"] == "paid_media"


def test_a_kind_we_do_not_know_is_named_by_its_field_not_the_envelopes() -> None:
    """What the message is about (a reply, a forward, a thread) is not what it holds: only the
    field left names the kind. An edit of one is an edit."""
    update = load_fixture("unknown_kind")
    update["message"].update(
        reply_to_message={"message_id": 5, "date": 1795310000, "chat": {"id": 777}},
        forward_origin={"type": "hidden_user", "date": 1795300000, "sender_user_name": "X"},
        message_thread_id=3,
        has_protected_content=True,
    )
    message = parse_update(update)
    assert isinstance(message, InboundMessage)
    assert message.text == UNKNOWN_TEXT
    update["edited_message"] = {**update.pop("message"), "edit_date": 1795320060}
    edit = parse_update(update)
    assert isinstance(edit, InboundMessage)
    assert (edit.text, edit.external_id, edit.channel_meta["edit_date"]) == (
        UNKNOWN_TEXT,
        "777:31",
        1795320060,
    )


@pytest.mark.parametrize("field", sorted(SERVICE))
def test_every_service_message_stays_ignored(field: str) -> None:
    """A service message is Telegram's note, whatever new field about it comes along."""
    update = load_fixture("pinned_message")
    del update["message"]["pinned_message"]
    update["message"].update({field: {"any": "thing"}, "a_field_added_later": 1})
    assert parse_update(update) == Ignored(1039, "unsupported_message")


def test_a_kind_of_another_shape_than_we_read_is_stored_as_one_we_cannot_show() -> None:
    """A later Bot API may change an object we read: the customer's message is still stored,
    named, where the update was refused as malformed and the message lost."""
    message = parsed_with(story={"id": 3})  # no ``chat``
    assert message.text == "A Telegram message of a kind the gateway cannot show yet (story)"
    assert message.channel_meta[UNKNOWN] == {"fields": ["story"]}
