"""The check on every use: who signed this request, and may they do this to that resource?

A resource service hands over a request as it received it, the action and resource it maps
to, and (optionally) extra context keys and its resource policy; the checker authenticates
the signature (SigV4 in the ``Authorization`` header or a presigned URL, with long-term or
temporary credentials, ``X-Amz-Security-Token``, 5-minute skew) and decides with the same
engine that decides IAM and STS calls, over the caller's identity policies, permissions
boundary and session policies, plus the resource policy (IAM User Guide, "Policy evaluation
logic").

    checker = RequestChecker(store, master_key, keyring)
    result = checker.check(http_request, "s3:GetObject", "arn:aws:s3:::bucket/key", now)
    if not result.allowed:
        message = checker.encode(result, now)   # for sts:DecodeAuthorizationMessage

Authentication failures raise (:class:`~fedbroker.errors.AuthenticationError` with AWS's
outward code, the reason in ``detail``); a decision is a value, allow or deny. A service that
takes anonymous (unsigned) requests, as S3 does, decides them with :meth:`RequestChecker.
check_anonymous`: only a resource policy that grants everyone (``"Principal": "*"`` or
``{"AWS": "*"}``) can allow one; identity policies do not apply to nobody (IAM User Guide,
"Policy evaluation logic"; Amazon S3 User Guide, "Blocking public access").

Organization guardrails (SCPs, RCPs) are decided by the engine (``PolicySet.scp``/``rcp``) but
the directory has no organization to hold them yet, so the checker applies none. Steady state
needs no database read: session tokens carry the session, the directory is read through a
:class:`~fedbroker.directory.view.DirectoryView` that looks at the directory version at most
once per ``check_interval`` of the ``now`` passed in, and policy sets are compiled once per
directory version. A change to the directory (policies, deleted roles, revocations) therefore
applies to checks within ``check_interval``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from fedbroker.credentials.authn import Authenticated, Authenticator
from fedbroker.credentials.authz_message import describe, seal_message
from fedbroker.credentials.caller import Caller
from fedbroker.credentials.keyring import KeyRing
from fedbroker.credentials.sealing import MasterKey
from fedbroker.credentials.sigv4 import HttpRequest, SigV4Auth, SigV4Verifier
from fedbroker.directory.access import PolicyCache
from fedbroker.directory.store import Store
from fedbroker.directory.view import DirectoryView
from fedbroker.policy import (
    Decision,
    Effect,
    Policy,
    PolicyKind,
    PolicySet,
    PrincipalType,
    make_request,
    parse_policy,
)
from fedbroker.policy import Principal as EnginePrincipal

# Keys the check derives from the credentials or the clock: a service cannot supply them.
# The transport keys are the exception, since a service behind a proxy knows them better.
_DERIVED_PREFIXES = (
    "aws:principal",
    "aws:userid",
    "aws:username",
    "aws:tokenissuetime",
    "aws:multifactorauth",
    "aws:sourceidentity",
    "aws:federatedprovider",
    "aws:currenttime",
    "aws:epochtime",
    "aws:viaawsservice",
)
_TRANSPORT_KEYS = frozenset({"aws:sourceip", "aws:securetransport", "aws:requestedregion"})
_KIND_NAMES = {
    "identity": "identity-based policy",
    "boundary": "permissions boundary",
    "session": "session policy",
    "resource": "resource-based policy",
}
_CACHE_LIMIT = 1024
_ROOT = PolicySet()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """An authenticated request and the engine's decision on it."""

    caller: Caller
    auth: SigV4Auth
    action: str
    resource: str
    context: Mapping[str, object]
    decision: Decision

    @property
    def allowed(self) -> bool:
        return self.decision.effect is Effect.ALLOW

    @property
    def principal(self) -> EnginePrincipal:
        """The principal as the engine saw it (ARN, type, account, role behind a session)."""
        return self.caller.principal

    def denial_message(self) -> str:
        """AWS's wording of an ``AccessDenied``: who, what, on which resource, and which policy
        type said no, without the details (those go in the encoded message)."""
        decision = self.decision
        head = (
            f"User: {self.caller.arn} is not authorized to perform: {self.action} "
            f'on resource: "{self.resource}"'
        )
        kind = _kind(decision.decided_by)
        if decision.effect is Effect.EXPLICIT_DENY:
            article = "an" if kind[0] in "aeiou" else "a"
            return f"{head} with an explicit deny in {article} {kind}"
        return f"{head} because no {kind} allows the {self.action} action"


