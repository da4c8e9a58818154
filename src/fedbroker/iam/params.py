"""Reading AWS Query protocol parameters, with IAM's constraints and error messages."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from fedbroker.errors import ValidationError

NAME = re.compile(r"[\w+=,.@-]+")
PATH = re.compile(r"/|/[\x21-\x7e]+/")
ARN = re.compile(r"arn:[\w+=/,.@-]+:[\w+=/,.@-]+:[\w+=/,.@-]*:[0-9]*:[\w+=,.@:/-]+")
MAX_DESCRIPTION = 1000
MAX_TAGS = 50


class Params:
    """Form parameters of one call. Parameter names are as AWS spells them (``UserName``)."""

    def __init__(self, form: Mapping[str, str]) -> None:
        self.form = dict(form)

    def opt(
        self,
        name: str,
        *,
        max_len: int | None = None,
        min_len: int = 1,
        pattern: re.Pattern[str] | None = None,
    ) -> str | None:
        value = self.form.get(name)
        if value is None:
            return None
        if len(value) < min_len:
            raise _constraint(
                name, value, f"member must have length greater than or equal to {min_len}"
            )
        if max_len is not None and len(value) > max_len:
            raise _constraint(
                name, value, f"member must have length less than or equal to {max_len}"
            )
        if pattern is not None and not pattern.fullmatch(value):
            raise _constraint(
                name, value, f"member must satisfy regular expression pattern: {pattern.pattern}"
            )
        return value

    def req(
        self,
        name: str,
        *,
        max_len: int | None = None,
        min_len: int = 1,
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        value = self.opt(name, max_len=max_len, min_len=min_len, pattern=pattern)
        if value is None:
            raise ValidationError(
                f"1 validation error detected: value null at `{name}` failed "
                "to satisfy constraint: member must not be null"
            )
        return value

    def name(self, field: str, max_len: int = 64, required: bool = True) -> str | None:
        if required:
            return self.req(field, max_len=max_len, pattern=NAME)
        return self.opt(field, max_len=max_len, pattern=NAME)

    def path(self, field: str = "Path", default: str | None = "/") -> str | None:
        value = self.opt(field, max_len=512, pattern=PATH)
        return value if value is not None else default

    def arn(self, field: str) -> str:
        return self.req(field, max_len=2048, min_len=20, pattern=ARN)

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.form.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _constraint(name, raw, "member must be an integer") from None
        if not low <= value <= high:
            raise _constraint(name, raw, f"member must be between {low} and {high}")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        raw = self.form.get(name)
        if raw is None:
            return default
        if raw.lower() not in ("true", "false"):
            raise _constraint(name, raw, "member must be true or false")
        return raw.lower() == "true"

    def members(self, name: str) -> list[str]:
        """``Name.member.1``, ``Name.member.2``, … in order."""
        out: list[str] = []
        index = 1
        while f"{name}.member.{index}" in self.form:
            out.append(self.form[f"{name}.member.{index}"])
            index += 1
        return out

    def tags(self, name: str = "Tags") -> dict[str, str]:
        """``Tags.member.N.Key`` / ``.Value`` with IAM's tag constraints."""
        pairs: list[tuple[str, str]] = []
        index = 1
        while f"{name}.member.{index}.Key" in self.form:
            key = self.form[f"{name}.member.{index}.Key"]
            pairs.append((key, self.form.get(f"{name}.member.{index}.Value", "")))
            index += 1
        return validated_tags(pairs)


def validated_tags(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Tags as IAM accepts them ("Tagging IAM resources"): raises :class:`ValidationError`."""
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise ValidationError("tag keys must be 1 to 128 characters and values at most 256")
        if key.lower().startswith("aws:"):
            raise ValidationError(f"tag key `{key}` uses the reserved prefix `aws:`")
        if key.lower() in (k.lower() for k in tags):
            raise ValidationError(f"duplicate tag key `{key}` (tag keys are case-insensitive)")
        tags[key] = value
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"at most {MAX_TAGS} tags are allowed")
    return tags


def _constraint(name: str, value: str, rule: str) -> ValidationError:
    shown = value if len(value) <= 64 else value[:61] + "..."
    return ValidationError(
        f"1 validation error detected: value `{shown}` at `{name}` failed to "
        f"satisfy constraint: {rule}"
    )
