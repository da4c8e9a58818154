"""Condition operators, as a table.

IAM User Guide, "IAM JSON policy elements: Condition operators" and "Single-valued vs.
multivalued context keys". Each operator is one entry: how to read the policy's values, how to
read the request's value, and the positive test. Negated operators are the negation of their
positive twin, value by value, which gives AWS's results:

* key absent: positive operators fail, negated operators succeed, ``...IfExists`` succeeds
  (with or without a set operator), ``ForAllValues:`` succeeds, ``ForAnyValue:`` fails; for
  the set operators an empty list or an empty string is a null data set, like an absent key;
* several policy values for one key are OR-ed; several keys in one operator, and several
  operators in one block, are AND-ed;
* multi-valued keys: plain and ``ForAnyValue:`` need some request value to match some policy
  value, ``ForAllValues:`` needs every request value to; the negated forms ask the same of
  values that match *no* policy value;
* a request value that cannot be read as the operator's type (a number, a date, an address)
  makes the condition an *error*, never a match: an ``Allow`` statement with an error does not
  allow, a ``Deny`` statement with an error denies (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from fedbroker.policy.variables import Template, TemplateError, parse_template
from fedbroker.policy.wildcard import arn_like, compile_arn_chunks, compile_globs

ContextValue = str | tuple[str, ...]
Context = Mapping[str, ContextValue]
ValueTest = Callable[[str], bool]


class ConditionEvalError(ValueError):
    """A request value cannot be read as the operator's type; the message is safe to show."""


class SetMode(Enum):
    SINGLE = ""
    FOR_ALL = "ForAllValues"
    FOR_ANY = "ForAnyValue"


# --- readers for the policy's values and the request's values --------------------------------


def _number(text: str) -> float | int:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    value = float(text)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(text)
    return value


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_EPOCH = re.compile(r"-?\d+(\.\d+)?")


