"""Reports for supervisors: JSON figures, and CSV/XLSX exports of reports and ticket lists."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from gateway.api.endpoints import ApiTable
from gateway.api.errors import ApiError, parse_query
from gateway.appkeys import SETTINGS, STORE
from gateway.models import AgentRole, Channel, NeedType, Priority
from gateway.reports import ReportFilter, satisfaction_by_category, summary
from gateway.store.tables import Contact, Ticket

api = ApiTable()

BOM = "\ufeff"  # so spreadsheet programs read the UTF-8 (Chinese) correctly
TICKET_COLUMNS = (
    "number",
    "channel",
    "status",
    "priority",
    "need_type",
    "category_id",
    "team_id",
    "assignee_id",
    "contact",
    "subject",
    "created_at",
    "first_response_at",
    "resolved_at",
    "closed_at",
    "resolved_by_bot",
)


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: date = Field(alias="from")
    """First day of the period (the shop's time zone)."""
    end: date = Field(alias="to")
    """Last day of the period, included."""
    channel: Channel | None = None
    team: int | None = None
    agent: int | None = None
    category: int | None = None
    need_type: NeedType | None = None
    priority: Priority | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ReportQuery:
        if self.end < self.start:
            raise ValueError("'to' is before 'from'")
        if (self.end - self.start).days > 366:
            raise ValueError("a report covers at most a year")
        return self


class ExportQuery(ReportQuery):
    report: Literal["summary", "tickets"] = "summary"
    format: Literal["csv", "xlsx"] = "csv"


class DurationsOut(BaseModel):
    count: int
    median_seconds: float | None
    p90_seconds: float | None


class CategorySatisfaction(BaseModel):
    category_id: int | None
    answers: int
    satisfied_share: float
    below_target: bool
    """Under 80% satisfied: the procedure asks for a root-cause review."""


class SummaryOut(BaseModel):
    received: int
    resolved: int
    reopened: int
    escalated: int
    resolved_by_bot: int
    deflection_rate: float | None
    first_response: DurationsOut
    resolution: DurationsOut
    first_response_sla: float | None
    satisfaction_mean: float | None
    satisfaction_counts: dict[int, int]
    survey_response_rate: float | None
    low_score_share: float | None
    busiest_hours: dict[int, int]
    categories: list[CategorySatisfaction]


def _filter(request: web.Request, query: ReportQuery) -> ReportFilter:
    zone = request.app[SETTINGS].zone
    start = datetime.combine(query.start, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(query.end + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return ReportFilter(
        start=start,
        end=end,
        channel=query.channel,
        team_id=query.team,
        agent_id=query.agent,
        category_id=query.category,
        need_type=query.need_type,
        priority=query.priority,
    )


async def _summary(request: web.Request, query: ReportQuery) -> SummaryOut:
    flt = _filter(request, query)
    async with request.app[STORE].read() as session:
        figures = await summary(session, flt, request.app[SETTINGS].zone)
        categories = await satisfaction_by_category(session, flt)
    return SummaryOut.model_validate(
        {
            **dataclasses.asdict(figures),
            "categories": [
                {"category_id": c, "answers": n, "satisfied_share": s, "below_target": s < 0.8}
                for c, n, s in categories
            ],
        }
    )


@api.route(
    "GET",
    "/api/v1/reports/summary",
    summary="Service-quality figures of a period",
    role=AgentRole.SUPERVISOR,
    query=ReportQuery,
    response=SummaryOut,
)
async def report_summary(request: web.Request) -> web.Response:
    query = parse_query(request, ReportQuery)
    return web.json_response(text=(await _summary(request, query)).model_dump_json())


def _summary_rows(report: SummaryOut) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        (name, getattr(report, name))
        for name in (
            "received",
            "resolved",
            "reopened",
            "escalated",
            "resolved_by_bot",
            "deflection_rate",
            "first_response_sla",
            "satisfaction_mean",
            "survey_response_rate",
            "low_score_share",
        )
    ]
    for name in ("first_response", "resolution"):
        durations: DurationsOut = getattr(report, name)
        rows += [
            (f"{name}_median_seconds", durations.median_seconds),
            (f"{name}_p90_seconds", durations.p90_seconds),
        ]
    rows += [(f"score_{s}", n) for s, n in sorted(report.satisfaction_counts.items())]
    rows += [(f"hour_{h:02d}", n) for h, n in sorted(report.busiest_hours.items())]
    return rows


async def _ticket_rows(request: web.Request, flt: ReportFilter) -> AsyncIterator[list[Any]]:
    """The period's tickets, streamed from the database in chunks."""
    async with request.app[STORE].read() as session:
        result = await session.stream(
            select(Ticket, Contact.name)
            .join(Contact, Contact.id == Ticket.contact_id)
            .where(*flt.conditions(), flt.within(Ticket.created_at))
            .order_by(Ticket.id)
            .execution_options(yield_per=500)
        )
        async for ticket, name in result:
            yield [
                name if column == "contact" else getattr(ticket, column)
                for column in TICKET_COLUMNS
            ]


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


@api.route(
    "GET",
    "/api/v1/reports/export",
    summary="A report or the ticket list of a period as CSV (UTF-8 with BOM) or XLSX",
    role=AgentRole.SUPERVISOR,
    query=ExportQuery,
)
async def export(request: web.Request) -> web.StreamResponse:
    query = parse_query(request, ExportQuery)
    flt = _filter(request, query)
    name = f"{query.report}-{query.start}-{query.end}.{query.format}"
    if query.report == "summary":
        header: list[str] = ["figure", "value"]
        rows: Iterable[list[Any]] | AsyncIterator[list[Any]] = [
            [k, v] for k, v in _summary_rows(await _summary(request, query))
        ]
    else:
        header, rows = list(TICKET_COLUMNS), _ticket_rows(request, flt)
    if query.format == "xlsx":
        return await _xlsx(request, name, header, rows)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
        }
    )
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    await response.write((BOM + buffer.getvalue()).encode())
    async for row in _aiter(rows):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(v) for v in row])
        await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


async def _aiter(rows: Iterable[list[Any]] | AsyncIterator[list[Any]]) -> AsyncIterator[list[Any]]:
    if isinstance(rows, AsyncIterator):
        async for row in rows:
            yield row
    else:
        for row in rows:
            yield row


async def _xlsx(
    request: web.Request,
    name: str,
    header: list[str],
    rows: Iterable[list[Any]] | AsyncIterator[list[Any]],
) -> web.Response:
    from openpyxl import Workbook

    # write_only keeps one row in memory at a time; the finished file is sent at once.
    book = Workbook(write_only=True)
    sheet = book.create_sheet("report")
    sheet.append(header)
    async for row in _aiter(rows):
        sheet.append([_cell(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    if out.tell() == 0:  # pragma: no cover - openpyxl always writes
        raise ApiError(500, "export_failed", "the workbook is empty")
    return web.Response(
        body=out.getvalue(),
        headers={
            "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )
