"""The webhook's guarantees: the secret, acknowledging only after the commit, dedupe of
redelivered updates, groups and channels refused, the token kept out of logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select

from channels.telegram import webhook
from channels.telegram.inbound import TELEGRAM, TelegramInbound
from channels.telegram.state import count_failure
from gateway.appkeys import METRICS, PIPELINE
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Contact, OutboxRow, ParkedInbound, Ticket, TicketMessage
from gateway.store.types import utcnow
from tests.channels.telegram.conftest import (
    TOKEN,
    WEBHOOK,
    WEBHOOK_SECRET,
    Gateway,
    MakeGateway,
    count,
    deliver_all,
    load_fixture,
    outbox,
    post_fixture,
    post_update,
    private_text_with,
    rejected,
    sent_again,
    telegram_settings,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI


async def test_a_malformed_update_is_counted_and_acknowledged(gateway: Gateway, db: Store) -> None:
    app, client = gateway
    assert await post_update(client, {"message": {"text": "no update id"}}) == 200
    assert await count(db, TicketMessage) == 0
    assert rejected(app, "malformed_update") == 1


@pytest.mark.parametrize(
    "update",
    [
        private_text_with(**{"from": "x"}),
        private_text_with(entities=["x"]),
        private_text_with(text="", sticker="x"),
    ],
    ids=["from", "entity", "sticker"],
)
async def test_a_string_where_an_object_belongs_is_acknowledged_not_a_500(
    gateway: Gateway, db: Store, update: dict[str, Any]
) -> None:
    # A 500 makes Telegram redeliver the update forever, holding the chat's later ones back.
    app, client = gateway
    assert await post_update(client, update) == 200
    assert await count(db, TicketMessage) == 0
    assert rejected(app, "malformed_update") == 1


@pytest.mark.parametrize("data", ["a:99999999999:y", "k:99999999999:0"])
async def test_a_button_press_naming_an_id_beyond_ours_is_answered_as_not_ours(
    gateway: Gateway, db: Store, fake: FakeBotAPI, data: str
) -> None:
    # On PostgreSQL the lookup of an id past the 32-bit key failed: a 500, redelivered forever.
    _, client = gateway
    press = load_fixture("callback_query")
    press["callback_query"]["data"] = data
    assert await post_update(client, press) == 200
    assert await count(db, TicketMessage) == 0
    assert len(fake.calls_of("answerCallbackQuery")) == 1


async def test_group_messages_are_ignored_counted_and_explained_once(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    app, client = gateway
    assert await post_fixture(client, "group_message") == 200
    again = sent_again("group_message")
    assert await post_update(client, again) == 200
    assert await count(db, TicketMessage) == 0
    assert await count(db, Contact) == 0
    assert rejected(app, "group") == 2
    [explanation] = fake.sent
    assert explanation["chat_id"] == -100123
    assert "private" in explanation["text"] and "私聊" in explanation["text"]


def _upgrade(update_id: int, chat: dict[str, Any], **migrate: int) -> dict[str, Any]:
    """The service message Telegram sends on each side of a group's upgrade to a supergroup."""
    bot = {"id": 1087968824, "is_bot": True, "first_name": "Group"}
    message = {"message_id": 1, "date": 1795320100, "chat": chat, "from": bot, **migrate}
    return {"update_id": update_id, "message": message}


async def test_a_group_upgraded_to_a_supergroup_is_not_explained_again_under_its_new_id(
    gateway: Gateway, fake: FakeBotAPI
) -> None:
    app, client = gateway
    old: dict[str, Any] = {"id": -4567, "type": "group", "title": "Fans"}
    new: dict[str, Any] = {"id": -1001234567890, "type": "supergroup", "title": "Fans"}
    group = load_fixture("group_message")
    group["message"]["chat"] = old
    assert await post_update(client, group) == 200
    assert await post_update(client, _upgrade(2001, old, migrate_to_chat_id=new["id"])) == 200
    assert await post_update(client, _upgrade(2002, new, migrate_from_chat_id=old["id"])) == 200
    group = sent_again("group_message")
    group["message"]["chat"] = new
    assert await post_update(client, group) == 200
    assert rejected(app, "group") == 4
    assert [s["chat_id"] for s in fake.sent] == [old["id"]]


async def test_a_groups_upgrade_alone_explains_nothing_and_the_group_is_told_once_it_writes(
    gateway: Gateway, fake: FakeBotAPI
) -> None:
    _, client = gateway
    new: dict[str, Any] = {"id": -1001234567890, "type": "supergroup", "title": "Fans"}
    assert await post_update(client, _upgrade(2002, new, migrate_from_chat_id=-4567)) == 200
    assert fake.sent == []
    group = load_fixture("group_message")
    group["message"]["chat"] = new
    assert await post_update(client, group) == 200
    assert [s["chat_id"] for s in fake.sent] == [new["id"]]


