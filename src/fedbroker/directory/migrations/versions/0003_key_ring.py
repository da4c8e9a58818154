"""The key ring: seal keys for session tokens and signing keys for JWTs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(8), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("sealed_private", sa.LargeBinary, nullable=False),
        sa.Column("public_pem", sa.Text, nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("retiring_since", TS),
        sa.Column("retired_at", TS),
    )


def downgrade() -> None:
    op.drop_table("keys")
