"""Typed keys for what the application holds (aiohttp's ``web.AppKey``)."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from gateway.metrics import Metrics
from gateway.pipeline import Pipeline
from gateway.routing import Router
from gateway.settings import Settings
from gateway.store import Store

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
STORE = web.AppKey("store", Store)
REDIS = web.AppKey("redis", aioredis.Redis)
PIPELINE = web.AppKey("pipeline", Pipeline)
ROUTER = web.AppKey("router", Router)
