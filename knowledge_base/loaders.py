"""Read knowledge-base files (YAML, CSV, JSON Lines) into :class:`KBEntry` tuples.

Accepted shapes, one entry per record:

- YAML: a list of mappings, or a mapping with an ``entries`` list.
- JSON Lines: one mapping per line.
- CSV: columns ``id``, ``title``, ``examples`` (phrasings separated by ``|`` or new lines),
  ``answer`` or ``answer_<locale>`` columns (``answer_zh-CN``, ``answer_en``) and ``category``.

``answer`` may be a string (stored under the locale ``default_locale``) or a mapping of
locale to text.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from knowledge_base.entry import KBEntry


class KBFormatError(ValueError):
    """The knowledge-base file is malformed; the message names the file and record."""


def load_entries(path: Path, *, default_locale: str = "zh-CN") -> tuple[KBEntry, ...]:
    """Load a knowledge base from a ``.yaml``/``.yml``, ``.csv`` or ``.jsonl`` file.

    Args:
        path: The file; its suffix selects the format.
        default_locale: Locale for answers given as a plain string.

    Returns:
        The entries in file order.

    Raises:
        KBFormatError: On an unknown suffix, a malformed record or a duplicate id.
    """
    suffix = path.suffix.lower()
    fmt = _SUFFIXES.get(suffix)
    if fmt is None:
        raise KBFormatError(f"{path}: unknown knowledge-base format {suffix!r}")
    text = path.read_text(encoding="utf-8-sig")
    return entries_from_text(text, fmt, source=str(path), default_locale=default_locale)


_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
FORMATS = ("yaml", "jsonl", "csv")
"""The formats :func:`entries_from_text` reads."""


def entries_from_text(
    text: str, fmt: str, *, source: str = "<text>", default_locale: str = "zh-CN"
) -> tuple[KBEntry, ...]:
    """Parse a knowledge base held in memory (an upload, say).

    Args:
        text: The document.
        fmt: ``"yaml"``, ``"jsonl"`` or ``"csv"``.
        source: Names the document in error messages.
        default_locale: Locale for answers given as a plain string.

    Raises:
        KBFormatError: On an unknown format, a malformed record or a duplicate id.
    """
    text = text.removeprefix("\ufeff")
    if fmt == "yaml":
        records = _yaml_records(text, source)
    elif fmt == "jsonl":
        records = _jsonl_records(text, source)
    elif fmt == "csv":
        records = _csv_records(text)
    else:
        raise KBFormatError(f"{source}: unknown knowledge-base format {fmt!r}")
    return entries_from_records(records, source=source, default_locale=default_locale)


def entries_from_records(
    records: Iterable[Mapping[str, Any]],
    *,
    source: str = "<records>",
    default_locale: str = "zh-CN",
) -> tuple[KBEntry, ...]:
    """Build entries from already-parsed mappings (the shape of one JSON Lines record).

    Raises:
        KBFormatError: On a malformed record or a duplicate id.
    """
    entries: list[KBEntry] = []
    seen: set[str] = set()
    for number, record in enumerate(records, start=1):
        entry = _entry(record, where=f"{source}: record {number}", default_locale=default_locale)
        if entry.id in seen:
            raise KBFormatError(f"{source}: record {number}: duplicate id {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    return tuple(entries)


def _yaml_records(text: str, path: str) -> list[Mapping[str, Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KBFormatError(f"{path}: invalid YAML: {exc}") from exc
    if isinstance(data, Mapping):
        data = data.get("entries")
    if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
        raise KBFormatError(f"{path}: expected a list of entries (or a mapping with 'entries')")
    return data


def _jsonl_records(text: str, path: str) -> list[Mapping[str, Any]]:
    records: list[Mapping[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KBFormatError(f"{path}: line {number}: invalid JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise KBFormatError(f"{path}: line {number}: expected a JSON object")
        records.append(record)
    return records


def _csv_records(text: str) -> list[Mapping[str, Any]]:
    records: list[Mapping[str, Any]] = []
    for row in csv.DictReader(text.splitlines(keepends=True)):
        answers = {
            key.removeprefix("answer_"): value
            for key, value in row.items()
            if key and key.startswith("answer_") and value
        }
        raw_examples = row.get("examples") or ""
        examples = [part for part in raw_examples.replace("\n", "|").split("|") if part.strip()]
        record: dict[str, Any] = {
            "id": row.get("id"),
            "title": row.get("title"),
            "examples": examples,
            "answer": answers or row.get("answer") or "",
            "category": row.get("category") or None,
        }
        records.append(record)
    return records


def _entry(record: Mapping[str, Any], *, where: str, default_locale: str) -> KBEntry:
    entry_id = record.get("id")
    title = record.get("title")
    if entry_id is None or not str(entry_id).strip():
        raise KBFormatError(f"{where}: missing 'id'")
    if not isinstance(title, str) or not title.strip():
        raise KBFormatError(f"{where}: missing 'title'")
    examples = record.get("examples") or []
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        raise KBFormatError(f"{where}: 'examples' must be a list of strings")
    raw_answer = record.get("answer", record.get("answers", ""))
    answers: dict[str, str]
    if isinstance(raw_answer, str):
        answers = {default_locale: raw_answer} if raw_answer else {}
    elif isinstance(raw_answer, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw_answer.items()
    ):
        answers = dict(raw_answer)
    else:
        raise KBFormatError(f"{where}: 'answer' must be a string or a locale -> text mapping")
    category = record.get("category")
    return KBEntry(
        id=str(entry_id).strip(),
        title=title.strip(),
        examples=tuple(e.strip() for e in examples if e.strip()),
        answers=answers,
        category=str(category) if category else None,
    )
