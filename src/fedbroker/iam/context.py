"""Who is calling and what every operation can reach: the call context."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fedbroker.audit.events import AuditSink
from fedbroker.clock import Clock
from fedbroker.credentials.caller import Caller
from fedbroker.credentials.keyring import KeyRing
from fedbroker.credentials.sealing import MasterKey
from fedbroker.directory.access import PolicyCache
from fedbroker.directory.store import Store
from fedbroker.directory.view import DirectoryView
from fedbroker.federation.oidc import OidcVerifier
from fedbroker.federation.saml_sp import ServiceProvider


@dataclass(frozen=True, slots=True)
class Services:
    """Long-lived parts shared by every call."""

    store: Store
    clock: Clock
    master_key: MasterKey
    policies: PolicyCache
    audit: AuditSink
    region: str
    keyring: KeyRing | None = None  # seals session tokens; needed by STS
    saml: ServiceProvider = field(default_factory=ServiceProvider)  # names in SAML
    # Verifies web identity tokens; one per process, so its JWKS cache is shared.
    web_identity: OidcVerifier = field(default_factory=OidcVerifier)
    issuer: str | None = None  # the `iss` of the JWTs the broker signs (outbound federation)
    # Reads of the hot paths (STS exchanges: the provider, the role) served from memory,
    # refreshed once per call; see DirectoryView for how soon a change is seen.
    directory: DirectoryView = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.directory is None:
            object.__setattr__(self, "directory", DirectoryView(self.store))


@dataclass(slots=True)
class CallContext:
    services: Services
    caller: Caller
    request_id: str
    source_ip: str
    user_agent: str
    secure_transport: bool
    now: datetime
    # Filled by operations for the audit record: what was done, never secrets.
    response_elements: dict[str, Any] | None = field(default=None)
    # Entities read to authorize the call, handed to the operation once so it need not read
    # them again (keyed by kind name and lower-cased entity name).
    prefetched: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def account_id(self) -> str:
        return self.caller.account.id

    def arn(self, resource: str) -> str:
        return f"arn:aws:iam::{self.account_id}:{resource}"


__all__ = ["CallContext", "Caller", "Services"]
