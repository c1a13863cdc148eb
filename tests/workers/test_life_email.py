"""An email ticket's whole life with real RQ workers and the aiosmtpd sink: every notice in order,
threaded; one survey whose signed link records the rating."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

from aiohttp import web
from aiohttp.test_utils import TestClient

from channels.email.process import MailProcessor
from gateway.app import create_app
from gateway.appkeys import PIPELINE, STORE
from gateway.store import Store
from knowledge_base.base import NeverMatches
from tests.channels.email.conftest import Sink, email_settings
from tests.channels.email.mailmaker import mail
from tests.conftest import make_settings
from tests.factories import Clock
from tests.workers.conftest import Courier, WorkerProcess, open_office, outbox
from tests.workers.life import Heard, live

Client = TestClient[web.Request, web.Application]
CUSTOMER = "ann@example.org"


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


class MailCustomer:
    def __init__(self, client: Client, app: web.Application, processor: MailProcessor,
                 sink: Sink) -> None:  # fmt: skip
        self.client = client
        self.app = app
        self.processor = processor
        self.sink = sink

    async def write(self, text: str) -> None:
        mails = self.sink.mails()
        last = str(mails[-1]["Message-ID"]) if mails else None
        subject = "Re: " + str(mails[-1]["Subject"]) if mails else "Blender broken"
        raw = mail(CUSTOMER, subject, text, in_reply_to=last, references=last)
        await self.processor.process(raw)
        await self.app[PIPELINE].drain()

    async def heard(self, expected: int) -> list[Heard]:
        mails = self.sink.mails()
        assert len(mails) == expected, [m["Subject"] for m in mails]
        assert {str(m["To"]) for m in mails} == {CUSTOMER}
        by_receipt = {r.external_id: r.template for r in await outbox(self.app[STORE])}
        return [Heard(by_receipt[str(m["Message-ID"])], body(m)) for m in mails]

    async def rate(self, number: str, score: int, comment: str) -> str | None:
        [survey] = [m for m in self.sink.mails() if "/survey/" in body(m)]
        found = re.search(r"https?://\S+/survey/(\S+)", body(survey))
        assert found is not None and number in body(survey)
        path = f"/survey/{found.group(1)}"
        page = await self.client.get(path)  # what a link scanner does: records nothing
        assert page.status == 200 and 'name="score"' in await page.text()
        answer = await self.client.post(path, data={"score": str(score), "comment": comment})
        assert answer.status == 200, await answer.text()
        return comment


async def test_an_email_ticket_from_first_message_to_a_low_rating(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    smtp_sink: Sink,
    db_url: str,
    redis_url: str,
    clock: Clock,
    worker: WorkerProcess,
    make_courier: Callable[[Store], Courier],
) -> None:
    # The app serves the survey page; its IMAP listener stays off (mail comes in below).
    app = create_app(
        make_settings(database_url=db_url, redis_url=redis_url, outbox_relay=False),
        kb=NeverMatches(),
        clock=clock,
    )
    client = await aiohttp_client(app)
    mail_settings = email_settings(db_url, smtp_port=smtp_sink.port).model_copy(
        update={"redis_url": redis_url, "public_url": str(client.make_url("/")).rstrip("/")}
    )
    office = await open_office(app[STORE], clock, mail_settings)
    worker.start(mail_settings)
    processor = MailProcessor(mail_settings, app[STORE], app[PIPELINE].on_message)
    await live(MailCustomer(client, app, processor, smtp_sink), office, make_courier(app[STORE]))
