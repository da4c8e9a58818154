"""Evaluation logic: how policy types combine (IAM User Guide, "Policy evaluation logic")."""

from __future__ import annotations

from typing import Any

import pytest

from fedbroker.policy import (
    Effect,
    PolicyKind,
    PolicySet,
    make_request,
    parse_policy,
    principal_from_arn,
)
from fedbroker.policy.evaluator import PolicyGroup

ACCOUNT = "111122223333"
OTHER = "444455556666"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/job-1"
BUCKET = "arn:aws:s3:::reports"
OBJECT = "arn:aws:s3:::reports/2026/q3.csv"


def policy(
    *statements: dict[str, Any], kind: PolicyKind = PolicyKind.MANAGED, name: str = "p"
) -> Any:
    return parse_policy(
        {"Version": "2012-10-17", "Statement": list(statements)}, kind, name, enforce_size=False
    )


def allow(action: str = "s3:GetObject", resource: str = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: str = "s3:GetObject", resource: str = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def grant(principal: Any, action: str = "s3:GetObject", effect: str = "Allow") -> Any:
    return policy(
        {"Effect": effect, "Principal": principal, "Action": action, "Resource": f"{BUCKET}/*"},
        kind=PolicyKind.RESOURCE,
        name="bucket",
    )


def decide(
    policies: PolicySet,
    principal: str = ALICE,
    action: str = "s3:GetObject",
    resource: str = OBJECT,
    context: dict[str, Any] | None = None,
    resource_account: str | None = None,
    principal_type: str | None = None,
) -> Any:
    request = make_request(
        action, resource, principal_from_arn(principal, principal_type), context, resource_account
    )
    return policies.authorize(request)


def test_default_is_implicit_deny() -> None:
    decision = decide(PolicySet())
    assert decision.effect is Effect.IMPLICIT_DENY
    assert "no identity-based policy allows `s3:GetObject`" in decision.reason


def test_identity_allow_and_explicit_deny_wins_across_policies() -> None:
    allowing = PolicySet(identity=[policy(allow("s3:*"), name="read")])
    assert decide(allowing).effect is Effect.ALLOW
    denied = PolicySet(
        identity=[
            policy(allow("s3:*"), name="read"),
            policy(deny("s3:Get*", f"{BUCKET}/2026/*", Sid="NoQ3"), name="guard"),
        ]
    )
    decision = decide(denied)
    assert decision.effect is Effect.EXPLICIT_DENY
    assert decision.reason == (
        "explicitly denied by statement 1 (NoQ3) of `guard` (identity-based policy)"
    )
    explanation = decision.explanation()
    identity = explanation["policy_types"]["identity"]
    assert identity["denied_by"] == [
        {"policy": "guard", "statement": 1, "effect": "Deny", "sid": "NoQ3"}
    ]
    assert identity["allowed_by"][0]["policy"] == "read"


def test_actions_are_case_insensitive_resources_case_sensitive() -> None:
    policies = PolicySet(identity=[policy(allow("S3:getobject", f"{BUCKET}/2026/*"))])
    assert decide(policies, action="s3:GetObject").effect is Effect.ALLOW
    assert decide(policies, resource="arn:aws:s3:::Reports/2026/x").effect is Effect.IMPLICIT_DENY


def test_not_action_and_not_resource() -> None:
    policies = PolicySet(
        identity=[
            policy({"Effect": "Allow", "NotAction": "iam:*", "NotResource": f"{BUCKET}/secret/*"})
        ]
    )
    assert decide(policies).effect is Effect.ALLOW
    assert decide(policies, action="iam:CreateUser").effect is Effect.IMPLICIT_DENY
    assert decide(policies, resource=f"{BUCKET}/secret/k").effect is Effect.IMPLICIT_DENY


def test_permissions_boundary_caps_identity_policies() -> None:
    policies = PolicySet(
        identity=[policy(allow("s3:*"), allow("iam:*"))],
        boundary=policy(allow("s3:*"), name="boundary"),
    )
    assert decide(policies).effect is Effect.ALLOW
    decision = decide(policies, action="iam:CreateUser")
    assert decision.effect is Effect.IMPLICIT_DENY
    assert decision.decided_by == "boundary"
    assert "permissions boundary does not allow `iam:CreateUser`" in decision.reason


def test_session_policy_caps_role_session() -> None:
    policies = PolicySet(
        identity=[policy(allow("s3:*"))],
        session=[policy(allow("s3:List*"), kind=PolicyKind.SESSION)],
    )
    decision = decide(policies, principal=SESSION)
    assert decision.effect is Effect.IMPLICIT_DENY
    assert decision.decided_by == "session"
    assert decide(policies, principal=SESSION, action="s3:ListBucket").effect is Effect.ALLOW
    # Managed and inline session policies together are one set: any of them may allow.
    two = PolicySet(
        identity=[policy(allow("s3:*"))],
        session=[policy(allow("s3:List*")), policy(allow("s3:GetObject"))],
    )
    assert decide(two, principal=SESSION).effect is Effect.ALLOW
    # A session policy never grants on its own.
    alone = PolicySet(session=[policy(allow("s3:*"))])
    assert decide(alone, principal=SESSION).effect is Effect.IMPLICIT_DENY


def test_every_scp_level_must_allow() -> None:
    full = policy(allow("*"), kind=PolicyKind.SCP, name="FullAWSAccess")
    s3_only = policy(allow("s3:*"), kind=PolicyKind.SCP, name="s3-only")
    identity = [policy(allow("*"))]
    policies = PolicySet(identity=identity, scp=[[full], [s3_only]])
    assert decide(policies).effect is Effect.ALLOW
    decision = decide(policies, action="ec2:RunInstances")
    assert decision.effect is Effect.IMPLICIT_DENY
    assert decision.decided_by == "scp[1]"
    assert "level 1" in decision.reason
    # An SCP grants nothing by itself.
    assert decide(PolicySet(scp=[[full]])).effect is Effect.IMPLICIT_DENY
    # A deny at any level is explicit.
    guard = policy(allow("*"), deny("s3:GetObject"), kind=PolicyKind.SCP)
    decision = decide(PolicySet(identity=identity, scp=[[guard], [full]]))
    assert decision.effect is Effect.EXPLICIT_DENY
    assert "(service control policy)" in decision.reason


def test_root_user_has_full_access_but_scps_and_denies_apply() -> None:
    root = f"arn:aws:iam::{ACCOUNT}:root"
    assert decide(PolicySet(), principal=root).effect is Effect.ALLOW
    scp = policy(allow("s3:*"), kind=PolicyKind.SCP)
    assert (
        decide(PolicySet(scp=[[scp]]), principal=root, action="ec2:RunInstances").effect
        is Effect.IMPLICIT_DENY
    )
    bucket = grant("*", effect="Deny")
    assert decide(PolicySet(resource=bucket), principal=root).effect is Effect.EXPLICIT_DENY


def test_rcp_only_denies_count() -> None:
    rcp = policy(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"StringNotEqualsIfExists": {"aws:PrincipalOrgID": "o-123"}},
        },
        kind=PolicyKind.RCP,
        name="org-only",
    )
    policies = PolicySet(identity=[policy(allow("s3:*"))], rcp=[[rcp]])
    assert decide(policies, context={"aws:PrincipalOrgID": "o-123"}).effect is Effect.ALLOW
    decision = decide(policies, context={"aws:PrincipalOrgID": "o-999"})
    assert decision.effect is Effect.EXPLICIT_DENY
    assert decision.decided_by == "rcp[0]"


