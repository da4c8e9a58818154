"""The request context keys a policy refers to: in conditions and in policy variables.

IAM API Reference, "GetContextKeysForCustomPolicy" and "SimulatePrincipalPolicy"
(``MissingContextValues``): a policy needs a key when a condition tests it or a variable
(``${aws:username}``) reads it. Keys are case-insensitive, so they are de-duplicated ignoring
case and reported as first written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fedbroker.policy.document import Policy, Statement
from fedbroker.policy.request import Request
from fedbroker.policy.variables import Template, Variable

_VARIABLE_KEY = re.compile(r"\$\{\s*([^\s,'}]+)")


@dataclass(frozen=True, slots=True)
class KeyUse:
    """One reference to a context key. ``name`` is as written in the policy."""

    name: str
    in_condition: bool  # tested by a condition, or read by a variable inside one
    has_default: bool  # a variable with a default always has a value

    @property
    def key(self) -> str:
        return self.name.lower()


def statement_keys(stmt: Statement) -> list[KeyUse]:
    """Every key ``stmt`` refers to, in document order: resource variables, then conditions."""
    uses: list[KeyUse] = []
    if stmt.resources is not None:
        for template in stmt.resources.templates:
            uses.extend(_variable_uses(template, in_condition=False))
    for condition in stmt.conditions:
        uses.append(KeyUse(condition.key_text, True, False))
        for value_template in condition.templates:
            if value_template is not None:
                uses.extend(_variable_uses(value_template, in_condition=True))
    return uses


def policy_keys(policies: Iterable[Policy]) -> list[str]:
    """The keys the policies refer to, sorted and de-duplicated (ignoring case)."""
    return sorted_names(
        use.name
        for policy in policies
        for stmt in policy.statements
        for use in statement_keys(stmt)
    )


def missing_keys(policies: Iterable[Policy], request: Request) -> list[str]:
    """Keys that could change the decision on ``request`` but are absent from its context.

    A statement counts when its action matches. Variables in its resource are needed to match
    the resource at all; its conditions (and their variables) only once the resource matches.
    A variable with a default is never missing.
    """
    context = request.context
    found: list[str] = []
    for policy in policies:
        for stmt in policy.statements:
            if not stmt.action_match(request.action_key):
                continue
            resource_matches = stmt.resources is None or (
                stmt.resources.match(request.resource, context) != stmt.not_resource
            )
            for use in statement_keys(stmt):
                if use.has_default or _present(context, use.key):
                    continue
                if use.in_condition and not resource_matches:
                    continue
                found.append(use.name)
    return sorted_names(found)


def sorted_names(names: Iterable[str]) -> list[str]:
    first: dict[str, str] = {}
    for name in names:
        first.setdefault(name.lower(), name)
    return [first[key] for key in sorted(first)]


def _present(context: Mapping[str, object], key: str) -> bool:
    value = context.get(key)
    return value is not None and value != ()


def _variable_uses(template: Template, in_condition: bool) -> list[KeyUse]:
    return [
        KeyUse(_written(var), in_condition, var.default is not None) for var in template.variables
    ]


def _written(var: Variable) -> str:
    match = _VARIABLE_KEY.match(var.text)
    return match.group(1) if match else var.key
