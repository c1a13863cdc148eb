"""The application: health, readiness (naming what is down) and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.appkeys import PIPELINE
from tests.conftest import RedisServer, free_port, make_settings
from tests.factories import inbound

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


async def test_healthz_and_readyz(aiohttp_client: MakeClient, db_url: str, redis_url: str) -> None:
    client = await aiohttp_client(
        create_app(make_settings(database_url=db_url, redis_url=redis_url))
    )
    health = await client.get("/healthz")
    assert (health.status, await health.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    assert (ready.status, await ready.json()) == (200, {"status": "ok"})


async def test_readyz_names_redis_when_it_is_down(aiohttp_client: MakeClient, db_url: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    client = await aiohttp_client(create_app(make_settings(database_url=db_url, redis_url=dead)))
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 503
    assert body["status"] == "unavailable"
    assert set(body["down"]) == {"redis"}
    assert (await client.get("/healthz")).status == 200  # alive, just not ready


async def test_readyz_names_the_database_when_it_is_down(
    aiohttp_client: MakeClient, redis_url: str
) -> None:
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none"
    client = await aiohttp_client(create_app(make_settings(database_url=dead, redis_url=redis_url)))
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert set((await ready.json())["down"]) == {"database"}


async def test_metrics_count_requests_ingest_outbox_and_queues(
    aiohttp_client: MakeClient, db_url: str, redis_server: RedisServer, redis_url: str
) -> None:
    settings = make_settings(database_url=db_url, redis_url=redis_url, outbox_relay=False)
    app = create_app(settings)
    client = await aiohttp_client(app)
    await client.get("/healthz")
    pipeline = app[PIPELINE]
    await pipeline.on_message(inbound())
    await pipeline.on_message(inbound())
    await pipeline.drain()
    redis_client = redis_server.client()
    redis_client.rpush("rq:queue:notices", "job-1", "job-2")
    redis_client.close()
    text = await (await client.get("/metrics")).text()
    assert 'gateway_http_requests_total{route="/healthz",status="2xx"} 1.0' in text
    assert 'gateway_messages_ingested_total{channel="telegram"} 2.0' in text
    # one acknowledgement for the new ticket, one escalation notice (no KB answers)
    assert 'gateway_outbox_depth{status="pending"} 2.0' in text, text
    assert 'gateway_queue_depth{queue="notices"} 2.0' in text
    assert 'gateway_queue_depth{queue="replies"} 0.0' in text
