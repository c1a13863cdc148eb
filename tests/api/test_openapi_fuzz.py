"""Schemathesis against the OpenAPI document (bounded examples): no 5xx, and every response
matches the schema, for an admin (who may call every route). On both databases: PostgreSQL
refuses what SQLite takes (an id past 32 bits was a 500 there only)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from gateway.models import AgentRole
from tests.api.conftest import Desk
from tests.factories import inbound

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


@pytest.mark.slow
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    desk: Desk, db_url: str
) -> None:
    await desk.customer_says(inbound(text="human"))
    admin = await desk.login("boss@shop.test", AgentRole.ADMIN)
    token = (await (await admin.send("POST", "/api/v1/auth/tokens", {"name": "fuzz"})).json())[
        "token"
    ]
    base = f"http://127.0.0.1:{desk.server.port}"
    exe = Path(sys.executable).with_name("schemathesis")
    process = await asyncio.create_subprocess_exec(
        str(exe),
        "run",
        f"{base}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        "8",
        "--phases",
        "examples,fuzzing",
        "--generation-deterministic",
        "--request-timeout",
        "10",
        "--suppress-health-check",
        "all",
        "--no-color",
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 240)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
