"""The engines under test, each behind the same two-method adapter.

``decide(request)`` answers one request (for the agreement check); ``pass_over(requests)``
returns a zero-argument function that decides every request of a list once, with everything
that can legitimately be prepared ahead (parsed policies, entity handles, request objects)
prepared outside it. Only what a caller has to do per request runs inside:

* fedbroker: ``make_request(...)`` (context normalisation included) and ``authorize(...)``;
* cedarpy: ``is_authorized(request, policy_set_handle, entities_handle)`` with request
  dictionaries and context JSON prepared ahead (``CedarBatch``: one ``is_authorized_batch``
  call for the whole list, the fastest way cedarpy offers);
* moto: ``IAMPolicy.is_action_permitted`` on each pre-parsed policy, combined the way
  ``moto.iam.access_control.IAMRequestBase.check_action_permitted`` does (the first
  ``DENIED`` decides, else any ``PERMITTED`` allows).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

import cedarpy
from moto.iam.access_control import IAMPolicy, PermissionResult

from bench.cedar_translate import cedar_context, documents_to_cedar
from bench.timing import Pass
from bench.workload import PRINCIPAL_ARN, BenchRequest, Workload
from fedbroker.policy import (
    Effect,
    PolicyKind,
    PolicySet,
    make_request,
    parse_policy,
    principal_from_arn,
)

ALLOW = "Allow"
EXPLICIT_DENY = "ExplicitDeny"
IMPLICIT_DENY = "ImplicitDeny"
DENY = "Deny"  # moto cannot tell the two denies apart reliably (see README)


class Engine(Protocol):
    name: str

    def decide(self, request: BenchRequest) -> str: ...

    def pass_over(self, requests: Sequence[BenchRequest]) -> Pass: ...


class Fedbroker:
    """fedbroker's in-process API."""

    name = "fedbroker"

    def __init__(self, workload: Workload) -> None:
        policies = [
            parse_policy(doc, PolicyKind.MANAGED, name=f"p{i}", enforce_size=False)
            for i, doc in enumerate(workload.documents)
        ]
        self.policies = PolicySet(identity=policies)
        self.principal = principal_from_arn(PRINCIPAL_ARN)

    def decide(self, request: BenchRequest) -> str:
        decision = self.policies.authorize(
            make_request(request.action, request.resource, self.principal, request.context)
        )
        return str(decision.effect.value)

    def explain(self, request: BenchRequest) -> tuple[Effect, bool]:
        """The effect, and whether a condition was the near miss."""
        decision = self.policies.authorize(
            make_request(request.action, request.resource, self.principal, request.context)
        )
        missed = any(outcome.misses for outcome in decision.outcomes)
        return decision.effect, missed

    def pass_over(self, requests: Sequence[BenchRequest]) -> Pass:
        authorize = self.policies.authorize
        principal = self.principal
        args = [(r.action, r.resource, r.context) for r in requests]

        def run() -> None:
            for action, resource, context in args:
                authorize(make_request(action, resource, principal, context))

        return run

    def candidate_count(self, action: str) -> int:
        """How many statements survive the action index for ``action`` (diagnostics only)."""
        group = self.policies._groups["identity"]
        return len(group.candidates(action.lower()))


def _cedar_request(request: BenchRequest) -> dict[str, object]:
    # Entity uids as {"type", "id"} dictionaries: cedarpy parses the surface-syntax string
    # form (User::"...") on every call, which costs it about 20 us more.
    return {
        "principal": {"type": "User", "id": PRINCIPAL_ARN},
        "action": {"type": "Action", "id": request.action},
        "resource": {"type": "Resource", "id": request.resource},
        "context": json.dumps(cedar_context(request.action, request.resource, request.context)),
    }


class Cedar:
    """cedarpy (Cedar's Rust engine) with a pre-parsed policy set and entities handle."""

    name = "cedarpy"

    def __init__(self, workload: Workload) -> None:
        self.text = documents_to_cedar(workload.documents)
        self.policies = cedarpy.PolicySet.from_str(self.text)
        principal = {"uid": {"type": "User", "id": PRINCIPAL_ARN}, "attrs": {}, "parents": []}
        self.entities = cedarpy.Entities.from_json_str(json.dumps([principal]))

    def _verdict(self, result: cedarpy.AuthzResult) -> str:
        errors = result.diagnostics.errors
        if errors:
            raise AssertionError(f"cedar evaluation errors: {errors[:3]}")
        if result.allowed:
            return ALLOW
        return EXPLICIT_DENY if result.diagnostics.reasons else IMPLICIT_DENY

    def decide(self, request: BenchRequest) -> str:
        return self._verdict(
            cedarpy.is_authorized(_cedar_request(request), self.policies, self.entities)
        )

    def pass_over(self, requests: Sequence[BenchRequest]) -> Pass:
        prepared = [_cedar_request(r) for r in requests]
        policies, entities = self.policies, self.entities
        is_authorized = cedarpy.is_authorized

        def run() -> None:
            for request in prepared:
                is_authorized(request, policies, entities)

        return run


class CedarBatch(Cedar):
    """The same, deciding a whole pass in one ``is_authorized_batch`` call."""

    name = "cedarpy-batch"

    def pass_over(self, requests: Sequence[BenchRequest]) -> Pass:
        prepared = [_cedar_request(r) for r in requests]
        policies, entities = self.policies, self.entities
        batch = cedarpy.is_authorized_batch

        def run() -> None:
            batch(prepared, policies, entities)

        return run


def moto_allowed(
    policies: Sequence[IAMPolicy], action: str, resource: str, context: dict[str, str]
) -> bool:
    """moto's combination (``IAMRequestBase.check_action_permitted``) for pre-parsed policies."""
    permitted = False
    for policy in policies:
        result = policy.is_action_permitted(action, resource, None, context)
        if result == PermissionResult.DENIED:
            return False
        if result == PermissionResult.PERMITTED:
            permitted = True
    return permitted


class Moto:
    """moto's IAM policy evaluation, documents parsed once into ``IAMPolicy`` objects."""

    name = "moto"

    def __init__(self, workload: Workload) -> None:
        self.policies = [IAMPolicy(text) for text in workload.document_texts()]

    def decide(self, request: BenchRequest) -> str:
        allowed = moto_allowed(self.policies, request.action, request.resource, request.context)
        return ALLOW if allowed else DENY

    def pass_over(self, requests: Sequence[BenchRequest]) -> Pass:
        policies = self.policies
        args = [(r.action, r.resource, r.context) for r in requests]

        def run() -> None:
            for action, resource, context in args:
                moto_allowed(policies, action, resource, context)

        return run


def agrees(reference: str, other: str) -> bool:
    """Whether ``other`` gives ``reference``'s decision (moto's only as allow / deny)."""
    if other == DENY:
        return reference != ALLOW
    return reference == other
