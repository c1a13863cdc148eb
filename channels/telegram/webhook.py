"""``POST /channels/telegram/webhook``: Telegram pushes updates here.

Telegram sends the ``secret_token`` we gave ``setWebhook`` in the
``X-Telegram-Bot-Api-Secret-Token`` header (https://core.telegram.org/bots/api#setwebhook); a
request without it, or with another, is refused with 401 and nothing is stored. The path holds
no token. The answer is 200 only once the update is committed; anything else makes Telegram
deliver it again, and the dedupe makes that harmless. An update failing for a reason of its own
on ``MAX_ATTEMPTS`` deliveries, or hitting the database's statement timeout on
``STATEMENT_TIMEOUTS`` (:mod:`channels.failures`), is parked and answered 200
(:mod:`channels.telegram.parked`): Telegram holds a chat's later updates back while one is
unanswered.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import web

from channels.failures import Failure
from channels.telegram.inbound import TELEGRAM, TelegramInbound
from channels.telegram.parked import MAX_ATTEMPTS, classify, park
from channels.telegram.state import count_failure
from gateway.appkeys import METRICS, SETTINGS

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/channels/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name

routes = web.RouteTableDef()


@routes.post(WEBHOOK_PATH)
async def webhook(request: web.Request) -> web.Response:
    secret = request.app[SETTINGS].telegram.webhook_secret
    # The header's bytes as sent: aiohttp keeps bytes that are not UTF-8 as surrogates, which
    # a plain ``encode()`` refuses (a 500 for anyone sending one).
    given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
    if secret is None or not hmac.compare_digest(given, secret.get_secret_value().encode()):
        request.app[METRICS].rejected.labels(channel="telegram", reason="bad_secret").inc()
        raise web.HTTPUnauthorized()
    try:
        update = json.loads(await request.read())
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
        raise web.HTTPBadRequest(text="not JSON") from None
    if not isinstance(update, dict):
        raise web.HTTPBadRequest(text="not an update")
    inbound = request.app[TELEGRAM]
    try:
        await inbound.handle(update)
    except Exception as exc:
        if not await _given_up(inbound, update, exc):
            raise  # a 500: Telegram delivers it again
    return web.Response(status=200)


async def _given_up(inbound: TelegramInbound, update: dict[str, Any], exc: Exception) -> bool:
    """Whether ``update``, failing with ``exc``, has failed too often for a reason that
    counts toward parking it, and is now parked (to be acknowledged)."""
    update_id = update.get("update_id")
    failure = classify(exc)
    if failure is Failure.PASSING or not isinstance(update_id, int):
        return False
    tally = await count_failure(inbound.store, update_id, inbound.clock(), failure=failure)
    if not tally.spent(MAX_ATTEMPTS):
        return False
    await park(
        inbound.store,
        update,
        exc,
        attempts=tally.attempts,
        now=inbound.clock(),
        timed_out=tally.timed_out(MAX_ATTEMPTS),
    )
    return True
