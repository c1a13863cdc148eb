"""How the browser tests start Debian's Chromium (never a downloaded browser build)."""

from __future__ import annotations

from pathlib import Path

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
