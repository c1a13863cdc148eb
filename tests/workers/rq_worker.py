"""An RQ worker for the tests, run as ``gateway worker`` runs one but of either class.

``python -m tests.workers.rq_worker simple|forking``: the real senders (``channels.registry``),
settings from ``GATEWAY_*`` like a deployed worker, RQ's scheduler on (retries with a delay go
through it). It runs until SIGTERM.
"""

from __future__ import annotations

import sys

from gateway.settings import Settings
from workers.runner import WORKER_CLASSES, work


def main() -> None:
    kind = "simple" if sys.argv[1] == "simple" else "fork"
    work(Settings(), worker_class=WORKER_CLASSES[kind], logging_level="WARNING")


if __name__ == "__main__":
    main()
