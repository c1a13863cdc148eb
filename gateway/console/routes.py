"""The console's routes: its pages and assets under ``/console/``, and the live queue socket.

The socket is declared with :class:`~gateway.api.endpoints.ApiTable` (least role: agent), so the
access middleware authenticates it by the ``gw_session`` cookie before the upgrade, exactly like
every other ``/api/v1`` route. The pages themselves are public: they hold no data, and they ask
the API for everything.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.api.endpoints import ApiTable
from gateway.console.live import live_queue
from gateway.models import AgentRole

STATIC = Path(__file__).with_name("static")
# Every file index.html loads, and nothing else (tests/console/test_assets.py holds both ways).
ASSETS = {
    "console.js": "text/javascript",
    "queue.js": "text/javascript",
    "live.js": "text/javascript",
    "thread.js": "text/javascript",
    "composer.js": "text/javascript",
    "session.js": "text/javascript",
    "media.js": "text/javascript",
    "profile.js": "text/javascript",
    "attach.js": "text/javascript",
    "i18n.js": "text/javascript",
    "console.css": "text/css",
    "admin.js": "text/javascript",
    "kb.js": "text/javascript",
    "admin.css": "text/css",
    "report_drill.js": "text/javascript",
    "report_charts.js": "text/javascript",
    "reports.js": "text/javascript",
    "reports.css": "text/css",
}
# Defence in depth behind textContent: no inline script and no foreign origin can run, so even a
# rendering bug could not execute a customer's markup (CSP Level 3, https://www.w3.org/TR/CSP3/).
# media-src: the thread's players (a voice note, a video) load from the download route only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

api = ApiTable()
api.route(
    "GET",
    "/api/v1/console/ws",
    summary="The live queue (WebSocket): pushes the ticket changes this agent may see",
    role=AgentRole.AGENT,
)(live_queue)


@api.routes.get("/console")
async def console_redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


@api.routes.get("/console/")
async def console_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        STATIC / "index.html", headers={**_HEADERS, "Content-Type": "text/html; charset=utf-8"}
    )


@api.routes.get("/console/{asset}")
async def console_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    content_type = ASSETS.get(name)
    if content_type is None:  # only the listed files: no path ever reaches the filesystem
        raise web.HTTPNotFound()
    return web.FileResponse(
        STATIC / name, headers={**_HEADERS, "Content-Type": f"{content_type}; charset=utf-8"}
    )
