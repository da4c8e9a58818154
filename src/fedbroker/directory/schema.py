"""Tables of the SQL store (SQLAlchemy Core). Migrations under ``migrations/`` create them;
a test checks the two never drift apart."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(12), primary_key=True),
    Column("alias", String(63), unique=True),
    Column("root_email", String(320), nullable=False),
    Column("root_password_hash", String(255), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("settings", JSON, nullable=False),
)

entities = Table(
    "entities",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(12), ForeignKey("accounts.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(512), nullable=False),
    # IAM names are unique without regard to case: "Alice" and "alice" cannot both exist.
    Column("name_key", String(512), nullable=False),
    Column("path", String(512), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("attrs", JSON, nullable=False),
    UniqueConstraint("account_id", "kind", "name_key", name="uq_entities_name"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("group_id", String(32), ForeignKey("entities.id"), primary_key=True),
    Column("user_id", String(32), ForeignKey("entities.id"), primary_key=True),
)

attachments = Table(
    "attachments",
    metadata,
    Column("owner_id", String(32), ForeignKey("entities.id"), primary_key=True),
    Column("policy_id", String(32), ForeignKey("entities.id"), primary_key=True),
)

inline_policies = Table(
    "inline_policies",
    metadata,
    Column("owner_id", String(32), ForeignKey("entities.id"), primary_key=True),
    Column("name_key", String(128), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("document", Text, nullable=False),
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("policy_id", String(32), ForeignKey("entities.id"), primary_key=True),
    Column("version_id", String(16), primary_key=True),
    Column("document", Text, nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("access_key_id", String(32), primary_key=True),
    Column("account_id", String(12), ForeignKey("accounts.id"), nullable=False),
    Column("user_id", String(32), ForeignKey("entities.id")),  # NULL: the root user's key
    Column("sealed_secret", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("last_used", DateTime(timezone=True)),
    Column("last_used_service", String(64)),
    Column("last_used_region", String(32)),
)

# The key ring: seal keys for session tokens, signing keys for JWTs (credentials/keyring.py).
keys = Table(
    "keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("purpose", String(8), nullable=False),
    Column("algorithm", String(16), nullable=False),
    Column("sealed_private", LargeBinary, nullable=False),  # sealed under the master key
    Column("public_pem", Text, nullable=False),  # empty for seal keys
    Column("created", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("retiring_since", DateTime(timezone=True)),
    Column("retired_at", DateTime(timezone=True)),
)

# Assertion ids used with AssumeRoleWithSAML, kept until the assertion could no longer be
# accepted anyway (federation/saml_response.py); ``key`` is a SHA-256 of issuer and id.
saml_assertions = Table(
    "saml_assertions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("not_on_or_after", DateTime(timezone=True), nullable=False, index=True),
)

# Broker web sessions (browser sign-in): ``key`` is a hash of the cookie's random id, ``data``
# the session sealed with the master key.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("data", Text, nullable=False),
    Column("not_on_or_after", DateTime(timezone=True), nullable=False, index=True),
)

directory_version = Table(
    "directory_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)