def test_same_account_resource_grant_to_user_bypasses_boundary_gap() -> None:
    bucket = grant({"AWS": ALICE})
    policies = PolicySet(resource=bucket, boundary=policy(allow("ec2:*")))
    decision = decide(policies)
    assert decision.effect is Effect.ALLOW
    assert decision.decided_by == "resource"
    assert (
        decision.explanation()["policy_types"]["resource"]["allowed_by"][0]["principal_match"]
        == "principal"
    )


def test_same_account_grant_to_role_arn_is_limited_by_boundary_and_session() -> None:
    bucket = grant({"AWS": ROLE})
    assert decide(PolicySet(resource=bucket), principal=SESSION).effect is Effect.ALLOW
    capped = PolicySet(resource=bucket, boundary=policy(allow("ec2:*")))
    assert decide(capped, principal=SESSION).effect is Effect.IMPLICIT_DENY
    session_capped = PolicySet(resource=bucket, session=[policy(allow("ec2:*"))])
    decision = decide(session_capped, principal=SESSION)
    assert decision.effect is Effect.IMPLICIT_DENY
    assert decision.decided_by == "session"


def test_same_account_grant_to_session_arn_is_not_limited() -> None:
    bucket = grant({"AWS": SESSION})
    policies = PolicySet(
        resource=bucket, boundary=policy(allow("ec2:*")), session=[policy(allow("ec2:*"))]
    )
    assert decide(policies, principal=SESSION).effect is Effect.ALLOW
    other_session = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/job-2"
    assert decide(policies, principal=other_session).effect is Effect.IMPLICIT_DENY


