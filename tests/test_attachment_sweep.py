"""The attachment sweep: old files no message names go; named, young and foreign files stay."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from channels.attachment_store import store_bytes
from gateway.models import Attachment
from gateway.store import Store
from tests.cli_runner import environment, gateway
from tests.factories import inbound, make_ingest
from workers.attachment_sweep import attachment_sweep_job, sweep_attachments

TWO_DAYS = 2 * 24 * 3600


def stored(directory: Path, data: bytes, *, age: float = 0) -> Path:
    """``data`` in the store, last written ``age`` seconds ago."""
    path = store_bytes(directory, data)
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def attachment(path: Path | str) -> Attachment:
    return Attachment(filename="photo.jpg", content_type="image/jpeg", size=1, ref=str(path))


async def test_old_files_no_message_names_go_the_rest_stay(store: Store, tmp_path: Path) -> None:
    directory = tmp_path / "attachments"
    named = stored(directory, b"the customer's photo", age=TWO_DAYS)
    named_relative = stored(directory, b"a mail's invoice", age=TWO_DAYS)
    abandoned = stored(directory, b"an upload never sent", age=TWO_DAYS)
    young = stored(directory, b"an upload on its way")
    leftover = directory / f".{'0' * 64}.x1y2.tmp"  # a write a crash cut short
    leftover.write_bytes(b"half a fi")
    os.utime(leftover, (time.time() - TWO_DAYS,) * 2)
    foreign = directory / "README"  # not the store's own: never touched
    foreign.write_text("notes")
    os.utime(foreign, (time.time() - TWO_DAYS,) * 2)
    ingest = make_ingest(store)
    await ingest(inbound(attachments=[attachment(named)]))
    # Channels store the path they wrote to, relative to the working directory as configured.
    await ingest(inbound(attachments=[attachment(f"var/attachments/{named_relative.name}")]))
    await ingest(inbound(text="no files here"))

    report = await sweep_attachments(store, [directory, tmp_path / "never-used"])

    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [named.name, named_relative.name, young.name, "README"]
    )
    assert not abandoned.exists() and not leftover.exists()
    assert (report.removed, report.kept) == (2, 2)
    assert report.freed_bytes == len(b"an upload never sent") + len(b"half a fi")
    again = await sweep_attachments(store, [directory])
    assert (again.removed, again.kept) == (0, 2)


async def test_storing_the_same_bytes_again_restarts_the_grace_period(
    store: Store, tmp_path: Path
) -> None:
    """An agent uploads a file the store has had, unnamed, for days: the reply about to name
    it must still find it."""
    directory = tmp_path / "attachments"
    old = stored(directory, b"the price list", age=TWO_DAYS)
    assert store_bytes(directory, b"the price list") == old
    report = await sweep_attachments(store, [directory], older_than=timedelta(days=1))
    assert report.removed == 0
    assert old.exists()


async def test_the_command_sweeps_the_configured_directories(db_url: str, tmp_path: Path) -> None:
    telegram, email = tmp_path / "telegram-files", tmp_path / "mail-files"
    gone = stored(telegram, b"abandoned upload", age=3 * 3600)
    kept = stored(email, b"recent upload", age=60)
    env = environment(
        GATEWAY_DATABASE_URL=db_url,
        GATEWAY_TELEGRAM__ATTACHMENT_DIR=str(telegram),
        GATEWAY_EMAIL__ATTACHMENT_DIR=str(email),
    )
    done = gateway("attachments", "sweep", "--older-than", "2", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("removed 1 files (16 bytes)")
    assert not gone.exists() and kept.exists()


async def test_the_cron_job_reads_its_settings_from_the_environment(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``gateway cron`` enqueues: an RQ job run by a worker configured by ``GATEWAY_*``."""
    files = tmp_path / "files"
    gone = stored(files, b"abandoned upload", age=TWO_DAYS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db_url)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "a-deployed-workers-secret-key-32-chars")
    monkeypatch.setenv("GATEWAY_TELEGRAM__ATTACHMENT_DIR", "files")
    monkeypatch.setenv("GATEWAY_EMAIL__ATTACHMENT_DIR", str(files))  # the same directory
    assert await asyncio.to_thread(attachment_sweep_job) == "removed 1 (16 bytes), kept 0"
    assert not gone.exists()
