"""The console's page loads only files the app serves: every script and stylesheet index.html
names is in the route's allow-list (gateway/console/routes.py ASSETS) and comes back with its
type and the CSP, and every file in the static folder is listed (a script split out of another
but left off the list would 404, and the console would half start)."""

from __future__ import annotations

import re

import aiohttp

from gateway.console.routes import ASSETS, CSP, STATIC
from tests.console.conftest import ConsoleApp

LOADED = re.compile(r'<(?:script src|link rel="stylesheet" href)="/console/([^"]+)"')


async def test_every_file_the_page_loads_is_served(console_app: ConsoleApp) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{console_app.base}/console/") as page:
            assert page.status == 200
            names = LOADED.findall(await page.text())
        assert "console.js" in names, "the pattern no longer finds the page's scripts"
        for name in names:
            async with http.get(f"{console_app.base}/console/{name}") as asset:
                assert asset.status == 200, name
                assert asset.content_type == ASSETS[name], name
                assert asset.headers["Content-Security-Policy"] == CSP
                assert (await asset.read()) == (STATIC / name).read_bytes()


def test_every_static_file_is_listed() -> None:
    on_disk = {p.name for p in STATIC.iterdir() if p.name != "index.html"}
    assert on_disk == set(ASSETS)
