"""``POST /channels/telegram/webhook``: Telegram pushes updates here.

Telegram sends the ``secret_token`` we gave ``setWebhook`` in the
``X-Telegram-Bot-Api-Secret-Token`` header (https://core.telegram.org/bots/api#setwebhook); a
request without it, or with another, is refused with 401 and nothing is stored. The path holds
no token. The answer is 200 only once the update is committed; anything else makes Telegram
deliver it again, and the dedupe makes that harmless.
"""

from __future__ import annotations

import hmac
import json
import logging

from aiohttp import web

from channels.telegram.inbound import TELEGRAM
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
    except ValueError:
        raise web.HTTPBadRequest(text="not JSON") from None
    if not isinstance(update, dict):
        raise web.HTTPBadRequest(text="not an update")
    await request.app[TELEGRAM].handle(update)
    return web.Response(status=200)
