"""Glob matching as IAM does it: ``*`` matches any run of characters, ``?`` exactly one.

Patterns are compiled once into the cheapest test that answers them: a set lookup for literal
patterns, a prefix test for ``prefix*``, and one anchored regular expression for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

Matcher = Callable[[str], bool]


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def glob_to_regex(pattern: str) -> str:
    """Regular expression text for one glob pattern (not anchored)."""
    out: list[str] = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _always(_: str) -> bool:
    return True


def _never(_: str) -> bool:
    return False


def compile_globs(patterns: Iterable[str], *, ignore_case: bool = False) -> Matcher:
    """One matcher for "any of these patterns matches the whole value".

    With ``ignore_case`` the caller must pass values already lower-cased; the patterns are
    lower-cased here.
    """
    literals: set[str] = set()
    prefixes: list[str] = []
    regexes: list[str] = []
    for raw in patterns:
        pattern = raw.lower() if ignore_case else raw
        if pattern == "*":
            return _always
        if not has_wildcard(pattern):
            literals.add(pattern)
        elif pattern.endswith("*") and not has_wildcard(pattern[:-1]):
            prefixes.append(pattern[:-1])
        else:
            regexes.append(glob_to_regex(pattern))
    if not prefixes and not regexes:
        if not literals:
            return _never
        if len(literals) == 1:
            (only,) = literals
            return only.__eq__
        return frozenset(literals).__contains__
    prefix_tuple = tuple(prefixes)
    regex = re.compile("|".join(f"(?:{r})" for r in regexes), re.DOTALL) if regexes else None
    fullmatch = regex.fullmatch if regex is not None else None
    lits = frozenset(literals)

    def match(value: str) -> bool:
        if value in lits:
            return True
        if prefix_tuple and value.startswith(prefix_tuple):
            return True
        return fullmatch is not None and fullmatch(value) is not None

    return match


def compile_glob(pattern: str) -> Matcher:
    return compile_globs((pattern,))


def arn_like(pattern: str, value: str) -> bool:
    """``ArnLike``/``ArnEquals``: the six ARN components are matched one by one.

    The first five colon-separated components cannot be crossed by a wildcard; the sixth (the
    resource) is everything after the fifth colon and may itself contain colons.
    """
    p_parts = pattern.split(":", 5)
    v_parts = value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return False
    return all(_component_match(p, v) for p, v in zip(p_parts, v_parts, strict=True))


_component_cache: dict[str, Matcher] = {}


def _component_match(pattern: str, value: str) -> bool:
    if not has_wildcard(pattern):
        return pattern == value
    matcher = _component_cache.get(pattern)
    if matcher is None:
        if len(_component_cache) > 4096:
            _component_cache.clear()
        matcher = compile_glob(pattern)
        _component_cache[pattern] = matcher
    return matcher(value)


def compile_arn_chunks(chunks: Sequence[tuple[str, bool]]) -> Matcher:
    """``ArnLike`` for a policy value assembled from pieces, some of them literal text.

    Used when a value holds policy variables or escapes: a substituted value or ``${*}`` is
    literal, only the policy's own ``*`` and ``?`` are wildcards. Components are split at every
    colon, as for :func:`arn_like`.
    """
    components: list[list[str]] = [[]]
    for text, wild in chunks:
        for ch in text:
            if ch == ":" and len(components) < 6:
                components.append([])
            elif wild and ch == "*":
                components[-1].append(".*")
            elif wild and ch == "?":
                components[-1].append(".")
            else:
                components[-1].append(re.escape(ch))
    if len(components) != 6:
        return _never
    regexes = [re.compile("".join(c), re.DOTALL) for c in components]

    def match(value: str) -> bool:
        parts = value.split(":", 5)
        return len(parts) == 6 and all(
            r.fullmatch(p) is not None for r, p in zip(regexes, parts, strict=True)
        )

    return match
