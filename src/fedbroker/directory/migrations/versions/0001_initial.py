"""Initial directory schema: accounts, entities, relations, access keys, version counter.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("alias", sa.String(63), unique=True),
        sa.Column("root_email", sa.String(320), nullable=False),
        sa.Column("root_password_hash", sa.String(255), nullable=False),
        sa.Column("created", TS, nullable=False),
    )
    op.create_table(
        "entities",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(12), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("name_key", sa.String(128), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("attrs", sa.JSON, nullable=False),
        sa.UniqueConstraint("account_id", "kind", "name_key", name="uq_entities_name"),
    )
    op.create_table(
        "memberships",
        sa.Column("group_id", sa.String(32), sa.ForeignKey("entities.id"), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("entities.id"), primary_key=True),
    )
    op.create_table(
        "attachments",
        sa.Column("owner_id", sa.String(32), sa.ForeignKey("entities.id"), primary_key=True),
        sa.Column("policy_id", sa.String(32), sa.ForeignKey("entities.id"), primary_key=True),
    )
    op.create_table(
        "inline_policies",
        sa.Column("owner_id", sa.String(32), sa.ForeignKey("entities.id"), primary_key=True),
        sa.Column("name_key", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
    )
    op.create_table(
        "policy_versions",
        sa.Column("policy_id", sa.String(32), sa.ForeignKey("entities.id"), primary_key=True),
        sa.Column("version_id", sa.String(16), primary_key=True),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("created", TS, nullable=False),
    )
    op.create_table(
        "access_keys",
        sa.Column("access_key_id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(12), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("entities.id")),
        sa.Column("sealed_secret", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("last_used", TS),
        sa.Column("last_used_service", sa.String(64)),
        sa.Column("last_used_region", sa.String(32)),
    )
    op.create_table(
        "directory_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.bulk_insert(
        sa.table(
            "directory_version", sa.column("id", sa.Integer), sa.column("version", sa.Integer)
        ),
        [{"id": 1, "version": 0}],
    )


def downgrade() -> None:
    for table in (
        "directory_version",
        "access_keys",
        "policy_versions",
        "inline_policies",
        "attachments",
        "memberships",
        "entities",
        "accounts",
    ):
        op.drop_table(table)
