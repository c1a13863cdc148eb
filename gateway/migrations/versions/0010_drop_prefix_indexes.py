"""Drop two indexes whose column is the first column of another index.

``ix_tickets_status`` (status) is the prefix of ``ix_tickets_queue`` (status, channel,
updated_at, id), and ``ix_ticket_events_ticket_id`` (ticket_id) the prefix of
``ix_ticket_events_ticket_time`` (ticket_id, created_at, kind): any lookup either served, the
longer one serves too, while every new ticket, every status change and every event paid to
keep both up to date.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 12:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_status")
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_events_ticket_id")


def downgrade() -> None:
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_events_ticket_id", ["ticket_id"], unique=False)
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_status", ["status"], unique=False)
