"""Domain values of the directory. Frozen: a change is a new value written through the Store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class Kind(Enum):
    """Named entities of an account, with IAM's unique-id prefix and ARN resource type."""

    USER = ("user", "AIDA")
    GROUP = ("group", "AGPA")
    ROLE = ("role", "AROA")
    POLICY = ("policy", "ANPA")
    # Named by their URL without the scheme (``token.actions.githubusercontent.com``).
    OIDC_PROVIDER = ("oidc-provider", "AOIP")
    SAML_PROVIDER = ("saml-provider", "ASPA")
    # Virtual MFA devices: ``arn:aws:iam::<account>:mfa/<path><name>``.
    MFA_DEVICE = ("mfa", "AMFA")

    @property
    def resource_type(self) -> str:
        return self.value[0]

    @property
    def id_prefix(self) -> str:
        return self.value[1]


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    alias: str | None
    root_email: str
    root_password_hash: str
    created: datetime
    # Account-wide settings (the password policy, ...), JSON.
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def root_arn(self) -> str:
        return f"arn:aws:iam::{self.id}:root"


@dataclass(frozen=True, slots=True)
class Entity:
    """A user, group, role or managed policy. ``attrs`` holds kind-specific fields (JSON)."""

    kind: Kind
    account_id: str
    name: str
    id: str
    path: str
    created: datetime
    attrs: dict[str, object] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:{self.kind.resource_type}{self.path}{self.name}"

    @property
    def tags(self) -> dict[str, str]:
        raw = self.attrs.get("tags")
        return dict(raw) if isinstance(raw, dict) else {}


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    policy_arn: str
    version_id: str  # v1, v2, ...
    document: str
    is_default: bool
    created: datetime


@dataclass(frozen=True, slots=True)
class InlinePolicy:
    owner_kind: Kind
    owner_name: str
    name: str
    document: str


class KeyStatus(Enum):
    ACTIVE = "Active"
    INACTIVE = "Inactive"


@dataclass(frozen=True, slots=True)
class AccessKey:
    """A long-term key. ``sealed_secret`` is the secret encrypted under the master key.

    ``user_id`` is ``None`` for a key of the root user.
    """

    access_key_id: str
    account_id: str
    user_id: str | None
    sealed_secret: bytes
    status: KeyStatus
    created: datetime
    last_used: datetime | None = None
    last_used_service: str | None = None
    last_used_region: str | None = None


# --- the key ring -----------------------------------------------------------------------------


class KeyPurpose(Enum):
    SEAL = "seal"  # AEAD keys that seal session tokens
    SIGN = "sign"  # asymmetric keys that sign JWTs, published in the JWKS


class KeyAlgorithm(Enum):
    """Algorithms of key-ring keys, by their JOSE names (RFC 7518, RFC 8037)."""

    A256GCM = "A256GCM"
    ES256 = "ES256"
    ES384 = "ES384"  # what STS GetWebIdentityToken offers besides RS256
    RS256 = "RS256"
    EDDSA = "EdDSA"

    @property
    def purpose(self) -> KeyPurpose:
        return KeyPurpose.SEAL if self is KeyAlgorithm.A256GCM else KeyPurpose.SIGN


class KeyState(Enum):
    """Life of a key-ring key: ``active`` keys seal or sign (the newest one of its algorithm) and
    open or verify; ``retiring`` keys only open or verify; ``retired`` keys do nothing."""

    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key of the key ring as stored.

    ``sealed_private`` is the private material (32 raw bytes for an AES key, PKCS#8 DER for a
    signing key) sealed under the master key with the kid, purpose and algorithm as associated
    data; ``public_pem`` is the SubjectPublicKeyInfo PEM of a signing key, empty for a seal key.
    """

    kid: str
    purpose: KeyPurpose
    algorithm: KeyAlgorithm
    sealed_private: bytes = field(repr=False)
    public_pem: str
    created: datetime
    state: KeyState = KeyState.ACTIVE
    retiring_since: datetime | None = None
    retired_at: datetime | None = None
