"""Assertion ids already used with AssumeRoleWithSAML (the replay cache every replica shares).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saml_assertions",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("not_on_or_after", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_saml_assertions_not_on_or_after", "saml_assertions", ["not_on_or_after"])


def downgrade() -> None:
    op.drop_index("ix_saml_assertions_not_on_or_after", table_name="saml_assertions")
    op.drop_table("saml_assertions")
