"""The knowledge base admin API, edits taking effect without a restart, misses and feedback."""

from __future__ import annotations

import json

from sqlalchemy import select

from gateway.appkeys import ROUTER
from gateway.kb_feedback import feedback
from gateway.models import AgentRole, AuthorType, MessageKind, TicketStatus
from gateway.store.tables import Ticket, TicketEvent, TicketMessage
from knowledge_base.base import NeverMatches
from knowledge_base.encoder import HashingEncoder
from knowledge_base.service import MatcherKB
from knowledge_base.swappable import SwappableKB
from tests.api.conftest import AgentClient, Desk
from tests.factories import inbound
from tests.knowledge_base.conftest import SHOP_KB


def _swappable(desk: Desk) -> SwappableKB:
    kb = desk.app[ROUTER].kb
    assert isinstance(kb, SwappableKB)
    kb.encoder = HashingEncoder(dim=512)  # fast; the real model is measured by bench/kb_eval.py
    return kb


def _shop_jsonl() -> str:
    return "".join(
        json.dumps(
            {"id": e.id, "title": e.title, "examples": list(e.examples), "answer": dict(e.answers)},
            ensure_ascii=False,
        )
        + "\n"
        for e in SHOP_KB
    )


async def _import_shop(admin: AgentClient) -> None:
    response = await admin.send(
        "POST", "/api/v1/kb/import", {"format": "jsonl", "content": _shop_jsonl()}
    )
    assert response.status == 200, await response.text()
    assert await response.json() == {"added": len(SHOP_KB), "updated": 0}


async def _messages(desk: Desk, number: str) -> tuple[Ticket, list[TicketMessage]]:
    async with desk.store.read() as session:
        ticket = (await session.scalars(select(Ticket).where(Ticket.number == number))).one()
        rows = await session.scalars(
            select(TicketMessage)
            .where(TicketMessage.ticket_id == ticket.id)
            .order_by(TicketMessage.id)
        )
        return ticket, list(rows)


async def test_first_import_switches_an_empty_app_to_answering(desk: Desk) -> None:
    kb = _swappable(desk)
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    assert isinstance(kb.current, NeverMatches)
    before = await desk.customer_says(inbound(text="I forgot my password", thread_key="a"))
    ticket, _ = await _messages(desk, before)
    assert ticket.escalated_at is not None  # nothing to answer from yet

    await _import_shop(admin)
    await kb.settled()
    assert isinstance(kb.current, MatcherKB)
    number = await desk.customer_says(
        inbound(text="I forgot my password", thread_key="b", external_user_id="u2", locale="en")
    )
    ticket, messages = await _messages(desk, number)
    bot = [m for m in messages if m.author_type == AuthorType.BOT.value]
    assert ticket.escalated_at is None
    assert [(m.text, m.channel_meta.get("kb_entry_id")) for m in bot] == [
        ("Use Forgot password.", "password")
    ]
    await kb.close()


async def test_crud_edits_rebuild_the_index(desk: Desk) -> None:
    kb = _swappable(desk)
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    await _import_shop(admin)
    entry = {
        "id": "giftwrap",
        "title": "can you gift wrap my order",
        "examples": ["gift wrapping", "wrap it as a present", " ", "gift wrapping"],
        "answers": {"en": "Yes, for 5 yuan.", "zh-CN": "可以，5元。"},
        "category": "orders",
    }
    created = await admin.send("POST", "/api/v1/kb/entries", entry)
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["examples"] == ["gift wrapping", "wrap it as a present"]
    assert (await admin.send("POST", "/api/v1/kb/entries", entry)).status == 409
    await kb.settled()
    assert "giftwrap" in {e.id for e in kb.current.entries}  # type: ignore[attr-defined]

    patched = await admin.send(
        "PATCH", "/api/v1/kb/entries/giftwrap", {"enabled": False, "category": None}
    )
    assert patched.status == 200
    assert (await patched.json())["category"] is None
    await kb.settled()
    assert "giftwrap" not in {e.id for e in kb.current.entries}  # type: ignore[attr-defined]

    listed = await (await admin.get("/api/v1/kb/entries?q=WRAP")).json()
    assert [i["id"] for i in listed["items"]] == ["giftwrap"]
    disabled = await (await admin.get("/api/v1/kb/entries?enabled=false")).json()
    assert [i["id"] for i in disabled["items"]] == ["giftwrap"]
    by_phrasing = await (await admin.get("/api/v1/kb/entries?q=忘记密码")).json()
    assert [i["id"] for i in by_phrasing["items"]] == ["password"]

    got = await (await admin.get("/api/v1/kb/entries/password")).json()
    assert got["answers"] == {"en": "Use Forgot password.", "zh-CN": "点击忘记密码。"}
    deleted = await admin.send("DELETE", "/api/v1/kb/entries/password")
    assert await deleted.json() == {"id": "password"}
    assert (await admin.get("/api/v1/kb/entries/password")).status == 404
    assert (await admin.send("DELETE", "/api/v1/kb/entries/password")).status == 404
    assert (await admin.send("PATCH", "/api/v1/kb/entries/nope", {"title": "x"})).status == 404
    await kb.settled()
    assert "password" not in {e.id for e in kb.current.entries}  # type: ignore[attr-defined]
    await kb.close()


