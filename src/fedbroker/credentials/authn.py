"""Who signed this request: SigV4 over a long-term access key of the directory, or over
temporary credentials whose session token carries everything else (no database read for the
session itself: only the role or user it belongs to, cached per directory version).

Every failure collapses to AWS's outward codes (``InvalidClientTokenId`` for an unknown or
inactive key, ``SignatureDoesNotMatch`` for a bad signature or clock skew,
``IncompleteSignature`` and ``MissingAuthenticationToken`` for malformed or absent
authentication); the precise reason stays in the exception's ``detail`` for the audit log.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from fedbroker.credentials.caller import Caller
from fedbroker.credentials.keyring import KeyRing
from fedbroker.credentials.revocation import revoked_reason
from fedbroker.credentials.sealing import MasterKey, SealError, access_key_context
from fedbroker.credentials.session_token import PrincipalType as SessionType
from fedbroker.credentials.session_token import SessionClaims
from fedbroker.credentials.sigv4 import HttpRequest, SigV4Auth, SigV4Verifier, parse_auth
from fedbroker.credentials.token_cache import OpenedTokens
from fedbroker.directory.model import AccessKey, Account, Entity, KeyStatus, Kind
from fedbroker.directory.store import Store
from fedbroker.errors import (
    InvalidClientTokenIdError,
    MissingAuthenticationTokenError,
    NoSuchEntityError,
)

INVALID_TOKEN = "The security token included in the request is invalid."
_LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Authenticated:
    account: Account
    user: Entity | None  # None: the root user, or a role session
    access_key_id: str
    auth: SigV4Auth
    session: SessionClaims | None = None
    role: Entity | None = None

    @property
    def caller(self) -> Caller:
        return Caller(self.account, self.user, self.access_key_id, self.session, self.role)


class Authenticator:
    """Checks SigV4 signatures against the directory's access keys.

    Keys, their decrypted secrets and owners are cached until the directory version moves, so
    a steady stream of calls reads one counter from the database, not the key tables.
    """

    def __init__(
        self,
        store: Store,
        master_key: MasterKey,
        verifier: SigV4Verifier | None = None,
        keyring: KeyRing | None = None,
    ) -> None:
        self.store = store
        self.master_key = master_key
        self.keyring = keyring
        self.verifier = verifier or SigV4Verifier()
        self._tokens = OpenedTokens()
        self._lock = threading.Lock()
        self._version = -1
        self._keys: dict[str, tuple[AccessKey, str, Account, Entity | None]] = {}
        self._owners: dict[tuple[str, str], tuple[Account, Entity | None, Entity | None]] = {}

    def authenticate(self, request: HttpRequest, now: datetime) -> Authenticated:
        auth = parse_auth(request)
        if auth is None:
            raise MissingAuthenticationTokenError("Request is missing Authentication Token")
        if auth.access_key_id.startswith("ASIA"):
            return self._temporary(request, auth, now)
        key, secret, account, user = self._key(auth.access_key_id)
        if auth.security_token is not None:
            raise InvalidClientTokenIdError(
                INVALID_TOKEN, "session token sent with a long-term access key"
            )
        self.verifier.verify(request, auth, secret, now)
        if key.last_used is None or now - key.last_used >= _LAST_USED_GRANULARITY:
            # Last use is kept to the minute: one write per key per minute, not per call.
            self.store.record_key_use(key.access_key_id, now, auth.service, auth.region)
            key = replace(
                key, last_used=now, last_used_service=auth.service, last_used_region=auth.region
            )
            with self._lock:
                cached = self._keys.get(key.access_key_id)
                if cached is not None:
                    self._keys[key.access_key_id] = (key, cached[1], cached[2], cached[3])
        return Authenticated(account, user, key.access_key_id, auth)

    def _temporary(self, request: HttpRequest, auth: SigV4Auth, now: datetime) -> Authenticated:
        """Temporary credentials: open the session token (bound to the access key id), then
        check the signature with the secret it carries."""
        if auth.security_token is None or self.keyring is None:
            raise InvalidClientTokenIdError(INVALID_TOKEN, "temporary key without a session token")
        claims = self._tokens.open(self.keyring, auth.security_token, auth.access_key_id, now)
        self.verifier.verify(request, auth, claims.secret_access_key, now)
        account, user, role = self._session_owner(claims)
        reason = revoked_reason(account, role, claims)
        if reason is not None:
            raise InvalidClientTokenIdError(INVALID_TOKEN, reason)
        return Authenticated(account, user, auth.access_key_id, auth, claims, role)

    def _session_owner(self, claims: SessionClaims) -> tuple[Account, Entity | None, Entity | None]:
        """The account and the role or user a session belongs to; a session whose role or user
        has been deleted is no longer valid. Cached until the directory version moves."""
        version = self.store.directory_version()
        key = (claims.account_id, claims.role_arn or claims.principal_arn)
        with self._lock:
            if version != self._version:
                self._keys.clear()
                self._owners.clear()
                self._version = version
            cached = self._owners.get(key)
        if cached is not None:
            return cached
        owner = self._load_owner(claims)
        with self._lock:
            if self._version == version:
                self._owners[key] = owner
        return owner

    def _load_owner(self, claims: SessionClaims) -> tuple[Account, Entity | None, Entity | None]:
        try:
            account = self.store.get_account(claims.account_id)
            if claims.principal_type is SessionType.ASSUMED_ROLE:
                assert claims.role_arn is not None
                name = claims.role_arn.rsplit("/", 1)[-1]
                role = self.store.get_entity(claims.account_id, Kind.ROLE, name)
                if role.arn != claims.role_arn:
                    raise NoSuchEntityError("role replaced")
                return account, None, role
            if claims.principal_arn == account.root_arn:
                return account, None, None
            # A federated user's session names the IAM user who made it as its subject.
            owner_arn = (
                (claims.subject or "")
                if claims.principal_type is SessionType.FEDERATED_USER
                else claims.principal_arn
            )
            name = owner_arn.rsplit("/", 1)[-1]
            user = self.store.get_entity(claims.account_id, Kind.USER, name)
            if user.arn != owner_arn:
                raise NoSuchEntityError("user replaced")
            return account, user, None
        except (NoSuchEntityError, AssertionError):
            raise InvalidClientTokenIdError(
                INVALID_TOKEN, "the session's role or user no longer exists"
            ) from None

    def _key(self, access_key_id: str) -> tuple[AccessKey, str, Account, Entity | None]:
        version = self.store.directory_version()
        with self._lock:
            if version != self._version:
                self._keys.clear()
                self._owners.clear()
                self._version = version
            cached = self._keys.get(access_key_id)
        if cached is not None:
            return cached
        try:
            key = self.store.get_access_key(access_key_id)
        except NoSuchEntityError:
            raise InvalidClientTokenIdError(INVALID_TOKEN, "unknown access key id") from None
        if key.status is not KeyStatus.ACTIVE:
            raise InvalidClientTokenIdError(INVALID_TOKEN, "inactive access key")
        try:
            secret = self.master_key.open(
                key.sealed_secret, access_key_context(key.access_key_id)
            ).decode()
        except SealError as exc:
            raise InvalidClientTokenIdError(INVALID_TOKEN, f"key secret: {exc.message}") from None
        account = self.store.get_account(key.account_id)
        user = self.store.get_entity_by_id(key.user_id) if key.user_id else None
        entry = (key, secret, account, user)
        with self._lock:
            if self._version == version:
                self._keys[access_key_id] = entry
        return entry
