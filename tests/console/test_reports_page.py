"""The report page in headless Chromium over a generated month: the charts are drawn (as many
points, bars and heat-map cells as the history has), the category under 80% satisfaction is
marked, a figure drills down to exactly its tickets, names render as text, and an agent without
the supervisor role gets neither the page nor its data. A screenshot is saved as an artefact."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from playwright.async_api import Browser, Page, expect

from gateway.models import AgentRole
from gateway.store import Store
from gateway.store.tables import Category, Contact, KBMiss, Survey, Ticket, TicketEvent
from tests.api.conftest import add_agent
from tests.chromium import ARTIFACTS
from tests.console.conftest import ConsoleApp, Dialogs, backend, console_login, needs_chromium
from tests.factories import SHANGHAI

pytestmark = needs_chromium

PAYLOAD = '<img src=x onerror="alert(1);window.__xss=1">'
CHANNELS = ("webchat", "email", "telegram")
NEEDS = ("inquiry", "complaint", "repair", "suggestion")
# Scores cycled per category: repair 90% satisfied, logistics 50% (under target), payload 100%.
STEPS = ((None, "new", 0), ("new", "in_progress", 30), ("in_progress", "resolved", 180))
SCORES = {"repair": (5, 4, 5, 4, 5, 4, 5, 4, 5, 2), "logistics": (5, 2, 1, 4), "payload": (4, 5)}


@dataclass
class History:
    """What the generator made, counted as it went: the answers the page must show."""

    per_day: Counter[int] = field(default_factory=Counter)
    cells: Counter[tuple[int, int]] = field(default_factory=Counter)
    """(weekday, local hour) -> tickets received."""
    numbers_by_day: dict[int, list[str]] = field(default_factory=dict)
    numbers_by_cell: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    rated: dict[str, list[str]] = field(default_factory=dict)
    rated_scores: dict[str, list[int]] = field(default_factory=dict)
    scores: Counter[int] = field(default_factory=Counter)
    total: int = 0


async def generate(store: Store) -> History:
    """November 2026 in Shanghai: 1-4 tickets a day at set hours, every one resolved three hours
    later and rated an hour after that, with set categories, channels and scores."""
    found = History()
    async with store.write() as session:
        contact = Contact(name=f"Eve {PAYLOAD}", created_at=datetime(2026, 10, 1, tzinfo=UTC))
        after_sales = Category(name="售后")
        session.add_all([contact, after_sales])
        await session.flush()
        cats = {
            "repair": Category(name="产品维修", parent_id=after_sales.id),
            "logistics": Category(name="物流问题"),
            "payload": Category(name=PAYLOAD),
        }
        session.add_all(cats.values())
        await session.flush()
        used: Counter[str] = Counter()
        for day in range(1, 31):
            for k in range(day % 4 + 1):
                hour = 9 + (day + k) % 10
                created = datetime(2026, 11, day, hour, 7, tzinfo=SHANGHAI).astimezone(UTC)
                kind = ("repair", "logistics", "payload")[(day + k) % 3]
                number = f"G202611{day:02d}{k + 1:03d}"
                ticket = Ticket(
                    number=number,
                    contact_id=contact.id,
                    channel=CHANNELS[k % 3],
                    thread_key=number,
                    subject=f"订单 {PAYLOAD}",
                    status="closed",
                    priority="urgent" if k == 2 else "normal",
                    need_type=NEEDS[day % 4],
                    category_id=cats[kind].id,
                    resolved_by_bot=False,
                    created_at=created,
                    updated_at=created,
                    escalated_at=created,
                    first_response_at=created + timedelta(minutes=30),
                    first_response_due_at=created + timedelta(hours=4),
                    resolved_at=created + timedelta(hours=3),
                )
                session.add(ticket)
                await session.flush()
                # new -> in progress at the first response -> resolved three hours in
                for old, new, after in (
                    (None, "new", 0),
                    ("new", "in_progress", 30),
                    ("in_progress", "resolved", 180),
                ):
                    session.add(
                        TicketEvent(
                            ticket_id=ticket.id,
                            kind="status" if old else "created",
                            old_value=old,
                            new_value=new,
                            actor_type="system",
                            created_at=created + timedelta(minutes=after),
                        )
                    )
                score = SCORES[kind][used[kind] % len(SCORES[kind])]
                used[kind] += 1
                session.add(
                    Survey(
                        ticket_id=ticket.id,
                        contact_id=contact.id,
                        channel=ticket.channel,
                        due_at=created + timedelta(hours=3),
                        sent_at=created + timedelta(hours=3),
                        score=score,
                        answered_at=created + timedelta(hours=4),
                        created_at=created,
                    )
                )
                weekday = date(2026, 11, day).weekday()
                found.total += 1
                found.per_day[day] += 1
                found.cells[(weekday, hour)] += 1
                found.numbers_by_day.setdefault(day, []).append(number)
                found.numbers_by_cell.setdefault((weekday, hour), []).append(number)
                found.rated.setdefault(kind, []).append(number)
                found.rated_scores.setdefault(kind, []).append(score)
                found.scores[score] += 1
        session.add(
            KBMiss(
                kind="unanswered",
                normalized="payload",
                question=f"退货 {PAYLOAD}",
                entry_id="",
                count=3,
                first_seen=datetime(2026, 11, 3, tzinfo=UTC),
                last_seen=datetime(2026, 11, 4, tzinfo=UTC),
            )
        )
    return found


async def open_reports(page: Page) -> None:
    await page.click("#nav-reports")
    await expect(page.locator("body")).to_have_attribute("data-view", "reports")
    await page.fill("#report-from", "2026-11-01")
    await page.fill("#report-to", "2026-11-30")
    await page.click("#report-apply")
    await expect(page.locator("body")).to_have_attribute("data-report", "ready")


async def drilled(page: Page) -> list[str]:
    rows = page.locator("#drill-rows tr")
    return [n for n in await rows.evaluate_all("rs => rs.map(r => r.dataset.number)")]


async def test_the_report_page_draws_the_month_and_drills_down(
    console_app: ConsoleApp, db_url: str, browser: Browser
) -> None:
    store, base = console_app.store, console_app.base
    await add_agent(store, "boss@shop.test", AgentRole.SUPERVISOR, online=False)
    history = await generate(store)
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    dialogs = Dialogs()
    dialogs.watch(page)
    await console_login(page, base, "boss@shop.test")
    await open_reports(page)

    # Headline figure, from the database.
    received = page.locator('.kpi[data-kpi="received"] .kpi-value')
    await expect(received).to_have_text(str(history.total))
    # The trend: a point per day of November for each of the two series.
    trend = page.locator("#chart-trend")
    await expect(trend.locator("circle.point")).to_have_count(60)
    await expect(trend.locator("polyline.line")).to_have_count(2)
    for day in (1, 5, 30):
        point = trend.locator(f'circle.point-received[data-day="2026-11-{day:02d}"]')
        await expect(point).to_have_attribute("data-count", str(history.per_day[day]))
    # Satisfaction: one bar per score given, the low ones (<= 2) marked.
    bars = page.locator("#chart-satisfaction rect.bar")
    await expect(bars).to_have_count(len(history.scores))
    await expect(page.locator("#chart-satisfaction rect.bar.low")).to_have_count(2)
    # Per category: logistics alone is under 80% satisfied, and is marked.
    low = page.locator("#chart-category-satisfaction rect.below-target")
    await expect(low).to_have_count(1)
    given = history.rated_scores["logistics"]
    share = sum(1 for s in given if s >= 4) / len(given)
    assert share < 0.8
    await expect(low).to_have_attribute("aria-label", f"物流问题: {share:.1%} · {len(given)}份回访")
    await expect(page.locator("#chart-category-satisfaction rect.bar")).to_have_count(3)
    await expect(page.locator("#chart-category rect.bar")).to_have_count(3)
    await expect(page.locator("#chart-channel rect.bar")).to_have_count(3)
    await expect(page.locator("#chart-need rect.bar")).to_have_count(4)
    # Time in each status (new 30 min, in progress 2.5 h) and the bot's misses, as text.
    await expect(page.locator("#chart-status-time rect.bar")).to_have_count(2)
    await expect(page.locator("#chart-status-time text.value").first).to_have_text(
        f"2.5小时 · {history.total}"
    )
    await expect(page.locator("#chart-misses td.question")).to_have_text(f"退货 {PAYLOAD}")
    # The heat map: 7 x 24 cells holding every ticket where it came in.
    cells = page.locator("#chart-heatmap rect.cell")
    await expect(cells).to_have_count(7 * 24)
    counts = await cells.evaluate_all("cs => cs.map(c => Number(c.dataset.count))")
    assert sum(counts) == history.total
    (weekday, hour), busiest = history.cells.most_common(1)[0]
    cell = page.locator(f'#chart-heatmap rect.cell[data-weekday="{weekday}"][data-hour="{hour}"]')
    await expect(cell).to_have_attribute("data-count", str(busiest))

    # Drill-downs: the low category, a heat-map cell, a day of the trend.
    await low.click()
    drill = page.locator("#drill")
    await expect(drill).to_have_attribute("data-total", str(len(history.rated["logistics"])))
    assert sorted(await drilled(page)) == sorted(history.rated["logistics"])
    await cell.click()
    title = page.locator("#drill-title")
    weekday_name = "一二三四五六日"[weekday]
    await expect(title).to_have_text(f"明细：{weekday_name} {hour}时: {busiest}")
    await expect(drill).to_have_attribute("data-total", str(busiest))
    assert sorted(await drilled(page)) == sorted(history.numbers_by_cell[(weekday, hour)])
    await trend.locator('circle.point-received[data-day="2026-11-05"]').click()
    await expect(title).to_have_text(f"明细：受理 2026-11-05: {history.per_day[5]}")
    await expect(drill).to_have_attribute("data-total", str(history.per_day[5]))
    assert await drilled(page) == history.numbers_by_day[5]
    # The list's export link downloads the same tickets (UTF-8 CSV with a BOM).
    href = await page.get_attribute("#drill-csv", "href")
    assert href is not None and "day=2026-11-05" in href
    head, body = await page.evaluate(
        "url => fetch(url).then(r => r.arrayBuffer()).then(b =>"
        " [Array.from(new Uint8Array(b.slice(0, 3))), new TextDecoder().decode(b)])",
        href,
    )
    assert head == [0xEF, 0xBB, 0xBF]
    assert [line.split(",")[0] for line in body.splitlines()[1:]] == history.numbers_by_day[5]
    charts_href = await page.get_attribute("#export-charts-xlsx", "href")
    assert charts_href is not None and "report=charts" in charts_href
    # Customer and admin text stayed text: the payload name and subject show, nothing ran.
    first = page.locator("#drill-rows tr").first
    await expect(first.locator("td").nth(6)).to_have_text(f"Eve {PAYLOAD}")
    await expect(first.locator("td").nth(7)).to_have_text(f"订单 {PAYLOAD}")
    labels = await page.locator("#chart-category rect.bar").evaluate_all(
        "bars => bars.map(b => b.getAttribute('aria-label'))"
    )
    assert f"{PAYLOAD}: {len(history.rated['payload'])}" in labels
    await page.wait_for_timeout(200)
    assert dialogs.seen == []
    assert await page.evaluate("window.__xss === undefined")
    assert await page.locator("img, iframe, script:not([src])").count() == 0

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(
        path=str(ARTIFACTS / f"console-reports-{backend(db_url)}.png"), full_page=True
    )

    # A ticket of the list opens in the desk.
    number = history.numbers_by_day[5][0]
    await page.locator(f'#drill-rows tr[data-number="{number}"] a').click()
    await expect(page.locator("#ticket-number")).to_have_text(number, timeout=10_000)
    await expect(page.locator("body")).to_have_attribute("data-view", "desk")
    await context.close()


async def test_an_agent_has_no_report_page_and_no_report_data(
    console_app: ConsoleApp, browser: Browser
) -> None:
    base = console_app.base
    await add_agent(console_app.store, "ann@shop.test", AgentRole.AGENT, online=False)
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    await console_login(page, base, "ann@shop.test")
    await expect(page.locator("#nav-reports")).to_be_hidden()
    # Asked for by address: the desk stays, the page is never built.
    await page.goto(f"{base}/console/#reports")
    await expect(page.locator("body")).to_have_attribute("data-view", "desk")
    await page.wait_for_timeout(300)
    assert await page.locator("#reports-view").count() == 0
    status = await page.evaluate(
        "fetch('/api/v1/reports/summary?from=2026-11-01&to=2026-11-30').then(r => r.status)"
    )
    assert status == 403
    await context.close()
