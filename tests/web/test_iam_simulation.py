"""The IAM policy simulator and context keys, driven by unmodified boto3 against the broker."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.web.conftest import Broker
from tests.web.test_aws_cli import AWS


def code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], resource: str = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: str | list[str], resource: str = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def by_action(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["EvalActionName"]: r for r in response["EvaluationResults"]}


def sources(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["SourcePolicyId"], s["SourcePolicyType"]) for s in result["MatchedStatements"]]


# --- SimulatePrincipalPolicy --------------------------------------------------------------


def test_principal_decisions_name_the_policy_that_decided(iam: Any, unique: str) -> None:
    user, group = f"sim-{unique}", f"simgroup-{unique}"
    arn = iam.create_user(UserName=user)["User"]["Arn"]
    read = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Other", "Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
                {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            ],
        },
        indent=2,
    )
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=read)
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    iam.put_group_policy(
        GroupName=group,
        PolicyName="nodelete",
        PolicyDocument=doc(allow("s3:*"), deny("s3:DeleteObject")),
    )
    managed = iam.create_policy(
        PolicyName=f"put-{unique}", PolicyDocument=doc(allow("dynamodb:PutItem"))
    )["Policy"]["Arn"]
    iam.attach_user_policy(UserName=user, PolicyArn=managed)

    results = by_action(
        iam.simulate_principal_policy(
            PolicySourceArn=arn,
            ActionNames=["s3:GetObject", "s3:DeleteObject", "dynamodb:PutItem", "ec2:RunInstances"],
        )
    )
    got = results["s3:GetObject"]
    assert got["EvalDecision"] == "allowed"
    assert got["EvalResourceName"] == "*"
    assert ("read", "user") in sources(got)
    assert ("nodelete", "group") in sources(got)
    read_statement = next(s for s in got["MatchedStatements"] if s["SourcePolicyId"] == "read")
    # The second statement of the indented document has its braces on lines 10 and 15,
    # column 5; IAM reports the column just after each.
    assert read_statement["StartPosition"] == {"Line": 10, "Column": 6}
    assert read_statement["EndPosition"] == {"Line": 15, "Column": 6}

    deleted = results["s3:DeleteObject"]
    assert deleted["EvalDecision"] == "explicitDeny"
    assert sources(deleted) == [("nodelete", "group")]  # only the deny, as IAM reports it

    put = results["dynamodb:PutItem"]
    assert put["EvalDecision"] == "allowed"
    assert sources(put) == [(f"put-{unique}", "user-managed")]

    denied = results["ec2:RunInstances"]
    assert denied["EvalDecision"] == "implicitDeny"
    assert denied["MatchedStatements"] == []
    assert denied["EvalDecisionDetails"] == {"IAM Policy": "implicitDeny"}


def test_extra_policies_boundaries_and_resource_policies(iam: Any, unique: str) -> None:
    user = f"simb-{unique}"
    arn = iam.create_user(UserName=user)["User"]["Arn"]
    iam.put_user_policy(UserName=user, PolicyName="all-s3", PolicyDocument=doc(allow("s3:*")))

    # An input boundary caps the identity policies.
    capped = by_action(
        iam.simulate_principal_policy(
            PolicySourceArn=arn,
            ActionNames=["s3:GetObject", "s3:PutObject"],
            PermissionsBoundaryPolicyInputList=[doc(allow("s3:GetObject"))],
        )
    )
    assert capped["s3:GetObject"]["EvalDecision"] == "allowed"
    assert capped["s3:GetObject"]["PermissionsBoundaryDecisionDetail"] == {
        "AllowedByPermissionsBoundary": True
    }
    assert ("PermissionsBoundaryPolicyInputList.1", "none") in sources(capped["s3:GetObject"])
    assert capped["s3:PutObject"]["EvalDecision"] == "implicitDeny"
    assert capped["s3:PutObject"]["PermissionsBoundaryDecisionDetail"] == {
        "AllowedByPermissionsBoundary": False
    }

    # The stored boundary applies too, exactly as it does for real calls.
    boundary = iam.create_policy(
        PolicyName=f"simb-boundary-{unique}", PolicyDocument=doc(allow("s3:List*"))
    )["Policy"]["Arn"]
    iam.put_user_permissions_boundary(UserName=user, PermissionsBoundary=boundary)
    stored = by_action(
        iam.simulate_principal_policy(
            PolicySourceArn=arn, ActionNames=["s3:ListBucket", "s3:GetObject"]
        )
    )
    assert stored["s3:ListBucket"]["EvalDecision"] == "allowed"
    assert (f"simb-boundary-{unique}", "user-managed") in sources(stored["s3:ListBucket"])
    assert stored["s3:GetObject"]["EvalDecision"] == "implicitDeny"
    iam.delete_user_permissions_boundary(UserName=user)

    # An extra identity policy in the input list adds to the user's own.
    extra = iam.simulate_principal_policy(
        PolicySourceArn=arn,
        ActionNames=["sqs:SendMessage"],
        PolicyInputList=[doc(allow("sqs:SendMessage"))],
    )["EvaluationResults"][0]
    assert extra["EvalDecision"] == "allowed"
    assert sources(extra) == [("PolicyInputList.1", "none")]

    # A resource-based policy: a grant to the user allows on its own; a deny wins.
    bare = f"simr-{unique}"
    bare_arn = iam.create_user(UserName=bare)["User"]["Arn"]
    bucket = "arn:aws:s3:::shared-bucket/key"
    granted = iam.simulate_principal_policy(
        PolicySourceArn=bare_arn,
        ActionNames=["s3:GetObject"],
        ResourceArns=[bucket],
        ResourcePolicy=doc(allow("s3:GetObject", bucket, Principal={"AWS": bare_arn})),
    )["EvaluationResults"][0]
    assert granted["EvalDecision"] == "allowed"
    assert sources(granted) == [("ResourcePolicy", "resource")]
    assert granted["EvalDecisionDetails"] == {
        "IAM Policy": "implicitDeny",
        "Resource Policy": "allowed",
    }
    refused = iam.simulate_principal_policy(
        PolicySourceArn=arn,
        ActionNames=["s3:GetObject"],
        ResourceArns=[bucket],
        ResourcePolicy=doc(deny("s3:*", bucket, Principal="*")),
    )["EvaluationResults"][0]
    assert refused["EvalDecision"] == "explicitDeny"
    assert sources(refused) == [("ResourcePolicy", "resource")]


def test_context_entries_drive_conditions_and_missing_values_are_reported(
    iam: Any, unique: str
) -> None:
    user = f"simc-{unique}"
    arn = iam.create_user(UserName=user)["User"]["Arn"]
    iam.put_user_policy(
        UserName=user,
        PolicyName="office",
        PolicyDocument=doc(
            allow(
                "s3:GetObject",
                "arn:aws:s3:::home/${aws:username}/*",
                Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            )
        ),
    )
    resource = f"arn:aws:s3:::home/{user}/notes"
    nothing = iam.simulate_principal_policy(
        PolicySourceArn=arn, ActionNames=["s3:GetObject"], ResourceArns=[resource]
    )["EvaluationResults"][0]
    assert nothing["EvalDecision"] == "implicitDeny"
    assert nothing["MissingContextValues"] == ["aws:username"]

    username = {
        "ContextKeyName": "aws:username",
        "ContextKeyValues": [user],
        "ContextKeyType": "string",
    }
    no_ip = iam.simulate_principal_policy(
        PolicySourceArn=arn,
        ActionNames=["s3:GetObject"],
        ResourceArns=[resource],
        ContextEntries=[username],
    )["EvaluationResults"][0]
    assert no_ip["EvalDecision"] == "implicitDeny"
    assert no_ip["MissingContextValues"] == ["aws:SourceIp"]

    def with_ip(address: str) -> dict[str, Any]:
        result: dict[str, Any] = iam.simulate_principal_policy(
            PolicySourceArn=arn,
            ActionNames=["s3:GetObject"],
            ResourceArns=[resource],
            ContextEntries=[
                username,
                {
                    "ContextKeyName": "aws:SourceIp",
                    "ContextKeyValues": [address],
                    "ContextKeyType": "ip",
                },
            ],
        )["EvaluationResults"][0]
        return result

    inside = with_ip("10.1.2.3")
    assert inside["EvalDecision"] == "allowed"
    assert inside["MissingContextValues"] == []
    assert sources(inside) == [("office", "user")]
    assert with_ip("192.0.2.1")["EvalDecision"] == "implicitDeny"

    with pytest.raises(ClientError) as info:
        with_ip("not-an-address")
    assert code(info) == "InvalidInput"


def test_several_resources_and_pagination(iam: Any, unique: str) -> None:
    user = f"simp-{unique}"
    arn = iam.create_user(UserName=user)["User"]["Arn"]
    iam.put_user_policy(
        UserName=user,
        PolicyName="one-bucket",
        PolicyDocument=doc(allow(["s3:GetObject", "s3:PutObject"], "arn:aws:s3:::mine/*")),
    )
    resources = ["arn:aws:s3:::mine/a", "arn:aws:s3:::theirs/b"]
    args = {
        "PolicySourceArn": arn,
        "ActionNames": ["s3:GetObject", "s3:PutObject"],
        "ResourceArns": resources,
    }
    everything = iam.simulate_principal_policy(**args)
    assert everything["IsTruncated"] is False
    pairs = [
        (r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"])
        for r in everything["EvaluationResults"]
    ]
    assert pairs == [
        ("s3:GetObject", resources[0], "allowed"),
        ("s3:GetObject", resources[1], "implicitDeny"),
        ("s3:PutObject", resources[0], "allowed"),
        ("s3:PutObject", resources[1], "implicitDeny"),
    ]
    specific = everything["EvaluationResults"][1]["ResourceSpecificResults"]
    assert specific == [
        {
            "EvalResourceName": resources[1],
            "EvalResourceDecision": "implicitDeny",
            "MatchedStatements": [],
            "MissingContextValues": [],
            "EvalDecisionDetails": {"IAM Policy": "implicitDeny"},
        }
    ]

    first = iam.simulate_principal_policy(**args, MaxItems=3)
    assert first["IsTruncated"] is True and len(first["EvaluationResults"]) == 3
    rest = iam.simulate_principal_policy(**args, MaxItems=3, Marker=first["Marker"])
    assert rest["IsTruncated"] is False and len(rest["EvaluationResults"]) == 1
    pages = iam.get_paginator("simulate_principal_policy").paginate(
        **args, PaginationConfig={"PageSize": 1}
    )
    paged = [
        (r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"])
        for page in pages
        for r in page["EvaluationResults"]
    ]
    assert paged == pairs


def test_bad_input_and_unknown_principals(iam: Any, broker: Broker, unique: str) -> None:
    user = f"simx-{unique}"
    arn = iam.create_user(UserName=user)["User"]["Arn"]
    account = arn.split(":")[4]
    before_policies = iam.list_policies(Scope="Local")["Policies"]
    malformed = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get"}]}'
    for call in (
        lambda: iam.simulate_principal_policy(
            PolicySourceArn=arn, ActionNames=["s3:GetObject"], PolicyInputList=[malformed]
        ),
        lambda: iam.simulate_custom_policy(
            PolicyInputList=[doc(allow("s3:*")), malformed], ActionNames=["s3:GetObject"]
        ),
        lambda: iam.simulate_custom_policy(
            PolicyInputList=[doc(allow("s3:*"))],
            ActionNames=["s3:GetObject"],
            ResourcePolicy="{not json",
            CallerArn=arn,
        ),
        lambda: iam.get_context_keys_for_custom_policy(PolicyInputList=[malformed]),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert code(info) == "MalformedPolicyDocument"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as info:
        iam.simulate_custom_policy(PolicyInputList=[malformed], ActionNames=["s3:GetObject"])
    assert "PolicyInputList.1" in info.value.response["Error"]["Message"]
    assert "Resource" in info.value.response["Error"]["Message"]
    # Nothing was stored by any of it.
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == []
    assert iam.list_policies(Scope="Local")["Policies"] == before_policies

    for missing in (
        f"arn:aws:iam::{account}:user/nobody-{unique}",
        f"arn:aws:iam::{account}:role/nothing-{unique}",
        f"arn:aws:iam::{account}:user/wrong/path/{user}",
        f"arn:aws:iam::{'1' * 12 if account != '1' * 12 else '2' * 12}:user/{user}",
    ):
        with pytest.raises(ClientError) as info:
            iam.simulate_principal_policy(PolicySourceArn=missing, ActionNames=["s3:GetObject"])
        assert code(info) == "NoSuchEntity", missing
        with pytest.raises(ClientError) as info:
            iam.get_context_keys_for_principal_policy(PolicySourceArn=missing)
        assert code(info) == "NoSuchEntity"
    with pytest.raises(ClientError) as info:
        iam.simulate_principal_policy(
            PolicySourceArn=f"arn:aws:iam::{account}:policy/x", ActionNames=["s3:GetObject"]
        )
    assert code(info) == "InvalidInput"
    with pytest.raises(ClientError) as info:
        # A resource policy needs a caller to match its Principal element.
        iam.simulate_custom_policy(
            PolicyInputList=[doc(allow("s3:*"))],
            ActionNames=["s3:GetObject"],
            ResourcePolicy=doc(allow("s3:*", Principal="*")),
        )
    assert code(info) == "InvalidInput"


def test_simulation_is_authorized_on_the_principal(iam: Any, broker: Broker, unique: str) -> None:
    name, other = f"simself-{unique}", f"simother-{unique}"
    iam.create_user(UserName=name)
    other_arn = iam.create_user(UserName=other)["User"]["Arn"]
    iam.put_user_policy(
        UserName=name,
        PolicyName="self",
        PolicyDocument=doc(
            allow(
                ["iam:SimulatePrincipalPolicy", "iam:GetContextKeysForPrincipalPolicy"],
                "arn:aws:iam::*:user/${aws:username}",
            )
        ),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    client = broker.client("iam", key["AccessKeyId"], key["SecretAccessKey"])
    own_arn = iam.get_user(UserName=name)["User"]["Arn"]
    mine = client.simulate_principal_policy(
        PolicySourceArn=own_arn, ActionNames=["iam:SimulatePrincipalPolicy"], ResourceArns=[own_arn]
    )["EvaluationResults"][0]
    assert mine["EvalDecision"] == "implicitDeny"  # the simulator adds no aws:username
    assert mine["MissingContextValues"] == ["aws:username"]
    with pytest.raises(ClientError) as info:
        client.simulate_principal_policy(PolicySourceArn=other_arn, ActionNames=["s3:GetObject"])
    assert code(info) == "AccessDenied"
    assert "iam:SimulatePrincipalPolicy" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:
        client.simulate_custom_policy(
            PolicyInputList=[doc(allow("s3:*"))], ActionNames=["s3:GetObject"]
        )
    assert code(info) == "AccessDenied"


# --- SimulateCustomPolicy -----------------------------------------------------------------


def test_custom_policy_with_caller_owner_and_organization_levels(iam: Any, unique: str) -> None:
    caller = f"arn:aws:iam::111122223333:user/simcaller-{unique}"
    results = by_action(
        iam.simulate_custom_policy(
            PolicyInputList=[doc(allow("s3:*")), doc(deny("s3:DeleteBucket"))],
            ActionNames=["s3:GetObject", "s3:DeleteBucket", "s3:PutObject"],
            OrderedOrganizationPolicyInputList=[
                {"ServiceControlPolicyInputList": [doc(allow("s3:Get*"), allow("s3:Delete*"))]}
            ],
            CallerArn=caller,
        )
    )
    assert results["s3:GetObject"]["EvalDecision"] == "allowed"
    assert results["s3:GetObject"]["OrganizationsDecisionDetail"] == {
        "AllowedByOrganizations": True
    }
    assert results["s3:DeleteBucket"]["EvalDecision"] == "explicitDeny"
    assert sources(results["s3:DeleteBucket"]) == [("PolicyInputList.2", "none")]
    assert results["s3:PutObject"]["EvalDecision"] == "implicitDeny"
    assert results["s3:PutObject"]["OrganizationsDecisionDetail"] == {
        "AllowedByOrganizations": False
    }

    # Cross-account: the resource owner's policy must allow as well.
    bucket = "arn:aws:s3:::other-bucket"
    cross = iam.simulate_custom_policy(
        PolicyInputList=[doc(allow("s3:ListBucket"))],
        ActionNames=["s3:ListBucket"],
        ResourceArns=[bucket],
        ResourceOwner="arn:aws:iam::444455556666:root",
        ResourcePolicy=doc(allow("s3:ListBucket", bucket, Principal={"AWS": "111122223333"})),
        CallerArn=caller,
    )["EvaluationResults"][0]
    assert cross["EvalDecision"] == "allowed"
    refused = iam.simulate_custom_policy(
        PolicyInputList=[doc(allow("s3:ListBucket"))],
        ActionNames=["s3:ListBucket"],
        ResourceArns=[bucket],
        ResourceOwner="arn:aws:iam::444455556666:root",
        ResourcePolicy=doc(allow("s3:GetObject", f"{bucket}/*", Principal="*")),
        CallerArn=caller,
    )["EvaluationResults"][0]
    assert refused["EvalDecision"] == "implicitDeny"


def test_custom_policy_list_context_values(iam: Any) -> None:
    policy = doc(
        allow(
            "iam:TagUser",
            Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}},
        )
    )

    def decide(keys: list[str]) -> str:
        result = iam.simulate_custom_policy(
            PolicyInputList=[policy],
            ActionNames=["iam:TagUser"],
            ContextEntries=[
                {
                    "ContextKeyName": "aws:TagKeys",
                    "ContextKeyValues": keys,
                    "ContextKeyType": "stringList",
                }
            ],
        )["EvaluationResults"][0]
        return str(result["EvalDecision"])

    assert decide(["team"]) == "allowed"
    assert decide(["team", "env"]) == "allowed"
    assert decide(["team", "cost-center"]) == "implicitDeny"


# --- context keys -------------------------------------------------------------------------


def test_context_keys_for_custom_and_principal_policies(iam: Any, unique: str) -> None:
    policy = doc(
        allow(
            "s3:GetObject",
            "arn:aws:s3:::b/${aws:username}/*",
            Condition={
                "StringEquals": {"aws:PrincipalTag/Team": "${aws:PrincipalTag/team, 'none'}"},
                "Bool": {"aws:MultiFactorAuthPresent": "true"},
            },
        ),
        allow("s3:ListBucket", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        allow("s3:PutObject", Condition={"IpAddress": {"AWS:SOURCEIP": "10.0.0.0/8"}}),
    )
    keys = iam.get_context_keys_for_custom_policy(PolicyInputList=[policy])["ContextKeyNames"]
    assert keys == [
        "aws:MultiFactorAuthPresent",
        "aws:PrincipalTag/Team",
        "aws:SourceIp",
        "aws:username",
    ]

    user, group = f"simk-{unique}", f"simkgroup-{unique}"
    arn = iam.create_user(UserName=user)["User"]["Arn"]
    iam.put_user_policy(
        UserName=user,
        PolicyName="own",
        PolicyDocument=doc(allow("s3:*", Condition={"StringLike": {"s3:prefix": "home/*"}})),
    )
    iam.create_group(GroupName=group)
    group_arn = iam.get_group(GroupName=group)["Group"]["Arn"]
    iam.add_user_to_group(GroupName=group, UserName=user)
    iam.put_group_policy(
        GroupName=group,
        PolicyName="grp",
        PolicyDocument=doc(allow("ec2:*", Condition={"StringEquals": {"ec2:Region": "eu-west-1"}})),
    )
    principal_keys = iam.get_context_keys_for_principal_policy(
        PolicySourceArn=arn,
        PolicyInputList=[doc(allow("sqs:*", Condition={"Null": {"aws:TokenIssueTime": "false"}}))],
    )["ContextKeyNames"]
    assert principal_keys == ["aws:TokenIssueTime", "ec2:Region", "s3:prefix"]
    group_keys = iam.get_context_keys_for_principal_policy(PolicySourceArn=group_arn)
    assert group_keys["ContextKeyNames"] == ["ec2:Region"]


# --- the AWS CLI --------------------------------------------------------------------------


def test_aws_cli_simulate_custom_policy(broker: Broker, tmp_path: Path) -> None:
    """The example of the AWS CLI's own documentation, answered as IAM answers it."""
    if not Path(AWS).exists():
        pytest.fail(f"the AWS CLI is not installed at {AWS}; scripts/test.sh installs it")
    config = tmp_path / "config"
    config.write_text("[profile admin]\nregion = us-east-1\noutput = json\n")
    example = (
        '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*",'
        '"Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}}'
    )

    def simulate(when: str) -> dict[str, Any]:
        done = subprocess.run(
            [
                AWS,
                "--endpoint-url",
                broker.url,
                "iam",
                "simulate-custom-policy",
                "--policy-input-list",
                example,
                "--action-names",
                "dynamodb:CreateBackup",
                "--context-entries",
                f"ContextKeyName='aws:CurrentTime',ContextKeyValues='{when}',ContextKeyType=date",
            ],
            env={
                "PATH": os.environ.get("PATH", ""),
                "AWS_CONFIG_FILE": str(config),
                "AWS_SHARED_CREDENTIALS_FILE": str(broker.credentials_file),
                "AWS_PROFILE": "admin",
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_MAX_ATTEMPTS": "1",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)["EvaluationResults"][0]
        return result

    allowed = simulate("2019-04-25T11:00:00Z")
    assert allowed["EvalDecision"] == "allowed"
    assert allowed["MatchedStatements"] == [
        {
            "SourcePolicyId": "PolicyInputList.1",
            "SourcePolicyType": "none",
            "StartPosition": {"Line": 1, "Column": 38},
            "EndPosition": {"Line": 1, "Column": 167},
        }
    ]
    assert allowed["MissingContextValues"] == []
    too_early = simulate("2014-04-25T11:00:00Z")
    assert too_early["EvalDecision"] == "implicitDeny"
    assert too_early["MatchedStatements"] == []
