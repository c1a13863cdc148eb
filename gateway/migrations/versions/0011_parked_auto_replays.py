"""Parked inputs count the times the gateway replayed them by itself.

An input parked for statement timeouts alone (``reason = 'statement_timeout'``) is most often
the database's fault, slow for everyone a while; ``gateway serve`` now replays such inputs once
the database answers normally again (``gateway/replay_sweep.py``), and gives up on one after a
few tries, leaving it to a person. Existing rows start at 0.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("parked_inbound", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("auto_replays", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("parked_inbound", schema=None) as batch_op:
        batch_op.drop_column("auto_replays")
