"""Checking the values of a directory file, each with IAM's own rule, and locating problems.

A :class:`FieldReader` never stops at the first problem: each check records what is wrong
where (``users[2].tags``), and returns a usable value (or ``None``) so that reading goes on
and the whole file is reported at once.
"""

from __future__ import annotations

import difflib
import json

from fedbroker.directory.model import Kind
from fedbroker.errors import (
    LimitExceededError,
    MalformedPolicyDocumentError,
    PolicyTooLargeError,
    ValidationError,
)
from fedbroker.iam.declarative.state import Document, Ref
from fedbroker.iam.operations.common import NAME_LIMITS
from fedbroker.iam.operations.policies import INLINE_KIND, MAX_ATTACHED, check_inline_total
from fedbroker.iam.operations.roles import MAX_SESSION_DURATION, MIN_SESSION_DURATION
from fedbroker.iam.params import MAX_DESCRIPTION, NAME, PATH, validated_tags
from fedbroker.policy import PolicyKind, parse_policy

MAX_PATH = 512
MAX_ARN = 2048
MAX_INLINE_NAME = 128


def at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def shown(value: str) -> str:
    return value if len(value) <= 64 else value[:61] + "..."


class FieldReader:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def mapping(
        self, value: object, where: str, known: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, object] | None:
        if not isinstance(value, dict):
            self.problem(where, "must be a mapping")
            return None
        for key in value:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"expected {', '.join(known)}"
            self.problem(at("" if where == "file" else where, str(key)), f"unknown field; {hint}")
        for key in required:
            if value.get(key) is None:
                self.problem(at(where, key), "required")
        return {str(k): v for k, v in value.items() if k in known}

    def string(self, value: object, where: str) -> str | None:
        if not isinstance(value, str):
            self.problem(where, "must be a string")
            return None
        return value

    def name(self, value: object, where: str, limit: int) -> str | None:
        if value is None:
            return None  # reported as required
        text = self.string(value, where)
        if text is None:
            return None
        if not 1 <= len(text) <= limit:
            self.problem(where, f"`{shown(text)}` must be 1 to {limit} characters")
            return None
        if not NAME.fullmatch(text):
            self.problem(
                where, f"`{shown(text)}` is not a valid name (letters, digits and +=,.@_-)"
            )
            return None
        return text

    def names(self, value: object, where: str, limit: int) -> tuple[Ref, ...]:
        refs: list[Ref] = []
        seen: set[str] = set()
        for index, item in enumerate(self.list_of(value, where)):
            name = self.name(item, f"{where}[{index}]", limit)
            if name is None:
                continue
            if name.lower() in seen:
                self.problem(f"{where}[{index}]", f"`{name}` is listed twice")
                continue
            seen.add(name.lower())
            refs.append(Ref(name, f"{where}[{index}]"))
        return tuple(refs)

    def list_of(self, value: object, where: str) -> list[object]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(where, "must be a list")
            return []
        return value

    def policy_ref(self, value: object, where: str) -> Ref | None:
        if value is None:
            return None
        text = self.string(value, where)
        if text is None:
            return None
        # Any ARN is read here; the plan says which ones this account can attach.
        is_arn = text.startswith("arn:") and len(text) <= MAX_ARN
        if not is_arn and not (NAME.fullmatch(text) and len(text) <= NAME_LIMITS[Kind.POLICY]):
            self.problem(where, f"`{shown(text)}` is neither a managed policy name nor an ARN")
            return None
        return Ref(text, where)

    def policy_refs(self, value: object, where: str) -> tuple[Ref, ...]:
        refs: list[Ref] = []
        seen: set[str] = set()
        for index, item in enumerate(self.list_of(value, where)):
            ref = self.policy_ref(item, f"{where}[{index}]")
            if ref is None:
                continue
            key = ref.text.rsplit("/", 1)[-1].lower()
            if key in seen:
                self.problem(ref.where, f"policy `{ref.text}` is listed twice")
                continue
            seen.add(key)
            refs.append(ref)
        if len(refs) > MAX_ATTACHED:
            self.problem(where, f"at most {MAX_ATTACHED} managed policies can be attached")
        return tuple(refs)

    def path(self, value: object, where: str) -> str:
        if value is None:
            return "/"
        text = self.string(value, where)
        if text is None:
            return "/"
        if len(text) > MAX_PATH or not PATH.fullmatch(text):
            self.problem(
                where,
                f"`{shown(text)}` is not a valid path (it begins and ends with `/`, "
                f"at most {MAX_PATH} characters)",
            )
        return text

    def description(self, value: object, where: str) -> str:
        if value is None:
            return ""
        text = self.string(value, where) or ""
        if len(text) > MAX_DESCRIPTION:
            self.problem(where, f"at most {MAX_DESCRIPTION} characters")
        return text

    def duration(self, value: object, where: str) -> int:
        if value is None:
            return MIN_SESSION_DURATION
        if type(value) is not int or not MIN_SESSION_DURATION <= value <= MAX_SESSION_DURATION:
            self.problem(
                where,
                f"must be a whole number of seconds from {MIN_SESSION_DURATION} "
                f"to {MAX_SESSION_DURATION}",
            )
            return MIN_SESSION_DURATION
        return value

    def tags(self, value: object, where: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(where, "must be a mapping of tag keys to values")
            return {}
        pairs: list[tuple[str, str]] = []
        for key, tag_value in value.items():
            if not isinstance(key, str) or not isinstance(tag_value, str):
                self.problem(at(where, str(key)), "tag keys and values are strings (quote them)")
                continue
            pairs.append((key, tag_value))
        try:
            return validated_tags(pairs)
        except ValidationError as exc:
            self.problem(where, exc.message)
            return {}

    def document(self, value: object, where: str, kind: PolicyKind) -> Document | None:
        if value is None:
            return None  # reported as required
        if isinstance(value, str):
            text = value
        elif isinstance(value, dict):
            try:
                text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError):
                self.problem(where, "holds values that JSON cannot represent")
                return None
        else:
            self.problem(where, "must be a policy document: a mapping, or its JSON text")
            return None
        try:
            parse_policy(text, kind, name=where)
        except MalformedPolicyDocumentError as exc:
            for problem in exc.problems:
                self.problem(where, str(problem))
            return None
        except PolicyTooLargeError as exc:
            self.problem(where, f"policy: {exc.message}")
            return None
        return Document(json.loads(text), text)

    def inline(
        self, value: object, where: str, owner: Kind, owner_name: str | None
    ) -> dict[str, Document]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(where, "must be a mapping of inline policy names to documents")
            return {}
        documents: dict[str, Document] = {}
        seen: set[str] = set()
        for key, item in value.items():
            here = at(where, str(key))
            name = self.name(key, here, MAX_INLINE_NAME) if key is not None else None
            document = self.document(item, here, INLINE_KIND[owner])
            if item is None:
                self.problem(here, "required: the policy document")
            if name is None or document is None:
                continue
            if name.lower() in seen:
                self.problem(here, f"inline policy `{name}` is defined twice (names ignore case)")
                continue
            seen.add(name.lower())
            documents[name] = document
        try:
            check_inline_total(owner, owner_name or "?", [d.text for d in documents.values()])
        except LimitExceededError as exc:
            self.problem(where, exc.message)
        return documents
