"""Decisions are values: an effect, the policy type that decided, and the reasons."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, NamedTuple

from fedbroker.policy.conditions import ConditionMiss
from fedbroker.policy.principals import Via

if TYPE_CHECKING:
    from fedbroker.policy.document import Statement


class Effect(Enum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


# Named tuples, not frozen dataclasses: these are built on every decision, and a tuple is the
# cheapest immutable value Python constructs.


class Match(NamedTuple):
    statement: Statement
    via: Via | None
    error: ConditionMiss | None = None  # a Deny that applied because a condition errored

    def to_dict(self) -> dict[str, object]:
        out = _statement_ref(self.statement)
        if self.via is not None:
            out["principal_match"] = self.via.value
        if self.error is not None:
            out["condition_error"] = self.error.to_dict()
        return out


class Miss(NamedTuple):
    """A statement whose action, resource and principal matched but a condition did not."""

    statement: Statement
    condition: ConditionMiss

    def to_dict(self) -> dict[str, object]:
        out = _statement_ref(self.statement)
        out["reason"] = self.condition.describe()
        out["condition"] = self.condition.to_dict()
        return out


def _statement_ref(stmt: Statement) -> dict[str, object]:
    out: dict[str, object] = {
        "policy": stmt.policy.name if stmt.policy is not None else None,
        "statement": stmt.index + 1,
        "effect": stmt.effect,
    }
    if stmt.sid:
        out["sid"] = stmt.sid
    return out


class GroupOutcome(NamedTuple):
    label: str
    allows: list[Match]
    denies: list[Match]
    misses: list[Miss]

    @property
    def result(self) -> str:
        if self.denies:
            return "ExplicitDeny"
        return "Allow" if self.allows else "ImplicitDeny"

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"result": self.result}
        if self.denies:
            out["denied_by"] = [m.to_dict() for m in self.denies]
        if self.allows:
            out["allowed_by"] = [m.to_dict() for m in self.allows]
        if self.misses:
            out["not_matched"] = [m.to_dict() for m in self.misses]
        return out


class Decision(NamedTuple):
    effect: Effect
    decided_by: str
    outcomes: tuple[GroupOutcome, ...]
    deciding_match: Match | None
    why: Callable[[], str]  # the summary, formatted only when someone reads it

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW

    @property
    def reason(self) -> str:
        return self.why()

    def explanation(self) -> dict[str, object]:
        """A JSON-ready account of the decision: who decided, and what each policy type said."""
        return {
            "summary": self.reason,
            "decided_by": self.decided_by,
            "policy_types": {o.label: o.to_dict() for o in self.outcomes},
        }

    def to_dict(self) -> dict[str, object]:
        return {"decision": self.effect.value, "explanation": self.explanation()}
