"""The reports API: JSON, the XLSX holds the same numbers, the CSV is UTF-8 with a BOM, and only
supervisors and admins may read it."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook
from sqlalchemy import update

from gateway.api.report_routes import TICKET_COLUMNS
from gateway.models import AgentRole
from gateway.store.tables import Contact
from tests.api.conftest import Desk
from tests.test_reports import history

PERIOD = "from=2026-11-01&to=2026-11-30"


async def test_summary_json_and_its_xlsx_and_csv_agree(desk: Desk) -> None:
    await history(desk.store)
    boss = await desk.login("boss@shop.test", AgentRole.SUPERVISOR)
    response = await boss.get(f"/api/v1/reports/summary?{PERIOD}")
    assert response.status == 200
    report = await response.json()
    assert (report["received"], report["resolved"], report["reopened"]) == (10, 6, 1)
    assert report["first_response"]["median_seconds"] == 3000
    assert [c["below_target"] for c in report["categories"]] == [True, True]

    xlsx = await boss.get(f"/api/v1/reports/export?{PERIOD}&report=summary&format=xlsx")
    assert xlsx.status == 200
    sheet = load_workbook(io.BytesIO(await xlsx.read())).active
    assert sheet is not None
    figures = {row[0]: row[1] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert figures["received"] == report["received"]
    assert figures["first_response_median_seconds"] == report["first_response"]["median_seconds"]
    assert figures["satisfaction_mean"] == report["satisfaction_mean"]

    raw = await (await boss.get(f"/api/v1/reports/export?{PERIOD}&report=summary")).read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["figure", "value"]
    assert dict(rows[1:])["received"] == "10"


async def test_the_ticket_list_exports_every_ticket_of_the_period(desk: Desk) -> None:
    await history(desk.store)
    boss = await desk.login("boss@shop.test", AgentRole.ADMIN)
    raw = await (await boss.get(f"/api/v1/reports/export?{PERIOD}&report=tickets")).read()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["number"] for r in rows] == [f"G20261102{i:03d}" for i in range(1, 11)]
    xlsx = await boss.get(f"/api/v1/reports/export?{PERIOD}&report=tickets&format=xlsx")
    sheet = load_workbook(io.BytesIO(await xlsx.read())).active
    assert sheet is not None
    assert sheet.max_row == 11


async def test_agents_get_403_and_bad_periods_name_the_field(desk: Desk) -> None:
    agent = await desk.login("ann@shop.test", AgentRole.AGENT)
    assert (await agent.get(f"/api/v1/reports/summary?{PERIOD}")).status == 403
    assert (await agent.get(f"/api/v1/reports/export?{PERIOD}")).status == 403
    boss = await desk.login("boss@shop.test", AgentRole.SUPERVISOR)
    missing = await boss.get("/api/v1/reports/summary?from=2026-11-01")
    assert (missing.status, (await missing.json())["field"]) == (400, "to")
    backwards = await boss.get("/api/v1/reports/summary?from=2026-11-30&to=2026-11-01")
    assert backwards.status == 400


async def test_charts_and_the_drill_down_behind_them(desk: Desk) -> None:
    await history(desk.store)
    boss = await desk.login("boss@shop.test", AgentRole.SUPERVISOR)
    found = await (await boss.get(f"/api/v1/reports/charts?{PERIOD}")).json()
    assert len(found["days"]) == 30
    second = found["days"][1]
    assert second == {"day": "2026-11-02", "received": 10, "resolved": 5}
    assert found["by_category"] == [{"key": "1", "count": 5}, {"key": None, "count": 5}]
    assert found["heatmap"][0][8] == 1

    # The trend's point for 2 November: the ten tickets, paged.
    page = await (
        await boss.get(f"/api/v1/reports/tickets?{PERIOD}&day=2026-11-02&per_page=4&page=3")
    ).json()
    assert page["total"] == 10
    assert [t["number"] for t in page["items"]] == ["G20261102009", "G20261102010"]
    # A heat-map cell, the low scores, the uncategorised slice.
    cell = await (await boss.get(f"/api/v1/reports/tickets?{PERIOD}&weekday=0&hour=9")).json()
    assert [t["number"] for t in cell["items"]] == ["G20261102002"]
    low = await (
        await boss.get(f"/api/v1/reports/tickets?{PERIOD}&figure=rated&low_score=true")
    ).json()
    assert [t["number"] for t in low["items"]] == ["G20261102003", "G20261102004"]
    loose = await (await boss.get(f"/api/v1/reports/tickets?{PERIOD}&uncategorised=true")).json()
    assert loose["total"] == 5

    # The same list exported: CSV and a streamed XLSX hold the same tickets.
    drilled = f"{PERIOD}&figure=rated&low_score=true&report=tickets"
    raw = await (await boss.get(f"/api/v1/reports/export?{drilled}")).read()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["number"] for r in rows] == ["G20261102003", "G20261102004"]
    xlsx = await boss.get(f"/api/v1/reports/export?{drilled}&format=xlsx")
    body = await xlsx.read()
    assert xlsx.headers["Content-Length"] == str(len(body))
    sheet = load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == [
        "G20261102003",
        "G20261102004",
    ]


async def test_drill_down_and_charts_are_for_supervisors_and_check_their_input(
    desk: Desk,
) -> None:
    agent = await desk.login("ann@shop.test", AgentRole.AGENT)
    assert (await agent.get(f"/api/v1/reports/charts?{PERIOD}")).status == 403
    assert (await agent.get(f"/api/v1/reports/tickets?{PERIOD}")).status == 403
    assert (await agent.get(f"/api/v1/reports/status-times?{PERIOD}")).status == 403
    boss = await desk.login("boss@shop.test", AgentRole.SUPERVISOR)
    for bad, field in (("hour=24", "hour"), ("weekday=7", "weekday"), ("figure=x", "figure")):
        response = await boss.get(f"/api/v1/reports/tickets?{PERIOD}&{bad}")
        assert (response.status, (await response.json())["field"]) == (400, field)


async def test_status_times_misses_and_chart_exports_agree_with_the_json(desk: Desk) -> None:
    await history(desk.store)
    boss = await desk.login("boss@shop.test", AgentRole.SUPERVISOR)
    report = await (await boss.get(f"/api/v1/reports/summary?{PERIOD}")).json()
    statuses = await (await boss.get(f"/api/v1/reports/status-times?{PERIOD}")).json()
    assert statuses["items"] == [
        {"status": "in_progress", "left": 1, "mean_seconds": 6600.0},
        {"status": "new", "left": 2, "mean_seconds": 900.0},
    ]
    assert [m["count"] for m in report["kb_misses"]] == [5, 2]
    assert (report["resolution_sla"], report["updates_late"]) == (round(4 / 6, 4), 2)

    raw = await (await boss.get(f"/api/v1/reports/export?{PERIOD}&report=summary")).read()
    figures = dict(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert figures["time_in_new_mean_seconds"] == "900.0"
    assert figures["kb_unanswered: 怎么退货"] == "5"
    assert figures["updates_late"] == "2"

    found = await (await boss.get(f"/api/v1/reports/charts?{PERIOD}")).json()
    xlsx = await boss.get(f"/api/v1/reports/export?{PERIOD}&report=charts&format=xlsx")
    sheet = load_workbook(io.BytesIO(await xlsx.read())).active
    assert sheet is not None
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert ("received", "2026-11-02", 10) in rows
    assert ("weekday_hour", "0-08", found["heatmap"][0][8]) in rows
    assert sum(int(str(r[2])) for r in rows if r[0] == "by_channel") == 10


async def test_text_that_looks_like_a_formula_exports_as_text(desk: Desk) -> None:
    """Regression: a customer named "=HYPERLINK(...)" became a live formula in the XLSX."""
    await history(desk.store)
    name = '=HYPERLINK("http://evil.test","click")'
    async with desk.store.write() as session:
        await session.execute(update(Contact).values(name=name))
    boss = await desk.login("boss@shop.test", AgentRole.SUPERVISOR)
    tickets = f"{PERIOD}&report=tickets"
    xlsx = await boss.get(f"/api/v1/reports/export?{tickets}&format=xlsx")
    sheet = load_workbook(io.BytesIO(await xlsx.read())).active
    assert sheet is not None
    column = TICKET_COLUMNS.index("contact") + 1
    cell = sheet.cell(row=2, column=column)
    assert (cell.value, cell.data_type) == ("'" + name, "s")
    raw = await (await boss.get(f"/api/v1/reports/export?{tickets}")).read()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert {r["contact"] for r in rows} == {"'" + name}
