"""A poll or a dice a customer sends in a private chat, through the real app's webhook: stored
as a message an agent can read (both used to be dropped, counted as ``unsupported_message``)."""

from __future__ import annotations

import pytest

from channels.telegram.parse import parse_update
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
    rejected,
    tickets,
)


async def test_a_dice_and_a_poll_are_stored_on_the_chats_ticket_not_dropped(
    settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """A customer-service gateway must not lose what a customer sent: the dice roll and the
    poll were acknowledged to Telegram and stored nowhere. Each is now a message of the
    chat's one ticket, for people (no question for the knowledge base)."""
    kb = AsksRecorded()
    app, client = await make_gateway(settings, kb=kb)
    assert await post_fixture(client, "dice") == 200
    assert await post_fixture(client, "poll") == 200
    await app[PIPELINE].drain()

    assert rejected(app, "unsupported_message") == 0
    [ticket] = await tickets(db)
    assert (ticket.channel, ticket.thread_key) == ("telegram", "777")
    assert ticket.escalated_at is not None  # only people can read them
    assert kb.asked == []
    dice, poll = await messages(db)
    assert (dice.external_id, dice.ticket_id) == ("777:26", ticket.id)
    assert dice.text == "🎲 5"
    assert dice.channel_meta["dice"] == {"emoji": "🎲", "value": 5}
    assert dice.channel_meta["update_id"] == 1032
    assert (poll.external_id, poll.ticket_id) == ("777:27", ticket.id)
    assert poll.text == "📊 Which colour should the replacement be?\n- Black\n- Silver"
    assert poll.channel_meta["poll"] == {
        "question": "Which colour should the replacement be?",
        "options": ["Black", "Silver"],
    }
    assert [r.template for r in await outbox(db)] == ["ticket_received", "escalated"]


async def test_a_dice_or_poll_delivered_twice_is_stored_once(
    settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """Telegram redelivers an update it got no 200 for: the same ``update_id``, the same
    message, deduplicated like any other."""
    app, client = await make_gateway(settings)
    for name in ("dice", "poll", "dice", "poll"):
        assert await post_fixture(client, name) == 200
    await app[PIPELINE].drain()
    assert [m.external_id for m in await messages(db)] == ["777:26", "777:27"]
    assert len(await tickets(db)) == 1


@pytest.mark.parametrize(
    ("dice", "text"),
    [
        ({"emoji": "🎯", "value": 6}, "🎯 6"),
        ({"emoji": "🎰", "value": 64}, "🎰 64"),  # a slot machine's value is 1-64
    ],
)
def test_every_dice_emoji_is_its_emoji_and_value(dice: dict[str, object], text: str) -> None:
    update = load_fixture("dice")
    update["message"]["dice"] = dice
    parsed = parse_update(update)
    assert isinstance(parsed, InboundMessage)
    assert (parsed.text, parsed.channel_meta["text_from"]) == (text, "dice")


def test_a_quiz_is_stored_as_a_poll_with_its_options_in_order() -> None:
    """A quiz is a poll too (``type: "quiz"``); what it holds for agents is the same."""
    update = load_fixture("poll")
    update["message"]["poll"].update(
        type="quiz",
        correct_option_id=2,
        explanation="Blue ships first",
        options=[{"text": t, "voter_count": 0} for t in ("Black", "Silver", "Blue")],
    )
    parsed = parse_update(update)
    assert isinstance(parsed, InboundMessage)
    assert parsed.text.splitlines()[1:] == ["- Black", "- Silver", "- Blue"]
    assert parsed.channel_meta["text_from"] == "poll"
