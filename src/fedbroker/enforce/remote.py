"""``POST /authorize``: the check on use for services that cannot run it in-process.

A resource service (in any language) forwards what it received: the signed request's method,
path, query, headers and the SHA-256 of its body, plus the action and resource it maps to,
extra condition keys and, optionally, its resource policy. The broker answers with the
decision, who the principal is, the explanation and (for a denial) an encoded authorization
message to hand back to the requester.

The endpoint is itself SigV4-signed (credential scope service ``fedbroker``) and protected by
the same engine: the caller needs ``fedbroker:Authorize`` on the resource it asks about, with
``fedbroker:RequestedAction`` (the action it asks about) as a condition key. Every answer,
allowed, denied or refused, is one audit event: ``eventSource`` ``fedbroker.amazonaws.com``
(the service prefix of ``fedbroker:Authorize``, as ``sts:`` actions are logged from
``sts.amazonaws.com``), ``eventName`` ``Authorize``, ``userIdentity`` the calling service,
and the principal whose request was decided under ``additionalEventData.subject``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fedbroker.audit.events import AuditEvent, AuditSink, UserIdentity
from fedbroker.credentials.check import CheckResult, RequestChecker
from fedbroker.credentials.sigv4 import HttpRequest
from fedbroker.errors import (
    AccessDeniedError,
    AuthenticationError,
    FedbrokerError,
    SignatureDoesNotMatchError,
    ValidationError,
)

log = logging.getLogger("fedbroker.authorize")

ACTION = "fedbroker:Authorize"
EVENT_SOURCE = "fedbroker.amazonaws.com"
EVENT_NAME = "Authorize"
SCOPE_SERVICE = "fedbroker"
REQUESTED_ACTION_KEY = "fedbroker:RequestedAction"
MAX_CONTEXT_KEYS = 100
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_METHOD = re.compile(r"[A-Z]{1,16}")
_ACTION = re.compile(r"[A-Za-z0-9-]{1,64}:[A-Za-z0-9*?]{1,128}")
_FIELDS = frozenset(
    {
        "method",
        "path",
        "query",
        "headers",
        "payload_hash",
        "action",
        "resource",
        "context",
        "resource_policy",
        "resource_account",
        "source_ip",
        "secure_transport",
    }
)


class SerializationError(FedbrokerError):
    """A body that is not a JSON object (AWS JSON protocols' ``SerializationException``)."""

    code = "SerializationException"
    status = 400


@dataclass(frozen=True, slots=True)
class CallMeta:
    """The ``/authorize`` call itself, as the web layer saw it."""

    request_id: str
    source_ip: str
    user_agent: str
    secure_transport: bool


@dataclass(frozen=True, slots=True)
class AuthorizeQuery:
    """What a service asks: the request it received and what that request would do."""

    request: HttpRequest
    action: str
    resource: str
    context: Mapping[str, object]
    resource_policy: str | None = None
    resource_account: str | None = None
    source_ip: str | None = None
    secure_transport: bool = False


def parse_query(body: bytes) -> AuthorizeQuery:
    """The query in a JSON body; :class:`SerializationError` or :class:`ValidationError`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SerializationError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise SerializationError("the body must be a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ValidationError(f"unknown field `{unknown[0][:64]}`")
    method = _string(data, "method", 16)
    if not _METHOD.fullmatch(method):
        raise ValidationError("`method` must be an HTTP method in capitals")
    path = _string(data, "path", 8192)
    if not path.startswith("/"):
        raise ValidationError("`path` must start with `/`")
    headers = data.get("headers")
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValidationError("`headers` must be an object of strings")
    payload_hash = data.get("payload_hash", _EMPTY_SHA256)
    if not isinstance(payload_hash, str) or not _HEX64.fullmatch(payload_hash):
        raise ValidationError("`payload_hash` must be the hex SHA-256 of the request body")
    action = _string(data, "action", 200)
    if not _ACTION.fullmatch(action):
        raise ValidationError(f"`action` `{action}` is not `service:Action`")
    context = data.get("context", {})
    if not isinstance(context, dict) or len(context) > MAX_CONTEXT_KEYS:
        raise ValidationError(f"`context` must be an object of at most {MAX_CONTEXT_KEYS} keys")
    for key, value in context.items():
        if len(key) > 256 or not (
            isinstance(value, str)
            or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            raise ValidationError(f"context key `{key[:64]}` must hold a string or strings")
    policy = data.get("resource_policy")
    if policy is not None and not isinstance(policy, str):
        policy = json.dumps(policy) if isinstance(policy, dict) else None
        if policy is None:
            raise ValidationError("`resource_policy` must be a policy object or its JSON text")
    secure = data.get("secure_transport", False)
    if not isinstance(secure, bool):
        raise ValidationError("`secure_transport` must be true or false")
    return AuthorizeQuery(
        request=HttpRequest(
            method=method,
            path=path,
            query=_string(data, "query", 16384, required=False),
            headers=headers,
            body=b"",
            body_hash=payload_hash.lower(),
        ),
        action=action,
        resource=_string(data, "resource", 2048),
        context=context,
        resource_policy=policy,
        resource_account=_string(data, "resource_account", 12, required=False) or None,
        source_ip=_string(data, "source_ip", 64, required=False) or None,
        secure_transport=secure,
    )


def _string(data: Mapping[str, Any], name: str, limit: int, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ValidationError(f"`{name}` must be a non-empty string")
    if len(value) > limit:
        raise ValidationError(f"`{name}` is longer than {limit} characters")
    return value


class RemoteAuthorizer:
    """Answers ``POST /authorize`` calls with ``checker`` and audits each to ``audit``."""

    def __init__(self, checker: RequestChecker, audit: AuditSink, region: str) -> None:
        self.checker = checker
        self.audit = audit
        self.region = region

    def handle(self, call: HttpRequest, meta: CallMeta, now: datetime) -> dict[str, Any]:
        """Authenticate and authorize the calling service, then decide the forwarded request.

        Raises :class:`FedbrokerError` (already audited) when the call itself is refused; a
        forwarded request that does not authenticate is an answer, not an error."""
        identity = UserIdentity("Unknown")
        query: AuthorizeQuery | None = None
        try:
            caller = self.checker.authenticate(call, now)
            identity = caller.caller.identity
            if caller.auth.service != SCOPE_SERVICE:
                raise SignatureDoesNotMatchError(
                    f"Credential should be scoped to correct service: '{SCOPE_SERVICE}'."
                )
            query = parse_query(call.body)
            permitted = self.checker.decide(
                caller,
                ACTION,
                query.resource,
                now,
                {REQUESTED_ACTION_KEY: query.action},
                source_ip=meta.source_ip,
                secure_transport=meta.secure_transport,
            )
            if not permitted.allowed:
                raise AccessDeniedError(permitted.denial_message())
            answer, subject, detail = self._decide(query, now)
        except FedbrokerError as exc:
            self.refused(meta, exc, now, identity, query)
            raise
        self._emit(meta, now, identity, query, answer, subject, detail)
        answer["request_id"] = meta.request_id
        return answer

    def _decide(
        self, query: AuthorizeQuery, now: datetime
    ) -> tuple[dict[str, Any], CheckResult | None, str | None]:
        try:
            result = self.checker.check(
                query.request,
                query.action,
                query.resource,
                now,
                query.context,
                query.resource_policy,
                source_ip=query.source_ip,
                secure_transport=query.secure_transport,
                resource_account=query.resource_account,
            )
        except AuthenticationError as exc:
            answer = {
                "decision": "ImplicitDeny",
                "error": {"code": exc.code, "message": exc.message, "status": exc.status},
                "explanation": {
                    "summary": f"the request is not authenticated: {exc.message}",
                    "decided_by": "authentication",
                },
            }
            return answer, None, exc.detail
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        answer = {
            "decision": result.decision.effect.value,
            "principal": principal_of(result),
            "explanation": result.decision.explanation(),
        }
        if not result.allowed:
            answer["message"] = result.denial_message()
            answer["encoded_message"] = self.checker.encode(result, now)
        return answer, result, None

    def refused(
        self,
        meta: CallMeta,
        error: FedbrokerError,
        now: datetime,
        identity: UserIdentity | None = None,
        query: AuthorizeQuery | None = None,
    ) -> None:
        """Audit a call refused before or while it was decided."""
        detail = error.detail
        log.info("/authorize refused: %s (%s)", error.code, detail or error.message)
        self.audit.emit(
            self._event(meta, now, identity or UserIdentity("Unknown"), query, error=error)
        )
        error.audited = True

    def _emit(
        self,
        meta: CallMeta,
        now: datetime,
        identity: UserIdentity,
        query: AuthorizeQuery | None,
        answer: Mapping[str, Any],
        subject: CheckResult | None,
        detail: str | None,
    ) -> None:
        response: dict[str, Any] = {"decision": answer["decision"]}
        additional: dict[str, Any] = {}
        if subject is not None:
            response["principal"] = subject.caller.arn
            response["decidedBy"] = subject.decision.decided_by
            additional["subject"] = subject.caller.identity.to_dict()
        else:
            response["error"] = answer["error"]["code"]
            additional["subjectError"] = detail
        self.audit.emit(
            self._event(meta, now, identity, query, response=response, additional=additional)
        )

    def _event(
        self,
        meta: CallMeta,
        now: datetime,
        identity: UserIdentity,
        query: AuthorizeQuery | None,
        *,
        response: Mapping[str, Any] | None = None,
        additional: Mapping[str, Any] | None = None,
        error: FedbrokerError | None = None,
    ) -> AuditEvent:
        parameters: dict[str, Any] = {}
        if query is not None:
            parameters = {
                "action": query.action,
                "resource": query.resource,
                "method": query.request.method,
                "path": query.request.path[:1024],
            }
        detail = error.detail if error is not None else None
        return AuditEvent(
            event_time=now,
            event_source=EVENT_SOURCE,
            event_name=EVENT_NAME,
            region=self.region,
            source_ip=meta.source_ip,
            user_agent=meta.user_agent,
            user_identity=identity,
            request_id=meta.request_id,
            request_parameters=parameters,
            response_elements=response,
            error_code=error.code if error is not None else None,
            error_message=(
                (
                    f"{error.message} ({detail})"
                    if detail and detail != error.message
                    else error.message
                )
                if error is not None
                else None
            ),
            read_only=True,
            recipient_account_id=identity.account_id,
            additional=additional,
        )


def principal_of(result: CheckResult) -> dict[str, Any]:
    """Who made the forwarded request, as ``/authorize`` reports it."""
    caller = result.caller
    principal = caller.principal
    out: dict[str, Any] = {
        "arn": caller.arn,
        "type": principal.type.value,
        "account": caller.account.id,
        "userid": caller.identity.principal_id,
        "access_key_id": caller.access_key_id,
    }
    session = caller.session
    if principal.role_arn is not None:
        out["role_arn"] = principal.role_arn
    if session is not None:
        if session.role_session_name is not None:
            out["session_name"] = session.role_session_name
        if session.source_identity is not None:
            out["source_identity"] = session.source_identity
        out["session_tags"] = dict(session.tags)
        out["expires"] = session.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out
