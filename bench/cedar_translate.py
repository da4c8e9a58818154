"""Translate the benchmark's IAM identity policies into equivalent Cedar policies.

Each IAM statement becomes one ``permit`` (``Allow``) or ``forbid`` (``Deny``):

* a statement whose actions are all literal names scopes ``action in [Action::"..."]``;
  action wildcards become ``context.action like "s3:Get*"`` (Cedar cannot glob an entity id,
  so the request carries the action name as a string too); ``NotAction`` negates the test;
* one literal resource scopes ``resource == Resource::"arn..."``; several, or wildcards,
  become ``resource == ...`` / ``context.resource like "..."`` alternatives; ``*`` adds nothing;
* ``StringEquals`` on key ``k`` with values ``v1, v2`` becomes
  ``context has "k" && (context["k"] == "v1" || context["k"] == "v2")`` (IAM: a missing key
  never equals anything).

Cedar's semantics then match IAM's for one identity-policy set: any satisfied ``forbid`` denies,
otherwise any satisfied ``permit`` allows, otherwise the request is implicitly denied.
Only the constructs the workload generator emits are supported; anything else raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class UnsupportedStatementError(ValueError):
    """The statement uses a construct this translator does not handle."""


def _quote(text: str) -> str:
    if '"' in text or "\\" in text:
        raise UnsupportedStatementError(f"cannot quote {text!r}")
    return f'"{text}"'


def _listify(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(i, str) for i in items):
        raise UnsupportedStatementError("expected strings")
    return list(items)


def _is_glob(pattern: str) -> bool:
    if "?" in pattern:
        raise UnsupportedStatementError("`?` wildcards have no Cedar `like` equivalent here")
    return "*" in pattern


def _any_of(tests: Iterable[str]) -> str:
    return " || ".join(tests)


def _action_test(pattern: str) -> str:
    if _is_glob(pattern):
        return f"context.action like {_quote(pattern)}"
    return f"action == Action::{_quote(pattern)}"


def _resource_test(pattern: str) -> str:
    if _is_glob(pattern):
        return f"context.resource like {_quote(pattern)}"
    return f"resource == Resource::{_quote(pattern)}"


def _conditions(block: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for operator, keys in block.items():
        if operator != "StringEquals":
            raise UnsupportedStatementError(f"operator {operator} is not translated")
        for key, raw in keys.items():
            values = _listify(raw)
            ref = f"context[{_quote(key)}]"
            equals = _any_of(f"{ref} == {_quote(v)}" for v in values)
            out.append(f"context has {_quote(key)} && ({equals})")
    return out


def statement_to_cedar(statement: Mapping[str, Any], policy_id: str) -> str:
    """One Cedar policy for one IAM identity-policy statement."""
    allowed = {"Sid", "Effect", "Action", "NotAction", "Resource", "Condition"}
    unknown = set(statement) - allowed
    if unknown:
        raise UnsupportedStatementError(f"unsupported elements {sorted(unknown)}")
    effect = {"Allow": "permit", "Deny": "forbid"}[statement["Effect"]]
    when: list[str] = []

    action_scope = "action"
    if "NotAction" in statement:
        patterns = _listify(statement["NotAction"])
        if "*" in patterns:
            raise UnsupportedStatementError('"NotAction": "*" matches nothing')
        when.append("!(" + _any_of(_action_test(p) for p in patterns) + ")")
    else:
        patterns = _listify(statement["Action"])
        if "*" not in patterns:
            if any(_is_glob(p) for p in patterns):
                when.append(_any_of(_action_test(p) for p in patterns))
            else:
                ids = ", ".join(f"Action::{_quote(p)}" for p in patterns)
                action_scope = f"action in [{ids}]"

    resource_scope = "resource"
    resources = _listify(statement["Resource"])
    if "*" not in resources:
        if len(resources) == 1 and not _is_glob(resources[0]):
            resource_scope = f"resource == Resource::{_quote(resources[0])}"
        else:
            when.append(_any_of(_resource_test(p) for p in resources))

    when.extend(_conditions(statement.get("Condition") or {}))
    text = f"@id({_quote(policy_id)})\n{effect}(principal, {action_scope}, {resource_scope})"
    if when:
        text += "\nwhen { " + " && ".join(f"({c})" for c in when) + " }"
    return text + ";"


def documents_to_cedar(documents: Iterable[Mapping[str, Any]]) -> str:
    """The whole policy set as one Cedar text, one policy per IAM statement."""
    policies: list[str] = []
    for p_index, document in enumerate(documents):
        statements = document["Statement"]
        if isinstance(statements, Mapping):
            statements = [statements]
        for s_index, statement in enumerate(statements):
            policies.append(statement_to_cedar(statement, f"p{p_index}/{s_index + 1}"))
    return "\n\n".join(policies) + "\n"


def cedar_context(action: str, resource: str, context: Mapping[str, str]) -> dict[str, str]:
    """The Cedar request context: the IAM context plus the action and resource as strings."""
    out = dict(context)
    out["action"] = action
    out["resource"] = resource
    return out
