"""How the browser tests start Debian's Chromium (never a downloaded browser build), and how they
fail on the page's own JavaScript errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, WebError, async_playwright

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
"""Screenshots the browser tests save (gitignored)."""
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium tries the network at start, which this machine refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HTTP_ERROR_LOG = "Failed to load resource: the server responded with a status of"
"""How Chromium's own console line for an HTTP error answer starts (not a script's error)."""


@dataclass
class PageErrors:
    """Every uncaught exception and ``console.error`` call of the pages of one browser.

    A page whose script throws still passes most assertions (the part that ran drew the page), so
    the ``browser`` fixture fails the test when any were seen.
    """

    seen: list[str] = field(default_factory=list)

    def watch(self, context: BrowserContext) -> None:
        """Record the errors of every page of ``context``, those opened later too."""
        context.on("weberror", self._uncaught)
        context.on("console", self._console)

    def _uncaught(self, error: WebError) -> None:
        page = error.page.url if error.page is not None else "?"
        # The stack names the script and line; the message alone would not.
        what = error.error.stack or f"{error.error.name}: {error.error.message}"
        self.seen.append(f"uncaught on {page}: {what}")

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium logs every HTTP error answer as a console error too; the tests provoke some on
        # purpose (a wrong password's 401, a refused upload's 413) and the page shows them. Those
        # are not the page's script failing, so only its own console.error calls count.
        if message.type == "error" and not message.text.startswith(HTTP_ERROR_LOG):
            where = message.location
            self.seen.append(
                f"console.error: {message.text} at {where['url']}:{where['lineNumber']}"
            )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium; the test fails if one of its pages threw or called ``console.error``.

    Import it into a conftest (``from tests.chromium import browser as browser``).
    """
    errors = PageErrors()
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        # Every new_context and new_page announces its context here, before the first page loads.
        chromium.on("context", errors.watch)
        yield chromium
        await chromium.close()
    if errors.seen:
        pytest.fail("JavaScript errors in the page:\n" + "\n".join(errors.seen), pytrace=False)
