"""``/help``, commands that are not ours, and commands addressed to another bot."""

from __future__ import annotations

from gateway.appkeys import PIPELINE
from gateway.settings import Settings
from gateway.store import Store
from tests.channels.telegram.conftest import (
    AsksRecorded,
    Gateway,
    MakeGateway,
    messages,
    post_update,
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.channels.telegram.private_chat import say, text_from


async def test_help_and_commands_not_ours_are_answered_and_open_no_ticket(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """Telegram's apps suggest ``/help`` and ``/settings``: stored, each opened a ticket of
    "/help" for an agent, and its customer was told to wait for one."""
    _, client = gateway
    await say(client, 611, "/help")
    await say(client, 611, "/settings@gateway_test_bot", language="zh-hans")
    assert [s["text"].splitlines()[-1] for s in fake.sent] == [
        "/status your tickets · /new start a new question · /human talk to a person",
        "/status 查看您的工单 · /new 开始新的问题 · /human 转人工客服",
    ]
    assert await tickets(db) == [] and await messages(db) == []
    # A command not ours with words after it is what the customer wrote.
    await say(client, 611, "/order42 never arrived")
    await gateway[0][PIPELINE].drain()
    assert [m.text for m in await messages(db)] == ["/order42 never arrived"]


async def test_a_command_addressed_to_another_bot_is_the_customers_text(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """Telegram names the bot a command is for after an ``@`` (``/status@other_bot``, pasted
    from a group or another bot's chat): it was answered as ours. It is what the customer
    wrote, stored for the agent like any text; one addressed to us (in any case, as
    Telegram's usernames go) is still carried out, and our username asked for once."""
    app, client = gateway
    await say(client, 777, "/status@other_bot")
    await app[PIPELINE].drain()
    assert [m.text for m in await messages(db)] == ["/status@other_bot"]
    assert len(await tickets(db)) == 1
    assert not any(s["text"].startswith("Your open tickets") for s in fake.sent)

    fake.sent.clear()
    await say(client, 777, "/status@Gateway_Test_Bot")
    await say(client, 777, "/settings@gateway_test_bot")
    assert [s["text"].splitlines()[0] for s in fake.sent] == [
        "Your open tickets:",
        "Just send us your question (text, a photo or a file) and we will answer shortly.",
    ]
    assert len(await messages(db)) == 1
    assert len(fake.calls_of("getMe")) == 1


async def test_words_after_help_are_the_customers_question(
    make_gateway: MakeGateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """People ask for help by typing "/help" and their problem: the bot answered with what
    it does, and the problem was dropped (acknowledged, stored nowhere, seen by no one).
    The words are the customer's message, as after /human or /new; "/help" alone is still
    answered with what the bot does."""
    kb = AsksRecorded()
    app, client = await make_gateway(settings, kb=kb)
    asked = text_from(777, "/help my parcel arrived broken")
    for _ in range(2):  # the second is Telegram redelivering it
        assert await post_update(client, asked) == 200
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    assert [(m.ticket_id, m.text) for m in await messages(db) if m.kind == "incoming"] == [
        (ticket.id, "my parcel arrived broken")
    ]
    assert kb.asked == ["my parcel arrived broken"]
    assert not any(s["text"].startswith("Just send us your question") for s in fake.sent)
    await say(client, 777, "/help")
    assert fake.sent[-1]["text"].startswith("Just send us your question")
