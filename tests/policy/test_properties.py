"""Property-based tests of the policy engine (hypothesis).

Wildcards are checked against an independent dynamic-programming glob matcher; evaluation is
checked against a small model of AWS's rules (an explicit deny anywhere decides, denies only
ever take permissions away, order never matters, a condition that cannot be evaluated never
allows) over random policy sets built from a small alphabet of actions, resources and
conditions, so that statements often match and often collide.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fedbroker.errors import MalformedPolicyDocumentError
from fedbroker.policy import (
    Effect,
    PolicyKind,
    PolicySet,
    make_request,
    parse_policy,
    principal_from_arn,
)
from fedbroker.policy.request import Principal
from fedbroker.policy.wildcard import arn_like, compile_glob, compile_globs

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
HEAVY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# --- an independent reference glob matcher ---------------------------------------------------


def ref_glob(pattern: str, value: str) -> bool:
    """``*`` matches any run (also empty), ``?`` exactly one character, the rest literally.

    ``reachable[j]`` says whether the pattern read so far can consume exactly ``value[:j]``.
    """
    reachable = [True] + [False] * len(value)
    for pc in pattern:
        if pc == "*":
            seen = False
            for j in range(len(value) + 1):
                seen = seen or reachable[j]
                reachable[j] = seen
        else:
            nxt = [False] * (len(value) + 1)
            for j in range(1, len(value) + 1):
                nxt[j] = reachable[j - 1] and (pc == "?" or pc == value[j - 1])
            reachable = nxt
    return reachable[len(value)]


def ref_arn_like(pattern: str, value: str) -> bool:
    """ARN matching component by component: six parts, the last one keeps its colons."""

    def parts(text: str) -> list[str] | None:
        out: list[str] = []
        rest = text
        for _ in range(5):
            head, sep, rest = rest.partition(":")
            if not sep:
                return None
            out.append(head)
        out.append(rest)
        return out

    p, v = parts(pattern), parts(value)
    if p is None or v is None:
        return False
    return all(ref_glob(pc, vc) for pc, vc in zip(p, v, strict=True))


def test_reference_matcher_sanity() -> None:
    assert ref_glob("", "")
    assert not ref_glob("", "a")
    assert ref_glob("*", "")
    assert ref_glob("a*c", "abbbc")
    assert not ref_glob("a?c", "ac")
    assert ref_glob("a?c", "abc")
    assert ref_glob("**?", "x")
    assert not ref_glob("a.c", "abc")
    assert ref_arn_like("arn:aws:s3:::*", "arn:aws:s3:::a:b:c")
    assert not ref_arn_like("arn:*:s3:::b", "arn:aws:x:s3:::b")


# --- strings for the wildcard properties -----------------------------------------------------

# Regular-expression metacharacters, white space incl. newlines, colons, unicode (including
# characters whose lower-case form is longer than one character).
GLOB_CHARS = [*"ab:/.^$+()[]{}|\\-\n\r\t ", "é", "ß", "İ", "Σ", "日", "\u2028", "\x00"]
glob_text = st.text(alphabet=st.sampled_from(GLOB_CHARS), max_size=12)


@st.composite
def pattern_for(draw: st.DrawFn, value: str) -> str:
    """A pattern derived from ``value`` (so it often matches), mutated at random."""
    out: list[str] = []
    i = 0
    while i < len(value):
        choice = draw(st.integers(0, 9))
        if choice <= 4:
            out.append(value[i])
            i += 1
        elif choice <= 6:
            out.append("?")
            i += 1
        elif choice == 7:
            skip = draw(st.integers(0, len(value) - i))
            out.append("*")
            i += skip
        elif choice == 8:
            out.append(draw(st.sampled_from([*GLOB_CHARS, "*", "?"])))
        else:
            i += 1  # drop a character
    if draw(st.booleans()):
        out.append(draw(st.sampled_from(["*", "?", "", "a"])))
    return "".join(out)


@st.composite
def value_and_patterns(draw: st.DrawFn) -> tuple[str, list[str]]:
    value = draw(glob_text)
    n = draw(st.integers(1, 4))
    patterns = [
        draw(st.one_of(pattern_for(value), glob_text, st.sampled_from(["*", "?", "**", "*?*"])))
        for _ in range(n)
    ]
    return value, patterns


@SETTINGS
@given(value_and_patterns())
@example(("a.c", ["a.c"]))
@example(("abc", ["a.c"]))
@example(("a\nb", ["a*b"]))
@example(("a\nb", ["a?b"]))
@example(("", ["*"]))
@example(("", ["?"]))
@example(("x", [""]))
@example(("(a)", ["(?)"]))
@example(("a|b", ["a|b*"]))
@example(("b", ["a|b"]))
def test_compile_glob_agrees_with_reference(case: tuple[str, list[str]]) -> None:
    value, patterns = case
    for pattern in patterns:
        assert compile_glob(pattern)(value) == ref_glob(pattern, value), (pattern, value)
    expected = any(ref_glob(p, value) for p in patterns)
    assert compile_globs(patterns)(value) == expected, (patterns, value)


@SETTINGS
@given(value_and_patterns(), st.randoms(use_true_random=False))
def test_compile_globs_ignore_case(case: tuple[str, list[str]], rnd: random.Random) -> None:
    value, patterns = case
    # Shake the case of the pattern: matching must not depend on it.
    shaken = ["".join(c.upper() if rnd.random() < 0.5 else c for c in p) for p in patterns]
    matcher = compile_globs(shaken, ignore_case=True)
    expected = any(ref_glob(p.lower(), value.lower()) for p in shaken)
    assert matcher(value.lower()) == expected, (shaken, value)


@SETTINGS
@given(value_and_patterns())
def test_compile_globs_is_order_independent(case: tuple[str, list[str]]) -> None:
    value, patterns = case
    assert compile_globs(patterns)(value) == compile_globs(list(reversed(patterns)))(value)


def test_compile_globs_of_nothing_matches_nothing() -> None:
    assert not compile_globs([])("")
    assert not compile_globs([])("anything")


# --- action matching through a policy: case-insensitive ------------------------------------

ACTION_NAME_CHARS = "GetObjcAbPu_-9"


@st.composite
def action_case(draw: st.DrawFn) -> tuple[str, str]:
    """(pattern in a policy, requested action), both with shaken case."""
    service = draw(st.sampled_from(["s3", "ec2", "iam", "my-svc"]))
    name = draw(st.text(alphabet=ACTION_NAME_CHARS, min_size=1, max_size=10))
    pattern_name = draw(pattern_for(name))
    pattern_name = "".join(ch for ch in pattern_name if ch in ACTION_NAME_CHARS + "*?") or draw(
        st.sampled_from(["*", "?", "G*"])
    )
    pattern_service = draw(st.sampled_from([service, service.upper(), "s3"]))
    rnd = draw(st.randoms(use_true_random=False))

    def shake(text: str) -> str:
        return "".join(c.swapcase() if rnd.random() < 0.5 else c for c in text)

    return f"{pattern_service}:{shake(pattern_name)}", f"{shake(service)}:{shake(name)}"


@SETTINGS
@given(action_case())
@example(("s3:GetObject", "S3:GETOBJECT"))
@example(("S3:get*", "s3:GetObject"))
@example(("s3:Get?bject", "s3:getobject"))
@example(("s3:Get?bject", "s3:GetObjects"))
def test_action_matching_ignores_case(case: tuple[str, str]) -> None:
    pattern, action = case
    policy = parse_policy(
        {
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": pattern, "Resource": "*"},
        },
        PolicyKind.MANAGED,
        name="actions",
        enforce_size=False,
    )
    decision = PolicySet(identity=[policy]).authorize(make_request(action, "arn:aws:s3:::b/k"))
    expected = ref_glob(pattern.lower(), action.lower())
    assert (decision.effect is Effect.ALLOW) == expected, (pattern, action)


# --- ArnLike: component by component --------------------------------------------------------

ARN_PART_CHARS = "ab1-/._ "  # no colon: the first five components never contain one
arn_part = st.text(alphabet=ARN_PART_CHARS, max_size=5)
arn_resource = st.text(alphabet=ARN_PART_CHARS + ":", max_size=8)


@st.composite
def arn_case(draw: st.DrawFn) -> tuple[str, str]:
    parts = [draw(arn_part) for _ in range(5)] + [draw(arn_resource)]
    value = ":".join(parts)
    p_parts = [draw(st.one_of(pattern_for(p), st.sampled_from(["*", "?", "*?"]))) for p in parts]
    # A mutated pattern component may pick up a colon (GLOB_CHARS has one); that shifts the
    # components, which the reference handles too.
    pattern = ":".join(p_parts)
    if draw(st.booleans()):
        # Put an extra colon into one of the value's first five components: with a
        # wildcard in that component of the pattern the match must still not cross it.
        i = draw(st.integers(0, 4))
        parts = list(parts)
        parts[i] = parts[i] + ":" + draw(arn_part)
        value = ":".join(parts)
    return pattern, value


@SETTINGS
@given(arn_case())
@example(("arn:aws:s3:::*", "arn:aws:s3:::a:b:c"))
@example(("arn:*:s3:::b", "arn:aws:x:s3:::b"))
@example(("arn:aws:iam::*:user/x", "arn:aws:iam::1:2:user/x"))
@example(("arn:aws:iam::*:*", "arn:aws:iam::1:2:user/x"))
@example(("arn:aws:s3", "arn:aws:s3"))
@example(("*", "arn:aws:s3:::b"))
def test_arn_like_matches_component_by_component(case: tuple[str, str]) -> None:
    pattern, value = case
    assert arn_like(pattern, value) == ref_arn_like(pattern, value), (pattern, value)


@SETTINGS
@given(
    st.lists(arn_part, min_size=5, max_size=5),
    arn_part,
    st.integers(0, 4),
    arn_part,
    arn_resource,
)
def test_arn_wildcard_never_crosses_a_colon_in_the_first_five_components(
    parts: list[str], extra: str, i: int, left: str, resource: str
) -> None:
    # Value: component i is "left:extra" (so the value has a colon too many before its
    # resource). Pattern: "*" in component i, everything else literal.
    value_parts = [*parts[:5], resource]
    value_parts[i] = f"{left}:{extra}"
    value = ":".join(value_parts)
    pattern_parts = [*parts[:5], resource]
    pattern_parts[i] = "*"
    pattern = ":".join(pattern_parts)
    # As one glob the star could swallow the colon; as an ARN it only may if the shifted
    # components happen to line up literally, which is what the reference says.
    assert ref_glob(pattern, value)
    assert arn_like(pattern, value) == ref_arn_like(pattern, value)
    # With the star in the resource instead, colons are fine.
    assert arn_like(":".join([*parts[:5], "*"]), ":".join([*parts[:5], f"{left}:{extra}"]))


def test_arn_like_examples() -> None:
    assert arn_like("arn:aws:iam::*:user/*", "arn:aws:iam::111122223333:user/a:b")
    assert not arn_like("arn:aws:iam::*:user/alice", "arn:aws:iam::1111:2222:user/alice")
    assert not arn_like("arn:*:iam::1:user/a", "arn:aws:cn:iam::1:user/a")
    assert arn_like("arn:aws:s3:::*", "arn:aws:s3:::bucket/key:with:colons")
    assert not arn_like("arn:aws:s3:::bucket", "arn:aws:s3:::bucket:x")
    assert arn_like("arn:aws:s3:::bucket*", "arn:aws:s3:::bucket:x")
    assert not arn_like("arn:aws:s3:::b", "not-an-arn")


# --- a model of policy sets ------------------------------------------------------------------

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/dev"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/s1"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
BOB = f"arn:aws:iam::{OTHER_ACCOUNT}:user/bob"

IAM_PRINCIPALS = [ALICE, SESSION, ROOT, BOB]
ALL_PRINCIPALS = [
    *IAM_PRINCIPALS,
    ROLE,
    "s3.amazonaws.com",
    "arn:aws:iam::123456789012:oidc-provider/x",
]

ACTIONS = ["s3:GetObject", "s3:PutObject", "ec2:RunInstances"]
ACTION_PATTERNS = [
    "s3:GetObject",
    "s3:Get*",
    "s3:*",
    "*",
    "ec2:*",
    "S3:getobject",
    "s3:Put?bject",
    "ec2:RunInstances",
]
RESOURCES = [
    "arn:aws:s3:::b/k",
    "arn:aws:s3:::other/x",
    f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-1",
]
RESOURCE_PATTERNS = [
    "*",
    "arn:aws:s3:::b/k",
    "arn:aws:s3:::b/*",
    "arn:aws:s3:::other/*",
    "arn:aws:ec2:*:*:instance/*",
    "arn:aws:s3:::?/k",
]
RESOURCE_PRINCIPALS: list[Any] = [
    "*",
    {"AWS": ACCOUNT},
    {"AWS": ALICE},
    {"AWS": ROLE},
    {"AWS": OTHER_ACCOUNT},
    {"AWS": [BOB, ALICE]},
]

Truth = bool | str  # True, False or "error"
ERROR = "error"


def _values(v: Any) -> list[str] | None:
    if v is None:
        return None
    return [v] if isinstance(v, str) else list(v)


def _num(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def _string_test(
    key: str, want: str, negated: bool = False, if_exists: bool = False
) -> Callable[[dict[str, Any]], Truth]:
    def truth(ctx: dict[str, Any]) -> Truth:
        vals = _values(ctx.get(key))
        if vals is None:
            return negated or if_exists
        return any(v == want for v in vals) != negated

    return truth


def _numeric_test(
    key: str, compare: Callable[[float], bool], negated: bool = False
) -> Callable[[dict[str, Any]], Truth]:
    def truth(ctx: dict[str, Any]) -> Truth:
        v = ctx.get(key)
        if v is None:
            return negated
        n = _num(v)
        if n is None:
            return ERROR
        return compare(n) != negated

    return truth


def _ip_test(key: str, negated: bool) -> Callable[[dict[str, Any]], Truth]:
    def truth(ctx: dict[str, Any]) -> Truth:
        v = ctx.get(key)
        if v is None:
            return negated
        if v == "not-an-ip":
            return ERROR
        return v.startswith("10.") != negated

    return truth


def _for_any(key: str, want: str) -> Callable[[dict[str, Any]], Truth]:
    def truth(ctx: dict[str, Any]) -> Truth:
        vals = _values(ctx.get(key))
        return vals is not None and any(v == want for v in vals)

    return truth


def _for_all(key: str, want: str) -> Callable[[dict[str, Any]], Truth]:
    def truth(ctx: dict[str, Any]) -> Truth:
        vals = _values(ctx.get(key))
        return vals is None or all(v == want for v in vals)

    return truth


# (condition block, its truth for a context): one operator and one key each. A statement gets
# up to two of them, AND-ed: a plainly false one decides; otherwise one that cannot be
# evaluated fails closed (an Allow does not allow, a Deny denies).
CONDITIONS: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Truth]]] = [
    ({"StringEquals": {"aws:a": "x"}}, _string_test("aws:a", "x")),
    ({"StringNotEquals": {"aws:a": "x"}}, _string_test("aws:a", "x", negated=True)),
    ({"StringEqualsIfExists": {"aws:a": "y"}}, _string_test("aws:a", "y", if_exists=True)),
    ({"ForAnyValue:StringEquals": {"aws:a": "y"}}, _for_any("aws:a", "y")),
    ({"ForAllValues:StringEquals": {"aws:a": "x"}}, _for_all("aws:a", "x")),
    ({"Null": {"aws:n": "true"}}, lambda ctx: ctx.get("aws:n") is None),
    ({"Null": {"aws:n": False}}, lambda ctx: ctx.get("aws:n") is not None),
    ({"NumericLessThan": {"aws:n": "3"}}, _numeric_test("aws:n", lambda n: n < 3)),
    ({"NumericGreaterThanEquals": {"aws:n": 3}}, _numeric_test("aws:n", lambda n: n >= 3)),
    ({"NumericNotEquals": {"aws:n": "5"}}, _numeric_test("aws:n", lambda n: n == 5, True)),
    ({"IpAddress": {"aws:ip": "10.0.0.0/8"}}, _ip_test("aws:ip", negated=False)),
    ({"NotIpAddress": {"aws:ip": "10.0.0.0/8"}}, _ip_test("aws:ip", negated=True)),
]
A_VALUES: list[Any] = [None, "x", "y", ["x", "y"], ["y"], ["x"], []]
N_VALUES = [None, "1", "5", "abc", "2.5"]
IP_VALUES = [None, "10.0.0.1", "192.168.1.1", "not-an-ip"]


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    for key, pool in (("aws:a", A_VALUES), ("aws:n", N_VALUES), ("aws:ip", IP_VALUES)):
        v = draw(st.sampled_from(pool))
        if v is not None:
            ctx[key] = v
    return ctx


@dataclass
class Req:
    action: str
    resource: str
    principal: str
    context: dict[str, Any]

    def principal_obj(self) -> Principal:
        return principal_from_arn(self.principal)

    def build(self) -> Any:
        return make_request(
            self.action,
            self.resource,
            self.principal_obj(),
            context=self.context,
            resource_account=ACCOUNT,
        )


@st.composite
def requests(draw: st.DrawFn, principals: list[str] = IAM_PRINCIPALS) -> Req:
    return Req(
        draw(st.sampled_from(ACTIONS)),
        draw(st.sampled_from(RESOURCES)),
        draw(st.sampled_from(principals)),
        draw(contexts()),
    )


@st.composite
def statements(draw: st.DrawFn, kind: str, effect: str | None = None) -> dict[str, Any]:
    """A statement for a policy of ``kind`` (identity, scp, resource, rcp)."""
    if effect is None:  # mostly Allow, so that decisions are often close to an Allow
        effect = draw(st.sampled_from(["Allow", "Allow", "Allow", "Deny"]))
    if kind == "rcp":
        effect = "Deny"
    stmt: dict[str, Any] = {"Effect": effect}
    if kind == "resource":
        stmt["Principal"] = draw(st.sampled_from(RESOURCE_PRINCIPALS))
    elif kind == "rcp":
        stmt["Principal"] = "*"
    actions = draw(st.lists(st.sampled_from(ACTION_PATTERNS), min_size=1, max_size=2, unique=True))
    stmt["NotAction" if draw(st.integers(0, 5)) == 0 else "Action"] = (
        actions[0] if len(actions) == 1 else actions
    )
    res = draw(st.lists(st.sampled_from(RESOURCE_PATTERNS), min_size=1, max_size=2, unique=True))
    stmt["NotResource" if draw(st.integers(0, 5)) == 0 else "Resource"] = (
        res[0] if len(res) == 1 else res
    )
    picks = draw(
        st.one_of(
            st.just([]), st.lists(st.integers(0, len(CONDITIONS) - 1), min_size=1, max_size=2)
        )
    )
    merged: dict[str, dict[str, Any]] = {}
    for i in picks:
        ((op, block),) = copy.deepcopy(CONDITIONS[i][0]).items()
        ((key, value),) = block.items()
        merged.setdefault(op, {}).setdefault(key, value)  # first one wins on a collision
    if merged:
        stmt["Condition"] = merged
    return stmt


FULL_ACCESS = {"Effect": "Allow", "Action": "*", "Resource": "*"}


@st.composite
def documents(draw: st.DrawFn, kind: str, max_statements: int = 3) -> dict[str, Any]:
    stmts = draw(st.lists(statements(kind), min_size=1, max_size=max_statements))
    if kind == "scp" and draw(st.integers(0, 3)) > 0:
        stmts.insert(draw(st.integers(0, len(stmts))), dict(FULL_ACCESS))
    return {"Version": "2012-10-17", "Statement": stmts}


@st.composite
def policy_sets(draw: st.DrawFn) -> dict[str, Any]:
    """A policy set as plain JSON documents (see ``build``)."""

    def sometimes(strategy: st.SearchStrategy[Any]) -> Any:
        # Absent two times in three: every cap on the identity side makes an Allow rarer.
        return draw(st.one_of(st.none(), st.none(), strategy))

    return {
        "identity": draw(st.lists(documents("identity"), max_size=3)),
        "boundary": sometimes(documents("identity", 2)),
        "session": sometimes(st.lists(documents("identity", 2), min_size=1, max_size=2)),
        "resource": sometimes(documents("resource")),
        "scp": draw(st.lists(st.lists(documents("scp", 2), min_size=1, max_size=2), max_size=2)),
        "rcp": draw(st.lists(st.lists(documents("rcp", 2), min_size=1, max_size=1), max_size=2)),
    }


def _parse(doc: dict[str, Any], kind: PolicyKind, name: str) -> Any:
    return parse_policy(doc, kind, name=name, enforce_size=False)


def build(spec: dict[str, Any]) -> PolicySet:
    return PolicySet(
        identity=[_parse(d, PolicyKind.MANAGED, f"id{i}") for i, d in enumerate(spec["identity"])],
        boundary=_parse(spec["boundary"], PolicyKind.MANAGED, "boundary")
        if spec["boundary"] is not None
        else None,
        session=[_parse(d, PolicyKind.SESSION, f"s{i}") for i, d in enumerate(spec["session"])]
        if spec["session"] is not None
        else None,
        resource=_parse(spec["resource"], PolicyKind.RESOURCE, "res")
        if spec["resource"] is not None
        else None,
        scp=[
            [_parse(d, PolicyKind.SCP, f"scp{lvl}.{i}") for i, d in enumerate(level)]
            for lvl, level in enumerate(spec["scp"])
        ],
        rcp=[
            [_parse(d, PolicyKind.RCP, f"rcp{lvl}.{i}") for i, d in enumerate(level)]
            for lvl, level in enumerate(spec["rcp"])
        ],
    )


def decide(spec: dict[str, Any], req: Req) -> Effect:
    return build(spec).authorize(req.build()).effect


# The model of "this statement applies to the request".


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _principal_matches(spec: Any, principal: Principal) -> bool:
    if spec == "*":
        return True
    for item in _as_list(spec["AWS"]):
        if item in (principal.arn, principal.role_arn):
            return True
        if item == principal.account:
            return True
    return False


def _condition_truth(stmt: dict[str, Any], ctx: dict[str, Any]) -> Truth:
    truths: list[Truth] = []
    for op, block in stmt.get("Condition", {}).items():
        for key, value in block.items():
            for known, truth in CONDITIONS:
                if known == {op: {key: value}}:
                    truths.append(truth(ctx))
                    break
            else:
                raise AssertionError(f"unknown condition {op} {key} {value}")
    if False in truths:
        return False
    return ERROR if ERROR in truths else True


def statement_applies(stmt: dict[str, Any], req: Req) -> bool:
    """Whether a generated statement applies; a Deny also applies when its condition errs."""
    if "Action" in stmt:
        if not any(ref_glob(p.lower(), req.action.lower()) for p in _as_list(stmt["Action"])):
            return False
    elif any(ref_glob(p.lower(), req.action.lower()) for p in _as_list(stmt["NotAction"])):
        return False
    if "Resource" in stmt:
        if not any(ref_glob(p, req.resource) for p in _as_list(stmt["Resource"])):
            return False
    elif any(ref_glob(p, req.resource) for p in _as_list(stmt["NotResource"])):
        return False
    if "Principal" in stmt and not _principal_matches(stmt["Principal"], req.principal_obj()):
        return False
    truth = _condition_truth(stmt, req.context)
    if truth == ERROR:
        return stmt["Effect"] == "Deny"
    return bool(truth)


def all_documents(spec: dict[str, Any], iam_principal: bool = True) -> list[dict[str, Any]]:
    docs = list(spec["identity"])
    for single in ("boundary", "resource"):
        if spec[single] is not None:
            docs.append(spec[single])
    docs.extend(spec["session"] or [])
    for level in spec["rcp"]:
        docs.extend(level)
    if iam_principal:
        for level in spec["scp"]:
            docs.extend(level)
    return docs


def some_deny_applies(spec: dict[str, Any], req: Req) -> bool:
    return any(
        stmt["Effect"] == "Deny" and statement_applies(stmt, req)
        for doc in all_documents(spec)
        for stmt in doc["Statement"]
    )


# --- deny precedence ------------------------------------------------------------------------


@HEAVY
@given(policy_sets(), requests())
def test_explicit_deny_iff_an_applicable_deny_matches(spec: dict[str, Any], req: Req) -> None:
    effect = decide(spec, req)
    expected = some_deny_applies(spec, req)
    assert (effect is Effect.EXPLICIT_DENY) == expected, (spec, req)


LOCATIONS = [
    "identity-existing",
    "identity-new",
    "boundary",
    "session",
    "resource",
    "scp-existing",
    "scp-new-level",
    "rcp-existing",
    "rcp-new-level",
]


def add_statement(spec: dict[str, Any], where: str, stmt: dict[str, Any], pick: int) -> None:
    """Add ``stmt`` to ``spec`` at ``where`` (``pick`` chooses among existing policies)."""

    def append(doc: dict[str, Any]) -> None:
        doc["Statement"].insert(pick % (len(doc["Statement"]) + 1), stmt)

    def new_doc() -> dict[str, Any]:
        return {"Version": "2012-10-17", "Statement": [stmt]}

    if where == "identity-existing" and spec["identity"]:
        append(spec["identity"][pick % len(spec["identity"])])
    elif where in ("identity-existing", "identity-new"):
        spec["identity"].append(new_doc())
    elif where in ("boundary", "resource"):
        if spec[where] is None:
            spec[where] = new_doc()
        else:
            append(spec[where])
    elif where == "session":
        if spec["session"] is None:
            spec["session"] = [new_doc()]
        else:
            append(spec["session"][pick % len(spec["session"])])
    else:
        level_kind = where.split("-", maxsplit=1)[0]
        levels = spec[level_kind]
        if where.endswith("existing") and levels:
            level = levels[pick % len(levels)]
            append(level[pick % len(level)])
        else:
            levels.append([new_doc()])


@st.composite
def located_deny(draw: st.DrawFn) -> tuple[str, dict[str, Any], int]:
    where = draw(st.sampled_from(LOCATIONS))
    kind = {"resource": "resource", "rcp": "rcp"}.get(where.split("-")[0], "identity")
    stmt = draw(statements(kind, effect="Deny"))
    return where, stmt, draw(st.integers(0, 100))


@HEAVY
@given(policy_sets(), requests(), located_deny())
def test_a_matching_deny_anywhere_decides(
    spec: dict[str, Any], req: Req, deny: tuple[str, dict[str, Any], int]
) -> None:
    where, stmt, pick = deny
    # Make the added deny match the request unconditionally (or through a failing-closed
    # condition), whatever else the policy set says.
    stmt.pop("NotAction", None)
    stmt.pop("NotResource", None)
    stmt["Action"] = req.action.upper() if pick % 2 else "*"
    stmt["Resource"] = "*" if pick % 3 else req.resource
    if "Principal" in stmt:
        stmt["Principal"] = "*"
    if "Condition" in stmt and not statement_applies(stmt, req):
        del stmt["Condition"]
    assert statement_applies(stmt, req)
    add_statement(spec, where, stmt, pick)
    assert decide(spec, req) is Effect.EXPLICIT_DENY, (where, stmt, spec, req)


# --- monotonicity ---------------------------------------------------------------------------


@HEAVY
@given(policy_sets(), requests(ALL_PRINCIPALS), located_deny())
def test_adding_a_deny_never_grants(
    spec: dict[str, Any], req: Req, deny: tuple[str, dict[str, Any], int]
) -> None:
    before = decide(spec, req)
    where, stmt, pick = deny
    add_statement(spec, where, stmt, pick)
    after = decide(spec, req)
    if before is not Effect.ALLOW:
        assert after is not Effect.ALLOW, (where, stmt, spec, req)
    if before is Effect.EXPLICIT_DENY:
        assert after is Effect.EXPLICIT_DENY, (where, stmt, spec, req)


@HEAVY
@given(
    policy_sets(),
    requests(ALL_PRINCIPALS),
    statements("identity", effect="Allow"),
    st.booleans(),
    st.integers(0, 100),
)
def test_adding_an_identity_allow_never_lifts_an_explicit_deny(
    spec: dict[str, Any], req: Req, stmt: dict[str, Any], new_policy: bool, pick: int
) -> None:
    before = decide(spec, req)
    add_statement(spec, "identity-new" if new_policy else "identity-existing", stmt, pick)
    after = decide(spec, req)
    if before is Effect.EXPLICIT_DENY:
        assert after is Effect.EXPLICIT_DENY, (stmt, spec, req)
    # And an Allow never takes a permission away.
    if before is Effect.ALLOW:
        assert after is Effect.ALLOW, (stmt, spec, req)


# --- order independence ---------------------------------------------------------------------


def shuffled(spec: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    out = copy.deepcopy(spec)

    def shuffle_dict(d: dict[str, Any]) -> dict[str, Any]:
        items = list(d.items())
        rnd.shuffle(items)
        return dict(items)

    def shuffle_doc(doc: dict[str, Any]) -> None:
        rnd.shuffle(doc["Statement"])
        for stmt in doc["Statement"]:
            if "Condition" in stmt:
                stmt["Condition"] = shuffle_dict(
                    {op: shuffle_dict(block) for op, block in stmt["Condition"].items()}
                )

    for doc in all_documents(out):
        shuffle_doc(doc)
    rnd.shuffle(out["identity"])
    if out["session"] is not None:
        rnd.shuffle(out["session"])
    for level_kind in ("scp", "rcp"):
        for level in out[level_kind]:
            rnd.shuffle(level)
        rnd.shuffle(out[level_kind])
    return out


@HEAVY
@given(policy_sets(), requests(ALL_PRINCIPALS), st.randoms(use_true_random=False))
def test_statement_and_policy_order_do_not_change_the_effect(
    spec: dict[str, Any], req: Req, rnd: random.Random
) -> None:
    assert decide(spec, req) is decide(shuffled(spec, rnd), req), (spec, req)


# Several conditions in one Deny statement, one of which cannot be evaluated and another
# plainly false: the answer must not depend on the order of the Condition block's keys (the
# false one decides: the conditions cannot all hold whatever the unreadable value means).
_ERRING_AND_FALSE = [
    ({"StringEquals": {"aws:a": "x"}}, {"NumericLessThan": {"aws:n": "3"}}),
    ({"IpAddress": {"aws:ip": "10.0.0.0/8"}}, {"NumericNotEquals": {"aws:n": "5"}}),
    ({"Null": {"aws:a": "true"}}, {"DateLessThan": {"aws:n": "2024-01-01"}}),
    ({"StringEquals": {"aws:a": "x"}}, {"NotIpAddress": {"aws:n": "10.0.0.0/8"}}),
]


@pytest.mark.parametrize(("first", "second"), _ERRING_AND_FALSE)
def test_condition_block_order_does_not_change_a_deny(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    ctx = {"aws:a": "y", "aws:n": "abc", "aws:ip": "192.168.1.1"}
    req = Req("s3:GetObject", "arn:aws:s3:::b/k", ALICE, ctx)
    results = set()
    for cond in ({**first, **second}, {**second, **first}):
        spec = {
            "identity": [
                {"Version": "2012-10-17", "Statement": [dict(FULL_ACCESS)]},
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": cond}
                    ],
                },
            ],
            "boundary": None,
            "session": None,
            "resource": None,
            "scp": [],
            "rcp": [],
        }
        results.add(decide(spec, req))
    assert results == {Effect.ALLOW}, results


# --- never raises; unevaluable conditions never allow --------------------------------------

OPERATOR_VALUES: dict[str, list[Any]] = {
    "StringEquals": ["x", "", "${aws:username}", "a${*}b", 5, True],
    "StringNotEquals": ["x", "${aws:PrincipalTag/t, 'd'}"],
    "StringEqualsIgnoreCase": ["X", "${aws:username}"],
    "StringNotEqualsIgnoreCase": ["x"],
    "StringLike": ["x*", "?", "*", "h/${aws:username}/*", "${?}"],
    "StringNotLike": ["x*", "${$}*"],
    "NumericEquals": ["0", "-1", 2.5, 10],
    "NumericNotEquals": ["3"],
    "NumericLessThan": ["3", "-0.5"],
    "NumericLessThanEquals": ["3"],
    "NumericGreaterThan": ["1000000"],
    "NumericGreaterThanEquals": ["0.001"],
    "DateEquals": ["2024-01-01", "1704067200"],
    "DateNotEquals": ["2024-01-01T00:00:00Z"],
    "DateLessThan": ["2024-06-01T12:00:00+02:00", 1704067200],
    "DateLessThanEquals": ["2024-01-01T00:00:00.5Z"],
    "DateGreaterThan": ["2020-01-01"],
    "DateGreaterThanEquals": ["2020-01-01T00:00:00-05:00"],
    "Bool": ["true", False],
    "BinaryEquals": ["QmluYXJ5", "AAEC"],
    "IpAddress": ["10.0.0.0/8", "203.0.113.7", "2001:db8::/32"],
    "NotIpAddress": ["::1", "192.168.0.0/16"],
    "ArnEquals": ["arn:aws:iam::111122223333:user/*", "*"],
    "ArnLike": ["arn:aws:s3:::b/${aws:username}", "arn:*:*:*:*:*"],
    "ArnNotEquals": ["arn:aws:iam::111122223333:user/alice"],
    "ArnNotLike": ["arn:aws:iam::*:role/*"],
    "Null": ["true", False],
}
FUZZ_KEYS = ["aws:k1", "aws:k2", "aws:username", "aws:PrincipalTag/t"]
SAMPLE_CONTEXT_VALUES = [
    v for vals in OPERATOR_VALUES.values() for v in vals if isinstance(v, str) and "${" not in v
] + ["10.1.2.3", "2001:db8::5", "nan", "inf", "1e999", "9" * 400, "", " ", "true", "TRUE"]


@st.composite
def fuzz_condition(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(sorted(OPERATOR_VALUES)))
    name = op
    if op != "Null":
        name = draw(st.sampled_from(["", "ForAllValues:", "ForAnyValue:"])) + op
        if draw(st.booleans()):
            name += "IfExists"
    keys = draw(st.lists(st.sampled_from(FUZZ_KEYS), min_size=1, max_size=2, unique=True))
    block = {
        key: draw(st.lists(st.sampled_from(OPERATOR_VALUES[op]), min_size=1, max_size=3))
        for key in keys
    }
    return {name: block}


fuzz_value = st.one_of(st.text(max_size=20), st.sampled_from(SAMPLE_CONTEXT_VALUES))


@st.composite
def fuzz_context(draw: st.DrawFn) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    for key in FUZZ_KEYS:
        choice = draw(st.integers(0, 3))
        if choice == 1:
            ctx[key] = draw(fuzz_value)
        elif choice == 2:
            ctx[key] = draw(st.lists(fuzz_value, max_size=3))
    return ctx


@HEAVY
@given(
    st.lists(
        st.tuples(st.sampled_from(["Allow", "Deny"]), st.lists(fuzz_condition(), max_size=3)),
        min_size=1,
        max_size=4,
    ),
    fuzz_context(),
    st.one_of(st.sampled_from(ACTIONS), st.text(max_size=12)),
    st.one_of(st.sampled_from(RESOURCES), st.text(max_size=20)),
    st.one_of(st.sampled_from(ALL_PRINCIPALS), st.text(max_size=20)),
)
def test_evaluation_never_raises(
    raw_statements: list[tuple[str, list[dict[str, Any]]]],
    ctx: dict[str, Any],
    action: str,
    resource: str,
    principal: str,
) -> None:
    stmts = []
    for effect, conds in raw_statements:
        stmt: dict[str, Any] = {"Effect": effect, "Action": "*", "Resource": "*"}
        merged: dict[str, Any] = {}
        for cond in conds:
            for name, block in cond.items():
                merged.setdefault(name, {}).update(block)
        if merged:
            stmt["Condition"] = merged
        stmts.append(stmt)
    doc = {"Version": "2012-10-17", "Statement": stmts}
    try:
        policy = parse_policy(doc, PolicyKind.MANAGED, name="fuzz", enforce_size=False)
    except MalformedPolicyDocumentError as exc:  # pragma: no cover - the generator is valid
        raise AssertionError(f"generated policy rejected: {exc}") from exc
    request = make_request(action, resource, principal_from_arn(principal), context=ctx)
    decision = PolicySet(identity=[policy], boundary=policy, session=[policy]).authorize(request)
    assert decision.effect in set(Effect)
    json.dumps(decision.to_dict())


# Values that no reader accepts: not a number, not a date, not an address, not base64. (No
# empty string: for the set operators that is a null data set, like an absent key.)
GARBAGE: dict[str, list[str]] = {
    "Numeric": ["abc", "nan", "inf", "-Infinity", "1.2.3", "0x10", "1,5", "!"],
    "Date": ["yesterday", "2024-13-01", "2024-01-01T25:00:00Z", "!"],
    "IpAddress": ["not-an-ip", "300.1.1.1", "10.0.0.0/33", "::g", "!"],
    "Binary": ["@@@", "abc", "QQ=", "!"],
}
TYPED_OPERATORS: dict[str, list[tuple[str, str]]] = {
    "Numeric": [
        (f"Numeric{n}", "3")
        for n in (
            "Equals",
            "NotEquals",
            "LessThan",
            "LessThanEquals",
            "GreaterThan",
            "GreaterThanEquals",
        )
    ],
    "Date": [
        (f"Date{n}", "2024-01-01T00:00:00Z")
        for n in (
            "Equals",
            "NotEquals",
            "LessThan",
            "LessThanEquals",
            "GreaterThan",
            "GreaterThanEquals",
        )
    ],
    "IpAddress": [("IpAddress", "10.0.0.0/8"), ("NotIpAddress", "10.0.0.0/8")],
    "Binary": [("BinaryEquals", "QmluYXJ5")],
}


@st.composite
def erring_condition(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    family = draw(st.sampled_from(sorted(TYPED_OPERATORS)))
    op, value = draw(st.sampled_from(TYPED_OPERATORS[family]))
    name = draw(st.sampled_from(["", "ForAllValues:", "ForAnyValue:"])) + op
    if draw(st.booleans()):
        name += "IfExists"
    garbage = st.one_of(
        st.sampled_from(GARBAGE[family]),
        st.text(alphabet="xyz@# _-", max_size=6).map(lambda t: "!" + t),
    )
    request_value: Any = draw(st.one_of(garbage, st.lists(garbage, min_size=1, max_size=3)))
    return {name: {"aws:g": value}}, {"aws:g": request_value}


@HEAVY
@given(erring_condition(), st.booleans())
def test_a_condition_that_cannot_be_evaluated_never_allows(
    case: tuple[dict[str, Any], dict[str, Any]], also_plain_allow_elsewhere: bool
) -> None:
    condition, ctx = case
    stmt = {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": condition}
    spec: dict[str, Any] = {
        "identity": [{"Version": "2012-10-17", "Statement": [stmt]}],
        "boundary": None,
        "session": None,
        "resource": None,
        "scp": [],
        "rcp": [],
    }
    req = Req("s3:GetObject", "arn:aws:s3:::b/k", ALICE, ctx)
    assert decide(spec, req) is Effect.IMPLICIT_DENY, (condition, ctx)
    # The same condition in a Deny statement denies, even next to a full-access Allow.
    deny = {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": condition}
    where = "boundary" if also_plain_allow_elsewhere else "identity"
    spec2: dict[str, Any] = {
        "identity": [{"Version": "2012-10-17", "Statement": [dict(FULL_ACCESS)]}],
        "boundary": None,
        "session": None,
        "resource": None,
        "scp": [],
        "rcp": [],
    }
    if where == "identity":
        spec2["identity"].append({"Version": "2012-10-17", "Statement": [deny]})
    else:
        spec2["boundary"] = {"Version": "2012-10-17", "Statement": [dict(FULL_ACCESS), deny]}
    assert decide(spec2, req) is Effect.EXPLICIT_DENY, (condition, ctx)
