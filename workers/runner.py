"""Running an RQ worker on the outbox queues, through Redis outages.

RQ's dequeue loop rides out a lost Redis connection, but its scheduler (delayed retries) does
not: a worker started ``with_scheduler`` exits when Redis goes away mid-way. Nothing is lost by
that (the jobs live in Redis, the rows in the outbox), yet a worker must be there when Redis is
back, so :func:`work` starts it again after a pause.
"""

from __future__ import annotations

import logging
import time

import redis
from rq import Queue, SimpleWorker, Worker
from rq.worker import BaseWorker

from gateway.backoff import Backoff
from gateway.outbox import QUEUES
from gateway.settings import Settings
from workers.sla_sweep import QUEUE as SLA_QUEUE

log = logging.getLogger(__name__)


def work(
    settings: Settings,
    *,
    worker_class: type[BaseWorker] = Worker,
    burst: bool = False,
    logging_level: str = "INFO",
) -> None:
    """Work the ``sla``, ``replies``, ``notices`` and ``surveys`` queues, in that order, until
    stopped (or, with ``burst``, until they are empty). ``SimpleWorker`` runs jobs in-process."""
    backoff = Backoff(base=1.0, cap=30.0)
    while True:
        connection = redis.Redis.from_url(settings.redis_url)
        try:
            names = (SLA_QUEUE, *QUEUES)  # the sweep first, then replies, notices, surveys
            queues = [Queue(name, connection=connection) for name in names]
            worker = worker_class(queues, connection=connection)
            worker.work(with_scheduler=True, burst=burst, logging_level=logging_level)
            return
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            delay = backoff.next()
            log.warning("worker lost redis, starting again", extra={"error": str(exc)})
            time.sleep(delay)
        finally:
            connection.close()


WORKER_CLASSES: dict[str, type[BaseWorker]] = {"fork": Worker, "simple": SimpleWorker}
"""``gateway worker --class``: a forked work horse per job (RQ's default), or jobs in-process."""
