"""Reports for supervisors: JSON figures, and CSV/XLSX exports of reports and ticket lists."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import tempfile
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select

from gateway.api.endpoints import ApiTable
from gateway.api.errors import parse_query, respond
from gateway.api.schemas import MAX_PAGE, RowId, TicketPage
from gateway.api.ticket_routes import ticket_out
from gateway.appkeys import SETTINGS, STORE
from gateway.models import AgentRole, Channel, NeedType, Priority
from gateway.report_drilldown import Drill, Figure, drill_conditions
from gateway.reports import (
    ReportFilter,
    charts,
    frequent_misses,
    satisfaction_by_category,
    summary,
    time_in_status,
)
from gateway.store.tables import Contact, Ticket

api = ApiTable()

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHUNK = 64 * 1024
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
    team: RowId | None = None
    agent: RowId | None = None
    category: RowId | None = None
    need_type: NeedType | None = None
    priority: Priority | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ReportQuery:
        if self.end < self.start:
            raise ValueError("'to' is before 'from'")
        if (self.end - self.start).days > 366:
            raise ValueError("a report covers at most a year")
        return self


class DrillFilter(ReportQuery):
    """The period and filters, then which figure's tickets and which slice of a chart."""

    figure: Figure = Figure.RECEIVED
    day: date | None = None
    """A local day of the trend."""
    weekday: int | None = Field(default=None, ge=0, le=6)
    """0 = Monday."""
    hour: int | None = Field(default=None, ge=0, le=23)
    score: int | None = Field(default=None, ge=1, le=5)
    low_score: bool = False
    uncategorised: bool = False

    def drill(self) -> Drill:
        return Drill(
            figure=self.figure,
            day=self.day.isoformat() if self.day else None,
            weekday=self.weekday,
            hour=self.hour,
            score=self.score,
            low_score=self.low_score,
            uncategorised=self.uncategorised,
        )


class DrillQuery(DrillFilter):
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    per_page: int = Field(default=50, ge=1, le=200)


class ExportQuery(DrillFilter):
    report: Literal["summary", "charts", "tickets"] = "summary"
    """``tickets``: the tickets behind ``figure`` (by default those received in the period)."""
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


class StatusTime(BaseModel):
    status: str
    left: int
    """How many times tickets left this status in the period."""
    mean_seconds: float


class MissOut(BaseModel):
    kind: str
    """``unanswered`` (the bot could not answer) or ``not_helpful`` (its answer did not help)."""
    question: str
    entry_id: str
    count: int


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
    resolution_sla: float | None
    updates_late: int
    satisfaction_mean: float | None
    satisfaction_counts: dict[int, int]
    survey_response_rate: float | None
    low_score_share: float | None
    busiest_hours: dict[int, int]
    categories: list[CategorySatisfaction]
    kb_misses: list[MissOut]


class StatusTimes(BaseModel):
    items: list[StatusTime]
    """Every status tickets left in the period, by name."""


class Count(BaseModel):
    key: str | None
    """The category id (``null``: uncategorised), need type, channel or priority."""
    count: int


class DayOut(BaseModel):
    day: date
    received: int
    resolved: int


