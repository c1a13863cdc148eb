"""The periodic jobs ``gateway cron`` hands RQ's cron scheduler, and how often each runs."""

from __future__ import annotations

import redis
from rq.cron import CronScheduler

from gateway.settings import Settings
from workers import attachment_sweep, sla_sweep, state_sweep


def cron_scheduler(settings: Settings) -> CronScheduler:
    """RQ's cron scheduler with the gateway's periodic jobs registered (not started)."""
    scheduler = CronScheduler(connection=redis.Redis.from_url(settings.redis_url))
    # Every 30 s: a breach is flagged well within a minute of its deadline.
    scheduler.register(
        sla_sweep.sla_sweep_job, queue_name=sla_sweep.QUEUE, interval=30, job_timeout=120
    )
    for job, queue, every in (
        (attachment_sweep.attachment_sweep_job, attachment_sweep.QUEUE, attachment_sweep.EVERY),
        (state_sweep.state_sweep_job, state_sweep.QUEUE, state_sweep.EVERY),
    ):
        scheduler.register(
            job, queue_name=queue, interval=int(every.total_seconds()), job_timeout=1800
        )
    return scheduler
