"""An agent answers one of the customer's messages (``reply_to`` in the agent API): Telegram
shows the answer quoting it (``reply_parameters`` on the delivery's first message), even when
the customer has deleted it since; other replies quote nothing, as before. A message Telegram
cannot point at (one the customer mailed into the ticket, one of another chat) is quoted with
its words: the delivery starts with them as a blockquote entity."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from channels.telegram.blockquote import QUOTED_CHARS
from channels.telegram.sender import TelegramSender
from gateway.appkeys import PIPELINE
from gateway.models import AgentRole, Channel
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Ticket, TicketMessage
from tests.channels.telegram.agents import PNG, log_in, upload
from tests.channels.telegram.conftest import (
    Gateway,
    count,
    outbox,
    post_update,
)
from tests.channels.telegram.deliveries import outbound
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.channels.telegram.private_chat import text_from
from workers.jobs import deliver_async


class Desk:
    """Chat 888 writes in; a supervisor answers through the agent API."""

    def __init__(self, gateway: Gateway, db: Store, headers: dict[str, str]) -> None:
        self.app, self.client = gateway
        self.db = db
        self.headers = headers

    async def customer_says(self, text: str, user_id: int = 888) -> tuple[int, int]:
        """``user_id`` writes ``text``: the stored message's id and its Telegram id."""
        update = text_from(user_id, text)
        assert await post_update(self.client, update) == 200
        await self.app[PIPELINE].drain()
        async with self.db.read() as session:
            ours = await session.scalar(select(TicketMessage.id).where(TicketMessage.text == text))
        assert ours is not None
        return ours, int(update["message"]["message_id"])

    async def customer_mails(self, into: int, text: str) -> int:
        """The customer's mail saying ``text`` joins the ticket of message ``into`` (as a
        mail with its number in the subject does, once the two contacts are one): its id."""
        async with self.db.write() as session:
            ticket = await session.scalar(
                select(Ticket).join(TicketMessage).where(TicketMessage.id == into)
            )
            assert ticket is not None
            mailed = TicketMessage(
                ticket_id=ticket.id,
                kind="incoming",
                author_type="customer",
                channel=Channel.EMAIL.value,
                external_id=f"<{into}-mail@client.example>",
                text=text,
                attachments=[],
                channel_meta={"message_id": f"<{into}-mail@client.example>"},
                created_at=ticket.created_at,
            )
            session.add(mailed)
            await session.flush()
            return mailed.id

    async def number(self, message_id: int) -> str:
        """The number of the ticket holding the message ``message_id``."""
        async with self.db.read() as session:
            found = await session.scalar(
                select(Ticket.number)
                .join(TicketMessage, TicketMessage.ticket_id == Ticket.id)
                .where(TicketMessage.id == message_id)
            )
        assert found is not None
        return str(found)

    async def reply(self, message_id: int, body: dict[str, Any]) -> Any:
        number = await self.number(message_id)
        return await self.client.post(
            f"/api/v1/tickets/{number}/replies", json=body, headers=self.headers
        )

    async def deliver(self, response: Any, settings: Settings) -> str:
        """Run the delivery job on the reply ``response`` created."""
        assert response.status == 201, await response.text()
        created = (await response.json())["message_id"]
        [row] = [r for r in await outbox(self.db) if r.kind == "reply" and r.message_id == created]
        return await deliver_async(row.id, settings)


async def a_desk(gateway: Gateway, db: Store) -> Desk:
    return Desk(gateway, db, await log_in(gateway[1], db, AgentRole.SUPERVISOR))


def quoting(telegram_id: int) -> dict[str, Any]:
    """``reply_parameters`` as Telegram receives them for a reply to ``telegram_id``."""
    return {"message_id": telegram_id, "allow_sending_without_reply": True}