class ChartsOut(BaseModel):
    days: list[DayOut]
    by_category: list[Count]
    by_need_type: list[Count]
    by_channel: list[Count]
    by_priority: list[Count]
    heatmap: list[list[int]]
    """Tickets received per weekday (Monday first) and local hour: 7 rows of 24."""


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
        misses = await frequent_misses(session, flt)
    return SummaryOut.model_validate(
        {
            **dataclasses.asdict(figures),
            "kb_misses": [
                {"kind": k, "question": q, "entry_id": e, "count": n} for k, q, e, n in misses
            ],
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


async def _status_times(request: web.Request, query: ReportQuery) -> StatusTimes:
    async with request.app[STORE].read() as session:
        found = await time_in_status(session, _filter(request, query))
    return StatusTimes(
        items=[StatusTime(status=st, left=n, mean_seconds=mean) for st, n, mean in found]
    )


@api.route(
    "GET",
    "/api/v1/reports/status-times",
    summary="Mean time tickets spent in each status they left in the period",
    role=AgentRole.SUPERVISOR,
    query=ReportQuery,
    response=StatusTimes,
)
async def report_status_times(request: web.Request) -> web.Response:
    # Its own request: it reads the audit trail (a lookup per status change), which costs as
    # much as the rest of the report together, so the page shows the figures without waiting.
    return respond(await _status_times(request, parse_query(request, ReportQuery)))


@api.route(
    "GET",
    "/api/v1/reports/charts",
    summary="The report page's charts: trend per day, distributions, busy hours",
    role=AgentRole.SUPERVISOR,
    query=ReportQuery,
    response=ChartsOut,
)
async def report_charts(request: web.Request) -> web.Response:
    return respond(await _charts(request, parse_query(request, ReportQuery)))


async def _charts(request: web.Request, query: ReportQuery) -> ChartsOut:
    async with request.app[STORE].read() as session:
        found = await charts(session, _filter(request, query), request.app[SETTINGS].zone)

    def counts(rows: list[tuple[Any, int]]) -> list[Count]:
        return [Count(key=None if k is None else str(k), count=n) for k, n in rows]

    return ChartsOut(
        days=[DayOut(day=date.fromisoformat(d), received=r, resolved=s) for d, r, s in found.days],
        by_category=counts(found.by_category),
        by_need_type=counts(found.by_need_type),
        by_channel=counts(found.by_channel),
        by_priority=counts(found.by_priority),
        heatmap=found.heatmap,
    )


@api.route(
    "GET",
    "/api/v1/reports/tickets",
    summary="The tickets behind a figure of the report (the drill-down)",
    role=AgentRole.SUPERVISOR,
    query=DrillQuery,
    response=TicketPage,
)
async def report_tickets(request: web.Request) -> web.Response:
    query = parse_query(request, DrillQuery)
    flt = _filter(request, query)
    async with request.app[STORE].read() as session:
        where = drill_conditions(session, flt, request.app[SETTINGS].zone, query.drill())
        total = await session.scalar(select(func.count()).select_from(Ticket).where(*where))
        rows = await session.execute(
            select(Ticket, Contact.name)
            .join(Contact, Contact.id == Ticket.contact_id)
            .where(*where)
            .order_by(Ticket.created_at, Ticket.id)
            .limit(query.per_page)
            .offset((query.page - 1) * query.per_page)
        )
        items = [ticket_out(ticket, name) for ticket, name in rows.all()]
    return respond(
        TicketPage(items=items, page=query.page, per_page=query.per_page, total=int(total or 0))
    )


def _summary_rows(report: SummaryOut, statuses: StatusTimes) -> list[tuple[str, Any]]:
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
            "resolution_sla",
            "updates_late",
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
    rows += [
        (f"category_{c.category_id}_satisfied_share", c.satisfied_share) for c in report.categories
    ]
    rows += [(f"time_in_{t.status}_mean_seconds", t.mean_seconds) for t in statuses.items]
    rows += [(f"kb_{m.kind}: {m.question}", m.count) for m in report.kb_misses]
    return rows


def _chart_rows(found: ChartsOut) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for day in found.days:
        rows += [["received", day.day.isoformat(), day.received]]
        rows += [["resolved", day.day.isoformat(), day.resolved]]
    for name in ("by_category", "by_need_type", "by_channel", "by_priority"):
        rows += [[name, c.key, c.count] for c in getattr(found, name)]
    for weekday, hours in enumerate(found.heatmap):
        rows += [["weekday_hour", f"{weekday}-{hour:02d}", n] for hour, n in enumerate(hours)]
    return rows


async def _ticket_rows(
    request: web.Request, flt: ReportFilter, drill: Drill
) -> AsyncIterator[list[Any]]:
    """The tickets behind a figure, streamed from the database in chunks."""
    async with request.app[STORE].read() as session:
        where = drill_conditions(session, flt, request.app[SETTINGS].zone, drill)
        result = await session.stream(
            select(Ticket, Contact.name)
            .join(Contact, Contact.id == Ticket.contact_id)
            .where(*where)
            .order_by(Ticket.created_at, Ticket.id)
            .execution_options(yield_per=500)
        )
        async for ticket, name in result:
            yield [
                name if column == "contact" else getattr(ticket, column)
                for column in TICKET_COLUMNS
            ]


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_START):
        # Customers write names, subjects and questions: one starting like a formula would run
        # as one in the spreadsheet (OWASP "CSV injection"); a leading quote keeps it text.
        return "'" + value
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
    rows: Iterable[list[Any]] | AsyncIterator[list[Any]]
    if query.report == "summary":
        header: list[str] = ["figure", "value"]
        report = await _summary(request, query)
        rows = [[k, v] for k, v in _summary_rows(report, await _status_times(request, query))]
    elif query.report == "charts":
        header, rows = ["chart", "key", "value"], _chart_rows(await _charts(request, query))
    else:
        header, rows = list(TICKET_COLUMNS), _ticket_rows(request, flt, query.drill())
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
) -> web.StreamResponse:
    from openpyxl import Workbook

    # write_only spools rows to a temporary file as they come; the finished workbook is saved
    # to another and sent in chunks, so neither the rows nor the file are ever all in memory.
    book = Workbook(write_only=True)
    sheet = book.create_sheet("report")
    sheet.append(header)
    async for row in _aiter(rows):
        sheet.append([_cell(v) for v in row])
    with tempfile.TemporaryFile() as spool:
        await asyncio.to_thread(book.save, spool)  # zipping is CPU work: off the event loop
        size = spool.tell()
        spool.seek(0)
        response = web.StreamResponse(
            headers={
                "Content-Type": XLSX,
                "Content-Disposition": f'attachment; filename="{name}"',
            }
        )
        response.content_length = size
        await response.prepare(request)
        while chunk := await asyncio.to_thread(spool.read, CHUNK):
            await response.write(chunk)
        await response.write_eof()
    return response
