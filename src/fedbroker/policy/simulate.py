"""The simulator's request format: JSON in, decision out. Pure; the CLI does the I/O.

A request is ``{"policies": {...}, "request": {...}}`` as documented in the README. Compiled
policies are cached by their canonical JSON, so a bulk run that repeats the same policies pays
for parsing once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fedbroker.errors import FedbrokerError, MalformedPolicyDocumentError, ValidationError
from fedbroker.policy.decision import Decision
from fedbroker.policy.document import Policy
from fedbroker.policy.evaluator import PolicySet
from fedbroker.policy.kinds import PolicyKind
from fedbroker.policy.parser import DuplicateKeyError, parse_policy, reject_duplicate_keys
from fedbroker.policy.request import Request, make_request, principal_from_arn

POLICY_FIELDS = ("identity", "boundary", "session", "resource", "scp", "rcp")
REQUEST_FIELDS = (
    "action",
    "resource",
    "principal",
    "principal_type",
    "role_arn",
    "resource_account",
    "context",
)
_CACHE_LIMIT = 256


class Simulator:
    """Answers simulate requests; keeps compiled policy sets between calls."""

    def __init__(self) -> None:
        self._sets: dict[str, PolicySet] = {}

    def run_line(self, line: str) -> dict[str, Any]:
        """One JSON request text in, one result object out; errors become ``{"error": ...}``.

        The line is read with the fast plain parser; the strict parser (which refuses
        duplicate keys) runs only when the policies are not already compiled.
        """
        spans = _top_level_spans(line)
        if spans is not None and "policies" in spans and "request" in spans:
            start, end = spans["policies"]
            cached = self._sets.get(line[start:end])
            if cached is not None:
                try:
                    request = json.loads(
                        line[slice(*spans["request"])], object_pairs_hook=reject_duplicate_keys
                    )
                    if len(spans) == 2:
                        return cached.authorize(build_request(request)).to_dict()
                except (DuplicateKeyError, FedbrokerError, json.JSONDecodeError):
                    pass  # the full path below reports it
        try:
            data = json.loads(line, object_pairs_hook=reject_duplicate_keys)
        except DuplicateKeyError as exc:
            return error_result(ValidationError(f"duplicate key `{exc.args[0]}` in the request"))
        except json.JSONDecodeError as exc:
            return error_result(
                ValidationError(
                    f"the request is not valid JSON: {exc.msg} "
                    f"at line {exc.lineno} column {exc.colno}"
                )
            )
        if spans is not None and "policies" in spans and isinstance(data, Mapping):
            start, end = spans["policies"]
            return self.run(data, line[start:end])
        return self.run(data)

    def run(self, data: Any, policies_text: str | None = None) -> dict[str, Any]:
        try:
            if not isinstance(data, Mapping):
                raise ValidationError("a simulate request must be a JSON object")
            unknown = [k for k in data if k not in ("policies", "request")]
            if unknown:
                raise ValidationError(
                    f"unknown field `{unknown[0]}` (expected `policies` and `request`)"
                )
            policies = self.policy_set(data.get("policies") or {}, policies_text)
            request = build_request(data.get("request"))
            decision: Decision = policies.authorize(request)
            return decision.to_dict()
        except FedbrokerError as exc:
            return error_result(exc)

    def policy_set(self, raw: Any, text: str | None = None) -> PolicySet:
        """The compiled set for ``raw``, cached under its JSON text (``text`` if given)."""
        if not isinstance(raw, Mapping):
            raise ValidationError("`policies` must be an object")
        key = text if text is not None else json.dumps(raw, separators=(",", ":"))
        cached = self._sets.get(key)
        if cached is not None:
            return cached
        built = build_policy_set(raw)
        if len(self._sets) >= _CACHE_LIMIT:
            self._sets.clear()
        self._sets[key] = built
        return built


_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"


def _top_level_spans(line: str) -> dict[str, tuple[int, int]] | None:
    """Where each top-level member's value lies in ``line``; ``None`` if it is not a plain
    object with unique keys (the strict parser then explains what is wrong).

    Compiled policy sets are cached under the exact text of ``policies``, so a bulk run that
    repeats a policy set neither re-parses nor re-serialises it.
    """
    try:
        index = _skip(line, 0)
        if line[index] != "{":
            return None
        spans: dict[str, tuple[int, int]] = {}
        index = _skip(line, index + 1)
        while line[index] != "}":
            if line[index] != '"':
                return None
            key, index = json.decoder.scanstring(line, index + 1)  # type: ignore[attr-defined]
            index = _skip(line, index)
            if line[index] != ":" or key in spans:
                return None
            start = _skip(line, index + 1)
            _, end = _DECODER.raw_decode(line, start)
            spans[key] = (start, end)
            index = _skip(line, end)
            if line[index] == ",":
                index = _skip(line, index + 1)
            elif line[index] != "}":
                return None
        return spans if not line[index + 1 :].strip() else None
    except (IndexError, ValueError):
        return None


def _skip(text: str, index: int) -> int:
    while text[index] in _SPACE:
        index += 1
    return index


def error_result(exc: FedbrokerError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message}}


def build_policy_set(raw: Mapping[str, Any]) -> PolicySet:
    unknown = [k for k in raw if k not in POLICY_FIELDS]
    if unknown:
        raise ValidationError(
            f"unknown policy type `{unknown[0]}` (expected one of {', '.join(POLICY_FIELDS)})"
        )

    def one(doc: Any, kind: PolicyKind, name: str) -> Policy:
        try:
            return parse_policy(
                doc if isinstance(doc, str) else _as_object(doc, name),
                kind,
                name,
                enforce_size=False,
            )
        except MalformedPolicyDocumentError as exc:
            exc.message = f"{name}: {exc.message}"
            raise

    def many(field: str, kind: PolicyKind) -> list[Policy]:
        docs = raw.get(field) or []
        if not isinstance(docs, list):
            raise ValidationError(f"`{field}` must be a list of policy documents")
        return [one(d, kind, f"{field}[{i}]") for i, d in enumerate(docs)]

    def levels(field: str, kind: PolicyKind) -> list[list[Policy]]:
        raw_levels = raw.get(field) or []
        if not isinstance(raw_levels, list) or not all(isinstance(x, list) for x in raw_levels):
            raise ValidationError(
                f"`{field}` must be a list of levels, each a list of policy "
                "documents (root first, account last)"
            )
        return [
            [one(d, kind, f"{field}[{i}][{j}]") for j, d in enumerate(level)]
            for i, level in enumerate(raw_levels)
        ]

    session = many("session", PolicyKind.SESSION) if raw.get("session") is not None else None
    boundary = raw.get("boundary")
    resource = raw.get("resource")
    return PolicySet(
        identity=many("identity", PolicyKind.MANAGED),
        boundary=one(boundary, PolicyKind.MANAGED, "boundary") if boundary is not None else None,
        session=session,
        resource=one(resource, PolicyKind.RESOURCE, "resource") if resource is not None else None,
        scp=levels("scp", PolicyKind.SCP),
        rcp=levels("rcp", PolicyKind.RCP),
    )


def _as_object(doc: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise ValidationError(f"`{name}` must be a policy document (an object or JSON text)")
    return doc


def build_request(raw: Any) -> Request:
    if not isinstance(raw, Mapping):
        raise ValidationError("`request` must be an object")
    unknown = [k for k in raw if k not in REQUEST_FIELDS]
    if unknown:
        raise ValidationError(
            f"unknown request field `{unknown[0]}` (expected one of {', '.join(REQUEST_FIELDS)})"
        )
    action = raw.get("action")
    if not isinstance(action, str) or ":" not in action:
        raise ValidationError("`request.action` must be a string like `s3:GetObject`")
    for name in ("resource", "principal", "principal_type", "role_arn", "resource_account"):
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise ValidationError(f"`request.{name}` must be a string")
    context = raw.get("context") or {}
    if not isinstance(context, Mapping):
        raise ValidationError("`request.context` must be an object")
    try:
        principal = None
        if raw.get("principal") is not None:
            principal = principal_from_arn(
                raw["principal"], raw.get("principal_type"), raw.get("role_arn")
            )
        elif raw.get("principal_type") is not None:
            raise ValueError("`request.principal_type` needs `request.principal`")
        return make_request(
            action, raw.get("resource") or "*", principal, context, raw.get("resource_account")
        )
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
