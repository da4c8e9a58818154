"""Who is calling, and the request context the policy engine sees for them.

A caller is the root user, an IAM user signing with a long-term key, or a session: an
assumed-role session (AssumeRole, AssumeRoleWithWebIdentity, AssumeRoleWithSAML), a user's
GetSessionToken session, or a federated user. The global condition keys follow the IAM User
Guide, "AWS global condition context keys": for a role session ``aws:PrincipalArn`` is the
role's ARN, ``aws:userid`` is ``AROA…:session-name``, and ``aws:username`` is absent.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fedbroker.audit.events import UserIdentity
from fedbroker.credentials.session_token import PrincipalType as SessionType
from fedbroker.credentials.session_token import SessionClaims
from fedbroker.directory.access import PolicyCache
from fedbroker.directory.model import Account, Entity
from fedbroker.policy import PolicySet, Principal, PrincipalType


@functools.lru_cache(maxsize=512)  # the same few instants on every request: strftime is slow
def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller and the key it signed with."""

    account: Account
    user: Entity | None  # the IAM user (long-term key or GetSessionToken session)
    access_key_id: str
    session: SessionClaims | None = None
    role: Entity | None = None  # the role behind an assumed-role session

    @property
    def is_root(self) -> bool:
        return self.user is None and self.session is None

    @property
    def arn(self) -> str:
        if self.session is not None:
            return self.session.principal_arn
        return self.account.root_arn if self.user is None else self.user.arn

    @property
    def entity(self) -> Entity | None:
        """Whose identity policies apply: the role of a role session, else the user."""
        return self.role if self.role is not None else self.user

    @property
    def principal(self) -> Principal:
        account = self.account.id
        session = self.session
        if session is not None and session.principal_type is SessionType.ASSUMED_ROLE:
            return Principal(self.arn, PrincipalType.ASSUMED_ROLE, account, session.role_arn)
        if session is not None and session.principal_type is SessionType.FEDERATED_USER:
            return Principal(self.arn, PrincipalType.FEDERATED_USER, account)
        if self.user is None:
            return Principal(self.arn, PrincipalType.ROOT, account)
        return Principal(self.arn, PrincipalType.USER, account)

    def policy_set(self, cache: PolicyCache) -> PolicySet | None:
        """The policies deciding this caller's requests; ``None`` for the root user."""
        entity = self.entity
        if entity is None:
            return None
        session = self.session
        if session is None:
            return cache.for_principal(entity)
        if (
            session.principal_type is SessionType.FEDERATED_USER
            and session.session_policy is None
            and not session.session_policy_arns
        ):
            # GetFederationToken without a session policy: the session may do nothing.
            return PolicySet()
        return cache.for_session(entity, session.session_policy, session.session_policy_arns)

    def request_context(
        self, now: datetime, source_ip: str, secure_transport: bool, region: str
    ) -> dict[str, object]:
        """The global condition keys of a request made by this caller."""
        context: dict[str, object] = {
            "aws:PrincipalAccount": self.account.id,
            "aws:SourceIp": source_ip,
            "aws:CurrentTime": _stamp(now),
            "aws:EpochTime": str(int(now.timestamp())),
            "aws:SecureTransport": "true" if secure_transport else "false",
            "aws:RequestedRegion": region,
            "aws:ViaAWSService": "false",
            "aws:PrincipalIsAWSService": "false",
        }
        session = self.session
        entity = self.entity
        if entity is not None:
            for key, value in entity.tags.items():
                context[f"aws:PrincipalTag/{key}"] = value
        if session is None:
            if self.user is None:
                context["aws:PrincipalArn"] = self.account.root_arn
                context["aws:PrincipalType"] = "Account"
                context["aws:userid"] = self.account.id
            else:
                context["aws:PrincipalArn"] = self.user.arn
                context["aws:PrincipalType"] = "User"
                context["aws:userid"] = self.user.id
                context["aws:username"] = self.user.name
            return context
        for key, value in session.tags.items():
            context[f"aws:PrincipalTag/{key}"] = value  # session tags win over entity tags
        context["aws:userid"] = session.principal_id
        context["aws:TokenIssueTime"] = _stamp(session.issued)
        context["aws:MultiFactorAuthPresent"] = "true" if session.mfa_authenticated else "false"
        if session.mfa_time is not None:
            context["aws:MultiFactorAuthAge"] = str(int((now - session.mfa_time).total_seconds()))
        if session.source_identity is not None:
            context["aws:SourceIdentity"] = session.source_identity
        if session.provider is not None:
            context["aws:FederatedProvider"] = session.provider
        if session.principal_type is SessionType.ASSUMED_ROLE:
            context["aws:PrincipalArn"] = session.role_arn or session.principal_arn
            context["aws:PrincipalType"] = "AssumedRole"
        elif session.principal_type is SessionType.FEDERATED_USER:
            context["aws:PrincipalArn"] = session.principal_arn
            context["aws:PrincipalType"] = "FederatedUser"
        else:
            assert self.user is not None
            context["aws:PrincipalArn"] = self.user.arn
            context["aws:PrincipalType"] = "User"
            context["aws:username"] = self.user.name
        return context

    @property
    def identity(self) -> UserIdentity:
        """CloudTrail's ``userIdentity`` for this caller."""
        session = self.session
        account = self.account.id
        if session is None:
            if self.user is None:
                return UserIdentity("Root", account, self.arn, account, self.access_key_id)
            return UserIdentity(
                "IAMUser", self.user.id, self.arn, account, self.access_key_id, self.user.name
            )
        attributes: dict[str, Any] = {
            "creationDate": _stamp(session.issued),
            "mfaAuthenticated": "true" if session.mfa_authenticated else "false",
            # Not in CloudTrail's record: the id `fedbroker sessions revoke` takes.
            "sessionId": session.session_id,
        }
        context: dict[str, Any] = {"attributes": attributes}
        if session.principal_type is SessionType.ASSUMED_ROLE and self.role is not None:
            context["sessionIssuer"] = {
                "type": "Role",
                "principalId": self.role.id,
                "arn": self.role.arn,
                "accountId": account,
                "userName": self.role.name,
            }
        elif self.user is not None:
            context["sessionIssuer"] = {
                "type": "IAMUser",
                "principalId": self.user.id,
                "arn": self.user.arn,
                "accountId": account,
                "userName": self.user.name,
            }
        if session.source_identity is not None:
            context["sourceIdentity"] = session.source_identity
        web_identity = None
        if session.provider is not None:
            web_identity = {
                "federatedProvider": session.provider,
                "attributes": {"sub": session.subject} if session.subject else {},
            }
        user_name = (
            self.user.name
            if session.principal_type is SessionType.IAM_USER and self.user is not None
            else None
        )
        return UserIdentity(
            session.principal_type.value,
            session.principal_id,
            self.arn,
            account,
            self.access_key_id,
            user_name,
            session_context=context,
            web_id_federation=web_identity,
        )
