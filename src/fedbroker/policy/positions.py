"""Where each statement sits in a policy document's text, as IAM's simulator reports it.

IAM API Reference, "Statement" and "Position": ``StartPosition`` and ``EndPosition`` give the
line and column of a statement in the policy as written. Lines and columns count from 1, and
each position is the column just after the statement's opening and closing brace: that is
what IAM answers for the documented ``aws iam simulate-custom-policy`` example (a statement
whose braces are at columns 37 and 166 of a one-line policy is reported as 38 to 167).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Span:
    start: Position
    end: Position


def statement_spans(text: str) -> list[Span]:
    """The span of each statement of the document ``text``, in document order.

    ``text`` is a document that already parsed; for anything else the answer is an empty list,
    never an error (positions are a courtesy, not part of a decision).
    """
    try:
        offsets = _statement_offsets(text)
    except (ValueError, IndexError):
        return []
    return [Span(_position(text, start + 1), _position(text, end)) for start, end in offsets]


def _statement_offsets(text: str) -> list[tuple[int, int]]:
    i = _skip(text, 0)
    if text[i] != "{":
        return []
    i = _skip(text, i + 1)
    while text[i] != "}":
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i] != ":":
            raise ValueError("expected a colon")
        i = _skip(text, i + 1)
        if key == "Statement":
            return _elements(text, i)
        _, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i] == ",":
            i = _skip(text, i + 1)
    return []


def _elements(text: str, i: int) -> list[tuple[int, int]]:
    if text[i] == "{":
        _, end = _DECODER.raw_decode(text, i)
        return [(i, end)]
    if text[i] != "[":
        return []
    spans: list[tuple[int, int]] = []
    i = _skip(text, i + 1)
    while text[i] != "]":
        _, end = _DECODER.raw_decode(text, i)
        spans.append((i, end))
        i = _skip(text, end)
        if text[i] == ",":
            i = _skip(text, i + 1)
    return spans


def _skip(text: str, i: int) -> int:
    match = _WHITESPACE.match(text, i)
    return match.end() if match else i


def _position(text: str, offset: int) -> Position:
    line_start = text.rfind("\n", 0, offset) + 1
    return Position(text.count("\n", 0, offset) + 1, offset - line_start + 1)
