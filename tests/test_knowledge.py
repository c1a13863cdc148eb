"""The knowledge base in the store, its CLI, and how the router uses it."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.app import create_app
from gateway.appkeys import PIPELINE
from gateway.knowledge import enabled_entries, export_records, import_entries
from gateway.models import NeedType
from gateway.routing import Route, Router
from gateway.store import Store
from gateway.store.tables import Ticket, TicketMessage
from knowledge_base.entry import KBEntry
from knowledge_base.loaders import load_entries
from tests.cli_runner import environment, gateway
from tests.conftest import make_settings
from tests.factories import inbound, make_ingest
from tests.test_routing import TableKB

DEMO = Path(__file__).resolve().parent.parent / "knowledge_base" / "demo" / "demo_kb.yaml"
SMALL = (
    KBEntry(
        id="invoice",
        title="How do I get an invoice?",
        examples=("I need an invoice", "where can I download the invoice", "开发票", "我要发票"),
        answers={"en": "Invoices are under Orders > Invoice.", "zh-CN": "在订单页点击“发票”。"},
    ),
    KBEntry(
        id="refund",
        title="When will I get my refund?",
        examples=("refund status", "where is my money back", "退款什么时候到账", "退款进度"),
        answers={
            "en": "Refunds arrive within 3-5 working days.",
            "zh-CN": "退款 3-5 个工作日到账。",
        },
    ),
    KBEntry(
        id="password",
        title="I forgot my password",
        examples=("reset my password", "cannot log in", "忘记密码", "登录不上"),
        answers={
            "en": "Use 'Forgot password' on the login page.",
            "zh-CN": "在登录页点击“忘记密码”。",
        },
    ),
)


async def test_import_updates_by_id_and_exports_every_format_back(
    store: Store, tmp_path: Path
) -> None:
    demo = load_entries(DEMO)
    assert len(demo) >= 40
    assert await import_entries(store, demo) == (len(demo), 0)
    assert await import_entries(store, demo[:3]) == (0, 3)
    assert {e.id for e in await enabled_entries(store)} == {e.id for e in demo}
    records = await export_records(store)
    from gateway.knowledge import render

    for fmt, suffix in (("yaml", ".yaml"), ("jsonl", ".jsonl"), ("csv", ".csv")):
        path = tmp_path / f"kb{suffix}"
        path.write_text(render(records, fmt), encoding="utf-8")
        again = load_entries(path)
        assert [(e.id, e.title, e.examples, dict(e.answers)) for e in again] == [
            (e.id, e.title, e.examples, dict(e.answers)) for e in sorted(demo, key=lambda e: e.id)
        ]


def test_cli_imports_the_demo_once_and_exports_jsonl(tmp_path: Path) -> None:
    env = environment(GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/g.db")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return gateway(*args, env=env, cwd=tmp_path)

    assert run("migrate").returncode == 0
    first = run("kb", "import", "--if-empty", str(DEMO))
    assert first.returncode == 0, first.stderr
    assert "added" in first.stderr
    second = run("kb", "import", "--if-empty", str(DEMO))
    assert "nothing imported" in second.stderr
    exported = run("kb", "export", "--format", "jsonl")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(lines) == len(load_entries(DEMO))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n', encoding="utf-8")
    refused = run("kb", "import", str(bad))
    assert refused.returncode == 2
    assert "missing 'title'" in refused.stderr


@pytest.mark.parametrize(
    ("text", "need_type"),
    [
        ("转人工", NeedType.INQUIRY),
        ("human please", NeedType.INQUIRY),
        ("我要投诉", NeedType.COMPLAINT),
    ],
)
async def test_escalation_words_go_to_people_without_asking_the_kb(
    store: Store, text: str, need_type: NeedType
) -> None:
    kb = TableKB()
    stored = await make_ingest(store)(inbound(text=text))
    assert (await Router(store, kb).route(stored.message.id)).route is Route.ESCALATED
    assert kb.asked == []
    async with store.read() as session:
        ticket = await session.get_one(Ticket, stored.ticket.id)
    assert ticket.need_type == need_type
    assert ticket.escalated_at is not None


Client = TestClient[web.Request, web.Application]


async def test_the_app_answers_from_the_stored_knowledge_base(
    aiohttp_client: object, store: Store, db_url: str, redis_url: str
) -> None:
    await import_entries(store, SMALL)
    settings = make_settings(database_url=db_url, redis_url=redis_url, outbox_relay=False)
    app = create_app(settings)
    client: Client = await aiohttp_client(app)  # type: ignore[operator]
    assert client.server is not None
    pipeline = app[PIPELINE]
    result = await pipeline.on_message(inbound(text="I need an invoice for my order", locale="en"))
    await pipeline.drain()
    await asyncio.sleep(0)
    async with store.read() as session:
        replies = (
            await session.scalars(
                select(TicketMessage.text).where(
                    TicketMessage.ticket_id == result.ticket.id, TicketMessage.author_type == "bot"
                )
            )
        ).all()
    assert replies == ["Invoices are under Orders > Invoice."]
