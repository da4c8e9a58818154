"""GetAccountAuthorizationDetails and GetAccountSummary, driven by unmodified boto3."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.web.conftest import Broker

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def policy(action: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}],
    }


def all_details(iam: Any, **kwargs: Any) -> dict[str, list[dict[str, Any]]]:
    lists: dict[str, list[dict[str, Any]]] = {
        "UserDetailList": [],
        "GroupDetailList": [],
        "RoleDetailList": [],
        "Policies": [],
    }
    for page in iam.get_paginator("get_account_authorization_details").paginate(**kwargs):
        for name, items in lists.items():
            items.extend(page.get(name, []))
    return lists


def named(items: list[dict[str, Any]], member: str, name: str) -> dict[str, Any]:
    return next(item for item in items if item[member] == name)


def test_authorization_details_reflect_the_directory(iam: Any, unique: str) -> None:
    user, group, role = f"acct-{unique}", f"acctgroup-{unique}", f"acctrole-{unique}"
    managed = iam.create_policy(
        PolicyName=f"acctpolicy-{unique}",
        Path="/team/",
        PolicyDocument=json.dumps(policy("s3:GetObject")),
        Description="read objects",
    )["Policy"]["Arn"]
    iam.create_policy_version(
        PolicyArn=managed, PolicyDocument=json.dumps(policy("s3:*")), SetAsDefault=True
    )
    iam.create_user(UserName=user, Path="/eng/", Tags=[{"Key": "team", "Value": "red"}])
    iam.put_user_policy(
        UserName=user, PolicyName="inline", PolicyDocument=json.dumps(policy("sqs:*"))
    )
    iam.attach_user_policy(UserName=user, PolicyArn=managed)
    iam.put_user_permissions_boundary(UserName=user, PermissionsBoundary=managed)
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    iam.put_group_policy(
        GroupName=group, PolicyName="gp", PolicyDocument=json.dumps(policy("ec2:Describe*"))
    )
    iam.attach_group_policy(GroupName=group, PolicyArn=managed)
    iam.create_role(
        RoleName=role,
        AssumeRolePolicyDocument=json.dumps(TRUST),
        Tags=[{"Key": "env", "Value": "prod"}],
    )
    iam.put_role_policy(RoleName=role, PolicyName="rp", PolicyDocument=json.dumps(policy("sns:*")))
    iam.attach_role_policy(RoleName=role, PolicyArn=managed)

    details = all_details(iam)
    got_user = named(details["UserDetailList"], "UserName", user)
    assert got_user["Path"] == "/eng/"
    assert got_user["Arn"].endswith(f":user/eng/{user}")
    assert got_user["UserPolicyList"] == [
        {"PolicyName": "inline", "PolicyDocument": policy("sqs:*")}
    ]
    assert got_user["GroupList"] == [group]
    assert got_user["AttachedManagedPolicies"] == [
        {"PolicyName": f"acctpolicy-{unique}", "PolicyArn": managed}
    ]
    assert got_user["PermissionsBoundary"] == {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
        "PermissionsBoundaryArn": managed,
    }
    assert got_user["Tags"] == [{"Key": "team", "Value": "red"}]

    got_group = named(details["GroupDetailList"], "GroupName", group)
    assert got_group["GroupPolicyList"] == [
        {"PolicyName": "gp", "PolicyDocument": policy("ec2:Describe*")}
    ]
    assert got_group["AttachedManagedPolicies"] == [
        {"PolicyName": f"acctpolicy-{unique}", "PolicyArn": managed}
    ]

    got_role = named(details["RoleDetailList"], "RoleName", role)
    assert got_role["AssumeRolePolicyDocument"] == TRUST  # botocore decoded IAM's URL encoding
    assert got_role["InstanceProfileList"] == []
    assert got_role["RolePolicyList"] == [{"PolicyName": "rp", "PolicyDocument": policy("sns:*")}]
    assert got_role["AttachedManagedPolicies"] == [
        {"PolicyName": f"acctpolicy-{unique}", "PolicyArn": managed}
    ]
    assert got_role["Tags"] == [{"Key": "env", "Value": "prod"}]

    got_policy = named(details["Policies"], "Arn", managed)
    assert got_policy["Path"] == "/team/"
    assert got_policy["DefaultVersionId"] == "v2"
    assert got_policy["AttachmentCount"] == 3
    assert got_policy["PermissionsBoundaryUsageCount"] == 1
    assert got_policy["Description"] == "read objects"
    versions = {v["VersionId"]: v for v in got_policy["PolicyVersionList"]}
    assert versions["v1"]["Document"] == policy("s3:GetObject")
    assert versions["v1"]["IsDefaultVersion"] is False
    assert versions["v2"]["Document"] == policy("s3:*")
    assert versions["v2"]["IsDefaultVersion"] is True

    # Filters pick lists; the broker holds no AWS managed policies.
    only_roles = iam.get_account_authorization_details(Filter=["Role"])
    assert only_roles["UserDetailList"] == [] and only_roles["Policies"] == []
    assert role in [r["RoleName"] for r in only_roles["RoleDetailList"]]
    aws_managed = iam.get_account_authorization_details(Filter=["AWSManagedPolicy"])
    assert aws_managed["Policies"] == [] and aws_managed["UserDetailList"] == []
    local = all_details(iam, Filter=["LocalManagedPolicy", "Group"])
    assert managed in [p["Arn"] for p in local["Policies"]]
    assert group in [g["GroupName"] for g in local["GroupDetailList"]]
    assert local["UserDetailList"] == [] and local["RoleDetailList"] == []


def test_authorization_details_paginate_across_lists(iam: Any, unique: str) -> None:
    for index in range(3):
        iam.create_user(UserName=f"acctpage-{unique}-{index}")
        iam.create_group(GroupName=f"acctpage-{unique}-{index}")
    whole = iam.get_account_authorization_details()
    assert whole["IsTruncated"] is False
    first = iam.get_account_authorization_details(MaxItems=2)
    assert first["IsTruncated"] is True and "Marker" in first
    assert len(first["UserDetailList"]) + len(first["GroupDetailList"]) == 2
    paged = all_details(iam, PaginationConfig={"PageSize": 2})
    for name in ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies"):
        assert [item["Arn"] for item in paged[name]] == [item["Arn"] for item in whole[name]]
    mine = [u["UserName"] for u in paged["UserDetailList"] if unique in u["UserName"]]
    assert mine == [f"acctpage-{unique}-{i}" for i in range(3)]
    with pytest.raises(ClientError) as info:
        iam.get_account_authorization_details(Marker="not-a-marker!")
    assert info.value.response["Error"]["Code"] == "ValidationError"


def test_account_summary_counts_the_directory(iam: Any, broker: Broker, unique: str) -> None:
    before = iam.get_account_summary()["SummaryMap"]
    user = f"acctsum-{unique}"
    iam.create_user(UserName=user)
    iam.create_group(GroupName=user)
    iam.create_role(RoleName=user, AssumeRolePolicyDocument=json.dumps(TRUST))
    arn = iam.create_policy(PolicyName=user, PolicyDocument=json.dumps(policy("s3:*")))["Policy"][
        "Arn"
    ]
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    iam.attach_role_policy(RoleName=user, PolicyArn=arn)
    after = iam.get_account_summary()["SummaryMap"]
    for key, grown in (
        ("Users", 1),
        ("Groups", 1),
        ("Roles", 1),
        ("Policies", 1),
        ("PolicyVersionsInUse", 2),
    ):
        assert after[key] == before[key] + grown, key
    assert after["AccessKeysPerUserQuota"] == 2
    assert after["AttachedPoliciesPerUserQuota"] == 10
    assert after["VersionsPerPolicyQuota"] == 5
    assert after["UserPolicySizeQuota"] == 2048
    assert after["RolePolicySizeQuota"] == 10240
    assert after["PolicySizeQuota"] == 6144
    assert after["AccountPasswordPresent"] == 1
    assert after["InstanceProfiles"] == 0
    assert all(isinstance(value, int) for value in after.values())


def test_account_operations_are_authorized(iam: Any, broker: Broker, unique: str) -> None:
    name = f"acctnobody-{unique}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    client = broker.client("iam", key["AccessKeyId"], key["SecretAccessKey"])
    for call in (client.get_account_summary, client.get_account_authorization_details):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == "AccessDenied"
    iam.put_user_policy(
        UserName=name,
        PolicyName="summary",
        PolicyDocument=json.dumps(policy("iam:GetAccountSummary")),
    )
    assert client.get_account_summary()["SummaryMap"]["Users"] >= 1