async def test_supervisors_read_and_only_admins_write(desk: Desk) -> None:
    supervisor = await desk.login("sup@shop.test", AgentRole.SUPERVISOR)
    agent = await desk.login("agent@shop.test", AgentRole.AGENT)
    assert (await supervisor.get("/api/v1/kb/entries")).status == 200
    assert (await supervisor.get("/api/v1/kb/misses")).status == 200
    assert (await agent.get("/api/v1/kb/entries")).status == 403
    denied = await supervisor.send("POST", "/api/v1/kb/entries", {"id": "x", "title": "x"})
    assert denied.status == 403
    async with desk.store.read() as session:
        assert (await session.scalars(select(Ticket))).first() is None


async def test_import_yaml_and_csv_documents_and_export_round_trips(desk: Desk) -> None:
    kb = _swappable(desk)
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    yaml_doc = (
        "entries:\n"
        "  - id: hours\n    title: opening hours\n    examples: [when are you open]\n"
        "    answer: {en: 9 to 5, zh-CN: 九点到五点}\n"
    )
    response = await admin.send(
        "POST",
        "/api/v1/kb/import?format=yaml",
        data=yaml_doc.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert await response.json() == {"added": 1, "updated": 0}
    csv_doc = "id,title,examples,answer_en\nhours,opening times,open today?|hours,9 to 6\n"
    response = await admin.send(
        "POST",
        "/api/v1/kb/import",
        data=csv_doc.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert await response.json() == {"added": 0, "updated": 1}
    for fmt in ("yaml", "jsonl", "csv"):
        exported = await (await admin.get(f"/api/v1/kb/export?format={fmt}")).json()
        assert exported["count"] == 1
        back = await admin.send(
            "POST", "/api/v1/kb/import", {"format": fmt, "content": exported["content"]}
        )
        assert await back.json() == {"added": 0, "updated": 1}
    got = await (await admin.get("/api/v1/kb/entries/hours")).json()
    assert (got["title"], got["examples"], got["answers"]) == (
        "opening times",
        ["open today?", "hours"],
        {"en": "9 to 6"},
    )
    bad = await admin.send("POST", "/api/v1/kb/import", {"format": "jsonl", "content": "{oops"})
    assert bad.status == 400
    assert "line 1" in (await bad.json())["detail"]
    unknown = await admin.send("POST", "/api/v1/kb/import", data=b"x", headers={})
    assert unknown.status == 400
    await kb.settled()
    await kb.close()


async def test_declined_questions_are_counted_for_supervisors(desk: Desk) -> None:
    kb = _swappable(desk)
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    await _import_shop(admin)
    await kb.settled()
    for n, text in enumerate(["Do you sell bicycles?", "do you sell  BICYCLES", "转人工"]):
        await desk.customer_says(inbound(text=text, thread_key=f"t{n}", external_user_id=f"u{n}"))
    misses = await (await admin.get("/api/v1/kb/misses?kind=unanswered")).json()
    # Escalation words are not misses: the customer asked for a person, not a FAQ.
    assert [(m["question"], m["count"], m["entry_id"]) for m in misses["items"]] == [
        ("do you sell  BICYCLES", 2, None)
    ]
    assert (await (await admin.get("/api/v1/kb/misses?kind=not_helpful")).json())["items"] == []
    assert (await admin.get("/api/v1/kb/misses?kind=bogus")).status == 400
    await kb.close()


async def _answered(desk: Desk, text: str, thread: str) -> tuple[str, int]:
    number = await desk.customer_says(
        inbound(text=text, thread_key=thread, external_user_id=thread, locale="en")
    )
    _, messages = await _messages(desk, number)
    (bot,) = [m for m in messages if m.author_type == AuthorType.BOT.value]
    return number, bot.id


async def test_helpful_answer_resolves_the_ticket_as_the_bots(desk: Desk) -> None:
    kb = _swappable(desk)
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    await _import_shop(admin)
    await kb.settled()
    router = desk.app[ROUTER]
    number, answer_id = await _answered(desk, "I forgot my password", "yes")
    async with desk.store.write() as session:
        outcome = await feedback(session, answer_id, True, router.clock(), router)
        assert (outcome.changed, outcome.resolved) == (True, True)
    async with desk.store.write() as session:  # a repeated click changes nothing
        assert not (await feedback(session, answer_id, True, router.clock(), router)).changed
    ticket, messages = await _messages(desk, number)
    assert (ticket.status, ticket.resolved_by_bot, ticket.escalated_at) == (
        TicketStatus.RESOLVED.value,
        True,
        None,
    )
    assert messages[-1].channel_meta["feedback"]["helpful"] is True
    async with desk.store.read() as session:
        events = await session.scalars(
            select(TicketEvent).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "status"
            )
        )
        assert [(e.new_value, e.actor_type) for e in events] == [("resolved", "bot")]
    await kb.close()


async def test_unhelpful_answer_escalates_with_question_and_answer(desk: Desk) -> None:
    kb = _swappable(desk)
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    await _import_shop(admin)
    await kb.settled()
    router = desk.app[ROUTER]
    number, answer_id = await _answered(desk, "I forgot my password", "no")
    async with desk.store.write() as session:
        outcome = await feedback(session, answer_id, False, router.clock(), router)
        assert outcome.escalated
    ticket, messages = await _messages(desk, number)
    assert ticket.escalated_at is not None
    assert ticket.status != TicketStatus.RESOLVED.value
    (note,) = [m for m in messages if m.kind == MessageKind.NOTE.value]
    assert "Question: I forgot my password" in note.text
    assert "Rejected answer: Use Forgot password." in note.text
    misses = await (await admin.get("/api/v1/kb/misses")).json()
    assert [(m["kind"], m["question"], m["entry_id"]) for m in misses["items"]] == [
        ("not_helpful", "I forgot my password", "password")
    ]
    await kb.close()
