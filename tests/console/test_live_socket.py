"""The live queue socket: authenticated by the session cookie, pushes the tickets an agent may
see as they change, reports tickets that another agent took as gone, and ends with the session."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType

from gateway.console import live
from gateway.models import AgentRole
from tests.api.conftest import AgentClient, Desk
from tests.factories import inbound

WS = "/api/v1/console/ws"


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(live, "RECHECK_POLLS", 4)


async def connect(agent: AgentClient) -> ClientWebSocketResponse:
    ws: ClientWebSocketResponse = await agent.client.ws_connect(WS)
    hello = json.loads(await ws.receive_str(timeout=5))
    assert hello == {"type": "hello", "agent_id": agent.agent_id}
    return ws


async def next_frame(ws: ClientWebSocketResponse, *, wait: float = 5) -> dict[str, Any]:
    frame = json.loads(await ws.receive_str(timeout=wait))
    assert isinstance(frame, dict)
    return frame


async def frame_about(ws: ClientWebSocketResponse, number: str, key: str) -> dict[str, Any]:
    """The next frame naming ``number`` among its ``items`` or ``gone``."""
    async with asyncio.timeout(5):
        while True:
            frame = await next_frame(ws)
            if key == "gone" and number in frame["gone"]:
                return frame
            for item in frame["items"]:
                if key == "items" and item["number"] == number:
                    return dict(item)


async def go_offline(agent: AgentClient) -> None:
    response = await agent.send("POST", "/api/v1/auth/presence", {"online": False})
    assert response.status == 200


async def test_a_plain_get_is_refused(desk: Desk) -> None:
    agent = await desk.login("li@shop.test", AgentRole.AGENT)
    response = await agent.get(WS)
    assert response.status == 400
    assert (await response.json())["error"] == "websocket_required"


async def test_an_escalated_ticket_is_pushed_and_a_claim_takes_it_from_the_others(
    desk: Desk,
) -> None:
    li = await desk.login("li@shop.test", AgentRole.AGENT)
    wang = await desk.login("wang@shop.test", AgentRole.AGENT)
    await go_offline(li)
    await go_offline(wang)
    li_ws, wang_ws = await connect(li), await connect(wang)

    number = await desk.customer_says(inbound(text="human", sender_name="<b>Ann</b>"))
    pushed = await frame_about(li_ws, number, "items")
    assert pushed["assignee_id"] is None
    assert pushed["contact_name"] == "<b>Ann</b>"  # JSON data: the page sets it as text
    assert pushed["first_response_due_at"] is not None
    await frame_about(wang_ws, number, "items")

    claimed = await li.send("POST", f"/api/v1/tickets/{number}/claim")
    assert claimed.status == 200
    mine = await frame_about(li_ws, number, "items")
    assert mine["assignee_id"] == li.agent_id
    assert mine["status"] == "in_progress"
    await frame_about(wang_ws, number, "gone")  # Wang may no longer see it
    await li_ws.close()
    await wang_ws.close()


async def test_logging_out_ends_the_feed(desk: Desk) -> None:
    li = await desk.login("li@shop.test", AgentRole.AGENT)
    ws = await connect(li)
    assert (await li.send("POST", "/api/v1/auth/logout")).status == 200
    message = await ws.receive(timeout=5)
    assert message.type == WSMsgType.CLOSE
    assert message.data == live.SESSION_ENDED
