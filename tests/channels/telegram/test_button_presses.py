"""Presses of the inline buttons under the bot's answers and surveys (callback queries):
"did this help?", "which one did you mean?" and the survey's stars."""

from __future__ import annotations

from gateway.appkeys import PIPELINE
from gateway.settings import Settings
from gateway.store import Store
from knowledge_base.base import Answer, Candidate, Clarify, Verdict
from tests.channels.telegram.conftest import (
    AlwaysAnswers,
    MakeGateway,
    deliver_all,
    load_fixture,
    messages,
    outbox,
    post_fixture,
    post_update,
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI


async def test_helpful_no_escalates_and_the_press_is_answered_once(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    app, client = await make_gateway(settings, kb=AlwaysAnswers())
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    assert ticket.escalated_at is None  # the bot answered
    for _ in range(2):  # the second is Telegram redelivering it
        assert await post_fixture(client, "callback_query") == 200
    [ticket] = await tickets(db)
    assert ticket.escalated_at is not None
    feedback = [m for m in await messages(db) if m.kind == "system"]
    assert [(m.external_id, m.channel_meta["helpful"]) for m in feedback] == [
        ("cb:4382bfdwdsb323b2d9", False)
    ]
    assert [r.template for r in await outbox(db)] == ["ticket_received", "message", "escalated"]
    answers = fake.calls_of("answerCallbackQuery")
    assert answers[0].params == {
        "callback_query_id": "4382bfdwdsb323b2d9",
        "text": "谢谢您的反馈！",
    }


class TwoAnswers:
    """A knowledge base with an answer about passwords and one about opening hours."""

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        if "password" in text:
            return Answer("password", "Reset it?", "Use 'Forgot password' on the login page.", 0.9)
        return Answer("hours", "Opening hours?", "We are open 9:00-18:00.", 0.9)


async def test_no_under_an_earlier_answer_rejects_that_answer(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """The buttons named the ticket, so a press under the first answer counted for the
    latest: the agent read the wrong question and rejected answer."""
    app, client = await make_gateway(settings, kb=TwoAnswers())
    for n, question in ((11, "how do I reset my password"), (12, "opening hours?")):
        update = load_fixture("private_text")
        update["update_id"] += n
        update["message"].update(message_id=n, text=question)
        assert await post_update(client, update) == 200
        await app[PIPELINE].drain()
    assert await deliver_all(db, settings) == ["sent"] * 3
    [first] = [s for s in fake.sent if s["text"].startswith("Use 'Forgot")]
    no = first["reply_markup"]["inline_keyboard"][0][1]["callback_data"]
    press = load_fixture("callback_query")
    press["callback_query"]["data"] = no
    assert await post_update(client, press) == 200
    [note] = [m for m in await messages(db) if m.kind == "note"]
    assert note.text.splitlines()[1:] == [
        "Question: how do I reset my password",
        "Rejected answer: Use 'Forgot password' on the login page.",
    ]
    answers = {m.text: m.channel_meta for m in await messages(db) if m.author_type == "bot"}
    assert answers["Use 'Forgot password' on the login page."]["feedback"]["helpful"] is False
    assert "feedback" not in answers["We are open 9:00-18:00."]
    [ticket] = await tickets(db)
    assert ticket.escalated_at is not None


class AsksWhichOne:
    """Unsure about "return": asks which of two questions; sure about each of them."""

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        if text == "How do I return an item?":
            return Answer("ret", text, "Send it back within 30 days.", 0.95)
        if text == "When is my refund paid?":
            return Answer("ref", text, "Refunds are paid within 5 days.", 0.95)
        return Clarify(
            candidates=(
                Candidate(entry_id="ret", title="How do I return an item?", score=0.6),
                Candidate(entry_id="ref", title="When is my refund paid?", score=0.58),
            )
        )


async def test_the_bots_which_one_offers_buttons_and_a_press_is_the_question(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """The bot's "which one?" reached the chat as a bare list of questions, and typing one
    of them was the only way on ("2" went to the knowledge base, which escalated it)."""
    app, client = await make_gateway(settings, kb=AsksWhichOne())
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    assert await deliver_all(db, settings) == ["sent", "sent"]
    asked = fake.sent[1]
    assert asked["text"].splitlines() == [
        "您想问的是下面哪一个？",
        "How do I return an item?",
        "When is my refund paid?",
    ]
    buttons = [row[0] for row in asked["reply_markup"]["inline_keyboard"]]
    assert [b["text"] for b in buttons] == ["How do I return an item?", "When is my refund paid?"]
    press = load_fixture("callback_query")
    press["callback_query"]["data"] = buttons[1]["callback_data"]
    for _ in range(2):  # the second is Telegram redelivering it
        assert await post_update(client, press) == 200
        await app[PIPELINE].drain()
    texts = [(m.author_type, m.text) for m in await messages(db)]
    assert texts[2:] == [
        ("customer", "When is my refund paid?"),
        ("bot", "Refunds are paid within 5 days."),
    ]
    [ticket] = await tickets(db)
    assert ticket.escalated_at is None
    assert fake.calls_of("answerCallbackQuery")[0].params == {
        "callback_query_id": press["callback_query"]["id"]
    }


async def test_feedback_on_someone_elses_ticket_changes_nothing(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    app, client = await make_gateway(settings, kb=AlwaysAnswers())
    assert await post_fixture(client, "private_text") == 200  # 888's ticket G20261122001
    await app[PIPELINE].drain()
    press = load_fixture("callback_query")
    press["callback_query"]["from"] = {"id": 777, "is_bot": False, "first_name": "Ann"}
    press["callback_query"]["message"]["chat"]["id"] = 777
    assert await post_update(client, press) == 200
    [ticket] = await tickets(db)
    assert ticket.escalated_at is None
    assert [m.kind for m in await messages(db)] == ["incoming", "outgoing"]
    assert len(fake.calls_of("answerCallbackQuery")) == 1  # the spinner still stops


async def test_survey_stars_are_recorded_on_the_ticket(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    app, client = await make_gateway(settings, kb=AlwaysAnswers())
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    press = load_fixture("callback_query")
    press["callback_query"]["data"] = "r:G20261122001:4"
    assert await post_update(client, press) == 200
    rating = (await messages(db))[-1]
    assert (rating.kind, rating.text) == ("system", "Customer rated the service 4/5")
    assert rating.channel_meta["survey_rating"] == 4
    [ticket] = await tickets(db)
    assert ticket.escalated_at is None
