"""Contacts say whether their email and phone were proven, not merely typed.

A pre-chat form's phone was a merge target for a Telegram user who shared that number as their
own: the form's contact took the Telegram identity and its tickets, and that user's ``/status``
listed the form-filler's tickets. Only a proven address or number is a merge target now.

Existing rows start unproven (nothing recorded how their fields were learnt): a Telegram user
proves their number again by sharing it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        for column in ("email_verified", "phone_verified"):
            batch_op.add_column(
                sa.Column(column, sa.Boolean(), server_default=sa.false(), nullable=False)
            )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("phone_verified")
        batch_op.drop_column("email_verified")
