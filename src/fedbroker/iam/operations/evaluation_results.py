"""A policy-engine decision in the shape of IAM's ``EvaluationResult``.

IAM API Reference, "EvaluationResult", "ResourceSpecificResult", "Statement". The decision is
the engine's own (the one that authorizes real calls); this module only names things:

* ``MatchedStatements``: for an explicit deny only the denying statements (as IAM documents),
  for an allow every statement that allowed, for an implicit deny none. Each names its policy
  (``SourcePolicyId``/``SourcePolicyType``) and where it sits in the document text.
* ``EvalDecisionDetails``: the answer of the identity-based policies (``IAM Policy``) and, when
  one was given, of the resource-based policy (``Resource Policy``), on their own.
* ``PermissionsBoundaryDecisionDetail`` and ``OrganizationsDecisionDetail``: whether the
  boundary, and every level of service control policies, allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fedbroker.directory.access import PolicySource
from fedbroker.iam.shapes import XmlMap
from fedbroker.policy import Decision, Effect, Policy, Request
from fedbroker.policy.decision import GroupOutcome, Match
from fedbroker.policy.keys import missing_keys
from fedbroker.policy.positions import Span, statement_spans

WIRE_DECISION = {
    Effect.ALLOW: "allowed",
    Effect.EXPLICIT_DENY: "explicitDeny",
    Effect.IMPLICIT_DENY: "implicitDeny",
}
_GROUP_DECISION = {
    "Allow": "allowed",
    "ExplicitDeny": "explicitDeny",
    "ImplicitDeny": "implicitDeny",
}
_DETAIL_NAMES = {"identity": "IAM Policy", "resource": "Resource Policy"}


@dataclass
class Sources:
    """Every policy of one simulation, to name the policy a matched statement belongs to."""

    all: Sequence[PolicySource]
    _by_policy: dict[int, PolicySource] = field(init=False)
    _spans: dict[int, list[Span]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._by_policy = {id(source.policy): source for source in self.all}

    @property
    def policies(self) -> list[Policy]:
        return [source.policy for source in self.all]

    def statement(self, match: Match) -> dict[str, Any]:
        stmt = match.statement
        source = self._by_policy.get(id(stmt.policy))
        if source is None:  # cannot happen: every policy of the set came from a source
            return {"SourcePolicyType": "none"}
        shape: dict[str, Any] = {
            "SourcePolicyId": source.source_id,
            "SourcePolicyType": source.source_type.value,
        }
        spans = self._spans.get(id(source.policy))
        if spans is None:
            spans = self._spans[id(source.policy)] = statement_spans(source.document)
        if stmt.index < len(spans):
            span = spans[stmt.index]
            shape["StartPosition"] = {"Line": span.start.line, "Column": span.start.column}
            shape["EndPosition"] = {"Line": span.end.line, "Column": span.end.column}
        return shape


def evaluation_result(
    decision: Decision, request: Request, sources: Sources, per_resource: bool
) -> dict[str, Any]:
    """One ``EvaluationResult``; with ``per_resource`` also its ``ResourceSpecificResults``."""
    outcomes = {o.label: o for o in decision.outcomes}
    matched = _matched(decision, sources)
    missing = missing_keys(sources.policies, request)
    details = XmlMap(
        {
            wire: _GROUP_DECISION[outcomes[label].result]
            for label, wire in _DETAIL_NAMES.items()
            if label in outcomes
        }
    )
    result: dict[str, Any] = {
        "EvalActionName": request.action,
        "EvalResourceName": request.resource,
        "EvalDecision": WIRE_DECISION[decision.effect],
        "MatchedStatements": matched,
        "MissingContextValues": missing,
        "OrganizationsDecisionDetail": _organizations(decision.outcomes),
        "PermissionsBoundaryDecisionDetail": _boundary(outcomes.get("boundary")),
        "EvalDecisionDetails": details,
    }
    if per_resource:
        result["ResourceSpecificResults"] = [
            {
                "EvalResourceName": request.resource,
                "EvalResourceDecision": WIRE_DECISION[decision.effect],
                "MatchedStatements": matched,
                "MissingContextValues": missing,
                "EvalDecisionDetails": details,
                "PermissionsBoundaryDecisionDetail": result["PermissionsBoundaryDecisionDetail"],
            }
        ]
    return result


def _matched(decision: Decision, sources: Sources) -> list[dict[str, Any]]:
    if decision.effect is Effect.IMPLICIT_DENY:
        return []
    deny = decision.effect is Effect.EXPLICIT_DENY
    return [
        sources.statement(match)
        for outcome in decision.outcomes
        for match in (outcome.denies if deny else outcome.allows)
    ]


def _boundary(outcome: GroupOutcome | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    return {"AllowedByPermissionsBoundary": outcome.result == "Allow"}


def _organizations(outcomes: Sequence[GroupOutcome]) -> dict[str, Any] | None:
    levels = [o for o in outcomes if o.label.startswith("scp[")]
    if not levels:
        return None
    return {"AllowedByOrganizations": all(o.result == "Allow" for o in levels)}