async def test_channel_posts_are_ignored_and_counted(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    app, client = gateway
    assert await post_fixture(client, "channel_post") == 200
    assert await count(db, TicketMessage) == 0
    assert rejected(app, "channel_post") == 1
    assert fake.sent == []


@pytest.mark.parametrize("secret", [None, "wrong", ""])
async def test_webhook_without_the_right_secret_is_refused_and_stores_nothing(
    gateway: Gateway, db: Store, secret: str | None
) -> None:
    app, client = gateway
    assert await post_update(client, load_fixture("private_text"), secret=secret) == 401
    assert await count(db, TicketMessage) == 0
    assert await count(db, Contact) == 0
    assert rejected(app, "bad_secret") == 1


@pytest.mark.parametrize("secret", [b"h\xe9ok", "hé".encode(), b"\xff" * 300])
async def test_a_secret_header_that_is_not_ascii_is_refused_not_a_500(
    gateway: Gateway, db: Store, secret: bytes
) -> None:
    # aiohttp keeps bytes that are not UTF-8 as surrogates, which ``str.encode`` refuses: the
    # comparison raised, and anyone could make the webhook answer 500.
    app, client = gateway
    body = json.dumps(load_fixture("private_text")).encode()
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(
        b"POST " + WEBHOOK.encode() + b" HTTP/1.1\r\nHost: gateway\r\n"
        b"X-Telegram-Bot-Api-Secret-Token: " + secret + b"\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] == b"401"
    assert await count(db, TicketMessage) == 0
    assert rejected(app, "bad_secret") == 1


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe{", b"[1, 2]", b"[" * 100_000 + b"]" * 100_000],
    ids=["text", "not-utf8", "array", "nested-too-deep"],
)
async def test_a_body_that_is_no_update_is_a_400_and_stores_nothing(
    gateway: Gateway, db: Store, body: bytes
) -> None:
    # JSON nested deeper than Python's recursion limit raised RecursionError: a 500.
    _, client = gateway
    headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    response = await client.post(WEBHOOK, data=body, headers=headers)
    assert response.status == 400
    assert await count(db, TicketMessage) == 0


async def test_webhook_requests_are_counted_by_route_and_status_class(gateway: Gateway) -> None:
    # The request counter keeps one child per (route, status class): the second request of a
    # class must add to the first, and a refused one (raised as HTTPUnauthorized) is counted too.
    app, client = gateway
    assert await post_fixture(client, "private_text") == 200
    again = sent_again("private_text")
    assert await post_update(client, again) == 200
    assert await post_update(client, load_fixture("private_text"), secret="wrong") == 401
    text = app[METRICS].render().decode()
    route = 'route="/channels/telegram/webhook"'
    assert f'gateway_http_requests_total{{{route},status="2xx"}} 2.0' in text
    assert f'gateway_http_requests_total{{{route},status="4xx"}} 1.0' in text


async def test_the_same_update_twice_is_one_message(gateway: Gateway, db: Store) -> None:
    app, client = gateway
    assert await post_fixture(client, "private_text") == 200
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    assert await count(db, TicketMessage) == 1
    assert await count(db, Ticket) == 1
    assert [r.template for r in await outbox(db)] == ["ticket_received", "escalated"]


async def test_a_redelivery_while_the_first_delivery_is_still_in_flight_is_one_message(
    gateway: Gateway, db: Store
) -> None:
    # Telegram resends an update whose webhook call timed out, on another of its (up to 40)
    # connections, while ours may still be writing it: both copies can meet in one batch.
    app, client = gateway
    update = load_fixture("private_text")
    others = []
    for n in range(1, 20):  # other chats' updates, so the copies share a batch with them
        other = load_fixture("private_text")
        other["update_id"] += n
        other["message"]["chat"]["id"] += n
        other["message"]["from"]["id"] += n
        others.append(other)
    statuses = await asyncio.gather(
        *(post_update(client, u) for u in [update, *others[:10], update, *others[10:], update])
    )
    assert statuses == [200] * len(statuses)
    await app[PIPELINE].drain()
    assert await count(db, TicketMessage) == 20
    assert await count(db, Ticket) == 20
    async with db.read() as session:
        copies = await session.scalar(
            select(func.count())
            .select_from(TicketMessage)
            .where(TicketMessage.external_id == "888:11")
        )
    assert copies == 1


async def test_killed_after_commit_before_the_200_redelivery_stores_nothing_new(
    gateway: Gateway, db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = gateway
    inbound = app[TELEGRAM]
    handle = inbound.handle

    async def dies_after_commit(update: Mapping[str, Any]) -> None:
        await handle(update)
        raise ConnectionResetError("the process died before answering")

    monkeypatch.setattr(inbound, "handle", dies_after_commit)
    assert await post_fixture(client, "private_text") == 500  # Telegram saw no 200
    assert await count(db, TicketMessage) == 1
    monkeypatch.setattr(inbound, "handle", handle)
    assert await post_fixture(client, "private_text") == 200  # Telegram's redelivery
    await app[PIPELINE].drain()
    assert await count(db, TicketMessage) == 1
    assert await count(db, Ticket) == 1
    assert await count(db, OutboxRow) == 2  # one acknowledgement, one escalation: not doubled


async def test_an_update_failing_on_every_delivery_is_parked_and_the_chat_goes_on(
    gateway: Gateway, db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update meeting a bug of ours was answered 500 on every delivery: Telegram holds the
    chat's later updates back until it gives up on that one, hours later. Polling parks such
    an update after ``MAX_ATTEMPTS``; the webhook now does too, and acknowledges it."""
    monkeypatch.setattr(webhook, "MAX_ATTEMPTS", 3)
    real_handle = TelegramInbound.handle
    poison = load_fixture("private_text")

    async def fails_on_poison(self: TelegramInbound, u: Mapping[str, Any]) -> None:
        if u["update_id"] == poison["update_id"]:
            raise RuntimeError("a bug this update meets")
        await real_handle(self, u)

    monkeypatch.setattr(TelegramInbound, "handle", fails_on_poison)
    app, client = gateway
    assert [await post_update(client, poison) for _ in range(3)] == [500, 500, 200]
    assert await post_update(client, poison) == 200  # Telegram's last try crossed our answer
    async with db.read() as session:
        [parked] = (await session.scalars(select(ParkedInbound))).all()
    assert (parked.channel, parked.external_id) == ("telegram", f"update:{poison['update_id']}")
    assert json.loads(parked.raw) == poison and "a bug this update meets" in str(parked.detail)
    assert await post_update(client, sent_again("private_text")) == 200
    await app[PIPELINE].drain()
    assert await count(db, TicketMessage) == 1


async def test_an_update_failing_for_a_passing_reason_is_never_parked(
    gateway: Gateway, db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database away for a minute says nothing about the update: parked, it would be lost.
    monkeypatch.setattr(webhook, "MAX_ATTEMPTS", 2)

    async def database_away(self: TelegramInbound, u: Mapping[str, Any]) -> None:
        raise ConnectionRefusedError("database away")

    monkeypatch.setattr(TelegramInbound, "handle", database_away)
    _, client = gateway
    assert [await post_fixture(client, "private_text") for _ in range(4)] == [500] * 4
    assert await count(db, ParkedInbound) == 0


async def test_the_token_never_reaches_a_log_line(
    gateway: Gateway,
    db: Store,
    fake: FakeBotAPI,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = gateway
    caplog.set_level(logging.DEBUG)
    fake.add_file("photo-big", b"jpeg", "photos/file_7.jpg")
    assert await post_fixture(client, "photo_with_caption") == 200
    assert await post_fixture(client, "command_with_entities") == 200
    await app[PIPELINE].drain()
    await deliver_all(db, settings)
    assert fake.sent
    # The fake Bot API's own access log shows the token, as Telegram's would; ours must not.
    ours = "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name != "aiohttp.access"
    )
    assert TOKEN.split(":")[1] not in ours


async def _register_webhook(
    fake: FakeBotAPI,
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    make_gateway: MakeGateway,
    **telegram: Any,
) -> Settings:
    """Start a gateway with a public webhook URL (and ``telegram`` settings); its settings."""
    settings = telegram_settings(
        fake,
        db_url,
        redis_url,
        tmp_path,
        webhook_url="https://shop.example/channels/telegram/webhook",
        **telegram,
    )
    await make_gateway(settings)
    return settings


async def test_telegram_out_of_reach_at_start_up_delays_the_webhook_and_stops_nothing(
    fake: FakeBotAPI, db_url: str, redis_url: str, tmp_path: Path, make_gateway: MakeGateway
) -> None:
    """``setWebhook`` was tried once, inside start-up: a 502 (or a 429 for the second of two
    processes starting together) took the whole gateway down, web chat and console too."""
    fake.fail_next("setWebhook", 502, "Bad Gateway")
    fake.fail_next("setWebhook", 429, "Too Many Requests: retry after 1", retry_after=1)
    await _register_webhook(fake, db_url, redis_url, tmp_path, make_gateway)
    assert fake.webhook is None  # started all the same
    for _ in range(100):
        if fake.webhook is not None:
            break
        await asyncio.sleep(0.05)
    assert fake.webhook is not None
    tries = [c.at for c in fake.calls_of("setWebhook")]
    assert len(tries) == 3 and tries[2] - tries[1] >= 0.95  # the 429's wait, at least


class _Kept(logging.Handler):
    """Keeps a logger's records (the app's logging set-up replaces the root's handlers, and
    with them pytest's)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_webhook_telegram_refuses_is_logged_and_the_gateway_runs_on(
    fake: FakeBotAPI, db_url: str, redis_url: str, tmp_path: Path, make_gateway: MakeGateway
) -> None:
    fake.fail_next("setWebhook", 400, "Bad Request: bad webhook: HTTPS url must be provided")
    kept = _Kept()
    logger = logging.getLogger("channels.telegram.mount")
    logger.addHandler(kept)
    try:
        await _register_webhook(fake, db_url, redis_url, tmp_path, make_gateway)
    finally:
        logger.removeHandler(kept)
    assert fake.webhook is None and len(fake.calls_of("setWebhook")) == 1
    [refused] = [r for r in kept.records if r.levelno == logging.ERROR]
    assert "https url must be provided" in refused.__dict__["error"]  # PTB rewords it


async def test_webhook_is_registered_at_start_up_with_secret_and_allowed_updates(
    fake: FakeBotAPI, db_url: str, redis_url: str, tmp_path: Path, make_gateway: MakeGateway
) -> None:
    settings = await _register_webhook(fake, db_url, redis_url, tmp_path, make_gateway)
    assert fake.webhook is not None
    assert fake.webhook["url"] == "https://shop.example/channels/telegram/webhook"
    assert fake.webhook["secret_token"] == settings.telegram.webhook_secret.get_secret_value()  # type: ignore[union-attr]
    assert fake.webhook["allowed_updates"] == list(settings.telegram.allowed_updates)
    assert "max_connections" not in fake.webhook  # unset: Telegram's own default (40)


async def test_webhook_max_connections_is_passed_to_set_webhook(
    fake: FakeBotAPI, db_url: str, redis_url: str, tmp_path: Path, make_gateway: MakeGateway
) -> None:
    await _register_webhook(
        fake, db_url, redis_url, tmp_path, make_gateway, webhook_max_connections=100
    )
    assert fake.webhook is not None
    assert int(fake.webhook["max_connections"]) == 100


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_an_update_meeting_a_passing_postgres_error_is_not_parked(
    db_url: str,
    settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL's passing failures (a lock not had within ``lock_timeout`` while a migration
    holds the table, a deadlock, a connection the server ended) reach us as a plain
    ``DBAPIError``, which was taken for the update's own fault: after ``MAX_ATTEMPTS``
    deliveries the update was parked and acknowledged, and the customer's message lost."""
    monkeypatch.setattr(webhook, "MAX_ATTEMPTS", 2)
    dsn = "postgresql://" + db_url.split("://", 1)[1]
    admin = await asyncpg.connect(dsn)
    try:
        name = await admin.fetchval("SELECT current_database()")
        await admin.execute(f"ALTER DATABASE {name} SET lock_timeout = '100ms'")
        app, client = await make_gateway(settings)
        async with admin.transaction():
            await admin.execute("LOCK TABLE ticket_messages IN ACCESS EXCLUSIVE MODE")
            assert [await post_fixture(client, "private_text") for _ in range(3)] == [500] * 3
        assert await count(db, ParkedInbound) == 0
        assert await post_fixture(client, "private_text") == 200
        await app[PIPELINE].drain()
        assert await count(db, TicketMessage) == 1
    finally:
        await admin.close()


async def test_deliveries_failing_at_once_in_two_processes_are_both_counted(
    store: Store,
) -> None:
    """Two processes counting an update's first failure at once both found no row and both
    inserted one: on PostgreSQL the second insert failed on the unique key (a 500 with an
    ``IntegrityError`` logged over the update's own error) and its failure went uncounted."""
    for update_id in range(1000, 1005):
        counts = await asyncio.gather(
            count_failure(store, update_id, utcnow()), count_failure(store, update_id, utcnow())
        )
        assert sorted(c.own for c in counts) == [1, 2]
