"""Index for the email cap: automatic mails sent lately to given contacts.

``EmailSender.prepare`` counts, per job, the mails sent to its rows' contacts in the cap window
(contact, status "sent", sent since). Without this index PostgreSQL read every sent row through
``ix_outbox_status_due`` for each job of mails, so the cost grew with the whole outbox.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 07:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_contact_sent", ["contact_id", "status", "sent_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_contact_sent")
