"""``/healthz`` (the process is alive), ``/readyz`` (database and Redis answer), ``/metrics``."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.appkeys import METRICS, REDIS, STORE
from gateway.inbound_admin import parked_counts
from gateway.metrics import CONTENT_TYPE
from gateway.models import Channel
from gateway.outbox import QUEUES
from workers.relay import outbox_depth

routes = web.RouteTableDef()

_CHECK_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks = {
        "database": request.app[STORE].ping(),
        "redis": request.app[REDIS].ping(),
    }
    down: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, _CHECK_TIMEOUT)
        except Exception as exc:  # any failure means "not ready"; name it
            down[name] = f"{type(exc).__name__}: {exc}"[:300]
    if down:
        return web.json_response({"status": "unavailable", "down": down}, status=503)
    return web.json_response({"status": "ok"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    try:
        depth = await asyncio.wait_for(outbox_depth(request.app[STORE]), _CHECK_TIMEOUT)
        for status, count in depth.items():
            registry.outbox_depth.labels(status=status).set(count)
        parked = await asyncio.wait_for(parked_counts(request.app[STORE]), _CHECK_TIMEOUT)
        for channel in Channel:  # a channel whose last parked input was dropped shows 0
            registry.inbound_parked.labels(channel=channel.value).set(parked.get(channel, 0))
    except Exception:  # noqa: S110 - a scrape still answers with what it has
        pass
    try:
        redis_client = request.app[REDIS]
        async with redis_client.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                pipe.llen(f"rq:queue:{queue}")
            lengths = await asyncio.wait_for(pipe.execute(), _CHECK_TIMEOUT)
        for queue, length in zip(QUEUES, lengths, strict=True):
            registry.queue_depth.labels(queue=queue).set(length)
    except Exception:  # noqa: S110 - Redis down: queue depth is unknown, not zero
        pass
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE})
