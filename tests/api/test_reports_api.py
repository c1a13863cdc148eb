"""The reports API: JSON, the XLSX holds the same numbers, the CSV is UTF-8 with a BOM, and only
supervisors and admins may read it."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from gateway.models import AgentRole
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
