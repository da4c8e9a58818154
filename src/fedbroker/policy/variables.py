"""Policy variables: ``${aws:username}``, ``${aws:PrincipalTag/team, 'none'}`` and the escapes.

IAM User Guide, "IAM policy elements: Variables and tags". Variables are recognised only in
documents with ``"Version": "2012-10-17"``; elsewhere the text is literal. A variable whose key is
absent from the request, or whose key is multi-valued, has no value unless it names a default;
a value with no value matches nothing (so positive operators fail, negated ones succeed). The
escapes ``${*}``, ``${?}`` and ``${$}`` stand for the literal characters, never for wildcards.
Substituted values are literal text too: a ``*`` in a user name is not a wildcard.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from fedbroker.policy.wildcard import glob_to_regex


@dataclass(frozen=True, slots=True)
class Escaped:
    char: str


@dataclass(frozen=True, slots=True)
class Variable:
    key: str  # lower-cased context key
    text: str  # as written, for explanations
    default: str | None


Part = str | Escaped | Variable

_VARIABLE_BODY = re.compile(r"\s*([A-Za-z0-9_.\-]+:[^\s,'}]+)\s*(?:,\s*'((?:[^']|'')*)'\s*)?")


class TemplateError(ValueError):
    """The text of a variable is malformed; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class Template:
    """A string from a policy with its variables and escapes located."""

    parts: tuple[Part, ...]
    source: str

    @property
    def variables(self) -> tuple[Variable, ...]:
        return tuple(p for p in self.parts if isinstance(p, Variable))

    def resolve_text(self, context: Mapping[str, object]) -> str | None:
        """The literal string, or ``None`` if a variable has no value."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, Escaped):
                out.append(part.char)
            else:
                value = lookup(part, context)
                if value is None:
                    return None
                out.append(value)
        return "".join(out)

    def resolve_chunks(self, context: Mapping[str, object]) -> list[tuple[str, bool]] | None:
        """``(text, wildcards_active)`` pieces: only the template's own ``*``/``?`` are wild."""
        out: list[tuple[str, bool]] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append((part, True))
            elif isinstance(part, Escaped):
                out.append((part.char, False))
            else:
                value = lookup(part, context)
                if value is None:
                    return None
                out.append((value, False))
        return out

    def resolve_regex(self, context: Mapping[str, object]) -> str | None:
        """Regular-expression text where only the template's own wildcards are wildcards."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(glob_to_regex(part))
            elif isinstance(part, Escaped):
                out.append(re.escape(part.char))
            else:
                value = lookup(part, context)
                if value is None:
                    return None
                out.append(re.escape(value))
        return "".join(out)


def lookup(var: Variable, context: Mapping[str, object]) -> str | None:
    value = context.get(var.key)
    if isinstance(value, str):
        return value
    # Missing, or multi-valued (which cannot be a variable): fall back to the default.
    return var.default


def parse_template(text: str) -> Template | None:
    """The template for ``text``, or ``None`` when it holds no ``${``.

    Raises :class:`TemplateError` for an unterminated or malformed variable.
    """
    if "${" not in text:
        return None
    parts: list[Part] = []
    pos = 0
    while True:
        start = text.find("${", pos)
        if start < 0:
            if pos < len(text):
                parts.append(text[pos:])
            break
        if start > pos:
            parts.append(text[pos:start])
        end = _closing_brace(text, start + 2)
        if end < 0:
            raise TemplateError(f"policy variable `{text[start:]}` is not closed with `}}`")
        body = text[start + 2 : end]
        if body in ("*", "?", "$"):
            parts.append(Escaped(body))
        else:
            match = _VARIABLE_BODY.fullmatch(body)
            if match is None:
                raise TemplateError(
                    f"malformed policy variable `${{{body}}}`: expected `${{key}}` or "
                    f"`${{key, 'default'}}`"
                )
            default = match.group(2)
            parts.append(
                Variable(
                    key=match.group(1).lower(),
                    text="${" + body + "}",
                    default=default.replace("''", "'") if default is not None else None,
                )
            )
        pos = end + 1
    return Template(tuple(parts), text)


def _closing_brace(text: str, pos: int) -> int:
    """Index of the ``}`` closing a variable, skipping braces inside a quoted default."""
    quoted = False
    i = pos
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif ch == "}" and not quoted:
            return i
        i += 1
    return -1