def test_same_account_grant_to_account_delegates_to_identity_policies() -> None:
    bucket = grant({"AWS": ACCOUNT})
    assert decide(PolicySet(resource=bucket)).effect is Effect.IMPLICIT_DENY
    with_identity = PolicySet(resource=bucket, identity=[policy(allow("s3:GetObject"))])
    assert decide(with_identity).effect is Effect.ALLOW


def test_cross_account_needs_both_sides() -> None:
    stranger = f"arn:aws:iam::{OTHER}:user/bob"
    identity = [policy(allow("s3:GetObject"))]
    bucket = grant({"AWS": OTHER})
    both = PolicySet(identity=identity, resource=bucket)
    assert decide(both, principal=stranger, resource_account=ACCOUNT).effect is Effect.ALLOW
    only_resource = PolicySet(resource=bucket)
    decision = decide(only_resource, principal=stranger, resource_account=ACCOUNT)
    assert decision.effect is Effect.IMPLICIT_DENY
    assert "cross-account" in decision.reason
    only_identity = PolicySet(identity=identity)
    decision = decide(only_identity, principal=stranger, resource_account=ACCOUNT)
    assert decision.effect is Effect.IMPLICIT_DENY
    assert decision.decided_by == "resource"
    # A user-ARN grant across accounts still needs the caller's identity policy.
    direct = PolicySet(resource=grant({"AWS": stranger}))
    assert (
        decide(direct, principal=stranger, resource_account=ACCOUNT).effect is Effect.IMPLICIT_DENY
    )


def test_trust_policy_for_web_identity() -> None:
    provider = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                "StringLike": {
                    "token.actions.githubusercontent.com:sub": "repo:acme/*:ref:refs/heads/main"
                },
            },
        },
        kind=PolicyKind.TRUST,
        name="trust",
    )
    # SCPs do not apply to a principal outside the organization's accounts.
    scp = policy(deny("sts:*"), allow("*"), kind=PolicyKind.SCP)
    policies = PolicySet(resource=trust, scp=[[scp]])
    claims = {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": "repo:acme/api:ref:refs/heads/main",
    }

    def assume(principal: str, context: dict[str, str]) -> Any:
        return decide(
            policies,
            principal=provider if principal == "p" else principal,
            action="sts:AssumeRoleWithWebIdentity",
            resource=ROLE,
            context=context,
            principal_type="Federated",
        )

    assert assume("p", claims).effect is Effect.ALLOW
    wrong_branch = {**claims, "token.actions.githubusercontent.com:sub": "repo:acme/api:ref:dev"}
    decision = assume("p", wrong_branch)
    assert decision.effect is Effect.IMPLICIT_DENY
    miss = decision.explanation()["policy_types"]["resource"]["not_matched"][0]
    assert miss["condition"]["operator"] == "StringLike"
    assert miss["condition"]["key"] == "token.actions.githubusercontent.com:sub"
    other = f"arn:aws:iam::{ACCOUNT}:oidc-provider/gitlab.example.com"
    assert assume(other, claims).effect is Effect.IMPLICIT_DENY


