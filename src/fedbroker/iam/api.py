"""Running one IAM call: find the operation, authorize it with the policy engine, run it,
and write exactly one audit event whatever happens."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fedbroker.audit.events import REDACTED, AuditEvent, UserIdentity
from fedbroker.errors import AccessDeniedError, FedbrokerError, InvalidActionError, ValidationError
from fedbroker.iam.context import CallContext, Caller, Services
from fedbroker.iam.params import Params
from fedbroker.iam.registry import OPERATIONS, Operation
from fedbroker.policy import make_request

T = TypeVar("T")

# Request parameters that are secrets the audit's own list does not name (a SAML
# provider's uploaded private key, IAM's AddPrivateKey).
SECRET_PARAMETERS = frozenset({"AddPrivateKey"})


@dataclass(frozen=True, slots=True)
class RequestMeta:
    request_id: str
    source_ip: str
    user_agent: str
    secure_transport: bool


def execute(
    services: Services, caller: Caller, meta: RequestMeta, action: str, form: dict[str, str]
) -> dict[str, Any]:
    """Run ``action``; raises :class:`FedbrokerError` (already audited) on failure."""
    import fedbroker.iam.operations  # noqa: F401  (registers every operation)

    now = services.clock.now()
    ctx = CallContext(
        services,
        caller,
        meta.request_id,
        meta.source_ip,
        meta.user_agent,
        meta.secure_transport,
        now,
    )
    params = Params(form)
    op = OPERATIONS.get(action)
    try:
        if op is None:
            raise InvalidActionError(f"could not find operation `{action}` for version 2010-05-08")
        authorize(ctx, op, params)
        result = op.handler(ctx, params)
    except FedbrokerError as exc:
        audit(
            services,
            ctx.caller.identity,
            meta,
            action,
            form,
            error=exc,
            read_only=op.read_only if op else False,
            account_id=caller.account.id,
            now=now,
        )
        exc.audited = True
        raise
    audit(
        services,
        caller.identity,
        meta,
        action,
        form,
        response=ctx.response_elements,
        read_only=op.read_only,
        account_id=caller.account.id,
        now=now,
    )
    return result


def authorize(ctx: CallContext, op: Operation, params: Params) -> None:
    """The root user may do anything in its account; everyone else asks the policy engine,
    over their identity policies, boundary and (for a session) session policies."""
    caller = ctx.caller
    policies = caller.policy_set(ctx.services.policies)
    if policies is None:
        return
    resource = op.resource(ctx, params)
    context = caller.request_context(
        ctx.now, ctx.source_ip, ctx.secure_transport, ctx.services.region
    )
    if op.extra_context is not None:
        context.update(op.extra_context(ctx, params))
    request = make_request(f"iam:{op.name}", resource, caller.principal, context, caller.account.id)
    decision = policies.authorize(request)
    explicit = decision.effect.value == "ExplicitDeny"
    grant = op.implicit_grant
    if not decision.allowed and not explicit and grant is not None and grant(ctx, params):
        return
    if not decision.allowed:
        because = "with an explicit deny in " if explicit else "because "
        raise AccessDeniedError(
            f"user: {caller.arn} is not authorized to perform: iam:{op.name} on resource: "
            f"{resource} {because}{decision.reason}"
        )


def audit(
    services: Services,
    identity: UserIdentity,
    meta: RequestMeta,
    action: str,
    form: dict[str, str],
    *,
    response: dict[str, Any] | None = None,
    error: FedbrokerError | None = None,
    read_only: bool = False,
    account_id: str | None = None,
    now: Any = None,
) -> None:
    params = {
        k: REDACTED if k in SECRET_PARAMETERS else v
        for k, v in form.items()
        if k not in ("Action", "Version")
    }
    services.audit.emit(
        AuditEvent(
            event_time=now or services.clock.now(),
            event_source="iam.amazonaws.com",
            event_name=action,
            region=services.region,
            source_ip=meta.source_ip,
            user_agent=meta.user_agent,
            user_identity=identity,
            request_id=meta.request_id,
            request_parameters=params,
            response_elements=response,
            error_code=error.code if error else None,
            error_message=error.audit_message() if error else None,
            read_only=read_only,
            recipient_account_id=account_id,
        )
    )


def paginate(
    items: Sequence[T], params: Params, key: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """IAM's ``Marker``/``MaxItems`` paging: returns the page and the next marker (or None)."""
    max_items = params.integer("MaxItems", 100, 1, 1000)
    marker = params.opt("Marker", max_len=320)
    start = 0
    if marker is not None:
        try:
            after = base64.urlsafe_b64decode(marker.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ValidationError("`Marker` is not a marker this service returned") from None
        start = next((i for i, item in enumerate(items) if key(item) > after), len(items))
    page = list(items[start : start + max_items])
    if start + max_items < len(items):
        return page, base64.urlsafe_b64encode(key(page[-1]).encode()).decode()
    return page, None


def page_result(name: str, page: list[Any], marker: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {name: page, "IsTruncated": marker is not None}
    if marker is not None:
        result["Marker"] = marker
    return result