@dataclass(frozen=True, slots=True)
class AnonymousResult:
    """An unsigned request and the engine's decision on it (see
    :meth:`RequestChecker.check_anonymous`)."""

    action: str
    resource: str
    context: Mapping[str, object]
    decision: Decision

    @property
    def allowed(self) -> bool:
        return self.decision.effect is Effect.ALLOW

    @property
    def principal(self) -> EnginePrincipal:
        return ANONYMOUS


ANONYMOUS = EnginePrincipal("*", PrincipalType.ANONYMOUS)


def _kind(label: str) -> str:
    if label.startswith("scp"):
        return "service control policy"
    if label.startswith("rcp"):
        return "resource control policy"
    return _KIND_NAMES.get(label, label)


class RequestChecker:
    """Authenticates requests and decides them with the policy engine. Thread-safe.

    ``store`` is wrapped in a :class:`DirectoryView` (unless it is one) that looks at the
    directory version at most once per ``check_interval``. ``cache`` defaults to a
    :class:`PolicyCache` over that view; pass one only to share it, and build it over the view
    (``checker.directory``), or every check reads the directory version from the database.
    """

    def __init__(
        self,
        store: Store,
        master_key: MasterKey,
        keyring: KeyRing,
        cache: PolicyCache | None = None,
        *,
        check_interval: timedelta = timedelta(seconds=1),
        max_skew: timedelta = timedelta(minutes=5),
    ) -> None:
        view = store if isinstance(store, DirectoryView) else None
        self.directory = view or DirectoryView(store, check_interval=check_interval)
        self.keyring = keyring
        self.cache = cache or PolicyCache(self.directory)
        self.authenticator = Authenticator(
            self.directory, master_key, SigV4Verifier(max_skew), keyring
        )
        self._lock = threading.Lock()
        self._resource_policies: dict[str, Policy] = {}
        self._combined: dict[tuple[PolicySet, Policy], PolicySet] = {}
        self._anonymous: dict[Policy, PolicySet] = {}

    def check(
        self,
        request: HttpRequest,
        action: str,
        resource: str,
        now: datetime,
        extra_context: Mapping[str, object] | None = None,
        resource_policy: Policy | str | None = None,
        *,
        source_ip: str | None = None,
        secure_transport: bool = False,
        resource_account: str | None = None,
    ) -> CheckResult:
        """Authenticate ``request`` and decide ``action`` on ``resource`` for its signer.

        ``extra_context`` adds service-specific condition keys (``s3:prefix`` …); keys derived
        from the credentials or the clock cannot be supplied (``ValueError``). A resource
        policy may be given parsed or as JSON text (parsed once per distinct text;
        ``MalformedPolicyDocumentError`` if it does not parse). ``resource_account`` is the
        account owning the resource (default: the caller's), which decides whether the request
        is evaluated as cross-account.
        """
        return self.decide(
            self.authenticate(request, now),
            action,
            resource,
            now,
            extra_context,
            resource_policy,
            source_ip=source_ip,
            secure_transport=secure_transport,
            resource_account=resource_account,
        )

    def authenticate(self, request: HttpRequest, now: datetime) -> Authenticated:
        """Who signed ``request``; raises :class:`AuthenticationError` if nobody did validly."""
        self.directory.refresh(now)
        return self.authenticator.authenticate(request, now)

    def decide(
        self,
        authenticated: Authenticated,
        action: str,
        resource: str,
        now: datetime,
        extra_context: Mapping[str, object] | None = None,
        resource_policy: Policy | str | None = None,
        *,
        source_ip: str | None = None,
        secure_transport: bool = False,
        resource_account: str | None = None,
    ) -> CheckResult:
        """The decision on an already authenticated request (see :meth:`check`)."""
        caller = authenticated.caller
        auth = authenticated.auth
        context = caller.request_context(now, source_ip or "", secure_transport, auth.region)
        if source_ip is None:
            del context["aws:SourceIp"]
        if extra_context:
            _merge(context, extra_context)
        policies = self._policies(caller, resource_policy)
        request = make_request(
            action, resource, caller.principal, context, resource_account or caller.account.id
        )
        return CheckResult(caller, auth, action, resource, context, policies.authorize(request))

    def check_anonymous(
        self,
        action: str,
        resource: str,
        now: datetime,
        extra_context: Mapping[str, object] | None = None,
        resource_policy: Policy | str | None = None,
        *,
        source_ip: str | None = None,
        secure_transport: bool = False,
        resource_account: str | None = None,
    ) -> AnonymousResult:
        """The decision on an unsigned request: allowed only by ``resource_policy`` granting
        everyone, never by anything else (no policy: denied). Same arguments as :meth:`check`;
        the context has only the keys that need no caller (time, transport)."""
        context: dict[str, object] = {
            "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:EpochTime": str(int(now.timestamp())),
            "aws:SecureTransport": "true" if secure_transport else "false",
            "aws:ViaAWSService": "false",
            "aws:PrincipalIsAWSService": "false",
        }
        if source_ip is not None:
            context["aws:SourceIp"] = source_ip
        if extra_context:
            _merge(context, extra_context)
        if resource_policy is None:
            policies = _ROOT
        else:
            policy = (
                self._parse(resource_policy)
                if isinstance(resource_policy, str)
                else resource_policy
            )
            policies = self._anonymous.get(policy) or self._remember_anonymous(policy)
        request = make_request(action, resource, ANONYMOUS, context, resource_account)
        return AnonymousResult(action, resource, context, policies.authorize(request))

    def _remember_anonymous(self, policy: Policy) -> PolicySet:
        policies = PolicySet(resource=policy)
        with self._lock:
            if len(self._anonymous) >= _CACHE_LIMIT:
                self._anonymous.clear()
            self._anonymous[policy] = policies
        return policies

    def encode(self, result: CheckResult, now: datetime) -> str:
        """The encoded authorization message of ``result`` (sealed; see
        :mod:`fedbroker.credentials.authz_message`)."""
        caller = result.caller
        content = describe(
            result.decision,
            action=result.action,
            resource=result.resource,
            principal={
                "id": caller.identity.principal_id,
                "arn": caller.arn,
                "account": caller.account.id,
            },
            context=result.context,
        )
        return seal_message(self.keyring, content, now)

    def _policies(self, caller: Caller, resource_policy: Policy | str | None) -> PolicySet:
        base = caller.policy_set(self.cache) or _ROOT
        if resource_policy is None:
            return base
        policy = (
            self._parse(resource_policy) if isinstance(resource_policy, str) else resource_policy
        )
        key = (base, policy)
        combined = self._combined.get(key)
        if combined is None:
            combined = PolicySet(
                identity=base.identity,
                boundary=base.boundary,
                session=base.session,
                resource=policy,
            )
            with self._lock:
                if len(self._combined) >= _CACHE_LIMIT:
                    self._combined.clear()
                self._combined[key] = combined
        return combined

    def _parse(self, text: str) -> Policy:
        policy = self._resource_policies.get(text)
        if policy is None:
            policy = parse_policy(text, PolicyKind.RESOURCE, "resource policy")
            with self._lock:
                if len(self._resource_policies) >= _CACHE_LIMIT:
                    self._resource_policies.clear()
                self._resource_policies[text] = policy
        return policy


def _merge(context: dict[str, object], extra: Mapping[str, object]) -> None:
    derived = {key.lower() for key in context}
    for key, value in extra.items():
        lowered = key.lower()
        if lowered not in _TRANSPORT_KEYS and (
            lowered in derived or lowered.startswith(_DERIVED_PREFIXES)
        ):
            raise ValueError(f"context key `{key}` comes from the credentials and cannot be set")
        for existing in [k for k in context if k.lower() == lowered]:
            del context[existing]
        context[key] = value
