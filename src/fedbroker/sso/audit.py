"""Audit events of the browser sign-in itself: one per sign-in attempt, and one for a request
for role credentials refused before it reached :func:`fedbroker.sso.service.issue`.

A sign-in is recorded the way CloudTrail records a federated sign-in to the AWS console:
``eventSource`` ``signin.amazonaws.com``, ``eventName`` ``ConsoleLogin``,
``responseElements: {"ConsoleLogin": "Success" | "Failure"}``; a failure has ``errorCode``
``SignInFailed`` and the precise reason as ``errorMessage`` (never a token, code or
assertion: the reasons are written by the sign-in code, which never puts them there).
"""

from __future__ import annotations

import contextlib

from fedbroker.audit.events import AuditEvent, UserIdentity
from fedbroker.errors import FedbrokerError
from fedbroker.iam.api import RequestMeta
from fedbroker.iam.context import Services
from fedbroker.sso.identity import SignedIn
from fedbroker.sso.service import EVENT_NAMES, Via, audit_identity, issue_parameters
from fedbroker.sts.api import StsContext, run_audited

SIGN_IN_SOURCE = "signin.amazonaws.com"
SIGN_IN_EVENT = "ConsoleLogin"


class InvalidCsrfTokenError(FedbrokerError):
    code = "InvalidCsrfToken"
    status = 403


def audit_sign_in(
    services: Services,
    meta: RequestMeta,
    *,
    kind: str,
    provider_name: str | None,
    who: SignedIn | None = None,
    failure: str | None = None,
) -> None:
    """One ``ConsoleLogin`` event: ``who`` signed in, or the attempt failed for ``failure``."""
    parameters: dict[str, str] = {"kind": kind}
    if provider_name is not None:
        parameters["provider"] = provider_name[:256]
    services.audit.emit(
        AuditEvent(
            event_time=services.clock.now(),
            event_source=SIGN_IN_SOURCE,
            event_name=SIGN_IN_EVENT,
            region=services.region,
            source_ip=meta.source_ip,
            user_agent=meta.user_agent,
            user_identity=audit_identity(who) if who is not None else UserIdentity("Unknown"),
            request_id=meta.request_id,
            request_parameters=parameters,
            response_elements={"ConsoleLogin": "Failure" if failure else "Success"},
            error_code="SignInFailed" if failure else None,
            error_message=failure,
            additional={"via": "broker-session"},
        )
    )


def refuse_audited(
    services: Services,
    meta: RequestMeta,
    who: SignedIn,
    role_arn: str,
    error: FedbrokerError,
    via: Via,
) -> None:
    """Audit ``error`` as a refused request of ``who`` for ``role_arn`` credentials (the event
    a refused :func:`~fedbroker.sso.service.issue_audited` writes); nothing is issued."""

    def refuse(ctx: StsContext) -> None:
        ctx.identity = audit_identity(who)
        raise error

    with contextlib.suppress(FedbrokerError):  # audited; the caller answers the request
        run_audited(
            services,
            meta,
            EVENT_NAMES[who.kind],
            issue_parameters(who, role_arn, None),
            refuse,
            additional={"via": via},
        )
