"""Account settings (password policy) and longer entity names (OIDC provider URLs).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("settings", sa.JSON, nullable=False, server_default="{}"))
    with op.batch_alter_table("entities") as batch:
        batch.alter_column(
            "name", type_=sa.String(512), existing_type=sa.String(128), existing_nullable=False
        )
        batch.alter_column(
            "name_key", type_=sa.String(512), existing_type=sa.String(128), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("entities") as batch:
        batch.alter_column("name_key", type_=sa.String(128), existing_type=sa.String(512))
        batch.alter_column("name", type_=sa.String(128), existing_type=sa.String(512))
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("settings")
