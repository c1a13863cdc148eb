"""An agent at the console of a Telegram test's gateway: logged in through the agent API, and
uploading the files a reply carries."""

from __future__ import annotations

from typing import Any

import aiohttp

from gateway.models import AgentRole
from gateway.store import Store
from tests.api.conftest import PASSWORD, add_agent
from tests.channels.telegram.conftest import Client

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
"""A PNG's signature and a few bytes: a photo as far as the upload and Telegram care."""


async def log_in(client: Client, store: Store, role: AgentRole = AgentRole.AGENT) -> dict[str, str]:
    """Log an agent (ann@example.com) in on ``client``; the headers its state changes need."""
    await add_agent(store, "ann@example.com", role)
    response = await client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert response.status == 200, await response.text()
    return {"X-CSRF-Token": (await response.json())["csrf_token"]}


async def upload(
    client: Client, headers: dict[str, str], number: str, name: str, data: bytes, media: str
) -> Any:
    """Upload a file for a reply on ticket ``number``; the API's response."""
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=media)
    return await client.post(f"/api/v1/tickets/{number}/attachments", data=form, headers=headers)
