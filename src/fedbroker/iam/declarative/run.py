"""Applying a directory file: run the plan's IAM calls as the account's root user, audit each
one as the API would, and re-plan until the directory matches.

Concurrent writers (another ``fedbroker apply``, API calls) can change the directory between
planning and a call. A change whose call finds the directory not as planned (the entity
already exists, is gone, is still in use, or a limit was reached meanwhile) is skipped; the
rest of the round goes on, then the directory is read again and re-planned. ``apply`` returns
only once a plan read after its last write comes back empty, so when several applies of one
file race, the last one to finish has seen the directory equal to the file after every other
writer had stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fedbroker.audit.events import UserIdentity
from fedbroker.directory.ids import new_request_id
from fedbroker.directory.model import Account, PolicyVersion
from fedbroker.errors import (
    DeleteConflictError,
    EntityAlreadyExistsError,
    FedbrokerError,
    LimitExceededError,
    NoSuchEntityError,
)
from fedbroker.iam.api import RequestMeta, audit
from fedbroker.iam.context import CallContext, Caller, Services
from fedbroker.iam.declarative.plan import Call, Change, plan
from fedbroker.iam.declarative.state import DesiredState
from fedbroker.iam.operations.boundaries import managed_policy_by_arn
from fedbroker.iam.operations.policies import validated
from fedbroker.iam.operations.tagging import merged_tags
from fedbroker.iam.params import Params
from fedbroker.iam.registry import OPERATIONS, Handler
from fedbroker.policy import PolicyKind

INVOKED_BY = "fedbroker apply"
MAX_ROUNDS = 10
# What a concurrent writer can cause: worth reading the directory again and re-planning.
_RACES = (EntityAlreadyExistsError, NoSuchEntityError, DeleteConflictError, LimitExceededError)


class ConcurrentModificationError(FedbrokerError):
    code = "ConcurrentModification"
    status = 409


def apply(
    services: Services,
    account: Account,
    desired: DesiredState,
    *,
    prune: bool = False,
    on_change: Callable[[Change], None] | None = None,
    max_rounds: int = MAX_ROUNDS,
) -> list[Change]:
    """Make ``account``'s directory match ``desired``; returns the changes this call made.

    ``on_change`` is called after each change is made (to print it as it happens). Raises
    :class:`DirectoryFileError` when the file cannot be applied (before any change if the
    directory did not move meanwhile), an IAM error for a call that failed for another
    reason, or :class:`ConcurrentModificationError` if the directory kept changing for
    ``max_rounds`` rounds.
    """
    import fedbroker.iam.operations  # noqa: F401  (registers every operation)

    done: list[Change] = []
    last: FedbrokerError | None = None
    for _ in range(max_rounds):
        changes = plan(services.store, account, desired, prune=prune)
        if not changes:
            return done
        for change in changes:
            try:
                execute(services, account, change)
            except _RACES as exc:
                last = exc  # another writer got there first: the next plan will tell
                continue
            done.append(change)
            if on_change is not None:
                on_change(change)
    because = f" (last: {last.message})" if last is not None else ""
    raise ConcurrentModificationError(
        f"the directory kept changing while it was being applied, {max_rounds} rounds{because}"
    )


def execute(services: Services, account: Account, change: Change) -> None:
    """Run the calls of one change in order, each audited like an IAM API call."""
    identity = UserIdentity("Root", account.id, account.root_arn, account.id, invoked_by=INVOKED_BY)
    caller = Caller(account, None, "")
    for call in change.calls:
        _call(services, caller, identity, call)


def _call(services: Services, caller: Caller, identity: UserIdentity, call: Call) -> None:
    # As for calls AWS services make on a principal's behalf, the source is the tool's name.
    meta = RequestMeta(new_request_id(), INVOKED_BY, INVOKED_BY, True)
    now = services.clock.now()
    ctx = CallContext(services, caller, meta.request_id, meta.source_ip, meta.user_agent, True, now)
    form = dict(call.form)
    account_id = caller.account.id
    handler = _LOCAL[call.action] if call.local else OPERATIONS[call.action].handler
    try:
        handler(ctx, Params(form))
    except FedbrokerError as exc:
        audit(
            services, identity, meta, call.action, form, error=exc, account_id=account_id, now=now
        )
        exc.audited = True
        raise
    audit(
        services,
        identity,
        meta,
        call.action,
        form,
        response=ctx.response_elements,
        account_id=account_id,
        now=now,
    )


# IAM's TagPolicy and UntagPolicy, which the Query API does not offer yet.


def _tag_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    policy = managed_policy_by_arn(ctx, params.arn("PolicyArn"))
    tags = merged_tags(policy, params.tags())
    ctx.store.update_entity(replace(policy, attrs={**policy.attrs, "tags": tags}))
    return {}


def _untag_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    policy = managed_policy_by_arn(ctx, params.arn("PolicyArn"))
    remove = {key.lower() for key in params.members("TagKeys")}
    kept = {k: v for k, v in policy.tags.items() if k.lower() not in remove}
    ctx.store.update_entity(replace(policy, attrs={**policy.attrs, "tags": kept}))
    return {}


def _first_policy_version(ctx: CallContext, params: Params) -> dict[str, Any]:
    """CreatePolicyVersion for a policy that has none: version v1, as CreatePolicy writes it.

    CreatePolicy stores the policy and then its first version; a writer that finds the policy
    between the two must not add a v2 beside the creator's v1 (the policy's default version
    and its versions' default flag could then disagree). Both writing v1, one of them fails.
    """
    policy = managed_policy_by_arn(ctx, params.arn("PolicyArn"))
    document = validated(params.req("PolicyDocument", max_len=131072), PolicyKind.MANAGED)
    ctx.store.add_version(policy, PolicyVersion(policy.arn, "v1", document, True, ctx.now))
    attrs = {**policy.attrs, "default_version": "v1"}
    attrs.setdefault("next_version", 2)
    if attrs != policy.attrs:
        ctx.store.update_entity(replace(policy, attrs=attrs))
    return {}


_LOCAL: dict[str, Handler] = {
    "TagPolicy": _tag_policy,
    "UntagPolicy": _untag_policy,
    "CreatePolicyVersion": _first_policy_version,
}
