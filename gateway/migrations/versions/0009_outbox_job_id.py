"""Outbox rows name the RQ job they were queued in.

A queued row was owed only in Redis: a Redis restarted without persistence, or a job RQ gave
up on, left it ``queued`` for ever, neither sent nor shown as failed. With the job's id on the
row the relay finds such rows (``workers/lost_jobs.py``) and queues them again or parks them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("job_id")
