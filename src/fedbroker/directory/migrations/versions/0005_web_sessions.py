"""Broker web sessions of the browser sign-in (issue 5): server-side, shared by every replica.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("not_on_or_after", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_web_sessions_not_on_or_after", "web_sessions", ["not_on_or_after"])


def downgrade() -> None:
    op.drop_index("ix_web_sessions_not_on_or_after", table_name="web_sessions")
    op.drop_table("web_sessions")
