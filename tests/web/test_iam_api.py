"""The IAM management API driven by unmodified boto3 against `fedbroker serve`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.web.conftest import Broker

ALLOW_ALL_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


def code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def user_with_key(iam: Any, broker: Broker, name: str, *policies: str) -> Any:
    iam.create_user(UserName=name)
    for index, policy in enumerate(policies):
        iam.put_user_policy(UserName=name, PolicyName=f"p{index}", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return broker.client("iam", key["AccessKeyId"], key["SecretAccessKey"])


# --- users ------------------------------------------------------------------------------------


def test_user_lifecycle(iam: Any, unique: str) -> None:
    name = f"alice-{unique}"
    created = iam.create_user(UserName=name, Path="/eng/", Tags=[{"Key": "team", "Value": "red"}])
    user = created["User"]
    assert user["Arn"].endswith(f":user/eng/{name}")
    assert user["UserId"].startswith("AIDA") and len(user["UserId"]) == 21
    assert iam.get_user(UserName=name)["User"]["Tags"] == [{"Key": "team", "Value": "red"}]
    with pytest.raises(ClientError) as info:
        iam.create_user(UserName=name.upper())
    assert code(info) == "EntityAlreadyExists"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    iam.update_user(UserName=name, NewUserName=f"{name}-x", NewPath="/ops/")
    renamed = iam.get_user(UserName=f"{name}-x")["User"]
    assert renamed["Path"] == "/ops/" and renamed["UserId"] == user["UserId"]
    iam.tag_user(UserName=f"{name}-x", Tags=[{"Key": "env", "Value": "prod"}])
    iam.untag_user(UserName=f"{name}-x", TagKeys=["team"])
    assert iam.list_user_tags(UserName=f"{name}-x")["Tags"] == [{"Key": "env", "Value": "prod"}]
    iam.delete_user(UserName=f"{name}-x")
    with pytest.raises(ClientError) as info:
        iam.get_user(UserName=f"{name}-x")
    assert code(info) == "NoSuchEntity"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_list_users_paginates(iam: Any, unique: str) -> None:
    names = [f"page-{unique}-{i}" for i in range(5)]
    for name in names:
        iam.create_user(UserName=name, Path=f"/p{unique}/")
    first = iam.list_users(PathPrefix=f"/p{unique}/", MaxItems=2)
    assert first["IsTruncated"] and len(first["Users"]) == 2
    pages = iam.get_paginator("list_users").paginate(
        PathPrefix=f"/p{unique}/", PaginationConfig={"PageSize": 2}
    )
    listed = [u["UserName"] for page in pages for u in page["Users"]]
    assert listed == names
    with pytest.raises(ClientError) as info:
        iam.list_users(Marker="not-a-marker!")
    assert code(info) == "ValidationError"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"UserName": "bad name"}, "ValidationError"),
        ({"UserName": "x" * 65}, "ValidationError"),
        ({"UserName": "ok", "Path": "no-slashes"}, "ValidationError"),
        ({"UserName": "ok", "Tags": [{"Key": "aws:reserved", "Value": "x"}]}, "ValidationError"),
        (
            {"UserName": "ok", "PermissionsBoundary": "arn:aws:iam::123456789012:policy/missing"},
            "NoSuchEntity",
        ),
    ],
)
def test_create_user_rejects_bad_input(iam: Any, kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ClientError) as info:
        iam.create_user(**kwargs)
    assert code(info) == expected
    names = [u["UserName"] for u in iam.list_users()["Users"]]
    assert "ok" not in names and "bad name" not in names


def test_delete_user_with_attachments_conflicts(iam: Any, unique: str) -> None:
    name = f"bob-{unique}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    with pytest.raises(ClientError) as info:
        iam.delete_user(UserName=name)
    assert code(info) == "DeleteConflict"
    iam.delete_access_key(UserName=name, AccessKeyId=key)
    iam.delete_user(UserName=name)


# --- groups -----------------------------------------------------------------------------------


def test_groups_and_membership(iam: Any, unique: str) -> None:
    group, user = f"devs-{unique}", f"carol-{unique}"
    iam.create_group(GroupName=group)
    iam.create_user(UserName=user)
    iam.add_user_to_group(GroupName=group, UserName=user)
    iam.add_user_to_group(GroupName=group, UserName=user)  # idempotent
    got = iam.get_group(GroupName=group)
    assert [u["UserName"] for u in got["Users"]] == [user]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]] == [group]
    with pytest.raises(ClientError) as info:
        iam.delete_group(GroupName=group)
    assert code(info) == "DeleteConflict"
    iam.remove_user_from_group(GroupName=group, UserName=user)
    with pytest.raises(ClientError) as info:
        iam.remove_user_from_group(GroupName=group, UserName=user)
    assert code(info) == "NoSuchEntity"
    iam.delete_group(GroupName=group)


# --- access keys ------------------------------------------------------------------------------


def test_access_keys(iam: Any, broker: Broker, unique: str) -> None:
    name = f"dave-{unique}"
    client = user_with_key(
        iam,
        broker,
        name,
        doc(
            {
                "Effect": "Allow",
                "Action": ["iam:GetUser", "iam:*AccessKey*"],
                "Resource": "arn:aws:iam::*:user/${aws:username}",
            }
        ),
    )
    me = client.get_user()["User"]
    assert me["UserName"] == name
    keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert len(keys) == 1 and keys[0]["AccessKeyId"].startswith("AKIA")
    assert len(keys[0]["AccessKeyId"]) == 20
    used = iam.get_access_key_last_used(AccessKeyId=keys[0]["AccessKeyId"])["AccessKeyLastUsed"]
    assert used["ServiceName"] == "iam" and "LastUsedDate" in used
    second = client.create_access_key()["AccessKey"]  # for itself, via ${aws:username}
    assert len(second["SecretAccessKey"]) == 40
    with pytest.raises(ClientError) as info:
        iam.create_access_key(UserName=name)
    assert code(info) == "LimitExceeded"
    iam.update_access_key(UserName=name, AccessKeyId=keys[0]["AccessKeyId"], Status="Inactive")
    with pytest.raises(ClientError) as info:
        client.get_user()
    assert code(info) == "InvalidClientTokenId"
    with pytest.raises(ClientError) as info:
        iam.update_access_key(UserName=name, AccessKeyId=second["AccessKeyId"], Status="Off")
    assert code(info) == "ValidationError"
    other = broker.client("iam", second["AccessKeyId"], second["SecretAccessKey"])
    assert other.get_user()["User"]["UserName"] == name
    iam.delete_access_key(UserName=name, AccessKeyId=second["AccessKeyId"])
    with pytest.raises(ClientError) as info:
        other.get_user()
    assert code(info) == "InvalidClientTokenId"


# --- policies ---------------------------------------------------------------------------------


def test_inline_policies_validated_on_write(iam: Any, unique: str) -> None:
    name = f"erin-{unique}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=json.dumps(ALLOW_ALL_S3))
    got = iam.get_user_policy(UserName=name, PolicyName="S3")  # names are case-insensitive
    assert got["PolicyDocument"] == ALLOW_ALL_S3
    with pytest.raises(ClientError) as info:
        iam.put_user_policy(
            UserName=name,
            PolicyName="bad",
            PolicyDocument=doc(
                {
                    "Sid": "Oops",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": "*",
                    "Condition": {"StringEqual": {"aws:username": "x"}},
                }
            ),
        )
    assert code(info) == "MalformedPolicyDocument"
    assert "statement 1 (Oops)" in info.value.response["Error"]["Message"]
    assert "did you mean `StringEquals`" in info.value.response["Error"]["Message"]
    huge = doc(
        {"Effect": "Allow", "Action": [f"s3:Get{i:05d}" for i in range(200)], "Resource": "*"}
    )
    with pytest.raises(ClientError) as info:
        iam.put_user_policy(UserName=name, PolicyName="huge", PolicyDocument=huge)
    assert code(info) == "LimitExceeded"
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == ["s3"]
    iam.delete_user_policy(UserName=name, PolicyName="s3")
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []


def test_managed_policy_versions_and_attachments(iam: Any, unique: str) -> None:
    policy = iam.create_policy(
        PolicyName=f"read-{unique}", Path="/app/", PolicyDocument=json.dumps(ALLOW_ALL_S3)
    )["Policy"]
    arn = policy["Arn"]
    assert arn.endswith(f":policy/app/read-{unique}") and policy["DefaultVersionId"] == "v1"
    for _ in range(4):
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(ALLOW_ALL_S3))
    with pytest.raises(ClientError) as info:
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(ALLOW_ALL_S3))
    assert code(info) == "LimitExceeded"
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert [v["VersionId"] for v in versions] == ["v5", "v4", "v3", "v2", "v1"]
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v3")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v3"
    with pytest.raises(ClientError) as info:
        iam.delete_policy_version(PolicyArn=arn, VersionId="v3")
    assert code(info) == "DeleteConflict"
    got = iam.get_policy_version(PolicyArn=arn, VersionId="v2")["PolicyVersion"]
    assert got["Document"] == ALLOW_ALL_S3 and got["IsDefaultVersion"] is False
    role = f"app-{unique}"
    iam.create_role(
        RoleName=role,
        AssumeRolePolicyDocument=doc(
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ),
    )
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == [
        {"PolicyName": f"read-{unique}", "PolicyArn": arn}
    ]
    with pytest.raises(ClientError) as info:
        iam.delete_policy(PolicyArn=arn)
    assert code(info) == "DeleteConflict"
    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    for version in ("v1", "v2", "v4", "v5"):
        iam.delete_policy_version(PolicyArn=arn, VersionId=version)
    iam.delete_policy(PolicyArn=arn)
    with pytest.raises(ClientError) as info:
        iam.get_policy(PolicyArn=arn)
    assert code(info) == "NoSuchEntity"


# --- roles ------------------------------------------------------------------------------------


TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {
                "Federated": "arn:aws:iam::111122223333:oidc-provider/"
                "token.actions.githubusercontent.com"
            },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/*"}},
        }
    ],
}


def test_roles(iam: Any, unique: str) -> None:
    name = f"ci-{unique}"
    role = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(TRUST),
        MaxSessionDuration=7200,
        Description="deploys",
        Tags=[{"Key": "owner", "Value": "ci"}],
    )["Role"]
    assert role["AssumeRolePolicyDocument"] == TRUST
    assert role["RoleId"].startswith("AROA")
    got = iam.get_role(RoleName=name)["Role"]
    assert got["MaxSessionDuration"] == 7200 and got["Description"] == "deploys"
    iam.update_role(RoleName=name, Description="deploys and rolls back")
    assert iam.get_role(RoleName=name)["Role"]["Description"] == "deploys and rolls back"
    with pytest.raises(ClientError) as info:
        iam.update_role(RoleName=name, MaxSessionDuration=50000)
    assert code(info) == "ValidationError"
    bad_trust = dict(TRUST, Statement=[dict(TRUST["Statement"][0], Resource="*")])
    with pytest.raises(ClientError) as info:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(bad_trust))
    assert code(info) == "MalformedPolicyDocument"
    assert iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"] == TRUST
    with pytest.raises(ClientError) as info:
        iam.create_role(RoleName=f"x-{unique}", AssumeRolePolicyDocument=json.dumps(ALLOW_ALL_S3))
    assert code(info) == "MalformedPolicyDocument"
    iam.put_role_policy(RoleName=name, PolicyName="s3", PolicyDocument=json.dumps(ALLOW_ALL_S3))
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == ["s3"]
    assert name in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    with pytest.raises(ClientError) as info:
        iam.delete_role(RoleName=name)
    assert code(info) == "DeleteConflict"
    iam.delete_role_policy(RoleName=name, PolicyName="s3")
    iam.delete_role(RoleName=name)


# --- authorization by the policy engine -------------------------------------------------------


def test_calls_are_authorized_by_the_policy_engine(iam: Any, broker: Broker, unique: str) -> None:
    name = f"frank-{unique}"
    client = user_with_key(
        iam,
        broker,
        name,
        doc(
            {"Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"},
            {"Sid": "NoRoles", "Effect": "Deny", "Action": "iam:ListRoles", "Resource": "*"},
        ),
    )
    assert client.get_user(UserName=name)["User"]["UserName"] == name
    with pytest.raises(ClientError) as info:
        client.create_user(UserName=f"new-{unique}")
    assert code(info) == "AccessDenied"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    message = info.value.response["Error"]["Message"]
    assert f"user/{name} is not authorized to perform: iam:CreateUser" in message
    assert "no identity-based policy allows" in message
    with pytest.raises(ClientError) as info:
        client.list_roles()
    assert "explicit deny" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        iam.get_user(UserName=f"new-{unique}")
    # A change in the directory takes effect on the next call.
    iam.put_user_policy(
        UserName=name,
        PolicyName="create",
        PolicyDocument=doc({"Effect": "Allow", "Action": "iam:CreateUser", "Resource": "*"}),
    )
    client.create_user(UserName=f"new-{unique}")


def test_groups_boundaries_and_tags_shape_access(iam: Any, broker: Broker, unique: str) -> None:
    name, group = f"gina-{unique}", f"readers-{unique}"
    client = user_with_key(iam, broker, name)
    with pytest.raises(ClientError):
        client.list_users()
    iam.create_group(GroupName=group)
    iam.put_group_policy(
        GroupName=group,
        PolicyName="read",
        PolicyDocument=doc(
            {"Effect": "Allow", "Action": ["iam:List*", "iam:Get*", "iam:TagUser"], "Resource": "*"}
        ),
    )
    iam.add_user_to_group(GroupName=group, UserName=name)
    client.list_users()
    boundary = iam.create_policy(
        PolicyName=f"boundary-{unique}",
        PolicyDocument=doc(
            {"Effect": "Allow", "Action": "iam:Get*", "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": "iam:TagUser",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}},
            },
        ),
    )["Policy"]["Arn"]
    iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=boundary)
    with pytest.raises(ClientError) as info:
        client.list_users()
    assert "permissions boundary does not allow" in info.value.response["Error"]["Message"]
    client.get_user(UserName=name)
    peer = f"peer-{unique}"
    iam.create_user(UserName=peer, Tags=[{"Key": "team", "Value": "red"}])
    with pytest.raises(ClientError):
        client.tag_user(UserName=peer, Tags=[{"Key": "k", "Value": "v"}])
    iam.tag_user(UserName=name, Tags=[{"Key": "team", "Value": "red"}])
    client.tag_user(UserName=peer, Tags=[{"Key": "k", "Value": "v"}])
    iam.delete_user_permissions_boundary(UserName=name)
    client.list_users()


# --- the wire: authentication and protocol errors ---------------------------------------------


def test_wrong_secret_and_unknown_key(broker: Broker) -> None:
    wrong = broker.client("iam", broker.admin_key_id, "x" * 40)
    with pytest.raises(ClientError) as info:
        wrong.list_users()
    assert code(info) == "SignatureDoesNotMatch"
    unknown = broker.client("iam", "AKIAAAAAAAAAAAAAAAAA", "x" * 40)
    with pytest.raises(ClientError) as info:
        unknown.list_users()
    assert code(info) == "InvalidClientTokenId"
    assert "secret" not in info.value.response["Error"]["Message"].lower()


def _raw_post(broker: Broker, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(broker.url + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_unsigned_stale_oversize_and_unknown_action(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    status, body = _raw_post(broker, b"Action=ListUsers&Version=2010-05-08", form)
    assert status == 403 and "<Code>MissingAuthenticationToken</Code>" in body

    def signed(payload: bytes, when: datetime) -> tuple[int, str]:
        """Signed by botocore's own SigV4 signer, at a chosen client time."""
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)
        request = AWSRequest("POST", broker.url + "/", data=payload, headers=dict(form))
        credentials = Credentials(broker.admin_key_id, broker.admin_secret)
        botocore.auth.SigV4Auth(credentials, "iam", "us-east-1").add_auth(request)
        return _raw_post(broker, payload, dict(request.prepare().headers))

    now = datetime.now(UTC)
    status, body = signed(b"Action=ListUsers&Version=2010-05-08", now)
    assert status == 200, body
    status, body = signed(b"Action=ListUsers&Version=2010-05-08", now - timedelta(minutes=10))
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in body
    assert "Signature expired" in body
    status, body = signed(b"Action=FlyToTheMoon&Version=2010-05-08", now)
    assert status == 400 and "<Code>InvalidAction</Code>" in body
    big = b"Action=ListUsers&Version=2010-05-08&Pad=" + b"x" * 1_100_000
    status, body = signed(big, now)
    assert status == 413 and "<Code>RequestEntityTooLarge</Code>" in body


