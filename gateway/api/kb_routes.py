"""The knowledge base admin API: entries (CRUD), import, export, and the misses to grow it from.

Reads are for supervisors, writes for admins. After a write commits, the app's knowledge base
rebuilds in the background (:class:`knowledge_base.swappable.SwappableKB`): the edit takes effect
without a restart and answering never pauses.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from gateway.api.endpoints import ApiTable
from gateway.api.errors import ApiError, parse_body, parse_query, respond
from gateway.appkeys import ROUTER, STORE
from gateway.kb_misses import MissKind, list_misses
from gateway.knowledge import export_records, import_entries, render
from gateway.models import AgentRole
from gateway.store.tables import KBEntry as KBRow
from gateway.store.types import utcnow
from knowledge_base.entry import KBEntry
from knowledge_base.loaders import KBFormatError, entries_from_text
from knowledge_base.swappable import SwappableKB

log = logging.getLogger(__name__)

api = ApiTable()

_IN = ConfigDict(extra="forbid", frozen=True)
_OUT = ConfigDict(frozen=True, from_attributes=True)
Format = Literal["yaml", "jsonl", "csv"]
_MEDIA_FORMATS: dict[str, Format] = {
    "application/yaml": "yaml",
    "application/x-yaml": "yaml",
    "text/yaml": "yaml",
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "text/csv": "csv",
}


class KBEntryOut(BaseModel):
    model_config = _OUT
    id: str
    title: str
    examples: list[str]
    answers: dict[str, str]
    category: str | None
    enabled: bool
    updated_at: datetime


class KBEntryList(BaseModel):
    model_config = _OUT
    items: list[KBEntryOut]


class KBEntryIn(BaseModel):
    model_config = _IN
    id: str = Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")
    title: str = Field(min_length=1, max_length=500)
    examples: list[str] = Field(default_factory=list, max_length=500)
    answers: dict[str, str] = Field(default_factory=dict, max_length=20)
    category: str | None = Field(default=None, max_length=200)
    enabled: bool = True


class KBEntryPatch(BaseModel):
    model_config = _IN
    title: str | None = Field(default=None, min_length=1, max_length=500)
    examples: list[str] | None = Field(default=None, max_length=500)
    answers: dict[str, str] | None = Field(default=None, max_length=20)
    category: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None


class KBQuery(BaseModel):
    model_config = _IN
    q: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None


class KBDeleted(BaseModel):
    model_config = _OUT
    id: str


class KBImportIn(BaseModel):
    model_config = _IN
    format: Format
    content: str = Field(max_length=5_000_000)


class KBImportQuery(BaseModel):
    model_config = _IN
    format: Format | None = None


class KBImportOut(BaseModel):
    model_config = _OUT
    added: int
    updated: int


class KBExportQuery(BaseModel):
    model_config = _IN
    format: Format = "yaml"


class KBExportOut(BaseModel):
    model_config = _OUT
    format: Format
    count: int
    content: str
    """The document, in the shape ``POST /api/v1/kb/import`` and ``gateway kb import`` read."""


class MissQuery(BaseModel):
    model_config = _IN
    kind: MissKind | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class MissOut(BaseModel):
    model_config = _OUT
    kind: MissKind
    question: str
    entry_id: str | None
    count: int
    last_ticket_id: int | None
    first_seen: datetime
    last_seen: datetime


class MissList(BaseModel):
    model_config = _OUT
    items: list[MissOut]


def _refresh(request: web.Request) -> None:
    """Rebuild the app's index in the background (the write has committed)."""
    kb = request.app[ROUTER].kb
    if isinstance(kb, SwappableKB):
        kb.refresh()
    else:  # an app given a fixed knowledge base (tests, benchmarks) keeps it
        log.info("knowledge base edited; this app's knowledge base is fixed and not rebuilt")


def _out(row: KBRow) -> KBEntryOut:
    return KBEntryOut(
        id=row.id,
        title=row.title,
        examples=[str(e) for e in row.examples],
        answers={str(k): str(v) for k, v in row.answers.items()},
        category=row.category,
        enabled=row.enabled,
        updated_at=row.updated_at,
    )


def _clean(examples: list[str]) -> list[str]:
    return list(dict.fromkeys(e.strip() for e in examples if e.strip()))


@api.route(
    "GET",
    "/api/v1/kb/entries",
    summary="Knowledge-base entries; ?q= searches ids, titles and phrasings",
    role=AgentRole.SUPERVISOR,
    query=KBQuery,
    response=KBEntryList,
)
async def list_entries(request: web.Request) -> web.Response:
    query = parse_query(request, KBQuery)
    statement = select(KBRow).order_by(KBRow.id)
    if query.enabled is not None:
        statement = statement.where(KBRow.enabled.is_(query.enabled))
    async with request.app[STORE].read() as session:
        rows = list(await session.scalars(statement))
    if query.q and query.q.strip():
        # In Python: the phrasings are a JSON column, and a KB is a few thousand rows at most.
        needle = query.q.strip().casefold()
        rows = [
            r
            for r in rows
            if any(needle in str(t).casefold() for t in (r.id, r.title, *r.examples))
        ]
    return respond(KBEntryList(items=[_out(r) for r in rows]))


@api.route(
    "POST",
    "/api/v1/kb/entries",
    summary="Create an entry",
    role=AgentRole.ADMIN,
    body=KBEntryIn,
    response=KBEntryOut,
    status=201,
)
async def create_entry(request: web.Request) -> web.Response:
    body = await parse_body(request, KBEntryIn)
    if not body.title.strip():
        raise ApiError(400, "invalid", "the title is blank", field="title")
    async with request.app[STORE].write() as session:
        if await session.get(KBRow, body.id) is not None:
            raise ApiError(409, "conflict", f"an entry {body.id!r} exists", field="id")
        row = KBRow(
            id=body.id,
            title=body.title.strip(),
            examples=_clean(body.examples),
            answers=dict(body.answers),
            category=body.category or None,
            enabled=body.enabled,
            updated_at=utcnow(),
        )
        session.add(row)
        await session.flush()
        out = _out(row)
    _refresh(request)
    return respond(out, status=201)


