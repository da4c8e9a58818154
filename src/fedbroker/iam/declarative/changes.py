"""A plan's values: a :class:`Change` is one line of output and the IAM calls that make it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from fedbroker.directory.model import Kind

NOUN = {Kind.USER: "User", Kind.GROUP: "Group", Kind.ROLE: "Role"}


class Verb(Enum):
    CREATE = "+"
    UPDATE = "~"
    DELETE = "-"


@dataclass(frozen=True, slots=True)
class Call:
    """One IAM API call: the action and its Query parameters.

    ``local`` calls are made by this package's own handler for the action (one the Query API
    does not offer, or a narrower variant of one), audited under the same action name.
    """

    action: str
    form: Mapping[str, str]
    local: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """One change to the directory, made by ``calls`` in order."""

    verb: Verb
    kind: Kind
    name: str
    detail: str | None
    calls: tuple[Call, ...]

    def __str__(self) -> str:
        line = f"{self.verb.value} {self.kind.resource_type} {self.name}"
        return f"{line}: {self.detail}" if self.detail else line


def tag_form(tags: Mapping[str, str]) -> dict[str, str]:
    form: dict[str, str] = {}
    for index, (key, value) in enumerate(tags.items(), start=1):
        form[f"Tags.member.{index}.Key"] = key
        form[f"Tags.member.{index}.Value"] = value
    return form


def members(name: str, values: list[str]) -> dict[str, str]:
    return {f"{name}.member.{index}": value for index, value in enumerate(values, start=1)}


def tag_calls(
    noun: str, target: dict[str, str], current: Mapping[str, str], desired: Mapping[str, str]
) -> tuple[Call, ...]:
    """``Untag…`` what goes, then ``Tag…`` what is new or different (keys ignore case)."""
    calls: list[Call] = []
    wanted = {key.lower() for key in desired}
    removed = [key for key in current if key.lower() not in wanted]
    if removed:
        calls.append(Call(f"Untag{noun}", {**target, **members("TagKeys", removed)}))
    changed = {key: value for key, value in desired.items() if current.get(key) != value}
    if changed:
        calls.append(Call(f"Tag{noun}", {**target, **tag_form(changed)}))
    return tuple(calls)


def policy_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