def test_every_call_is_audited_without_secrets(iam: Any, broker: Broker, unique: str) -> None:
    name = f"hank-{unique}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    with pytest.raises(ClientError):
        iam.get_user(UserName=f"missing-{unique}")
    with pytest.raises(ClientError):
        broker.client("iam", key["AccessKeyId"], "y" * 40).list_users()
    text = broker.audit_log.read_text()
    assert key["SecretAccessKey"] not in text
    assert broker.admin_secret not in text
    events = broker.audit_events()
    created = [
        e
        for e in events
        if e["eventName"] == "CreateUser" and e["requestParameters"].get("UserName") == name
    ]
    assert len(created) == 1
    event = created[0]
    assert event["userIdentity"]["type"] == "IAMUser"
    assert event["userIdentity"]["userName"] == "admin"
    assert event["eventSource"] == "iam.amazonaws.com"
    assert event["sourceIPAddress"] == "127.0.0.1"
    assert event["responseElements"]["user"]["userName"] == name
    assert "errorCode" not in event
    missing = [
        e
        for e in events
        if e["eventName"] == "GetUser"
        and e["requestParameters"].get("UserName") == f"missing-{unique}"
    ]
    assert missing[0]["errorCode"] == "NoSuchEntity"
    key_event = next(
        e
        for e in events
        if e["eventName"] == "CreateAccessKey" and e["requestParameters"].get("UserName") == name
    )
    assert key_event["responseElements"]["accessKey"]["accessKeyId"] == key["AccessKeyId"]
    failed_auth = [e for e in events if e.get("errorCode") == "SignatureDoesNotMatch"]
    assert failed_auth and failed_auth[-1]["userIdentity"]["type"] == "Unknown"
