"""The knowledge base in the store: import, export, and the entries the matcher answers from."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import yaml
from sqlalchemy import select

from gateway.store import Store
from gateway.store.tables import KBEntry as KBRow
from gateway.store.types import utcnow
from knowledge_base.entry import KBEntry

EXPORT_FORMATS = ("yaml", "jsonl", "csv")


async def enabled_entries(store: Store) -> tuple[KBEntry, ...]:
    """The entries the bot answers from, in id order."""
    async with store.read() as session:
        rows = await session.scalars(
            select(KBRow).where(KBRow.enabled.is_(True)).order_by(KBRow.id)
        )
        return tuple(_entry(row) for row in rows)


async def import_entries(
    store: Store, entries: Sequence[KBEntry], *, now: datetime | None = None
) -> tuple[int, int]:
    """Insert new entries and update those whose id exists; returns (added, updated)."""
    now = now or utcnow()
    added = updated = 0
    async with store.write() as session:
        existing = {
            row.id: row
            for row in await session.scalars(
                select(KBRow).where(KBRow.id.in_([e.id for e in entries]))
            )
        }
        for entry in entries:
            row = existing.get(entry.id)
            if row is None:
                row = KBRow(id=entry.id, enabled=True)
                session.add(row)
                added += 1
            else:
                updated += 1
            row.title = entry.title
            row.examples = list(entry.examples)
            row.answers = dict(entry.answers)
            row.category = entry.category
            row.updated_at = now
    return added, updated


async def count_entries(store: Store) -> int:
    async with store.read() as session:
        return len((await session.scalars(select(KBRow.id))).all())


async def export_records(store: Store) -> list[dict[str, Any]]:
    """Every entry (enabled or not) as a plain record, in id order."""
    async with store.read() as session:
        rows = await session.scalars(select(KBRow).order_by(KBRow.id))
        return [
            {
                "id": row.id,
                "title": row.title,
                "examples": list(row.examples),
                "answer": dict(row.answers),
                "category": row.category,
                "enabled": row.enabled,
            }
            for row in rows
        ]


def render(records: list[dict[str, Any]], fmt: str) -> str:
    """Records as YAML, JSON Lines or CSV, in the shapes ``knowledge_base.loaders`` reads back."""
    if fmt == "yaml":
        return str(yaml.safe_dump({"entries": records}, allow_unicode=True, sort_keys=False))
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt == "csv":
        locales = sorted({locale for r in records for locale in r["answer"]})
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "title", "examples", "category", *(f"answer_{x}" for x in locales)])
        for r in records:
            writer.writerow(
                [r["id"], r["title"], "|".join(r["examples"]), r["category"] or ""]
                + [r["answer"].get(locale, "") for locale in locales]
            )
        return out.getvalue()
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}")


def _entry(row: KBRow) -> KBEntry:
    return KBEntry(
        id=row.id,
        title=row.title,
        examples=tuple(row.examples),
        answers=dict(row.answers),
        category=row.category,
    )