async def test_a_reply_to_a_message_quotes_it_and_a_plain_reply_quotes_nothing(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    desk = await a_desk(gateway, db)
    first, first_tg = await desk.customer_says("人工 my parcel is late")
    await desk.customer_says("and the box was open")

    answer = await desk.reply(first, {"text": "It left today.", "reply_to": first})
    assert await desk.deliver(answer, settings) == "sent"
    sent = fake.sent[-1]
    assert (sent["method"], sent["chat_id"], sent["text"]) == ("sendMessage", 888, "It left today.")
    assert sent["reply_parameters"] == quoting(first_tg)
    assert "entities" not in sent  # pointed at, not repeated

    plain = await desk.reply(first, {"text": "Anything else?"})
    assert await desk.deliver(plain, settings) == "sent"
    assert fake.sent[-1]["text"] == "Anything else?"
    assert "reply_parameters" not in fake.sent[-1]


async def test_a_reply_to_a_message_the_customer_deleted_is_still_delivered(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """Telegram refuses a reply to a message gone from the chat unless the send allows it."""
    desk = await a_desk(gateway, db)
    first, first_tg = await desk.customer_says("人工 wrong size")
    fake.deleted.add((888, first_tg))
    answer = await desk.reply(first, {"text": "We will swap it.", "reply_to": first})
    assert await desk.deliver(answer, settings) == "sent"
    assert fake.sent[-1]["text"] == "We will swap it."
    assert fake.sent[-1]["reply_parameters"] == quoting(first_tg)


async def test_only_the_first_message_of_a_long_reply_or_of_files_quotes(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    desk = await a_desk(gateway, db)
    first, first_tg = await desk.customer_says("人工 how do I return it")
    long_text = "A" * 3000 + "\n\n" + "B" * 3000
    answer = await desk.reply(first, {"text": long_text, "reply_to": first})
    assert await desk.deliver(answer, settings) == "sent"
    head, tail = fake.sent[-2:]
    assert (head["text"][0], tail["text"][0]) == ("A", "B")
    assert head["reply_parameters"] == quoting(first_tg)
    assert "reply_parameters" not in tail

    number = await desk.number(first)
    uploaded = await upload(desk.client, desk.headers, number, "label.png", PNG, "image/png")
    assert uploaded.status == 201, await uploaded.text()
    files = await desk.reply(first, {"attachments": [await uploaded.json()], "reply_to": first})
    assert await desk.deliver(files, settings) == "sent"
    assert fake.sent[-1]["method"] == "sendPhoto"
    assert fake.sent[-1]["reply_parameters"] == quoting(first_tg)


async def test_a_reply_to_another_tickets_message_is_refused_and_nothing_is_owed(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    desk = await a_desk(gateway, db)
    mine, _ = await desk.customer_says("人工 where is my refund", user_id=888)
    theirs, _ = await desk.customer_says("人工 my own question", user_id=999)
    assert await desk.number(mine) != await desk.number(theirs)
    stored = (await count(db, TicketMessage), len(await outbox(db)))
    refused = await desk.reply(mine, {"text": "Quoting them", "reply_to": theirs})
    assert refused.status == 400
    assert (await refused.json())["field"] == "reply_to"
    assert (await count(db, TicketMessage), len(await outbox(db))) == stored
    assert not [s for s in fake.sent if s.get("text") == "Quoting them"]


async def test_a_message_of_another_chat_is_never_pointed_at_but_quoted_in_words(
    fake: FakeBotAPI, settings: Settings
) -> None:
    """A private chat's message ids are its own count: the contact's other Telegram account's
    message 7 is not this chat's message 7. Its words are quoted instead."""
    sender = TelegramSender(settings)
    elsewhere = {"chat_id": 999, "message_id": 7}
    await sender.send(
        outbound("Hello", quote=True, reply_meta=elsewhere, quoted_text="Is it 👍 yet?")
    )
    here = {"chat_id": 888, "message_id": 7}
    await sender.send(
        outbound(
            "Hello again", outbox_id=2, quote=True, reply_meta=here, quoted_text="Is it 👍 yet?"
        )
    )
    assert "reply_parameters" not in fake.sent[0]
    assert fake.sent[0]["text"] == "Is it 👍 yet?\nHello"
    assert fake.sent[0]["entities"] == [{"type": "blockquote", "offset": 0, "length": 13}]
    assert fake.sent[1]["reply_parameters"] == quoting(7)
    assert (fake.sent[1]["text"], "entities" in fake.sent[1]) == ("Hello again", False)


def utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def quoted_words(sent: dict[str, Any], *, field: str = "text") -> str:
    """The words a sent message's blockquote covers (offsets count UTF-16 units)."""
    entities = sent["entities" if field == "text" else "caption_entities"]
    [entity] = [e for e in entities if e["type"] == "blockquote"]
    units = utf16(sent[field])
    start, end = 2 * entity["offset"], 2 * (entity["offset"] + entity["length"])
    return units[start:end].decode("utf-16-le")


async def test_a_reply_to_a_mail_in_a_telegram_ticket_starts_with_its_words_quoted(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """Regression: the reply went out on Telegram quoting nothing, as the email's ids mean
    nothing there; the customer could not tell which question it answered."""
    desk = await a_desk(gateway, db)
    first, _ = await desk.customer_says("人工 my parcel is late")
    mailed = await desk.customer_mails(first, "  The box <b>arrived</b> open.\n")
    await desk.customer_says("any news?")

    answer = await desk.reply(first, {"text": "We will send a new one.", "reply_to": mailed})
    assert await desk.deliver(answer, settings) == "sent"
    sent = fake.sent[-1]
    assert sent["text"] == "The box <b>arrived</b> open.\nWe will send a new one."
    assert sent["entities"] == [{"type": "blockquote", "offset": 0, "length": 28}]
    assert "parse_mode" not in sent  # the agent's and customer's words are never markup
    assert "reply_parameters" not in sent

    files_alone = await desk.reply(
        first, {"attachments": [await _uploaded(desk, first)], "reply_to": mailed}
    )
    assert await desk.deliver(files_alone, settings) == "sent"
    photo = fake.sent[-1]
    assert (photo["method"], photo["caption"]) == ("sendPhoto", "The box <b>arrived</b> open.")
    assert quoted_words(photo, field="caption") == "The box <b>arrived</b> open."


async def _uploaded(desk: Desk, message_id: int) -> Any:
    number = await desk.number(message_id)
    uploaded = await upload(desk.client, desk.headers, number, "label.png", PNG, "image/png")
    assert uploaded.status == 201, await uploaded.text()
    return await uploaded.json()


async def test_a_long_quote_is_shortened_and_a_long_reply_still_fits_telegram(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """Emoji count two UTF-16 units, in Telegram's 4,096 and in entities' offsets: the quote
    and the first piece of the reply together stay within the limit."""
    desk = await a_desk(gateway, db)
    first, _ = await desk.customer_says("人工 a long story")
    story = "📦 " * 150 + "and then it rained"
    mailed = await desk.customer_mails(first, story)
    reply = "😀" * 2500 + "\n\n" + "B" * 100

    answer = await desk.reply(first, {"text": reply, "reply_to": mailed})
    before = len(fake.sent)
    assert await desk.deliver(answer, settings) == "sent"
    head, tail = fake.sent[before:]  # the emoji cut where the limit falls, the rest after
    assert 4095 <= len(utf16(head["text"])) // 2 <= 4096  # full, an emoji (2 units) short at most
    words = quoted_words(head)
    assert words.endswith("…") and len(words) <= QUOTED_CHARS + 1
    assert story.startswith(words[:-1]) and not words[:-1].endswith(" ")
    assert head["text"].startswith(words + "\n😀")
    assert "entities" not in tail
    assert head["text"][len(words) + 1 :] + tail["text"] == reply
