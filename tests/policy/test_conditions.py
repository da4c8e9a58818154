"""Every condition operator, table by table, evaluated through whole policies.

Expected results follow the IAM User Guide ("IAM JSON policy elements: Condition operators",
"Single-valued vs. multivalued context keys", "IAM policy elements: Variables and tags"):

* key absent: positive operators false, negated operators true, ``...IfExists`` true,
  ``ForAllValues:`` true, ``ForAnyValue:`` false;
* several values for one key are OR-ed, several keys in one operator AND-ed;
* negated operators on multi-valued keys: plain = no request value matches any policy value,
  ``ForAnyValue:`` = some request value matches no policy value, ``ForAllValues:`` = no request
  value matches any policy value;
* a request value that cannot be read as the operator's type fails closed: an Allow does not
  allow, a Deny denies.

Each case is decided twice: in a one-statement Allow identity policy (allowed iff the
condition holds) and in a Deny next to a full-access Allow (denied iff the condition holds).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fedbroker.errors import MalformedPolicyDocumentError
from fedbroker.policy import (
    Effect,
    PolicyKind,
    PolicySet,
    make_request,
    parse_policy,
    principal_from_arn,
)

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
KEY = "aws:ExampleKey"
ABSENT = object()  # the key is not in the request context

V2012 = "2012-10-17"
V2008 = "2008-10-17"


def _doc(*statements: dict[str, Any], version: str = V2012) -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


def _parse(doc: dict[str, Any], name: str) -> Any:
    return parse_policy(doc, PolicyKind.MANAGED, name=name, enforce_size=False)


def _request(context: dict[str, Any]) -> Any:
    return make_request(
        "s3:GetObject",
        "arn:aws:s3:::bucket/key",
        principal_from_arn(ALICE),
        context=context,
        resource_account=ACCOUNT,
    )


def allow_decision(condition: dict[str, Any], context: dict[str, Any], version: str = V2012) -> Any:
    stmt = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": condition}
    policy = _parse(_doc(stmt, version=version), "with-condition")
    return PolicySet(identity=[policy]).authorize(_request(context))


def deny_decision(condition: dict[str, Any], context: dict[str, Any], version: str = V2012) -> Any:
    full = _parse(_doc({"Effect": "Allow", "Action": "*", "Resource": "*"}), "full-access")
    stmt = {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": condition}
    policy = _parse(_doc(stmt, version=version), "deny-with-condition")
    return PolicySet(identity=[full, policy]).authorize(_request(context))


def context_for(value: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    ctx = {} if value is ABSENT else {KEY: value}
    ctx.update(extra or {})
    return ctx


def check(
    operator: str,
    policy_value: Any,
    request_value: Any,
    expected: bool,
    extra: dict[str, Any] | None = None,
    version: str = V2012,
) -> None:
    """The condition ``{operator: {KEY: policy_value}}`` holds iff ``expected``, both ways."""
    condition = {operator: {KEY: policy_value}}
    ctx = context_for(request_value, extra)
    allowed = allow_decision(condition, ctx, version).effect
    assert allowed is (Effect.ALLOW if expected else Effect.IMPLICIT_DENY), (
        f"Allow with {condition} and context {ctx}: {allowed}"
    )
    denied = deny_decision(condition, ctx, version).effect
    assert denied is (Effect.EXPLICIT_DENY if expected else Effect.ALLOW), (
        f"Deny with {condition} and context {ctx}: {denied}"
    )


def _ids(cases: list[tuple[Any, ...]]) -> list[str]:
    return [f"{c[0]}-{c[1]!r}-{'absent' if c[2] is ABSENT else repr(c[2])}"[:80] for c in cases]


# --- String ---------------------------------------------------------------------------------

STRING_CASES: list[tuple[str, Any, Any, bool]] = [
    ("StringEquals", "alice", "alice", True),
    ("StringEquals", "alice", "Alice", False),
    ("StringEquals", "alice", "alice ", False),
    ("StringEquals", "a*", "abc", False),  # no wildcards in StringEquals
    ("StringEquals", "a*", "a*", True),
    ("StringEquals", ["bob", "alice"], "alice", True),  # values OR-ed
    ("StringEquals", ["bob", "carol"], "alice", False),
    ("StringEquals", "alice", ABSENT, False),
    ("StringEquals", 42, "42", True),  # a JSON number is its text
    ("StringEquals", True, "true", True),
    ("StringEquals", "日本", "日本", True),
    ("StringNotEquals", "alice", "bob", True),
    ("StringNotEquals", "alice", "alice", False),
    ("StringNotEquals", "alice", "ALICE", True),
    ("StringNotEquals", ["alice", "bob"], "bob", False),
    ("StringNotEquals", ["alice", "bob"], "carol", True),
    ("StringNotEquals", "alice", ABSENT, True),
    ("StringEqualsIgnoreCase", "Alice", "aLICE", True),
    ("StringEqualsIgnoreCase", "alice", "ALICE", True),
    ("StringEqualsIgnoreCase", "alice", "bob", False),
    ("StringEqualsIgnoreCase", ["x", "ALICE"], "alice", True),
    ("StringEqualsIgnoreCase", "alice", ABSENT, False),
    ("StringNotEqualsIgnoreCase", "Alice", "ALICE", False),
    ("StringNotEqualsIgnoreCase", "Alice", "bob", True),
    ("StringNotEqualsIgnoreCase", ["x", "ALICE"], "alice", False),
    ("StringNotEqualsIgnoreCase", "Alice", ABSENT, True),
    ("StringLike", "home/*", "home/alice/x", True),
    ("StringLike", "home/*", "home/", True),  # * matches the empty run
    ("StringLike", "home/*", "work/alice", False),
    ("StringLike", "home/?", "home/ab", False),
    ("StringLike", "home/??", "home/ab", True),
    ("StringLike", "home/?", "home/", False),  # ? needs exactly one character
    ("StringLike", "a.b", "axb", False),  # regex metacharacters are literal
    ("StringLike", "a.b", "a.b", True),
    ("StringLike", "(a|b)+", "a", False),
    ("StringLike", "(a|b)+", "(a|b)+", True),
    ("StringLike", "[ab]*", "a", False),
    ("StringLike", "a*", "A", False),  # case-sensitive
    ("StringLike", "*", "", True),
    ("StringLike", "line1*", "line1\nline2", True),  # * crosses newlines
    ("StringLike", "a?c", "a\nc", True),
    ("StringLike", "x*", ABSENT, False),
    ("StringLike", ["nope*", "ho?e/*"], "home/alice", True),
    ("StringNotLike", "home/*", "home/alice", False),
    ("StringNotLike", "home/*", "work/alice", True),
    ("StringNotLike", ["work/*", "home/*"], "home/alice", False),
    ("StringNotLike", "a.b", "axb", True),
    ("StringNotLike", "home/*", ABSENT, True),
]


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "expected"), STRING_CASES, ids=_ids(STRING_CASES)
)
def test_string_operators(operator: str, policy: Any, request_value: Any, expected: bool) -> None:
    check(operator, policy, request_value, expected)


# --- Numeric --------------------------------------------------------------------------------

NUMERIC_CASES: list[tuple[str, Any, Any, bool]] = [
    ("NumericEquals", "10", "10", True),
    ("NumericEquals", "10", "10.0", True),
    ("NumericEquals", "1.5", "1.50", True),
    ("NumericEquals", "-3", "-3", True),
    ("NumericEquals", "-3", "3", False),
    ("NumericEquals", "10", "11", False),
    ("NumericEquals", 10, "10", True),  # JSON number in the policy
    ("NumericEquals", 2.5, "2.5", True),
    ("NumericEquals", ["1", "2"], "2", True),
    ("NumericEquals", "0", "-0", True),
    ("NumericEquals", "10", ABSENT, False),
    ("NumericNotEquals", "10", "11", True),
    ("NumericNotEquals", "10", "10.00", False),
    ("NumericNotEquals", ["10", "11"], "11", False),
    ("NumericNotEquals", "10", ABSENT, True),
    ("NumericLessThan", "10", "9", True),
    ("NumericLessThan", "10", "10", False),
    ("NumericLessThan", "10", "11", False),
    ("NumericLessThan", "-1", "-1.5", True),
    ("NumericLessThan", "-1", "-0.5", False),
    ("NumericLessThan", "0.5", "0.25", True),
    ("NumericLessThan", ["1", "100"], "50", True),  # OR-ed: 50 < 100
    ("NumericLessThan", "10", ABSENT, False),
    ("NumericLessThanEquals", "10", "10", True),
    ("NumericLessThanEquals", "10", "10.01", False),
    ("NumericLessThanEquals", "-2.5", "-2.5", True),
    ("NumericLessThanEquals", "10", ABSENT, False),
    ("NumericGreaterThan", "-2", "-1", True),
    ("NumericGreaterThan", "3", "3", False),
    ("NumericGreaterThan", "3", "3.0001", True),
    ("NumericGreaterThan", "3", ABSENT, False),
    ("NumericGreaterThanEquals", "3", "3", True),
    ("NumericGreaterThanEquals", "3", "2.999", False),
    ("NumericGreaterThanEquals", "-10", "-9", True),
    ("NumericGreaterThanEquals", "3", ABSENT, False),
]


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "expected"), NUMERIC_CASES, ids=_ids(NUMERIC_CASES)
)
def test_numeric_operators(operator: str, policy: Any, request_value: Any, expected: bool) -> None:
    check(operator, policy, request_value, expected)


# --- Date -----------------------------------------------------------------------------------

NEW_YEAR = "2024-01-01T00:00:00Z"
NEW_YEAR_EPOCH = "1704067200"

DATE_CASES: list[tuple[str, Any, Any, bool]] = [
    ("DateEquals", NEW_YEAR, NEW_YEAR, True),
    ("DateEquals", NEW_YEAR, "2024-01-01T01:00:00+01:00", True),  # offsets
    ("DateEquals", NEW_YEAR, "2023-12-31T19:00:00-05:00", True),
    ("DateEquals", NEW_YEAR, "2024-01-01T00:00:00+00:00", True),
    ("DateEquals", NEW_YEAR, "2024-01-01T00:00:00+01:00", False),
    ("DateEquals", "2024-01-01", NEW_YEAR, True),  # a date is midnight UTC
    ("DateEquals", NEW_YEAR, "2024-01-01", True),
    ("DateEquals", NEW_YEAR_EPOCH, NEW_YEAR, True),  # epoch seconds in the policy
    ("DateEquals", NEW_YEAR, NEW_YEAR_EPOCH, True),  # ... and in the request
    ("DateEquals", 1704067200, NEW_YEAR, True),  # a JSON number
    ("DateEquals", "2024-01-01T00:00:00.000Z", NEW_YEAR, True),  # fractional seconds
    ("DateEquals", "2024-01-01T00:00:00.500Z", NEW_YEAR, False),
    ("DateEquals", NEW_YEAR, "2024-01-02T00:00:00Z", False),
    ("DateEquals", ["2023-01-01", NEW_YEAR], NEW_YEAR, True),
    ("DateEquals", NEW_YEAR, ABSENT, False),
    ("DateNotEquals", NEW_YEAR, "2024-01-02T00:00:00Z", True),
    ("DateNotEquals", NEW_YEAR, "2024-01-01T02:00:00+02:00", False),
    ("DateNotEquals", NEW_YEAR, ABSENT, True),
    ("DateLessThan", NEW_YEAR, "2023-12-31T23:59:59Z", True),
    ("DateLessThan", NEW_YEAR, NEW_YEAR, False),
    ("DateLessThan", NEW_YEAR, "2024-01-01T00:30:00+01:00", True),  # 23:30 UTC the day before
    ("DateLessThan", NEW_YEAR, "2023-12-31T23:30:00-01:00", False),  # 00:30 UTC
    ("DateLessThan", "2024-01-01T00:00:00.500Z", "2024-01-01T00:00:00.250Z", True),
    ("DateLessThan", "2024-01-01T00:00:00.250Z", "2024-01-01T00:00:00.500Z", False),
    ("DateLessThan", NEW_YEAR_EPOCH, "1704067199", True),
    ("DateLessThan", "2024-01-01", "2023-12-31", True),
    ("DateLessThan", NEW_YEAR, ABSENT, False),
    ("DateLessThanEquals", NEW_YEAR, NEW_YEAR_EPOCH, True),
    ("DateLessThanEquals", NEW_YEAR, "2024-01-01T00:00:01Z", False),
    ("DateLessThanEquals", NEW_YEAR, ABSENT, False),
    ("DateGreaterThan", NEW_YEAR, "2024-01-01T00:00:01Z", True),
    ("DateGreaterThan", NEW_YEAR, NEW_YEAR, False),
    ("DateGreaterThan", NEW_YEAR, "2024-01-01T00:30:00+01:00", False),
    ("DateGreaterThan", NEW_YEAR, ABSENT, False),
    ("DateGreaterThanEquals", "2024-01-01", "2023-12-31T23:59:59Z", False),
    ("DateGreaterThanEquals", "2024-01-01", NEW_YEAR, True),
    ("DateGreaterThanEquals", NEW_YEAR, ABSENT, False),
]


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "expected"), DATE_CASES, ids=_ids(DATE_CASES)
)
def test_date_operators(operator: str, policy: Any, request_value: Any, expected: bool) -> None:
    check(operator, policy, request_value, expected)


# --- Bool, Binary ---------------------------------------------------------------------------

HELLO = base64.b64encode(b"hello").decode()
WORLD = base64.b64encode(b"world").decode()
BYTES = base64.b64encode(bytes(range(256))).decode()

BOOL_BINARY_CASES: list[tuple[str, Any, Any, bool]] = [
    ("Bool", True, "true", True),  # JSON true
    ("Bool", True, "false", False),
    ("Bool", False, "false", True),
    ("Bool", False, "true", False),
    ("Bool", "true", "true", True),  # strings
    ("Bool", "true", "false", False),
    ("Bool", "false", "false", True),
    ("Bool", "true", True, True),  # a boolean in the request context
    ("Bool", "false", False, True),
    ("Bool", "true", ABSENT, False),
    ("Bool", "false", ABSENT, False),
    ("BinaryEquals", HELLO, HELLO, True),
    ("BinaryEquals", HELLO, WORLD, False),
    ("BinaryEquals", [WORLD, HELLO], HELLO, True),
    ("BinaryEquals", BYTES, BYTES, True),
    ("BinaryEquals", HELLO, ABSENT, False),
]


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "expected"),
    BOOL_BINARY_CASES,
    ids=_ids(BOOL_BINARY_CASES),
)
def test_bool_and_binary(operator: str, policy: Any, request_value: Any, expected: bool) -> None:
    check(operator, policy, request_value, expected)


# --- IpAddress ------------------------------------------------------------------------------

IP_CASES: list[tuple[str, Any, Any, bool]] = [
    ("IpAddress", "203.0.113.0/24", "203.0.113.7", True),
    ("IpAddress", "203.0.113.0/24", "203.0.113.255", True),
    ("IpAddress", "203.0.113.0/24", "203.0.114.1", False),
    ("IpAddress", "203.0.113.7", "203.0.113.7", True),  # a single address
    ("IpAddress", "203.0.113.7", "203.0.113.8", False),
    ("IpAddress", "203.0.113.7/32", "203.0.113.7", True),
    ("IpAddress", "0.0.0.0/0", "198.51.100.1", True),
    ("IpAddress", "2001:db8::/32", "2001:db8:1::5", True),  # IPv6
    ("IpAddress", "2001:db8::/32", "2001:db9::1", False),
    ("IpAddress", "2001:db8::1", "2001:DB8:0:0:0:0:0:1", True),  # one address, any spelling
    ("IpAddress", "2001:db8::1/128", "2001:db8::2", False),
    ("IpAddress", "10.0.0.0/8", "2001:db8::1", False),  # families never mix
    ("IpAddress", "2001:db8::/32", "10.0.0.1", False),
    ("IpAddress", ["10.0.0.0/8", "2001:db8::/32"], "2001:db8::1", True),
    ("IpAddress", ["10.0.0.0/8", "192.168.0.0/16"], "172.16.0.1", False),
    ("IpAddress", "203.0.113.0/24", ABSENT, False),
    ("NotIpAddress", "203.0.113.0/24", "198.51.100.1", True),
    ("NotIpAddress", "203.0.113.0/24", "203.0.113.9", False),
    ("NotIpAddress", "2001:db8::/32", "2001:db8::9", False),
    ("NotIpAddress", "2001:db8::/32", "10.0.0.1", True),
    ("NotIpAddress", ["10.0.0.0/8", "203.0.113.0/24"], "203.0.113.9", False),
    ("NotIpAddress", "203.0.113.0/24", ABSENT, True),
]


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "expected"), IP_CASES, ids=_ids(IP_CASES)
)
def test_ip_operators(operator: str, policy: Any, request_value: Any, expected: bool) -> None:
    check(operator, policy, request_value, expected)


# --- Arn ------------------------------------------------------------------------------------

ARN_CASES: list[tuple[str, Any, Any, bool]] = [
    ("ArnEquals", ALICE, ALICE, True),
    ("ArnEquals", ALICE, BOB, False),
    ("ArnEquals", "arn:aws:iam::*:user/*", ALICE, True),  # ArnEquals takes wildcards too
    ("ArnEquals", ALICE, ABSENT, False),
    ("ArnLike", "arn:aws:iam::*:user/*", ALICE, True),
    ("ArnLike", f"arn:aws:iam::{ACCOUNT}:role/*", ALICE, False),
    ("ArnLike", "arn:aws:iam::1111?2223333:user/alice", ALICE, True),
    ("ArnLike", "arn:aws:iam::????:user/alice", ALICE, False),
    ("ArnLike", "arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a:b:c", True),  # resource colons
    ("ArnLike", "arn:aws:iam::*:user/alice", "arn:aws:iam::1:2:user/alice", False),
    ("ArnLike", "arn:*:iam::*:user/alice", "arn:aws:cn:iam::1:user/alice", False),
    ("ArnLike", "arn:aws:iam::*:user/*", "not-an-arn", False),
    ("ArnLike", "arn:aws:iam::*:user/*", "arn:aws:iam::1:user/x".upper(), False),
    ("ArnLike", ["arn:aws:iam::*:role/*", "arn:aws:iam::*:user/a*"], ALICE, True),
    ("ArnLike", "*", ALICE, True),
    ("ArnLike", "arn:aws:iam::*:user/*", ABSENT, False),
    ("ArnNotEquals", ALICE, ALICE, False),
    ("ArnNotEquals", ALICE, BOB, True),
    ("ArnNotEquals", ALICE, ABSENT, True),
    ("ArnNotLike", "arn:aws:iam::*:role/*", ALICE, True),
    ("ArnNotLike", "arn:aws:iam::*:user/*", ALICE, False),
    ("ArnNotLike", "arn:aws:iam::*:user/alice", "arn:aws:iam::1:2:user/alice", True),
    ("ArnNotLike", "arn:aws:iam::*:user/*", "not-an-arn", True),
    ("ArnNotLike", "arn:aws:iam::*:user/*", ABSENT, True),
]


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "expected"), ARN_CASES, ids=_ids(ARN_CASES)
)
def test_arn_operators(operator: str, policy: Any, request_value: Any, expected: bool) -> None:
    check(operator, policy, request_value, expected)


# --- Null -----------------------------------------------------------------------------------

NULL_CASES: list[tuple[str, Any, Any, bool]] = [
    ("Null", "true", ABSENT, True),
    ("Null", "true", "x", False),
    ("Null", "true", "", False),  # an empty string is a value
    ("Null", "false", "x", True),
    ("Null", "false", ABSENT, False),
    ("Null", True, ABSENT, True),
    ("Null", False, "x", True),
    ("Null", False, ["a", "b"], True),
    ("Null", True, ["a"], False),
]


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "expected"), NULL_CASES, ids=_ids(NULL_CASES)
)
def test_null(operator: str, policy: Any, request_value: Any, expected: bool) -> None:
    check(operator, policy, request_value, expected)


# --- every operator: absent key, IfExists ---------------------------------------------------

# operator: (policy value, a request value that matches, one that does not) for the operator
# itself (for a negated operator, "matches" means the negated condition holds).
SAMPLES: dict[str, tuple[Any, str, str]] = {
    "StringEquals": ("a", "a", "b"),
    "StringNotEquals": ("a", "b", "a"),
    "StringEqualsIgnoreCase": ("a", "A", "b"),
    "StringNotEqualsIgnoreCase": ("a", "b", "A"),
    "StringLike": ("a*", "abc", "bc"),
    "StringNotLike": ("a*", "bc", "abc"),
    "NumericEquals": ("5", "5.0", "6"),
    "NumericNotEquals": ("5", "6", "5"),
    "NumericLessThan": ("5", "4", "5"),
    "NumericLessThanEquals": ("5", "5", "6"),
    "NumericGreaterThan": ("5", "6", "5"),
    "NumericGreaterThanEquals": ("5", "5", "4"),
    "DateEquals": (NEW_YEAR, NEW_YEAR_EPOCH, "2024-01-02"),
    "DateNotEquals": (NEW_YEAR, "2024-01-02", NEW_YEAR_EPOCH),
    "DateLessThan": (NEW_YEAR, "2023-12-31", NEW_YEAR),
    "DateLessThanEquals": (NEW_YEAR, NEW_YEAR, "2024-01-02"),
    "DateGreaterThan": (NEW_YEAR, "2024-01-02", NEW_YEAR),
    "DateGreaterThanEquals": (NEW_YEAR, NEW_YEAR, "2023-12-31"),
    "Bool": ("true", "true", "false"),
    "BinaryEquals": (HELLO, HELLO, WORLD),
    "IpAddress": ("10.0.0.0/8", "10.1.2.3", "11.0.0.1"),
    "NotIpAddress": ("10.0.0.0/8", "11.0.0.1", "10.1.2.3"),
    "ArnEquals": (ALICE, ALICE, BOB),
    "ArnLike": ("arn:aws:iam::*:user/a*", ALICE, BOB),
    "ArnNotEquals": (ALICE, BOB, ALICE),
    "ArnNotLike": ("arn:aws:iam::*:user/a*", BOB, ALICE),
}
NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "NumericNotEquals",
    "DateNotEquals",
    "NotIpAddress",
    "ArnNotEquals",
    "ArnNotLike",
}


def test_samples_cover_every_operator() -> None:
    from fedbroker.policy.conditions import OPERATORS

    names = {op.name for op in OPERATORS.values()}
    assert names - {"Null"} == set(SAMPLES)
    assert {op.name for op in OPERATORS.values() if op.negated} == NEGATED


@pytest.mark.parametrize("operator", sorted(SAMPLES))
def test_every_operator_present_and_absent(operator: str) -> None:
    policy, good, bad = SAMPLES[operator]
    check(operator, policy, good, True)
    check(operator, policy, bad, False)
    # Key absent: positive operators false, negated operators true.
    check(operator, policy, ABSENT, operator in NEGATED)


@pytest.mark.parametrize("operator", sorted(SAMPLES))
def test_every_operator_if_exists(operator: str) -> None:
    policy, good, bad = SAMPLES[operator]
    name = operator + "IfExists"
    check(name, policy, ABSENT, True)  # absent: true, positive or negated
    check(name, policy, good, True)  # present: the operator itself decides
    check(name, policy, bad, False)
    check(name, policy, ABSENT, True, extra={"aws:OtherKey": good})


# --- ForAllValues: / ForAnyValue: -----------------------------------------------------------

SET_CASES: list[tuple[str, Any, Any, bool]] = [
    # ForAllValues: every request value matches some policy value.
    ("ForAllValues:StringEquals", ["a", "b"], "a", True),
    ("ForAllValues:StringEquals", ["a", "b"], ["a"], True),
    ("ForAllValues:StringEquals", ["a", "b"], ["a", "b"], True),
    ("ForAllValues:StringEquals", ["a", "b"], ["b", "a", "a"], True),
    ("ForAllValues:StringEquals", ["a", "b"], ["a", "c"], False),
    ("ForAllValues:StringEquals", ["a", "b"], "c", False),
    ("ForAllValues:StringEquals", ["a", "b"], ABSENT, True),
    ("ForAllValues:StringEquals", ["a", "b"], [], True),
    ("ForAllValues:StringEquals", ["a", "b"], "", True),  # an empty string is a null data set
    ("ForAllValues:NumericLessThan", "10", "", True),
    ("ForAllValues:StringLike", ["a*", "b?"], ["abc", "bx"], True),
    ("ForAllValues:StringLike", ["a*", "b?"], ["abc", "bxy"], False),
    ("ForAllValues:StringEqualsIgnoreCase", "A", ["a", "A"], True),
    ("ForAllValues:NumericLessThan", "10", ["1", "9.5"], True),
    ("ForAllValues:NumericLessThan", "10", ["1", "10"], False),
    ("ForAllValues:IpAddress", "10.0.0.0/8", ["10.0.0.1", "10.9.9.9"], True),
    ("ForAllValues:IpAddress", "10.0.0.0/8", ["10.0.0.1", "11.0.0.1"], False),
    ("ForAllValues:ArnLike", "arn:aws:iam::*:user/*", [ALICE, BOB], True),
    # ForAnyValue: some request value matches some policy value.
    ("ForAnyValue:StringEquals", ["a", "b"], "a", True),
    ("ForAnyValue:StringEquals", ["a", "b"], ["c", "a"], True),
    ("ForAnyValue:StringEquals", ["a", "b"], ["c"], False),
    ("ForAnyValue:StringEquals", ["a", "b"], "c", False),
    ("ForAnyValue:StringEquals", ["a", "b"], ABSENT, False),
    ("ForAnyValue:StringEquals", ["a", "b"], [], False),
    ("ForAnyValue:StringEquals", ["a", "b"], "", False),
    ("ForAnyValue:StringNotEquals", ["a", "b"], "", False),
    ("ForAnyValue:StringLike", "a*", ["x", "ab"], True),
    ("ForAnyValue:NumericGreaterThan", "10", ["1", "11"], True),
    ("ForAnyValue:NumericGreaterThan", "10", ["1", "10"], False),
    ("ForAnyValue:ArnLike", "arn:aws:iam::*:role/*", [ALICE, BOB], False),
    # Negated operators on multi-valued keys.
    # plain: no request value matches any policy value.
    ("StringNotEquals", ["a", "b"], ["c", "d"], True),
    ("StringNotEquals", ["a", "b"], ["a", "c"], False),
    ("StringNotEquals", ["a", "b"], ["b"], False),
    ("StringNotLike", "a*", ["b", "ab"], False),
    ("StringNotLike", "a*", ["b", "c"], True),
    # ForAnyValue: some request value matches no policy value.
    ("ForAnyValue:StringNotEquals", ["a", "b"], ["a", "c"], True),
    ("ForAnyValue:StringNotEquals", ["a", "b"], ["a", "b"], False),
    ("ForAnyValue:StringNotEquals", ["a", "b"], "c", True),
    ("ForAnyValue:StringNotEquals", ["a", "b"], "a", False),
    ("ForAnyValue:StringNotEquals", ["a", "b"], ABSENT, False),
    ("ForAnyValue:StringNotEquals", ["a", "b"], [], False),
    ("ForAnyValue:StringNotLike", "a*", ["ab", "x"], True),
    ("ForAnyValue:NotIpAddress", "10.0.0.0/8", ["10.0.0.1", "11.0.0.1"], True),
    ("ForAnyValue:NotIpAddress", "10.0.0.0/8", ["10.0.0.1"], False),
    # ForAllValues: no request value matches any policy value.
    ("ForAllValues:StringNotEquals", ["a", "b"], ["c", "d"], True),
    ("ForAllValues:StringNotEquals", ["a", "b"], ["a", "c"], False),
    ("ForAllValues:StringNotEquals", ["a", "b"], "c", True),
    ("ForAllValues:StringNotEquals", ["a", "b"], "b", False),
    ("ForAllValues:StringNotEquals", ["a", "b"], ABSENT, True),
    ("ForAllValues:StringNotEquals", ["a", "b"], [], True),
    ("ForAllValues:StringNotLike", ["a*", "b*"], ["c", "d"], True),
    ("ForAllValues:StringNotLike", ["a*", "b*"], ["c", "bd"], False),
    ("ForAllValues:ArnNotLike", "arn:aws:iam::*:role/*", [ALICE, BOB], True),
    # Plain positive operators on multi-valued keys: some request value matches.
    ("StringEquals", ["a", "b"], ["c", "b"], True),
    ("StringEquals", ["a", "b"], ["c", "d"], False),
    # The set operators with IfExists: absent is true.
    ("ForAllValues:StringEqualsIfExists", ["a"], ABSENT, True),
    ("ForAllValues:StringEqualsIfExists", ["a"], ["a", "b"], False),
    ("ForAnyValue:StringEqualsIfExists", ["a"], ["b", "a"], True),
    ("ForAnyValue:StringEqualsIfExists", ["a"], ["b"], False),
]


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "expected"), SET_CASES, ids=_ids(SET_CASES)
)
def test_set_operators(operator: str, policy: Any, request_value: Any, expected: bool) -> None:
    check(operator, policy, request_value, expected)


# --- several keys AND-ed, several values OR-ed, several operators AND-ed --------------------


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ({"StringEquals": {"aws:a": "x", "aws:b": "y"}}, {"aws:a": "x", "aws:b": "y"}, True),
        ({"StringEquals": {"aws:a": "x", "aws:b": "y"}}, {"aws:a": "x", "aws:b": "z"}, False),
        ({"StringEquals": {"aws:a": "x", "aws:b": "y"}}, {"aws:a": "x"}, False),
        (
            {"StringEquals": {"aws:a": ["x", "z"], "aws:b": ["y", "z"]}},
            {"aws:a": "z", "aws:b": "z"},
            True,
        ),
        (
            {"StringEquals": {"aws:a": ["x", "z"], "aws:b": ["y", "z"]}},
            {"aws:a": "y", "aws:b": "z"},
            False,
        ),
        (
            {"StringEquals": {"aws:a": "x"}, "NumericLessThan": {"aws:n": "3"}},
            {"aws:a": "x", "aws:n": "2"},
            True,
        ),
        (
            {"StringEquals": {"aws:a": "x"}, "NumericLessThan": {"aws:n": "3"}},
            {"aws:a": "x", "aws:n": "4"},
            False,
        ),
        (
            {"StringEquals": {"aws:a": "x"}, "NumericLessThan": {"aws:n": "3"}},
            {"aws:a": "y", "aws:n": "2"},
            False,
        ),
        (
            {"StringNotEquals": {"aws:a": "x", "aws:b": "y"}},
            {"aws:a": "q"},
            True,  # both negated conditions hold: b is absent
        ),
        (
            {
                "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]},
                "Bool": {"aws:SecureTransport": True},
            },
            {"aws:SourceIp": "192.168.4.4", "aws:SecureTransport": "true"},
            True,
        ),
        (
            {
                "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]},
                "Bool": {"aws:SecureTransport": True},
            },
            {"aws:SourceIp": "192.168.4.4", "aws:SecureTransport": "false"},
            False,
        ),
        # Keys are case-insensitive, in the policy and in the request.
        ({"StringEquals": {"AWS:A": "x"}}, {"aws:a": "x"}, True),
        ({"StringEquals": {"aws:a": "x"}}, {"Aws:A": "x"}, True),
    ],
)
def test_keys_and_values_combine(
    condition: dict[str, Any], context: dict[str, Any], expected: bool
) -> None:
    assert (allow_decision(condition, context).effect is Effect.ALLOW) == expected
    assert (deny_decision(condition, context).effect is Effect.EXPLICIT_DENY) == expected


# --- policy variables in condition values ---------------------------------------------------

TAG = "aws:PrincipalTag/team"

VARIABLE_CASES: list[tuple[str, Any, Any, dict[str, Any], bool]] = [
    ("StringEquals", "${aws:username}", "alice", {"aws:username": "alice"}, True),
    ("StringEquals", "${aws:username}", "bob", {"aws:username": "alice"}, False),
    ("StringEquals", "${aws:UserName}", "alice", {"aws:username": "alice"}, True),
    ("StringEquals", "home/${aws:username}/x", "home/alice/x", {"aws:username": "alice"}, True),
    (
        "StringEquals",
        "${aws:username}-${aws:userid}",
        "alice-AID",
        {"aws:username": "alice", "aws:userid": "AID"},
        True,
    ),
    ("StringEqualsIgnoreCase", "${aws:username}", "ALICE", {"aws:username": "Alice"}, True),
    ("StringNotEquals", "${aws:username}", "bob", {"aws:username": "alice"}, True),
    ("StringNotEquals", "${aws:username}", "alice", {"aws:username": "alice"}, False),
    # Default values.
    ("StringEquals", f"${{{TAG}, 'none'}}", "none", {}, True),
    ("StringEquals", f"${{{TAG}, 'none'}}", "none", {TAG: "eng"}, False),
    ("StringEquals", f"${{{TAG}, 'none'}}", "eng", {TAG: "eng"}, True),
    ("StringEquals", f"${{{TAG},'none'}}", "none", {}, True),
    ("StringEquals", f"${{{TAG}, ''}}", "", {}, True),
    ("StringEquals", f"${{{TAG}, 'it''s'}}", "it's", {}, True),
    ("StringEquals", f"team-${{{TAG}, 'none'}}", "team-none", {TAG: ["a", "b"]}, True),
    ("StringLike", f"${{{TAG}, 'no*'}}", "nothing", {}, False),  # a default is literal text
    ("StringLike", f"${{{TAG}, 'no*'}}", "no*", {}, True),
    # A variable with no value: the policy value matches nothing.
    ("StringEquals", "${aws:username}", "", {}, False),
    ("StringEquals", "${aws:username}", "${aws:username}", {}, False),
    ("StringEquals", "${aws:username}", "a", {"aws:username": ["a", "b"]}, False),
    ("StringEquals", ["${aws:username}", "fallback"], "fallback", {}, True),
    ("StringLike", "home/${aws:username}/*", "home//x", {}, False),
    ("ArnLike", f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}", ALICE, {}, False),
    # ... which makes a negated operator hold (the engine's documented reading).
    ("StringNotEquals", "${aws:username}", "x", {}, True),
    # Substituted values are literal: a * in a user name is no wildcard.
    ("StringLike", "home/${aws:username}/*", "home/alice/x", {"aws:username": "alice"}, True),
    ("StringLike", "home/${aws:username}/*", "home/bob/x", {"aws:username": "alice"}, False),
    ("StringLike", "home/${aws:username}/*", "home/alice/x", {"aws:username": "al*"}, False),
    ("StringLike", "home/${aws:username}/*", "home/al*/x", {"aws:username": "al*"}, True),
    ("StringLike", "home/${aws:username}", "home/ab", {"aws:username": "a?"}, False),
    ("StringLike", "home/${aws:username}", "home/a.c", {"aws:username": "a.c"}, True),
    ("StringLike", "home/${aws:username}", "home/abc", {"aws:username": "a.c"}, False),
    # Escapes stand for the literal characters.
    ("StringLike", "a${*}b", "a*b", {}, True),
    ("StringLike", "a${*}b", "axb", {}, False),
    ("StringLike", "a${?}b", "a?b", {}, True),
    ("StringLike", "a${?}b", "axb", {}, False),
    ("StringLike", "a${$}*", "a$bc", {}, True),
    ("StringEquals", "${*}", "*", {}, True),
    ("StringEquals", "${*}", "x", {}, False),
    ("StringEquals", "cost${$}", "cost$", {}, True),
    ("StringEquals", "${?}", "?", {}, True),
    ("StringEquals", "${$}{aws:username}", "${aws:username}", {"aws:username": "alice"}, True),
    # ARNs with variables.
    (
        "ArnLike",
        f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}",
        ALICE,
        {"aws:username": "alice"},
        True,
    ),
    (
        "ArnLike",
        f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}",
        BOB,
        {"aws:username": "alice"},
        False,
    ),
    (
        "ArnEquals",
        "arn:aws:iam::${aws:PrincipalAccount}:user/*",
        ALICE,
        {"aws:PrincipalAccount": ACCOUNT},
        True,
    ),
    (
        "ArnEquals",
        "arn:aws:iam::${aws:PrincipalAccount}:user/*",
        ALICE,
        {"aws:PrincipalAccount": "999999999999"},
        False,
    ),
    (
        "ArnNotLike",
        f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}",
        BOB,
        {"aws:username": "alice"},
        True,
    ),
    ("ArnLike", f"arn:aws:iam::{ACCOUNT}:user/${{*}}", f"arn:aws:iam::{ACCOUNT}:user/*", {}, True),
]

# The substituted value or the escape is literal text in an ARN too; the engine treats it as a
# wildcard (ARN values are resolved to text and then glob-matched).
ARN_VARIABLE_CASES: list[tuple[str, Any, Any, dict[str, Any], bool]] = [
    (
        "ArnLike",
        f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}",
        BOB,
        {"aws:username": "*"},
        False,
    ),
    (
        "ArnLike",
        f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}",
        BOB,
        {"aws:username": "b?b"},
        False,
    ),
    ("ArnEquals", f"arn:aws:iam::{ACCOUNT}:user/${{*}}", BOB, {}, False),
    ("ArnLike", f"arn:aws:iam::{ACCOUNT}:user/b${{?}}b", BOB, {}, False),
    (
        "ArnNotLike",
        f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}",
        BOB,
        {"aws:username": "*"},
        True,
    ),
]


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "context", "expected"),
    [*VARIABLE_CASES, *ARN_VARIABLE_CASES],
    ids=[f"{c[0]}-{c[1]!r}-{c[2]!r}-{c[3]!r}"[:90] for c in [*VARIABLE_CASES, *ARN_VARIABLE_CASES]],
)
def test_policy_variables(
    operator: str, policy: Any, request_value: Any, context: dict[str, Any], expected: bool
) -> None:
    check(operator, policy, request_value, expected, extra=context)


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "context", "expected"),
    [
        # Version 2008-10-17: no variables, the text is literal.
        ("StringEquals", "${aws:username}", "${aws:username}", {"aws:username": "alice"}, True),
        ("StringEquals", "${aws:username}", "alice", {"aws:username": "alice"}, False),
        ("StringEquals", "${*}", "${*}", {}, True),
        ("StringEquals", "${*}", "*", {}, False),
        ("StringNotEquals", "${aws:username}", "alice", {"aws:username": "alice"}, True),
        ("StringLike", "home/${aws:username}", "home/${aws:username}", {"aws:username": "a"}, True),
        ("StringLike", "home/${aws:username}", "home/a", {"aws:username": "a"}, False),
        ("StringEquals", f"${{{TAG}, 'none'}}", "none", {}, False),
    ],
)
def test_policy_variables_are_literal_in_version_2008(
    operator: str, policy: Any, request_value: Any, context: dict[str, Any], expected: bool
) -> None:
    check(operator, policy, request_value, expected, extra=context, version=V2008)


def test_version_defaults_to_2008_when_absent() -> None:
    condition = {"StringEquals": {KEY: "${aws:username}"}}
    stmt = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": condition}
    policy = _parse({"Statement": [stmt]}, "no-version")
    ctx = {KEY: "${aws:username}", "aws:username": "alice"}
    assert PolicySet(identity=[policy]).authorize(_request(ctx)).effect is Effect.ALLOW


# --- fail closed: request values the operator cannot read -----------------------------------

GARBAGE_CASES: list[tuple[str, Any, Any]] = [
    ("NumericLessThan", "10", "abc"),
    ("NumericLessThan", "10", ""),
    ("NumericLessThan", "10", "nan"),
    ("NumericLessThan", "10", "1.2.3"),
    ("NumericEquals", "10", "ten"),
    ("NumericNotEquals", "10", "abc"),  # negated: an error is still no match
    ("NumericGreaterThanEquals", "10", "inf"),
    ("NumericLessThanIfExists", "10", "abc"),  # present, so IfExists does not help
    ("NumericNotEqualsIfExists", "10", "abc"),
    ("ForAllValues:NumericLessThan", "10", ["abc"]),
    ("ForAnyValue:NumericLessThan", "10", ["abc", "xyz"]),
    ("ForAllValues:NumericNotEquals", "10", ["abc"]),
    ("ForAnyValue:NumericNotEquals", "10", "abc"),
    ("DateLessThan", NEW_YEAR, "yesterday"),
    ("DateLessThan", NEW_YEAR, "2024-13-01"),
    ("DateEquals", NEW_YEAR, ""),
    ("DateNotEquals", NEW_YEAR, "not a date"),
    ("DateGreaterThanIfExists", NEW_YEAR, "soon"),
    ("ForAllValues:DateLessThan", NEW_YEAR, ["tomorrow"]),
    ("IpAddress", "10.0.0.0/8", "not-an-ip"),
    ("IpAddress", "10.0.0.0/8", "300.1.1.1"),
    ("IpAddress", "10.0.0.0/8", ""),
    ("NotIpAddress", "10.0.0.0/8", "not-an-ip"),
    ("NotIpAddressIfExists", "10.0.0.0/8", "10.0.0.0/33"),
    ("ForAnyValue:IpAddress", "10.0.0.0/8", ["garbage"]),
    ("ForAllValues:NotIpAddress", "10.0.0.0/8", ["garbage"]),
    ("BinaryEquals", HELLO, "@@@"),
    ("BinaryEquals", HELLO, "abc"),
    ("BinaryEqualsIfExists", HELLO, "!"),
]


@pytest.mark.parametrize(
    ("operator", "policy", "request_value"),
    GARBAGE_CASES,
    ids=[f"{c[0]}-{c[2]!r}" for c in GARBAGE_CASES],
)
def test_unreadable_request_value_fails_closed(
    operator: str, policy: Any, request_value: Any
) -> None:
    condition = {operator: {KEY: policy}}
    ctx = {KEY: request_value}
    allowed = allow_decision(condition, ctx)
    assert allowed.effect is Effect.IMPLICIT_DENY
    miss = allowed.explanation()["policy_types"]["identity"]["not_matched"][0]["condition"]
    assert miss["operator"] == operator
    assert miss["key"] == KEY
    assert miss.get("error")
    denied = deny_decision(condition, ctx)
    assert denied.effect is Effect.EXPLICIT_DENY
    match = denied.explanation()["policy_types"]["identity"]["denied_by"][0]
    assert match["condition_error"]["operator"] == operator


# A list mixing readable and unreadable values is read with three-valued logic: a definite
# answer wins (one matching value satisfies an "any", one failing value sinks an "all"), an
# unreadable value decides only when the others leave the answer open, and then it fails
# closed. The order of the values never matters.
DEFINITE_CASES: list[tuple[str, Any, Any, bool]] = [
    ("NumericLessThan", "3", ["1", "abc"], True),
    ("ForAnyValue:NumericLessThan", "3", ["1", "abc"], True),
    ("IpAddress", "10.0.0.0/8", ["10.0.0.1", "garbage"], True),
    ("ForAnyValue:DateLessThan", NEW_YEAR, ["2020-01-01", "garbage"], True),
    ("ForAllValues:NumericLessThan", "3", ["5", "abc"], False),
    ("ForAllValues:IpAddress", "10.0.0.0/8", ["11.0.0.1", "garbage"], False),
]
OPEN_CASES: list[tuple[str, Any, Any]] = [
    ("NumericLessThan", "3", ["5", "abc"]),
    ("ForAnyValue:NumericLessThan", "3", ["5", "abc"]),
    ("ForAllValues:NumericLessThan", "3", ["1", "abc"]),
    ("IpAddress", "10.0.0.0/8", ["11.0.0.1", "garbage"]),
]


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "holds"),
    DEFINITE_CASES,
    ids=[f"{c[0]}-{c[2]!r}" for c in DEFINITE_CASES],
)
def test_a_definite_answer_wins_over_an_unreadable_value(
    operator: str, policy: Any, request_value: list[str], holds: bool
) -> None:
    condition = {operator: {KEY: policy}}
    for values in (request_value, request_value[::-1]):
        allowed = allow_decision(condition, {KEY: values}).effect
        assert allowed is (Effect.ALLOW if holds else Effect.IMPLICIT_DENY)
        denied = deny_decision(condition, {KEY: values}).effect
        assert denied is (Effect.EXPLICIT_DENY if holds else Effect.ALLOW)


@pytest.mark.parametrize(
    ("operator", "policy", "request_value"),
    OPEN_CASES,
    ids=[f"{c[0]}-{c[2]!r}" for c in OPEN_CASES],
)
def test_an_unreadable_value_that_decides_fails_closed(
    operator: str, policy: Any, request_value: list[str]
) -> None:
    condition = {operator: {KEY: policy}}
    for values in (request_value, request_value[::-1]):
        assert allow_decision(condition, {KEY: values}).effect is Effect.IMPLICIT_DENY
        assert deny_decision(condition, {KEY: values}).effect is Effect.EXPLICIT_DENY


def test_bool_with_a_non_boolean_request_value_does_not_match() -> None:
    # Bool compares text: a value that is neither true nor false matches neither.
    check("Bool", "true", "yes", False)
    check("Bool", "false", "no", False)


# --- explanations name the operator and the key ---------------------------------------------


@pytest.mark.parametrize(
    ("operator", "policy", "request_value"),
    [
        ("StringEquals", "alice", "bob"),
        ("StringLike", "a*", ABSENT),
        ("NumericLessThan", "3", "5"),
        ("DateGreaterThan", NEW_YEAR, "2020-01-01"),
        ("Bool", True, "false"),
        ("BinaryEquals", HELLO, WORLD),
        ("IpAddress", "10.0.0.0/8", "11.0.0.1"),
        ("NotIpAddress", "10.0.0.0/8", "10.0.0.1"),
        ("ArnLike", "arn:aws:iam::*:role/*", ALICE),
        ("Null", True, "x"),
        ("ForAnyValue:StringEquals", "a", ["b"]),
        ("ForAllValues:StringLike", "a*", ["b"]),
        ("NumericLessThanIfExists", "3", "5"),
        ("StringNotEqualsIgnoreCase", "alice", "ALICE"),
    ],
)
def test_explanation_of_a_condition_miss(operator: str, policy: Any, request_value: Any) -> None:
    decision = allow_decision({operator: {KEY: policy}}, context_for(request_value))
    assert decision.effect is Effect.IMPLICIT_DENY
    miss = decision.explanation()["policy_types"]["identity"]["not_matched"][0]
    condition = miss["condition"]
    assert condition["operator"] == operator
    assert condition["key"] == KEY
    assert operator in miss["reason"]
    assert KEY in miss["reason"]
    assert "error" not in condition


def test_explanation_names_the_failing_key_of_several() -> None:
    condition = {"StringEquals": {"aws:a": "x", "aws:TheFailingKey": "y"}}
    decision = allow_decision(condition, {"aws:a": "x", "aws:thefailingkey": "z"})
    miss = decision.explanation()["policy_types"]["identity"]["not_matched"][0]["condition"]
    assert miss["operator"] == "StringEquals"
    assert miss["key"] == "aws:TheFailingKey"  # as written in the policy
    assert miss["request_value"] == "z"


# --- malformed operator usage is rejected when the policy is parsed -------------------------


def parse_error(condition: Any) -> MalformedPolicyDocumentError:
    stmt = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": condition}
    with pytest.raises(MalformedPolicyDocumentError) as info:
        _parse(_doc(stmt), "bad")
    return info.value


@pytest.mark.parametrize(
    ("operator", "suggestion"),
    [
        ("StringEqual", "StringEquals"),
        ("StringEqualsIfExist", "StringEqualsIfExists"),
        ("NumericLessThen", "NumericLessThan"),
        ("DateGreaterThen", "DateGreaterThan"),
        ("IpAdress", "IpAddress"),
        ("ArnLik", "ArnLike"),
        ("Boolean", "Bool"),
        ("ForAnyValue:StringEqual", "StringEquals"),
    ],
)
def test_unknown_operator_suggests_the_nearest(operator: str, suggestion: str) -> None:
    error = parse_error({operator: {KEY: "x"}})
    assert error.code == "MalformedPolicyDocument"
    problem = error.problems[0]
    assert problem.field == f"Condition.{operator}"
    assert operator in problem.message
    assert f"did you mean `{suggestion}`" in problem.message


@pytest.mark.parametrize(
    ("operator", "suggestion"),
    [
        ("ForSomeValues:StringEquals", None),
        ("ForAllValue:StringEquals", "ForAllValues"),
        ("ForAnyValues:StringEquals", "ForAnyValue"),
        ("Foo:StringEquals", None),
    ],
)
def test_unknown_set_operator(operator: str, suggestion: str | None) -> None:
    problem = parse_error({operator: {KEY: "x"}}).problems[0]
    prefix = operator.split(":", maxsplit=1)[0]
    assert "set operator" in problem.message
    assert f"`{prefix}`" in problem.message
    if suggestion is not None:
        assert f"did you mean `{suggestion}`" in problem.message


@pytest.mark.parametrize(
    "operator",
    ["ForAllValues:Null", "ForAnyValue:Null", "NullIfExists", "ForAllValues:NullIfExists"],
)
def test_null_takes_no_set_operator_and_no_if_exists(operator: str) -> None:
    problem = parse_error({operator: {KEY: "true"}}).problems[0]
    assert problem.field == f"Condition.{operator}"
    assert "Null" in problem.message


@pytest.mark.parametrize(
    ("operator", "value", "hint"),
    [
        ("NumericLessThan", "abc", "number"),
        ("NumericEquals", "1.2.3", "number"),
        ("NumericEquals", "", "number"),
        ("NumericGreaterThan", "NaN", "number"),
        ("NumericGreaterThan", "Infinity", "number"),
        ("ForAnyValue:NumericEqualsIfExists", "ten", "number"),
        ("DateLessThan", "yesterday", "ISO 8601"),
        ("DateLessThan", "2024-13-01", "ISO 8601"),
        ("DateEquals", "2024-01-01T25:00:00Z", "ISO 8601"),
        ("IpAddress", "300.1.1.1", "IPv4 or IPv6"),
        ("IpAddress", "10.0.0.0/33", "IPv4 or IPv6"),
        ("NotIpAddress", "not-an-ip", "IPv4 or IPv6"),
        ("IpAddress", "2001:db8::/129", "IPv4 or IPv6"),
        ("Bool", "yes", "`true` or `false`"),
        ("Bool", 1, "`true` or `false`"),
        ("Null", "maybe", "`true` or `false`"),
        ("BinaryEquals", "@@@", "base64"),
        ("BinaryEquals", "abc", "base64"),
        ("ArnLike", "not-an-arn", "ARN"),
        ("ArnEquals", "arn:aws:s3", "ARN"),
    ],
)
def test_bad_values_are_rejected(operator: str, value: Any, hint: str) -> None:
    problem = parse_error({operator: {KEY: value}}).problems[0]
    assert problem.field == f"Condition.{operator}"
    assert hint in problem.message
    shown = value if isinstance(value, str) else str(value)
    assert f"`{shown}`" in problem.message


def test_every_bad_value_is_reported() -> None:
    error = parse_error(
        {
            "NumericLessThan": {"aws:a": "abc"},
            "IpAddress": {"aws:b": "nope"},
            "StringEqual": {"aws:c": "x"},
        }
    )
    assert len(error.problems) == 3
    assert {p.field for p in error.problems} == {
        "Condition.NumericLessThan",
        "Condition.IpAddress",
        "Condition.StringEqual",
    }
