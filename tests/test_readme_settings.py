"""The README's configuration table names every setting, and only settings that exist."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from gateway.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def variables_in_code() -> set[str]:
    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            names |= {f"GATEWAY_{field}__{sub}".upper() for sub in section.model_fields}
        else:
            names.add(f"GATEWAY_{field}".upper())
    return names


def variables_in_readme() -> set[str]:
    """The first column of the table under "## Configuration" (``GATEWAY_X__A``, ``__B`` is
    shorthand for ``GATEWAY_X__A`` and ``GATEWAY_X__B``)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    start = lines.index("| variable | default | meaning |")
    table = []  # one table: a blank line would end it, and the rows after it show as text
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        table.append(line)
    names: set[str] = set()
    for line in table:
        cell = line.split("|")[1]
        prefix = ""
        for name in re.findall(r"`([A-Z_]+)`", cell):
            if name.startswith("GATEWAY_"):
                prefix = name.rsplit("__", 1)[0] if "__" in name else "GATEWAY"
                names.add(name)
            elif name.startswith("__") and prefix:
                names.add(prefix + name)
    return names


def test_the_configuration_table_names_every_setting() -> None:
    assert variables_in_code() - variables_in_readme() == set()


def test_the_configuration_table_names_no_setting_that_does_not_exist() -> None:
    assert variables_in_readme() - variables_in_code() == set()
