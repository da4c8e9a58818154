"""Running one STS call: find the operation, let it authorize and run, audit it once.

STS operations authorize themselves (AssumeRole weighs the caller's policies together with the
role's trust policy; GetCallerIdentity needs no permission), so unlike IAM there is no
generic check here. Unsigned operations (the web-identity and SAML exchanges) run with no
caller.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fedbroker.audit.events import AuditEvent, UserIdentity
from fedbroker.credentials.caller import Caller
from fedbroker.errors import FedbrokerError, InvalidActionError
from fedbroker.iam.api import RequestMeta
from fedbroker.iam.context import Services
from fedbroker.iam.params import Params

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


@dataclass(slots=True)
class StsContext:
    services: Services
    caller: Caller | None  # None for the unsigned exchanges
    meta: RequestMeta
    now: Any
    response_elements: dict[str, Any] | None = None
    # Who the audit event is about when there is no signed caller (the federated identity).
    identity: UserIdentity | None = None


Handler = Callable[[StsContext, Params], dict[str, Any]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StsOperation:
    name: str
    handler: Handler
    signed: bool
    read_only: bool


OPERATIONS: dict[str, StsOperation] = {}


def sts_operation(
    name: str, *, signed: bool = True, read_only: bool = False
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in OPERATIONS:
            raise RuntimeError(f"STS operation {name} registered twice")
        OPERATIONS[name] = StsOperation(name, handler, signed, read_only)
        return handler

    return register


# Modules whose import registers STS operations (one line per module).
OPERATION_MODULES = (
    "fedbroker.sts.operations",
    "fedbroker.sts.federation_tokens",
    "fedbroker.sts.decode",
    "fedbroker.sts.saml",
    "fedbroker.sts.web_identity",
)


def load_operations() -> None:
    """Import the operation modules (once; the app factory calls it at start-up)."""
    if not _loaded:
        for module in OPERATION_MODULES:
            importlib.import_module(module)
        _loaded.append(True)


_loaded: list[bool] = []


def is_unsigned(action: str) -> bool:
    if not _loaded:
        load_operations()
    op = OPERATIONS.get(action)
    return op is not None and not op.signed


def execute(
    services: Services,
    caller: Caller | None,
    meta: RequestMeta,
    action: str,
    form: dict[str, str],
) -> dict[str, Any]:
    """Run ``action``; raises :class:`FedbrokerError` (already audited) on failure."""
    if not _loaded:
        load_operations()
    now = services.clock.now()
    services.directory.refresh(now)
    ctx = StsContext(services, caller, meta, now)
    op = OPERATIONS.get(action)
    try:
        if op is None:
            raise InvalidActionError(f"could not find operation `{action}` for version 2011-06-15")
        if op.signed and caller is None:
            raise InvalidActionError(f"`{action}` must be signed")
        result = op.handler(ctx, Params(form))
    except FedbrokerError as exc:
        _audit(ctx, action, form, error=exc, read_only=op.read_only if op else False)
        exc.audited = True
        raise
    _audit(ctx, action, form, read_only=op.read_only)
    return result


def run_audited(
    services: Services,
    meta: RequestMeta,
    action: str,
    parameters: dict[str, str],
    run: Callable[[StsContext], T],
    *,
    additional: dict[str, Any] | None = None,
) -> T:
    """Run ``run`` as the unsigned STS operation ``action`` outside the Query API (the browser
    sign-in, the CLI session exchange): one audit event, as :func:`execute` writes, with
    ``parameters`` as its request parameters and ``additional`` as ``additionalEventData``.
    Raises :class:`FedbrokerError` (already audited) on failure."""
    ctx = StsContext(services, None, meta, services.clock.now())
    try:
        result = run(ctx)
    except FedbrokerError as exc:
        _audit(ctx, action, parameters, error=exc, additional=additional)
        exc.audited = True
        raise
    _audit(ctx, action, parameters, additional=additional)
    return result


def _audit(
    ctx: StsContext,
    action: str,
    form: dict[str, str],
    *,
    error: FedbrokerError | None = None,
    read_only: bool = False,
    additional: dict[str, Any] | None = None,
) -> None:
    caller = ctx.caller
    identity = ctx.identity or (caller.identity if caller is not None else UserIdentity("Unknown"))
    params = {k: v for k, v in form.items() if k not in ("Action", "Version")}
    ctx.services.audit.emit(
        AuditEvent(
            event_time=ctx.now,
            event_source="sts.amazonaws.com",
            event_name=action,
            region=ctx.services.region,
            source_ip=ctx.meta.source_ip,
            user_agent=ctx.meta.user_agent,
            user_identity=identity,
            request_id=ctx.meta.request_id,
            request_parameters=params,
            response_elements=ctx.response_elements,
            error_code=error.code if error else None,
            error_message=error.audit_message() if error else None,
            read_only=read_only,
            recipient_account_id=caller.account.id if caller is not None else None,
            additional=additional,
        )
    )