def parse_date(text: str) -> float:
    """Seconds since the epoch for an ISO 8601 date or date-time, or an epoch number."""
    text = text.strip()
    if _EPOCH.fullmatch(text) and not _DATE_ONLY.fullmatch(text):
        return float(text)
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _binary(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64") from exc


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(text: str) -> IpNetwork:
    return ipaddress.ip_network(text.strip(), strict=False)


def _ip_test(networks: Sequence[IpNetwork]) -> ValueTest:
    def test(value: str) -> bool:
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError as exc:
            raise ConditionEvalError(f"`{value}` is not an IP address") from exc
        return any(address in net for net in networks)

    return test


def _bool_value(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(text)
    return lowered


# --- the operator table ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operator:
    """A base operator (no set prefix, no ``IfExists``)."""

    name: str
    family: str
    negated: bool
    variables: bool  # policy variables are substituted in its values
    check_value: Callable[[str], object]  # raises ValueError for a value the policy may not hold
    build: Callable[[Sequence[str]], ValueTest]  # the positive test for one request value


def _string_equals(values: Sequence[str]) -> ValueTest:
    if len(values) == 1:
        return values[0].__eq__
    return frozenset(values).__contains__


def _string_equals_ic(values: Sequence[str]) -> ValueTest:
    folded = frozenset(v.casefold() for v in values)
    return lambda value: value.casefold() in folded


def _string_like(values: Sequence[str]) -> ValueTest:
    return compile_globs(values)


def _numeric(
    compare: Callable[[float | int, float | int], bool],
) -> Callable[[Sequence[str]], ValueTest]:
    def build(values: Sequence[str]) -> ValueTest:
        numbers = [_number(v) for v in values]

        def test(value: str) -> bool:
            try:
                got = _number(value)
            except ValueError as exc:
                raise ConditionEvalError(f"`{value}` is not a number") from exc
            return any(compare(got, n) for n in numbers)

        return test

    return build


def _date(compare: Callable[[float, float], bool]) -> Callable[[Sequence[str]], ValueTest]:
    def build(values: Sequence[str]) -> ValueTest:
        moments = [parse_date(v) for v in values]

        def test(value: str) -> bool:
            try:
                got = parse_date(value)
            except ValueError as exc:
                raise ConditionEvalError(f"`{value}` is not a date") from exc
            return any(compare(got, m) for m in moments)

        return test

    return build


def _bool(values: Sequence[str]) -> ValueTest:
    wanted = frozenset(_bool_value(v) for v in values)
    return lambda value: value.strip().lower() in wanted


def _binary_equals(values: Sequence[str]) -> ValueTest:
    wanted = frozenset(_binary(v) for v in values)

    def test(value: str) -> bool:
        try:
            return _binary(value) in wanted
        except ValueError as exc:
            raise ConditionEvalError("request value is not base64") from exc

    return test


def _ip(values: Sequence[str]) -> ValueTest:
    return _ip_test([_network(v) for v in values])


def _check_arn(value: str) -> object:
    if "${" not in value and len(value.split(":", 5)) != 6 and value != "*":
        raise ValueError("an ARN has six colon-separated parts")
    return value


def _arn(values: Sequence[str]) -> ValueTest:
    patterns = list(values)
    if "*" in patterns:
        return lambda value: True
    return lambda value: any(arn_like(p, value) for p in patterns)


def _eq(a: float, b: float) -> bool:
    return a == b


def _lt(a: float, b: float) -> bool:
    return a < b


def _le(a: float, b: float) -> bool:
    return a <= b


def _gt(a: float, b: float) -> bool:
    return a > b


def _ge(a: float, b: float) -> bool:
    return a >= b


def _any_text(value: str) -> object:
    return value


def _table() -> dict[str, Operator]:
    ops: list[Operator] = []

    def add(
        name: str,
        family: str,
        negated: bool,
        variables: bool,
        check: Callable[[str], object],
        build: Callable[[Sequence[str]], ValueTest],
    ) -> None:
        ops.append(Operator(name, family, negated, variables, check, build))

    for suffix, build in (
        ("Equals", _string_equals),
        ("EqualsIgnoreCase", _string_equals_ic),
        ("Like", _string_like),
    ):
        add(f"String{suffix}", "String", False, True, _any_text, build)
        add(f"StringNot{suffix}", "String", True, True, _any_text, build)
    for name, cmp in (
        ("Equals", _eq),
        ("LessThan", _lt),
        ("LessThanEquals", _le),
        ("GreaterThan", _gt),
        ("GreaterThanEquals", _ge),
    ):
        add(f"Numeric{name}", "Numeric", False, False, _number, _numeric(cmp))
        add(f"Date{name}", "Date", False, False, parse_date, _date(cmp))
    add("NumericNotEquals", "Numeric", True, False, _number, _numeric(_eq))
    add("DateNotEquals", "Date", True, False, parse_date, _date(_eq))
    add("Bool", "Bool", False, False, _bool_value, _bool)
    add("BinaryEquals", "Binary", False, False, _binary, _binary_equals)
    add("IpAddress", "IpAddress", False, False, _network, _ip)
    add("NotIpAddress", "IpAddress", True, False, _network, _ip)
    for name, negated in (
        ("ArnEquals", False),
        ("ArnLike", False),
        ("ArnNotEquals", True),
        ("ArnNotLike", True),
    ):
        add(name, "Arn", negated, True, _check_arn, _arn)
    add("Null", "Null", False, False, _bool_value, _bool)
    return {op.name.lower(): op for op in ops}


OPERATORS: dict[str, Operator] = _table()
_CANONICAL_NAMES = [op.name for op in OPERATORS.values()]


@dataclass(frozen=True, slots=True)
class OperatorName:
    operator: Operator
    set_mode: SetMode
    if_exists: bool

    @property
    def text(self) -> str:
        prefix = f"{self.set_mode.value}:" if self.set_mode is not SetMode.SINGLE else ""
        return f"{prefix}{self.operator.name}{'IfExists' if self.if_exists else ''}"


def parse_operator(text: str) -> OperatorName:
    """Read ``ForAnyValue:StringLikeIfExists`` and the like; ``ValueError`` with a hint if not."""
    rest = text
    mode = SetMode.SINGLE
    if ":" in rest:
        prefix, rest = rest.split(":", 1)
        modes = {m.value.lower(): m for m in SetMode if m is not SetMode.SINGLE}
        if prefix.lower() not in modes:
            hint = difflib.get_close_matches(prefix, [m.value for m in modes.values()], n=1)
            raise ValueError(f"unknown set operator `{prefix}`" + _did_you_mean(hint))
        mode = modes[prefix.lower()]
    if_exists = False
    base = OPERATORS.get(rest.lower())
    if base is None and rest.lower().endswith("ifexists"):
        base = OPERATORS.get(rest[: -len("IfExists")].lower())
        if_exists = base is not None
    if base is None:
        candidates = _CANONICAL_NAMES + [n + "IfExists" for n in _CANONICAL_NAMES if n != "Null"]
        hint = difflib.get_close_matches(rest, candidates, n=1, cutoff=0.6)
        raise ValueError(f"unknown condition operator `{text}`" + _did_you_mean(hint))
    if base.name == "Null" and (if_exists or mode is not SetMode.SINGLE):
        raise ValueError(f"`Null` cannot be combined with a set operator or `IfExists` in `{text}`")
    return OperatorName(base, mode, if_exists)


def _did_you_mean(hint: list[str]) -> str:
    return f"; did you mean `{hint[0]}`?" if hint else ""


# --- one compiled condition: operator + key + values -----------------------------------------


@dataclass(frozen=True, slots=True)
class ConditionMiss:
    """Why a condition did not hold, for the explanation."""

    operator: str
    key: str
    values: tuple[str, ...]
    request_value: ContextValue | None
    error: str | None = None

    def describe(self) -> str:
        if self.error is not None:
            return (
                f"condition `{self.operator}` on `{self.key}` could not be evaluated: {self.error}"
            )
        if self.request_value is None:
            return (
                f"condition `{self.operator}` on `{self.key}` failed: the key is not in the request"
            )
        shown = (
            self.request_value if isinstance(self.request_value, str) else list(self.request_value)
        )
        return (
            f"condition `{self.operator}` on `{self.key}` failed: request value "
            f"`{shown}` against {list(self.values)}"
        )

    def to_dict(self) -> dict[str, object]:
        req: object = self.request_value
        if isinstance(req, tuple):
            req = list(req)
        out: dict[str, object] = {
            "operator": self.operator,
            "key": self.key,
            "values": list(self.values),
            "request_value": req,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Condition:
    name: OperatorName
    key: str  # lower-cased
    key_text: str  # as written
    values: tuple[str, ...]
    templates: tuple[Template | None, ...]
    static_test: ValueTest | None = field(default=None)

    def test_for(self, context: Context) -> ValueTest | None:
        """The positive per-value test with variables resolved; ``None`` if nothing can match."""
        if self.static_test is not None:
            return self.static_test
        if self.name.operator.family == "Arn":
            return self._arn_test(context)
        resolved: list[str] = []
        for raw, template in zip(self.values, self.templates, strict=True):
            if template is None:
                resolved.append(raw)
                continue
            if self.name.operator.build is _string_like:
                regex = template.resolve_regex(context)
                if regex is not None:
                    resolved.append(_REGEX_MARK + regex)
                continue
            text = template.resolve_text(context)
            if text is not None:
                resolved.append(text)
        if not resolved:
            return None
        if self.name.operator.build is _string_like and any(
            v.startswith(_REGEX_MARK) for v in resolved
        ):
            return _like_with_regexes(resolved)
        return self.name.operator.build(resolved)

    def _arn_test(self, context: Context) -> ValueTest | None:
        matchers: list[ValueTest] = []
        for raw, template in zip(self.values, self.templates, strict=True):
            if template is None:
                matchers.append(self.name.operator.build([raw]))
                continue
            chunks = template.resolve_chunks(context)
            if chunks is not None:
                matchers.append(compile_arn_chunks(chunks))
        if not matchers:
            return None
        return lambda value: any(m(value) for m in matchers)

    def evaluate(self, context: Context) -> ConditionMiss | None:
        """``None`` when the condition holds, else why not. Raises nothing."""
        raw = context.get(self.key)
        op = self.name.operator
        try:
            if op.name == "Null":
                present = raw is not None and raw != ()
                wanted = {_bool_value(v) == "true" for v in self.values}
                return None if (not present) in wanted else self._miss(raw)
            holds = self._holds(raw, context)
        except ConditionEvalError as exc:
            return self._miss(raw, str(exc))
        return None if holds else self._miss(raw)

    def _holds(self, raw: ContextValue | None, context: Context) -> bool:
        mode = self.name.set_mode
        negated = self.name.operator.negated
        if raw == "" and mode is not SetMode.SINGLE:
            raw = ()  # an empty string is a null data set for the set operators
        if raw is None:
            if self.name.if_exists or mode is SetMode.FOR_ALL:
                return True
            if mode is SetMode.FOR_ANY:
                return False
            return negated
        values = (raw,) if isinstance(raw, str) else raw
        test = self.test_for(context)
        if test is None:  # every policy value had an unresolved variable: nothing matches
            test = _matches_nothing
        # Three-valued (Kleene) logic over the request values, so that a definite answer wins
        # and the order of the values never matters: an unreadable value decides only when the
        # readable ones leave the answer open.
        results: list[bool | None] = []
        error: ConditionEvalError | None = None
        for value in values:
            try:
                results.append(test(value))
            except ConditionEvalError as exc:
                results.append(None)
                error = error or exc
        if mode is SetMode.SINGLE:
            outcome = _kleene_any(results)
            outcome = None if outcome is None else outcome != negated
        else:
            per_value = [None if r is None else r != negated for r in results]
            outcome = _kleene_all(per_value) if mode is SetMode.FOR_ALL else _kleene_any(per_value)
        if outcome is None:
            assert error is not None
            raise error
        return outcome

    def _miss(self, raw: ContextValue | None, error: str | None = None) -> ConditionMiss:
        return ConditionMiss(self.name.text, self.key_text, self.values, raw, error)


def _matches_nothing(_: str) -> bool:
    return False


def _kleene_any(results: Sequence[bool | None]) -> bool | None:
    if any(r is True for r in results):
        return True
    return None if any(r is None for r in results) else False


def _kleene_all(results: Sequence[bool | None]) -> bool | None:
    if any(r is False for r in results):
        return False
    return None if any(r is None for r in results) else True


_REGEX_MARK = "\x00re:"


def _like_with_regexes(values: Sequence[str]) -> ValueTest:
    parts = [v[len(_REGEX_MARK) :] for v in values if v.startswith(_REGEX_MARK)]
    plain = [v for v in values if not v.startswith(_REGEX_MARK)]
    plain_test = compile_globs(plain) if plain else None
    regex = re.compile("|".join(f"(?:{p})" for p in parts), re.DOTALL)

    def test(value: str) -> bool:
        if regex.fullmatch(value) is not None:
            return True
        return plain_test is not None and plain_test(value)

    return test


def compile_condition(
    operator_text: str, key: str, values: Sequence[str], variables_enabled: bool
) -> Condition:
    """Compile one operator/key/values triple; ``ValueError`` with a safe message if invalid."""
    name = parse_operator(operator_text)
    op = name.operator
    templates: list[Template | None] = []
    for value in values:
        template = None
        if variables_enabled and op.variables:
            try:
                template = parse_template(value)
            except TemplateError as exc:
                raise ValueError(str(exc)) from exc
        if template is None:
            try:
                op.check_value(value)
            except ValueError as exc:
                raise ValueError(
                    f"`{value}` is not a valid value for `{op.name}`" + _value_hint(op)
                ) from exc
        templates.append(template)
    static = None
    if all(t is None for t in templates) and op.name != "Null":
        static = op.build(values)
    return Condition(name, key.lower(), key, tuple(values), tuple(templates), static)


def _value_hint(op: Operator) -> str:
    hints = {
        "Numeric": " (expected an integer or decimal number)",
        "Date": " (expected an ISO 8601 date or an epoch time)",
        "Bool": " (expected `true` or `false`)",
        "Null": " (expected `true` or `false`)",
        "Binary": " (expected base64)",
        "IpAddress": " (expected an IPv4 or IPv6 address or CIDR block)",
        "Arn": " (expected an ARN, `arn:partition:service:region:account:resource`)",
    }
    return hints.get(op.family, "")
