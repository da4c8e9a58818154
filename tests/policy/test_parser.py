"""Validation: every malformed document is refused with IAM's code and a located message."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fedbroker.errors import MalformedPolicyDocumentError, PolicyTooLargeError
from fedbroker.policy import PolicyKind, parse_policy


def doc(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}


def problems(document: Any, kind: PolicyKind = PolicyKind.MANAGED) -> list[str]:
    with pytest.raises(MalformedPolicyDocumentError) as info:
        parse_policy(document, kind)
    assert info.value.code == "MalformedPolicyDocument"
    assert info.value.status == 400
    return [str(p) for p in info.value.problems]


def test_valid_document_compiles_with_statement_object_or_list() -> None:
    single = parse_policy({"Version": "2012-10-17", "Statement": ALLOW_ALL})
    listed = parse_policy(doc(ALLOW_ALL, {**ALLOW_ALL, "Sid": "Two"}))
    assert len(single.statements) == 1
    assert [s.sid for s in listed.statements] == [None, "Two"]
    assert listed.version == "2012-10-17"


def test_missing_version_means_2008_and_disables_variables() -> None:
    policy = parse_policy({"Statement": ALLOW_ALL})
    assert policy.version == "2008-10-17"
    assert not policy.variables_enabled


def test_not_json() -> None:
    (message,) = problems('{"Version": "2012-10-17", ')
    assert "not valid JSON" in message and "line 1" in message


def test_duplicate_keys_are_refused() -> None:
    text = (
        '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*",'
        ' "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"},'
        ' "Bool": {"aws:MultiFactorAuthPresent": "true"}}}}'
    )
    (message,) = problems(text)
    assert "duplicate key `Bool`" in message


def test_problem_names_statement_sid_field_and_suggests() -> None:
    found = problems(
        doc(ALLOW_ALL, {"Sid": "Read", "Effect": "Allow", "Actions": "s3:*", "Resource": "*"})
    )
    assert "statement 2 (Read): unknown element `Actions`; did you mean `Action`?" in found
    assert any(m.startswith("statement 2 (Read): Action: missing required element") for m in found)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ({"Effect": "allow", "Action": "*", "Resource": "*"}, "it is case-sensitive"),
        ({"Effect": "Permit", "Action": "*", "Resource": "*"}, "must be `Allow` or `Deny`"),
        ({"Action": "*", "Resource": "*"}, "Effect: missing required element"),
        ({"Effect": "Allow", "Resource": "*"}, "Action: missing required element"),
        ({"Effect": "Allow", "Action": "*"}, "Resource: missing required element"),
        ({"Effect": "Allow", "Action": "s3GetObject", "Resource": "*"}, "must be prefaced"),
        ({"Effect": "Allow", "Action": "s*:GetObject", "Resource": "*"}, "must not contain wild"),
        ({"Effect": "Allow", "Action": [], "Resource": "*"}, "must not be empty"),
        ({"Effect": "Allow", "Action": ["s3:Get", 3], "Resource": "*"}, "non-empty string"),
        ({"Effect": "Allow", "Action": "s3:Get Object", "Resource": "*"}, "not a valid action"),
        ({"Effect": "Allow", "Action": "*", "Resource": "bucket"}, "must be in ARN format"),
        ({"Effect": "Allow", "Action": "*", "NotAction": "s3:*", "Resource": "*"}, "not both"),
        ({"Effect": "Allow", "Action": "*", "Resource": "*", "NotResource": "*"}, "not both"),
        (
            {"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"},
            "must not name a principal",
        ),
        ({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": []}, "object of oper"),
        (
            {
                "Effect": "Allow",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringEquals": {"SourceIp": "x"}},
            },
            "must be prefaced by a service",
        ),
        (
            {
                "Effect": "Allow",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:username": []}},
            },
            "non-empty list",
        ),
        (
            {
                "Effect": "Allow",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:username": {"a": "b"}}},
            },
            "strings, numbers",
        ),
        (
            {
                "Effect": "Allow",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringEqual": {"aws:username": "a"}},
            },
            "did you mean `StringEquals`",
        ),
        (
            {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::${aws:username"},
            "not closed",
        ),
        (
            {"Sid": "has space", "Effect": "Allow", "Action": "*", "Resource": "*"},
            "only letters and digits",
        ),
    ],
)
def test_statement_problems(statement: dict[str, Any], expected: str) -> None:
    found = problems(doc(statement))
    assert any(expected in m for m in found), found
    assert all(m.startswith("statement 1") for m in found), found


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "must be a JSON object"),
        ({"Version": "2012-10-17"}, "Statement: missing required element"),
        ({"Version": "2012-10-17", "Statement": []}, "at least one statement"),
        ({"Version": "2012-10-17", "Statement": "x"}, "object or a list"),
        ({"Version": "2013-01-01", "Statement": ALLOW_ALL}, "unsupported version"),
        ({"Version": "2012-10-17", "Statement": ALLOW_ALL, "Statment": []}, "did you mean"),
        ({"Version": "2012-10-17", "Statement": ALLOW_ALL, "Id": 7}, "Id: must be a string"),
    ],
)
def test_document_problems(document: Any, expected: str) -> None:
    found = problems(document)
    assert any(expected in m for m in found), found


def test_duplicate_sids() -> None:
    found = problems(doc({**ALLOW_ALL, "Sid": "A"}, {**ALLOW_ALL, "Sid": "A"}))
    assert found == [
        "statement 2 (A): Sid: duplicate `Sid` (also statement 1); statement ids must be unique"
    ]


def test_all_problems_reported_at_once() -> None:
    found = problems(
        doc({"Effect": "Maybe", "Action": "x", "Resource": "y"}, {"Effect": "Allow", "Action": "*"})
    )
    assert len(found) == 4
    assert sum(m.startswith("statement 1") for m in found) == 3


TRUST = {
    "Effect": "Allow",
    "Principal": {
        "Federated": "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com"
    },
    "Action": "sts:AssumeRoleWithWebIdentity",
}


def test_trust_policy_grammar() -> None:
    parse_policy(doc(TRUST), PolicyKind.TRUST)
    assert any("must name a principal" in m for m in problems(doc(ALLOW_ALL), PolicyKind.TRUST))
    found = problems(doc({**TRUST, "Resource": "*"}), PolicyKind.TRUST)
    assert any("must not have a resource element" in m for m in found)
    found = problems(doc({**TRUST, "Action": "s3:GetObject"}), PolicyKind.TRUST)
    assert any("only allow `sts:` actions" in m for m in found)
    not_principal = {
        "Effect": "Deny",
        "NotPrincipal": {"AWS": "111122223333"},
        "Action": "sts:AssumeRole",
    }
    assert any(
        "not supported in role trust" in m for m in problems(doc(not_principal), PolicyKind.TRUST)
    )


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ({"AWS": "arn:aws:iam::111122223333:role/*"}, "wildcards are not allowed"),
        ({"AWS": "alice"}, "expected an account id"),
        ({"Aws": "111122223333"}, "did you mean `AWS`"),
        ({"Service": "*"}, "does not accept `*`"),
        ({}, "at least one principal"),
        ("everyone", "must be"),
    ],
)
def test_principal_problems(principal: Any, expected: str) -> None:
    statement = {"Effect": "Allow", "Principal": principal, "Action": "s3:*", "Resource": "*"}
    found = problems(doc(statement), PolicyKind.RESOURCE)
    assert any(expected in m for m in found), found


def test_not_principal_only_with_deny() -> None:
    statement = {
        "Effect": "Allow",
        "NotPrincipal": {"AWS": "111122223333"},
        "Action": "s3:*",
        "Resource": "*",
    }
    assert any("only be used with" in m for m in problems(doc(statement), PolicyKind.RESOURCE))


def test_rcp_grammar() -> None:
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": "*",
        "Condition": {"BoolIfExists": {"aws:SecureTransport": "false"}},
    }
    parse_policy(doc(deny), PolicyKind.RCP)
    full_access = {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}
    parse_policy(doc(full_access), PolicyKind.RCP)
    allow = {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}
    assert any("only `Deny`" in m for m in problems(doc(allow), PolicyKind.RCP))
    named = {**deny, "Principal": {"AWS": "111122223333"}}
    assert any('only `"Principal": "*"`' in m for m in problems(doc(named), PolicyKind.RCP))


def test_size_limits_per_kind() -> None:
    def sized(n_actions: int) -> str:
        actions = [f"s3:GetObjectVersion{i:04d}" for i in range(n_actions)]
        return json.dumps(doc({"Effect": "Allow", "Action": actions, "Resource": "*"}), indent=4)

    small, large = sized(60), sized(300)
    parse_policy(small, PolicyKind.INLINE_USER)
    parse_policy(large, PolicyKind.INLINE_ROLE)
    with pytest.raises(PolicyTooLargeError) as info:
        parse_policy(large, PolicyKind.MANAGED)
    assert info.value.code == "LimitExceeded"
    assert "the limit is 6144 (white space not counted)" in info.value.message
    with pytest.raises(PolicyTooLargeError) as info:
        parse_policy(sized(100), PolicyKind.SESSION)
    assert info.value.code == "ValidationError"
    parse_policy(large, PolicyKind.MANAGED, enforce_size=False)


def test_white_space_is_not_counted_for_managed_policies() -> None:
    compact = json.dumps(doc(ALLOW_ALL), separators=(",", ":"))
    padded = compact.replace(",", "," + " " * 4000)
    assert len(padded) > 6144
    parse_policy(padded, PolicyKind.MANAGED)


def test_condition_values_accept_numbers_and_booleans() -> None:
    policy = parse_policy(
        doc(
            {
                **ALLOW_ALL,
                "Condition": {
                    "Bool": {"aws:SecureTransport": True},
                    "NumericLessThan": {"s3:max-keys": 10},
                },
            }
        )
    )
    values = sorted(v for c in policy.statements[0].conditions for v in c.values)
    assert values == ["10", "true"]


def test_variables_are_literal_text_without_2012_version() -> None:
    resource = "arn:aws:s3:::bucket/${aws:username"  # unterminated, but literal in 2008
    policy = parse_policy(doc({**ALLOW_ALL, "Resource": resource}, version="2008-10-17"))
    assert policy.statements[0].resources is not None