async def _row(request: web.Request) -> tuple[str, KBRow | None]:
    entry_id = request.match_info["entry_id"]
    async with request.app[STORE].read() as session:
        return entry_id, await session.get(KBRow, entry_id)


@api.route(
    "GET",
    "/api/v1/kb/entries/{entry_id}",
    summary="One entry",
    role=AgentRole.SUPERVISOR,
    response=KBEntryOut,
)
async def get_entry(request: web.Request) -> web.Response:
    entry_id, row = await _row(request)
    if row is None:
        raise ApiError(404, "not_found", f"no entry {entry_id!r}")
    return respond(_out(row))


@api.route(
    "PATCH",
    "/api/v1/kb/entries/{entry_id}",
    summary="Change an entry's title, phrasings, answers, category or enabled flag",
    role=AgentRole.ADMIN,
    body=KBEntryPatch,
    response=KBEntryOut,
)
async def update_entry(request: web.Request) -> web.Response:
    body = await parse_body(request, KBEntryPatch)
    entry_id = request.match_info["entry_id"]
    if body.title is not None and not body.title.strip():
        raise ApiError(400, "invalid", "the title is blank", field="title")
    async with request.app[STORE].write() as session:
        row = await session.get(KBRow, entry_id, with_for_update=True)
        if row is None:
            raise ApiError(404, "not_found", f"no entry {entry_id!r}")
        if body.title is not None:
            row.title = body.title.strip()
        if body.examples is not None:
            row.examples = _clean(body.examples)
        if body.answers is not None:
            row.answers = dict(body.answers)
        if "category" in body.model_fields_set:
            row.category = body.category or None
        if body.enabled is not None:
            row.enabled = body.enabled
        row.updated_at = utcnow()
        await session.flush()
        out = _out(row)
    _refresh(request)
    return respond(out)


@api.route(
    "DELETE",
    "/api/v1/kb/entries/{entry_id}",
    summary="Delete an entry",
    role=AgentRole.ADMIN,
    response=KBDeleted,
)
async def delete_entry(request: web.Request) -> web.Response:
    entry_id = request.match_info["entry_id"]
    async with request.app[STORE].write() as session:
        row = await session.get(KBRow, entry_id, with_for_update=True)
        if row is None:
            raise ApiError(404, "not_found", f"no entry {entry_id!r}")
        await session.delete(row)
    _refresh(request)
    return respond(KBDeleted(id=entry_id))


async def _import_body(request: web.Request) -> tuple[str, Format]:
    """A JSON ``{"format", "content"}`` body, or the document itself (``?format=`` or its
    media type says which)."""
    if request.content_type == "application/json":
        body = await parse_body(request, KBImportIn)
        return body.content, body.format
    query = parse_query(request, KBImportQuery)
    fmt = query.format or _MEDIA_FORMATS.get(request.content_type)
    if fmt is None:
        raise ApiError(400, "invalid", "say the format: ?format=yaml|jsonl|csv", field="format")
    try:
        return (await request.read()).decode("utf-8"), fmt
    except UnicodeDecodeError:
        raise ApiError(400, "invalid", "the document is not UTF-8") from None


@api.route(
    "POST",
    "/api/v1/kb/import",
    summary="Import entries from YAML, JSON Lines or CSV (new ids added, existing ones updated)",
    role=AgentRole.ADMIN,
    body=KBImportIn,
    response=KBImportOut,
)
async def import_kb(request: web.Request) -> web.Response:
    content, fmt = await _import_body(request)
    try:
        entries = entries_from_text(content, fmt, source="upload")
        for entry in entries:
            _check_lengths(entry)
    except KBFormatError as exc:
        raise ApiError(400, "invalid", str(exc), field="content") from None
    if not entries:
        raise ApiError(400, "invalid", "the document has no entries", field="content")
    added, updated = await import_entries(request.app[STORE], entries)
    _refresh(request)
    return respond(KBImportOut(added=added, updated=updated))


def _check_lengths(entry: KBEntry) -> None:
    if len(entry.id) > 100 or len(entry.title) > 500:
        raise KBFormatError(f"entry {entry.id[:40]!r}: id over 100 or title over 500 characters")
    if entry.category is not None and len(entry.category) > 200:
        raise KBFormatError(f"entry {entry.id!r}: category over 200 characters")


@api.route(
    "GET",
    "/api/v1/kb/export",
    summary="Every entry as a YAML, JSON Lines or CSV document",
    role=AgentRole.SUPERVISOR,
    query=KBExportQuery,
    response=KBExportOut,
)
async def export_kb(request: web.Request) -> web.Response:
    query = parse_query(request, KBExportQuery)
    records = await export_records(request.app[STORE])
    return respond(
        KBExportOut(format=query.format, count=len(records), content=render(records, query.format))
    )


@api.route(
    "GET",
    "/api/v1/kb/misses",
    summary="Questions the bot could not answer or whose answer did not help, most frequent first",
    role=AgentRole.SUPERVISOR,
    query=MissQuery,
    response=MissList,
)
async def misses(request: web.Request) -> web.Response:
    query = parse_query(request, MissQuery)
    async with request.app[STORE].read() as session:
        found = await list_misses(session, kind=query.kind, limit=query.limit)
    return respond(MissList(items=[MissOut.model_validate(m) for m in found]))
