"""Sessions, the HTTP fallback (post and long poll), the widget files and the demo page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from channels.webchat.tokens import verify_token
from gateway.store.tables import Contact, ContactIdentity, TicketMessage
from tests.channels.webchat.conftest import (
    REFUND_ZH,
    Chat,
    agent_reply,
    delivered,
    incoming_count,
    message,
)

MakeChat = Callable[..., Awaitable[Chat]]


async def test_a_session_creates_the_contact_and_its_identity(chat: Chat) -> None:
    token, contact_id = await chat.session(
        name="王芳", email="Wang@Example.com", phone="+86 138 0000 0000", locale="zh-CN"
    )
    claims = verify_token(token, chat.settings.secret_key.get_secret_value())  # type: ignore[union-attr]
    assert (claims.contact_id, claims.locale) == (contact_id, "zh-CN")
    async with chat.store.read() as session:
        contact = await session.get_one(Contact, contact_id)
        identity = (
            await session.scalars(
                select(ContactIdentity).where(ContactIdentity.contact_id == contact_id)
            )
        ).one()
    assert (contact.name, contact.email, contact.phone, contact.locale) == (
        "王芳",
        "wang@example.com",
        "+86 138 0000 0000",
        "zh-CN",
    )
    assert (identity.channel, identity.external_user_id) == ("webchat", claims.session_id)
    anonymous, other = await chat.session()
    assert other != contact_id
    assert anonymous != token


async def test_bad_pre_chat_fields_are_refused_naming_the_field(chat: Chat) -> None:
    for body, field in (
        ({"email": "not-an-email"}, "email"),
        ({"name": "x" * 300}, "name"),
        ({"locale": "<script>"}, "locale"),
        ({"phone": 12345}, "phone"),
        ({"name": "Ann\x00"}, "name"),  # PostgreSQL cannot store it: was a 503 for ever
    ):
        response = await chat.client.post("/api/v1/webchat/sessions", json=body)
        assert response.status == 422
        error = await response.json()
        assert (error["error"], error["field"]) == ("invalid", field)
        assert error["detail"]
    bad_json = await chat.client.post("/api/v1/webchat/sessions", data=b"{nope")
    assert bad_json.status == 400
    assert (await bad_json.json())["error"] == "bad_json"
    async with chat.store.read() as session:
        assert (await session.scalars(select(Contact))).all() == []


async def test_session_creation_is_rate_limited_per_ip(make_chat: MakeChat) -> None:
    chat = await make_chat(webchat={"sessions_burst": 3, "sessions_per_minute": 0.1})
    statuses = [
        (await chat.client.post("/api/v1/webchat/sessions", json={})).status for _ in range(5)
    ]
    assert statuses == [201, 201, 201, 429, 429]
    refused = await chat.client.post("/api/v1/webchat/sessions")
    assert (await refused.json())["error"] == "rate_limited"


async def test_http_fallback_posts_with_the_same_ack_and_long_polls_the_answer(
    make_chat: MakeChat,
) -> None:
    chat = await make_chat(webchat={"long_poll_seconds": 5})
    token, _ = await chat.session(locale="zh-CN")
    auth = {"Authorization": f"Bearer {token}"}
    body = message("退款多久到账？", "http-1")
    first = await chat.client.post("/api/v1/webchat/messages", json=body, headers=auth)
    assert first.status == 200
    ack = await first.json()
    assert (ack["type"], ack["client_id"]) == ("ack", "http-1")
    again = await chat.client.post("/api/v1/webchat/messages", json=body, headers=auth)
    assert await again.json() == ack
    assert await incoming_count(chat.store) == 1

    poll = await chat.client.get(
        f"/api/v1/webchat/messages?after={ack['message_id']}", headers=auth
    )
    page = await poll.json()
    after = ack["message_id"]
    new = [m for m in page["messages"] if m["message_id"] > after]
    texts = [m["text"] for m in new]
    assert REFUND_ZH in texts
    # The courier delivers the "ticket received" notice meanwhile: stored before this poll
    # reads the history, it comes in the same answer (both orders are right).
    assert all(text == REFUND_ZH or ack["ticket"] in text for text in texts), texts
    assert page["after"] == max(m["message_id"] for m in new)
    # The customer's own recent message comes again (a lower id may commit late; see
    # test_resume_gap.py); the widget drops ids it has shown.
    assert [m["message_id"] for m in page["messages"] if m["message_id"] <= after] == [after]


async def test_long_poll_waits_for_an_agent_reply(make_chat: MakeChat) -> None:
    chat = await make_chat(webchat={"long_poll_seconds": 10})
    token, _ = await chat.session()
    auth = {"Authorization": f"Bearer {token}"}
    post = await chat.client.post(
        "/api/v1/webchat/messages",
        json=message("a person please", "p-1", handoff=True),
        headers=auth,
    )
    ack = await post.json()
    await chat.drain()
    await delivered(chat.store)  # the receipt and escalation notices are out
    notices = await (
        await chat.client.get(f"/api/v1/webchat/messages?after={ack['message_id']}", headers=auth)
    ).json()
    new = [m for m in notices["messages"] if m["message_id"] > ack["message_id"]]
    assert [m["template"] for m in new] == ["ticket_received", "escalated"]
    started = time.monotonic()
    poll = asyncio.create_task(
        chat.client.get(f"/api/v1/webchat/messages?after={notices['after']}", headers=auth)
    )
    await asyncio.sleep(0.5)
    assert not poll.done()  # nothing new yet: the request waits
    await agent_reply(chat.store, ack["ticket"], "Zhang here, how can I help?", name="Zhang")
    page = await (await poll).json()
    assert time.monotonic() - started < 8
    agent = [m for m in page["messages"] if m["author"] == "agent"]
    assert [(m["name"], m["text"]) for m in agent] == [("Zhang", "Zhang here, how can I help?")]


async def test_long_poll_returns_empty_after_its_wait(make_chat: MakeChat) -> None:
    chat = await make_chat(deliver=False, webchat={"long_poll_seconds": 0.3})
    token, _ = await chat.session()
    poll = await chat.client.get(f"/api/v1/webchat/messages?token={token}&after=0")
    assert await poll.json() == {"messages": [], "after": 0}


async def test_http_errors_are_json_with_error_detail_and_field(chat: Chat) -> None:
    no_token = await chat.client.post("/api/v1/webchat/messages", json=message("hi"))
    assert no_token.status == 401
    assert await no_token.json() == {
        "error": "token_required",
        "detail": "a web chat session token is required",
        "field": "token",
    }
    token, _ = await chat.session()
    auth = {"Authorization": f"Bearer {token}"}
    too_big = await chat.client.post(
        "/api/v1/webchat/messages", json=message("x" * 5000), headers=auth
    )
    assert too_big.status == 413
    assert (await too_big.json())["field"] == "text"
    bad_after = await chat.client.get("/api/v1/webchat/messages?after=-1", headers=auth)
    assert bad_after.status == 422
    resume = await chat.client.post(
        "/api/v1/webchat/messages", json={"type": "resume", "after": 0}, headers=auth
    )
    assert resume.status == 400
    assert await incoming_count(chat.store) == 0
    async with chat.store.read() as session:
        assert (await session.scalars(select(TicketMessage))).all() == []


async def test_cors_preflight_answers_allowed_origins_only(make_chat: MakeChat) -> None:
    chat = await make_chat(webchat={"origins": ["https://shop.example"]})
    ok = await chat.client.options(
        "/api/v1/webchat/sessions",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert ok.status == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    denied = await chat.client.options(
        "/api/v1/webchat/sessions", headers={"Origin": "https://evil.example"}
    )
    assert denied.status == 403
    posted = await chat.client.post(
        "/api/v1/webchat/sessions", json={}, headers={"Origin": "https://evil.example"}
    )
    assert posted.status == 403


async def test_widget_files_are_served_and_the_demo_page_only_in_demo_mode(
    make_chat: MakeChat,
) -> None:
    plain = await make_chat(deliver=False)
    script = await plain.client.get("/widget.js")
    assert script.status == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "WebSocket" in await script.text()
    css = await plain.client.get("/widget.css")
    assert css.headers["Content-Type"].startswith("text/css")
    assert (await plain.client.get("/")).status == 404
    demo = await make_chat(deliver=False, demo=True)
    page = await demo.client.get("/")
    assert page.status == 200
    assert '<script src="/widget.js"' in await page.text()