def test_not_principal_exempts_a_session_only_with_role_and_account_listed() -> None:
    role_and_account = {"AWS": [SESSION, ROLE, ACCOUNT]}
    session_only = {"AWS": [SESSION]}

    def bucket(not_principal: Any) -> PolicySet:
        doc = policy(
            {
                "Effect": "Deny",
                "NotPrincipal": not_principal,
                "Action": "s3:*",
                "Resource": f"{BUCKET}/*",
            },
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"{BUCKET}/*",
            },
            kind=PolicyKind.RESOURCE,
        )
        return PolicySet(resource=doc)

    assert decide(bucket(role_and_account), principal=SESSION).effect is Effect.ALLOW
    assert decide(bucket(session_only), principal=SESSION).effect is Effect.EXPLICIT_DENY
    assert decide(bucket(role_and_account)).effect is Effect.EXPLICIT_DENY


def test_anonymous_caller_needs_a_public_grant() -> None:
    public = PolicySet(resource=grant("*"))
    assert decide(public, principal="*", principal_type="Anonymous").effect is Effect.ALLOW
    private = PolicySet(resource=grant({"AWS": ACCOUNT}))
    assert decide(private, principal="*").effect is Effect.IMPLICIT_DENY


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"aws:username": "alice"}, Effect.ALLOW),
        ({"aws:username": "bob"}, Effect.IMPLICIT_DENY),
        ({}, Effect.IMPLICIT_DENY),  # a variable with no value matches no resource
        ({"aws:username": ["alice"]}, Effect.IMPLICIT_DENY),  # multi-valued: not a variable
    ],
)
def test_resource_variables(context: dict[str, Any], expected: Effect) -> None:
    policies = PolicySet(identity=[policy(allow("s3:*", f"{BUCKET}/home/${{aws:username}}/*"))])
    assert (
        decide(policies, resource=f"{BUCKET}/home/alice/notes", context=context).effect is expected
    )


def test_resource_variable_default_and_escapes() -> None:
    policies = PolicySet(
        identity=[
            policy(
                allow("s3:*", f"{BUCKET}/${{aws:PrincipalTag/team, 'shared'}}/*"),
                allow("s3:*", f"{BUCKET}/literal-${{*}}-star"),
            )
        ]
    )
    assert decide(policies, resource=f"{BUCKET}/shared/x").effect is Effect.ALLOW
    assert (
        decide(
            policies, resource=f"{BUCKET}/red/x", context={"aws:PrincipalTag/team": "red"}
        ).effect
        is Effect.ALLOW
    )
    assert decide(policies, resource=f"{BUCKET}/red/x").effect is Effect.IMPLICIT_DENY
    assert decide(policies, resource=f"{BUCKET}/literal-*-star").effect is Effect.ALLOW
    assert decide(policies, resource=f"{BUCKET}/literal-x-star").effect is Effect.IMPLICIT_DENY
    # A substituted value is literal text: a `*` in a user name is no wildcard.
    star = PolicySet(identity=[policy(allow("s3:*", f"{BUCKET}/home/${{aws:username}}"))])
    assert (
        decide(star, resource=f"{BUCKET}/home/anything", context={"aws:username": "*"}).effect
        is Effect.IMPLICIT_DENY
    )


def test_context_keys_are_case_insensitive() -> None:
    policies = PolicySet(
        identity=[policy(allow(Condition={"StringEquals": {"AWS:PrincipalTag/Team": "red"}}))]
    )
    assert decide(policies, context={"aws:principaltag/team": "red"}).effect is Effect.ALLOW


def test_index_skips_statements_for_other_services() -> None:
    statements = [allow(f"svc{i}:Action{i}") for i in range(200)] + [allow("s3:Get*")]
    group = PolicyGroup("identity", [policy(*statements)])
    (only,) = group.candidates("s3:getobject")
    assert only.actions == ("s3:Get*",)
    assert group.candidates("s3:putobject") == ()
    assert group.candidates("s3:getobject") is group.candidates("s3:getobject")


def test_deny_with_unevaluable_condition_fails_closed() -> None:
    policies = PolicySet(
        identity=[
            policy(
                allow("s3:*"),
                deny("s3:*", Condition={"NumericGreaterThan": {"s3:max-keys": "100"}}),
            ),
        ]
    )
    decision = decide(policies, context={"s3:max-keys": "lots"})
    assert decision.effect is Effect.EXPLICIT_DENY
    denied = decision.explanation()["policy_types"]["identity"]["denied_by"][0]
    assert "is not a number" in denied["condition_error"]["error"]
