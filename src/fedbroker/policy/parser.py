"""Parse and validate a policy document, then compile it.

IAM User Guide, "IAM JSON policy elements reference" and "Grammar of the IAM JSON policy
language". Every problem in a document is collected (not just the first), each located by
statement number, ``Sid`` and field, and raised together as ``MalformedPolicyDocument``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from fedbroker.errors import MalformedPolicyDocumentError, PolicyProblem, PolicyTooLargeError
from fedbroker.policy.conditions import Condition, compile_condition
from fedbroker.policy.document import (
    VERSION_2008,
    VERSION_2012,
    Policy,
    ResourceSpec,
    Statement,
)
from fedbroker.policy.kinds import PolicyKind, policy_size
from fedbroker.policy.principals import PrincipalSpec, parse_principal
from fedbroker.policy.variables import Template, TemplateError, parse_template
from fedbroker.policy.wildcard import compile_globs

TOP_LEVEL = ("Version", "Id", "Statement")
STATEMENT_KEYS = (
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)
_SERVICE = re.compile(r"[a-z0-9][a-z0-9\-]*")
_ACTION_NAME = re.compile(r"[A-Za-z0-9_\-*?]+")
_IAM_SID = re.compile(r"[A-Za-z0-9]*")
_CONDITION_KEY = re.compile(r"[^\s:]+:\S+")
_IDENTITY_KINDS = frozenset(
    {
        PolicyKind.MANAGED,
        PolicyKind.INLINE_USER,
        PolicyKind.INLINE_GROUP,
        PolicyKind.INLINE_ROLE,
        PolicyKind.SESSION,
        PolicyKind.TRUST,
    }
)


class DuplicateKeyError(ValueError):
    pass


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def load_json(text: str) -> Any:
    """JSON with duplicate keys refused (a duplicated block would silently drop a condition)."""
    try:
        return json.loads(text, object_pairs_hook=reject_duplicate_keys)
    except DuplicateKeyError as exc:
        raise MalformedPolicyDocumentError(
            [PolicyProblem(f"duplicate key `{exc.args[0]}`; each element may appear once")]
        ) from None
    except json.JSONDecodeError as exc:
        raise MalformedPolicyDocumentError(
            [PolicyProblem(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
        ) from None


def parse_policy(
    document: str | Mapping[str, Any],
    kind: PolicyKind = PolicyKind.MANAGED,
    name: str | None = None,
    *,
    enforce_size: bool = True,
) -> Policy:
    """Validate and compile ``document`` (JSON text or an already-decoded object).

    Raises :class:`MalformedPolicyDocumentError` listing every problem, or
    :class:`PolicyTooLargeError` when the document is over the size limit for ``kind``.
    """
    rules = kind.rules
    text = document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))
    if enforce_size:
        size = policy_size(text, rules.count_whitespace)
        if size > rules.max_chars:
            raise PolicyTooLargeError(
                f"{rules.label} is {size} characters; the limit is {rules.max_chars}"
                + ("" if rules.count_whitespace else " (white space not counted)"),
                code=rules.size_error_code,
                status=rules.size_error_status,
            )
    data = load_json(document) if isinstance(document, str) else document
    return _Parser(kind, name).parse(data)


class _Parser:
    def __init__(self, kind: PolicyKind, name: str | None) -> None:
        self.kind = kind
        self.name = name
        self.problems: list[PolicyProblem] = []

    def problem(
        self,
        message: str,
        statement: int | None = None,
        sid: str | None = None,
        field: str | None = None,
    ) -> None:
        self.problems.append(PolicyProblem(message, statement, sid, field))

    def parse(self, data: Any) -> Policy:
        if not isinstance(data, Mapping):
            raise MalformedPolicyDocumentError([PolicyProblem("a policy must be a JSON object")])
        for key in data:
            if key not in TOP_LEVEL:
                self.problem(_unknown("element", key, TOP_LEVEL))
        version = data.get("Version", VERSION_2008)
        if version not in (VERSION_2012, VERSION_2008):
            self.problem(f"unsupported version `{version}`; use `{VERSION_2012}`", field="Version")
            version = VERSION_2012
        policy_id = data.get("Id")
        if policy_id is not None and not isinstance(policy_id, str):
            self.problem("must be a string", field="Id")
            policy_id = None
        raw_statements = data.get("Statement")
        if raw_statements is None:
            self.problem("missing required element", field="Statement")
            raw_statements = []
        elif isinstance(raw_statements, Mapping):
            raw_statements = [raw_statements]
        elif not isinstance(raw_statements, list):
            self.problem("must be an object or a list of objects", field="Statement")
            raw_statements = []
        elif not raw_statements:
            self.problem("must contain at least one statement", field="Statement")
        statements: list[Statement] = []
        sids: dict[str, int] = {}
        for index, raw in enumerate(raw_statements):
            stmt = self.statement(index, raw, version == VERSION_2012)
            if stmt is None:
                continue
            if stmt.sid:
                if stmt.sid in sids:
                    self.problem(
                        f"duplicate `Sid` (also statement {sids[stmt.sid] + 1}); "
                        "statement ids must be unique",
                        index,
                        stmt.sid,
                        "Sid",
                    )
                sids.setdefault(stmt.sid, index)
            statements.append(stmt)
        if self.problems:
            raise MalformedPolicyDocumentError(self.problems)
        policy = Policy(
            name=self.name or policy_id or self.kind.rules.label,
            kind=self.kind,
            version=version,
            id=policy_id,
            statements=tuple(statements),
            document=data,
        )
        for stmt in statements:
            stmt.policy = policy
        return policy

    def statement(self, index: int, raw: Any, variables: bool) -> Statement | None:
        if not isinstance(raw, Mapping):
            self.problem("must be a JSON object", index)
            return None
        before = len(self.problems)
        sid = raw.get("Sid")
        if sid is not None and not isinstance(sid, str):
            self.problem("must be a string", index, None, "Sid")
            sid = None
        if sid and self.kind in _IDENTITY_KINDS and not _IAM_SID.fullmatch(sid):
            self.problem(
                f"`{sid}` is not valid: IAM statement ids may hold only letters and digits",
                index,
                sid,
                "Sid",
            )

        def report(message: str, field: str | None = None) -> None:
            self.problem(message, index, sid, field)

        for key in raw:
            if key not in STATEMENT_KEYS:
                report(_unknown("element", key, STATEMENT_KEYS))
        effect = raw.get("Effect")
        if effect is None:
            report("missing required element", "Effect")
        elif effect not in ("Allow", "Deny"):
            hint = " (it is case-sensitive)" if str(effect).lower() in ("allow", "deny") else ""
            report(f"must be `Allow` or `Deny`, got `{effect}`{hint}", "Effect")

        actions, not_action = self.pair(raw, "Action", "NotAction", report, required=True)
        action_patterns = self.actions(actions, "NotAction" if not_action else "Action", report)

        resource_rule = self.kind.rules.resource
        resources, not_resource = self.pair(
            raw, "Resource", "NotResource", report, required=resource_rule == "required"
        )
        if resources is not None and resource_rule == "forbidden":
            report(
                f"a {self.kind.rules.label} must not have a resource element",
                "NotResource" if not_resource else "Resource",
            )
        resource_spec = self.resources(
            resources, "NotResource" if not_resource else "Resource", variables, report
        )

        principal_spec, not_principal = self.principal(raw, effect, report)
        conditions = self.conditions(raw.get("Condition"), variables, report)

        if self.kind is PolicyKind.RCP and effect == "Allow" and not _is_full_access(raw):
            report(
                "resource control policies support only `Deny` statements "
                "(RCPFullAWSAccess is always attached)",
                "Effect",
            )
        if self.kind is PolicyKind.TRUST and action_patterns and not not_action:
            bad = [a for a in action_patterns if not a.lower().startswith("sts:") and a != "*"]
            if bad:
                report(
                    f"a role trust policy may only allow `sts:` actions, not `{bad[0]}`", "Action"
                )

        if len(self.problems) > before:
            return None
        services: frozenset[str] | None = None
        if not not_action and "*" not in action_patterns:
            services = frozenset(a.split(":", 1)[0].lower() for a in action_patterns)
        return Statement(
            index=index,
            sid=sid,
            allow=effect == "Allow",
            actions=tuple(action_patterns),
            not_action=not_action,
            action_match=_negate(compile_globs(action_patterns, ignore_case=True), not_action),
            services=services,
            resources=resource_spec,
            not_resource=not_resource,
            principal=principal_spec,
            not_principal=not_principal,
            conditions=tuple(conditions),
        )

    def pair(
        self, raw: Mapping[str, Any], key: str, not_key: str, report: Any, required: bool
    ) -> tuple[Any, bool]:
        if key in raw and not_key in raw:
            report(f"use either `{key}` or `{not_key}`, not both", key)
            return None, False
        if key in raw:
            return raw[key], False
        if not_key in raw:
            return raw[not_key], True
        if required:
            report(f"missing required element (`{key}` or `{not_key}`)", key)
        return None, False

    def strings(self, value: Any, field: str, report: Any) -> list[str]:
        items = value if isinstance(value, list) else [value]
        if not items:
            report("must not be empty", field)
            return []
        out: list[str] = []
        for item in items:
            if not isinstance(item, str) or not item:
                report("must be a non-empty string or a list of them", field)
                return []
            out.append(item)
        return out

    def actions(self, value: Any, field: str, report: Any) -> list[str]:
        if value is None:
            return []
        out: list[str] = []
        for action in self.strings(value, field, report):
            if action == "*":
                out.append(action)
                continue
            service, sep, name = action.partition(":")
            if not sep:
                report(f"`{action}` must be prefaced by a service, e.g. `s3:GetObject`", field)
            elif "*" in service or "?" in service:
                report(f"`{action}`: the service prefix must not contain wildcards", field)
            elif not _SERVICE.fullmatch(service.lower()):
                report(f"`{action}`: `{service}` is not a valid service prefix", field)
            elif not name or not _ACTION_NAME.fullmatch(name):
                report(f"`{action}`: `{name}` is not a valid action name", field)
            else:
                out.append(action)
        return out

    def resources(
        self, value: Any, field: str, variables: bool, report: Any
    ) -> ResourceSpec | None:
        if value is None:
            return None
        statics: list[str] = []
        templates: list[Template] = []
        patterns = self.strings(value, field, report)
        for pattern in patterns:
            if pattern != "*" and len(pattern.split(":", 5)) < 6:
                report(
                    f"`{pattern}` must be in ARN format "
                    "(`arn:partition:service:region:account:resource`) or `*`",
                    field,
                )
                continue
            template = None
            if variables:
                try:
                    template = parse_template(pattern)
                except TemplateError as exc:
                    report(str(exc), field)
                    continue
            if template is None:
                statics.append(pattern)
            else:
                templates.append(template)
        return ResourceSpec(tuple(patterns), compile_globs(statics), tuple(templates))

    def principal(
        self, raw: Mapping[str, Any], effect: Any, report: Any
    ) -> tuple[PrincipalSpec | None, bool]:
        rule = self.kind.rules.principal
        present = [k for k in ("Principal", "NotPrincipal") if k in raw]
        if len(present) == 2:
            report("use either `Principal` or `NotPrincipal`, not both", "Principal")
            return None, False
        if not present:
            if rule == "required":
                report(
                    f"missing required element: a {self.kind.rules.label} must name a principal",
                    "Principal",
                )
            return None, False
        key = present[0]
        if rule == "forbidden":
            report(
                f"a {self.kind.rules.label} must not name a principal (the principal is "
                "whoever it is attached to)",
                key,
            )
            return None, False
        if key == "NotPrincipal" and self.kind is PolicyKind.TRUST:
            report("`NotPrincipal` is not supported in role trust policies", key)
            return None, False
        if key == "NotPrincipal" and effect == "Allow":
            report('`NotPrincipal` may only be used with `"Effect": "Deny"`', key)
            return None, False
        if self.kind is PolicyKind.RCP and raw[key] != "*":
            report('resource control policies accept only `"Principal": "*"`', key)
            return None, False
        spec, problems = parse_principal(raw[key])
        for message in problems:
            report(message, key)
        return spec, key == "NotPrincipal"

    def conditions(self, value: Any, variables: bool, report: Any) -> list[Condition]:
        if value is None:
            return []
        if not isinstance(value, Mapping):
            report("must be an object of operators", "Condition")
            return []
        out: list[Condition] = []
        for operator, block in value.items():
            field = f"Condition.{operator}"
            if not isinstance(block, Mapping) or not block:
                report("must be a non-empty object of condition keys", field)
                continue
            for key, raw_values in block.items():
                if not isinstance(key, str) or not _CONDITION_KEY.fullmatch(key):
                    report(
                        f"condition key `{key}` must be prefaced by a service, e.g. `aws:SourceIp`",
                        field,
                    )
                    continue
                values = _condition_values(raw_values)
                if values is None:
                    report(
                        f"values for `{key}` must be strings, numbers or booleans, or a "
                        "non-empty list of them",
                        field,
                    )
                    continue
                try:
                    out.append(compile_condition(operator, key, values, variables))
                except ValueError as exc:
                    report(str(exc), field)
        return out


def _condition_values(raw: Any) -> list[str] | None:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        return None
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float):
            out.append(json.dumps(item))
        else:
            return None
    return out


def _unknown(what: str, key: Any, known: tuple[str, ...]) -> str:
    exact = [k for k in known if k.lower() == str(key).lower()]
    hint = exact or difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    suffix = f"; did you mean `{hint[0]}`?" if hint else ""
    return f"unknown {what} `{key}`{suffix}"


def _negate(matcher: Any, negate: bool) -> Any:
    if not negate:
        return matcher
    return lambda value: not matcher(value)


def _is_full_access(raw: Mapping[str, Any]) -> bool:
    return (
        raw.get("Action") == "*"
        and raw.get("Resource") == "*"
        and raw.get("Principal") == "*"
        and "Condition" not in raw
    )
