"""Running the ``gateway`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SECRET


def environment(**values: str) -> dict[str, str]:
    """This process's environment without any gateway settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") and k != "REDIS_URL"}
    env["GATEWAY_SECRET_KEY"] = SECRET
    env.update(values)
    return env


def gateway(
    *args: str, env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``python -m gateway ARGS``; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        input=stdin,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
