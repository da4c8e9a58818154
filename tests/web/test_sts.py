"""STS for signed callers, and every later use of the credentials it issues, through boto3."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pyotp
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.web.conftest import Broker

ACTIONS = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]


def code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def session(broker: Broker, creds: dict[str, Any], service: str = "iam") -> Any:
    return boto3.client(
        service,
        endpoint_url=broker.url,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=Config(retries={"max_attempts": 1}),
    )


def account_of(broker: Broker) -> str:
    return str(broker.client("sts").get_caller_identity()["Account"])


def make_role(
    iam: Any, name: str, trust: dict[str, Any] | list[dict[str, Any]], *policies: str, **kwargs: Any
) -> str:
    statements = trust if isinstance(trust, list) else [trust]
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=doc(*statements), **kwargs)[
        "Role"
    ]["Arn"]
    for index, policy in enumerate(policies):
        iam.put_role_policy(RoleName=name, PolicyName=f"p{index}", PolicyDocument=policy)
    return str(arn)


def trust_account(account: str, **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": account},
        "Action": ACTIONS,
    }
    if condition:
        statement["Condition"] = condition
    return statement


READ_IAM = doc({"Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"})


def test_assume_role_and_use_the_session(broker: Broker, iam: Any, unique: str) -> None:
    sts = broker.client("sts")
    admin = sts.get_caller_identity()
    account = admin["Account"]
    assert admin["Arn"].endswith(":user/admin") and admin["UserId"].startswith("AIDA")
    arn = make_role(iam, f"reader-{unique}", trust_account(account), READ_IAM)
    assumed = sts.assume_role(RoleArn=arn, RoleSessionName="job-1", DurationSeconds=900)
    creds = assumed["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert len(creds["SecretAccessKey"]) == 40
    assert len(creds["SessionToken"]) < 1500
    lifetime = creds["Expiration"].timestamp() - time.time()
    assert 800 < lifetime <= 900
    user = assumed["AssumedRoleUser"]
    assert user["Arn"] == f"arn:aws:sts::{account}:assumed-role/reader-{unique}/job-1"
    assert user["AssumedRoleId"].startswith("AROA") and user["AssumedRoleId"].endswith(":job-1")
    me = session(broker, creds, "sts").get_caller_identity()
    assert me["Arn"] == user["Arn"] and me["UserId"] == user["AssumedRoleId"]
    role_iam = session(broker, creds)
    assert role_iam.get_role(RoleName=f"reader-{unique}")["Role"]["Arn"] == arn
    with pytest.raises(ClientError) as info:
        role_iam.create_user(UserName=f"nope-{unique}")
    assert code(info) == "AccessDenied"
    assert "assumed-role/reader-" in info.value.response["Error"]["Message"]
    # Changing the role's policies changes what its live sessions may do.
    iam.delete_role_policy(RoleName=f"reader-{unique}", PolicyName="p0")
    with pytest.raises(ClientError) as info:
        role_iam.get_role(RoleName=f"reader-{unique}")
    assert code(info) == "AccessDenied"


def test_trust_decides_who_may_assume(broker: Broker, iam: Any, unique: str) -> None:
    account = account_of(broker)
    name = f"narrow-{unique}"
    user_client = None
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    user_client = broker.client("sts", key["AccessKeyId"], key["SecretAccessKey"])
    user_arn = f"arn:aws:iam::{account}:user/{name}"
    # Trusting the account delegates to identity policies: the user has none.
    by_account = make_role(iam, f"acct-{unique}", trust_account(account), READ_IAM)
    with pytest.raises(ClientError) as info:
        user_client.assume_role(RoleArn=by_account, RoleSessionName="s1")
    assert code(info) == "AccessDenied"
    # Trusting the user's ARN grants it directly.
    direct = make_role(
        iam,
        f"direct-{unique}",
        {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole"},
        READ_IAM,
    )
    user_client.assume_role(RoleArn=direct, RoleSessionName="s1")
    # ExternalId in the trust policy.
    guarded = make_role(
        iam,
        f"ext-{unique}",
        trust_account(account, StringEquals={"sts:ExternalId": "shared-secret-id"}),
        READ_IAM,
    )
    sts = broker.client("sts")
    with pytest.raises(ClientError) as info:
        sts.assume_role(RoleArn=guarded, RoleSessionName="s1")
    assert code(info) == "AccessDenied"
    assert "trust policy" in info.value.response["Error"]["Message"]
    sts.assume_role(RoleArn=guarded, RoleSessionName="s1", ExternalId="shared-secret-id")
    # A role that does not exist reads as access denied, so names cannot be probed.
    with pytest.raises(ClientError) as info:
        sts.assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/missing-{unique}", RoleSessionName="s1"
        )
    assert code(info) == "AccessDenied"


def test_durations_and_role_chaining(broker: Broker, iam: Any, unique: str) -> None:
    account = account_of(broker)
    arn = make_role(
        iam,
        f"long-{unique}",
        trust_account(account),
        doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}),
        MaxSessionDuration=7200,
    )
    sts = broker.client("sts")
    with pytest.raises(ClientError) as info:
        sts.assume_role(RoleArn=arn, RoleSessionName="s1", DurationSeconds=7201)
    assert code(info) == "ValidationError"
    assert "7200" in info.value.response["Error"]["Message"]
    first = sts.assume_role(RoleArn=arn, RoleSessionName="s1", DurationSeconds=7200)
    chained = session(broker, first["Credentials"], "sts")
    with pytest.raises(ClientError) as info:
        chained.assume_role(RoleArn=arn, RoleSessionName="s2", DurationSeconds=3601)
    assert code(info) == "ValidationError" and "one-hour" in info.value.response["Error"]["Message"]
    second = chained.assume_role(RoleArn=arn, RoleSessionName="s2")
    assert second["AssumedRoleUser"]["Arn"].endswith(f"long-{unique}/s2")


def test_session_policies_cap_the_session(broker: Broker, iam: Any, unique: str) -> None:
    account = account_of(broker)
    role = f"capped-{unique}"
    arn = make_role(iam, role, trust_account(account), READ_IAM)
    sts = broker.client("sts")
    only_roles = doc({"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"})
    creds = sts.assume_role(RoleArn=arn, RoleSessionName="s1", Policy=only_roles)["Credentials"]
    capped = session(broker, creds)
    capped.get_role(RoleName=role)
    with pytest.raises(ClientError) as info:
        capped.list_users()
    assert "session policy does not allow" in info.value.response["Error"]["Message"]
    managed = iam.create_policy(
        PolicyName=f"list-{unique}",
        PolicyDocument=doc({"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}),
    )["Policy"]["Arn"]
    creds = sts.assume_role(RoleArn=arn, RoleSessionName="s2", PolicyArns=[{"arn": managed}])[
        "Credentials"
    ]
    by_arn = session(broker, creds)
    by_arn.list_users()
    with pytest.raises(ClientError):
        by_arn.get_role(RoleName=role)
    with pytest.raises(ClientError) as info:
        sts.assume_role(RoleArn=arn, RoleSessionName="s3", Policy='{"Statement": []}')
    assert code(info) == "MalformedPolicyDocument"
    big = doc(
        {"Effect": "Allow", "Action": [f"iam:Get{i:04d}" for i in range(150)], "Resource": "*"}
    )
    with pytest.raises(ClientError) as info:
        sts.assume_role(RoleArn=arn, RoleSessionName="s3", Policy=big)
    assert code(info) == "ValidationError"
    with pytest.raises(ClientError) as info:
        sts.assume_role(
            RoleArn=arn,
            RoleSessionName="s3",
            PolicyArns=[{"arn": f"arn:aws:iam::{account}:policy/none-{unique}"}],
        )
    assert code(info) == "NoSuchEntity"


def test_session_tags_and_source_identity(broker: Broker, iam: Any, unique: str) -> None:
    account = account_of(broker)
    abac = doc(
        {
            "Effect": "Allow",
            "Action": "iam:GetRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalTag/team": "red"}},
        },
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"},
    )
    arn = make_role(iam, f"tagged-{unique}", trust_account(account), abac)
    untagged_trust = make_role(
        iam,
        f"plain-{unique}",
        {"Effect": "Allow", "Principal": {"AWS": account}, "Action": "sts:AssumeRole"},
        abac,
    )
    sts = broker.client("sts")
    with pytest.raises(ClientError) as info:
        sts.assume_role(
            RoleArn=untagged_trust, RoleSessionName="sn", Tags=[{"Key": "team", "Value": "red"}]
        )
    assert (
        code(info) == "AccessDenied" and "sts:TagSession" in info.value.response["Error"]["Message"]
    )
    red = sts.assume_role(
        RoleArn=arn,
        RoleSessionName="sn",
        SourceIdentity="alice",
        Tags=[{"Key": "team", "Value": "red"}],
        TransitiveTagKeys=["team"],
    )
    assert red["SourceIdentity"] == "alice"
    session(broker, red["Credentials"]).get_role(RoleName=f"tagged-{unique}")
    blue = sts.assume_role(
        RoleArn=arn, RoleSessionName="sn", Tags=[{"Key": "team", "Value": "blue"}]
    )
    with pytest.raises(ClientError):
        session(broker, blue["Credentials"]).get_role(RoleName=f"tagged-{unique}")
    # Transitive tags and the source identity carry through a chain and cannot be changed.
    chain = session(broker, red["Credentials"], "sts")
    carried = chain.assume_role(RoleArn=arn, RoleSessionName="hop")
    assert carried["SourceIdentity"] == "alice"
    session(broker, carried["Credentials"]).get_role(RoleName=f"tagged-{unique}")
    with pytest.raises(ClientError) as info:
        chain.assume_role(RoleArn=arn, RoleSessionName="hop", SourceIdentity="mallory")
    assert code(info) == "ValidationError"
    with pytest.raises(ClientError) as info:
        chain.assume_role(
            RoleArn=arn, RoleSessionName="hop", Tags=[{"Key": "team", "Value": "blue"}]
        )
    assert code(info) == "ValidationError"


def test_get_session_token_with_mfa(broker: Broker, iam: Any, unique: str) -> None:
    name = f"mfa-user-{unique}"
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="p",
        PolicyDocument=doc(
            {
                "Effect": "Allow",
                "Action": ["iam:ListUsers"],
                "Resource": "*",
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
            },
            {
                "Effect": "Allow",
                "Action": ["iam:*MFADevice*", "iam:ListMFADevices"],
                "Resource": "*",
            },
        ),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    user_iam = broker.client("iam", key["AccessKeyId"], key["SecretAccessKey"])
    user_sts = broker.client("sts", key["AccessKeyId"], key["SecretAccessKey"])
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{name}-phone")
    serial = device["VirtualMFADevice"]["SerialNumber"]
    app = pyotp.TOTP(device["VirtualMFADevice"]["Base32StringSeed"].decode())
    now = time.time()
    iam.enable_mfa_device(
        UserName=name,
        SerialNumber=serial,
        AuthenticationCode1=app.at(now - 30),
        AuthenticationCode2=app.at(now),
    )
    with pytest.raises(ClientError):
        user_iam.list_users()  # long-term key: no MFA in the context
    with pytest.raises(ClientError) as info:
        user_sts.get_session_token(SerialNumber=serial, TokenCode="000000")
    assert code(info) == "AccessDenied"
    assert "MultiFactorAuthentication failed" in info.value.response["Error"]["Message"]
    creds = user_sts.get_session_token(
        SerialNumber=serial, TokenCode=app.at(now + 30), DurationSeconds=900
    )["Credentials"]
    session(broker, creds).list_users()
    me = session(broker, creds, "sts").get_caller_identity()
    assert me["Arn"].endswith(f":user/{name}")
    plain = user_sts.get_session_token()["Credentials"]
    with pytest.raises(ClientError):
        session(broker, plain).list_users()
    with pytest.raises(ClientError) as info:
        session(broker, plain, "sts").get_session_token()
    assert code(info) == "AccessDenied"


def test_broken_temporary_credentials_are_refused(broker: Broker, iam: Any, unique: str) -> None:
    account = account_of(broker)
    role = f"victim-{unique}"
    arn = make_role(iam, role, trust_account(account), READ_IAM)
    sts = broker.client("sts")
    creds = sts.assume_role(RoleArn=arn, RoleSessionName="s1")["Credentials"]
    other = sts.assume_role(RoleArn=arn, RoleSessionName="s2")["Credentials"]
    token = creds["SessionToken"]
    tampered = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    cases = {
        "tampered token": (dict(creds, SessionToken=tampered), "InvalidClientTokenId"),
        "token of another key": (
            dict(creds, SessionToken=other["SessionToken"]),
            "InvalidClientTokenId",
        ),
        "wrong secret": (dict(creds, SecretAccessKey="z" * 40), "SignatureDoesNotMatch"),
        "no token": (dict(creds, SessionToken=None), "InvalidClientTokenId"),
        "garbage token": (dict(creds, SessionToken="fb1.nope.AAAA"), "InvalidClientTokenId"),
    }
    for label, (broken, expected) in cases.items():
        with pytest.raises(ClientError) as info:
            session(broker, broken).get_role(RoleName=role)
        assert code(info) == expected, label
        assert "fb1." not in info.value.response["Error"]["Message"]
    session(broker, creds).get_role(RoleName=role)
    # Deleting the role ends its sessions.
    iam.delete_role_policy(RoleName=role, PolicyName="p0")
    iam.delete_role(RoleName=role)
    with pytest.raises(ClientError) as info:
        session(broker, creds, "sts").get_caller_identity()
    assert code(info) == "InvalidClientTokenId"


def test_sts_calls_are_audited_without_secrets(broker: Broker, iam: Any, unique: str) -> None:
    account = account_of(broker)
    arn = make_role(iam, f"audited-{unique}", trust_account(account), READ_IAM)
    creds = broker.client("sts").assume_role(
        RoleArn=arn, RoleSessionName="audit-me", SourceIdentity="carol"
    )["Credentials"]
    session(broker, creds).get_role(RoleName=f"audited-{unique}")
    text = broker.audit_log.read_text()
    assert creds["SecretAccessKey"] not in text and creds["SessionToken"] not in text
    events = [json.loads(line) for line in text.splitlines()]
    assume = next(
        e
        for e in reversed(events)
        if e["eventName"] == "AssumeRole" and e["requestParameters"].get("RoleArn") == arn
    )
    assert assume["eventSource"] == "sts.amazonaws.com"
    assert assume["responseElements"]["credentials"]["accessKeyId"] == creds["AccessKeyId"]
    used = next(
        e
        for e in reversed(events)
        if e["eventName"] == "GetRole"
        and e["requestParameters"].get("RoleName") == f"audited-{unique}"
    )
    identity = used["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["arn"].endswith(f"assumed-role/audited-{unique}/audit-me")
    assert identity["accessKeyId"] == creds["AccessKeyId"]
    assert identity["sessionContext"]["sessionIssuer"]["arn"] == arn
    assert identity["sessionContext"]["sourceIdentity"] == "carol"


def _revoke(broker: Broker, *args: str) -> str:
    import subprocess

    from tests.web.conftest import FEDBROKER

    done = subprocess.run(
        [FEDBROKER, "sessions", "revoke", *broker.store_args, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_revoked_sessions_are_refused(broker: Broker, iam: Any, unique: str) -> None:
    account = account_of(broker)
    role = f"revocable-{unique}"
    arn = make_role(iam, role, trust_account(account), READ_IAM)
    sts = broker.client("sts")

    def assume(name: str, **kwargs: Any) -> dict[str, Any]:
        return dict(sts.assume_role(RoleArn=arn, RoleSessionName=name, **kwargs)["Credentials"])

    one, two, three = assume("one"), assume("two"), assume("three", SourceIdentity="eve")
    for creds in (one, two, three):
        session(broker, creds).get_role(RoleName=role)
    # One session, by the id the audit log shows for it.
    events = [json.loads(line) for line in broker.audit_log.read_text().splitlines()]
    used = next(
        e for e in reversed(events) if e["userIdentity"].get("accessKeyId") == one["AccessKeyId"]
    )
    session_id = used["userIdentity"]["sessionContext"]["attributes"]["sessionId"]
    assert "revoked" in _revoke(broker, "--session-id", session_id)
    with pytest.raises(ClientError) as info:
        session(broker, one).get_role(RoleName=role)
    assert code(info) == "InvalidClientTokenId"
    session(broker, two).get_role(RoleName=role)
    # Everything of a source identity.
    _revoke(broker, "--source-identity", "eve")
    with pytest.raises(ClientError):
        session(broker, three).get_role(RoleName=role)
    session(broker, two).get_role(RoleName=role)
    # Every session of the role issued until now; a new one works.
    _revoke(broker, "--role", role)
    with pytest.raises(ClientError):
        session(broker, two).get_role(RoleName=role)
    time.sleep(1.1)  # session times are whole seconds: the revocation's second is refused too
    session(broker, assume("four")).get_role(RoleName=role)
    assert any(e["eventName"] == "RevokeSessions" for e in broker.audit_events())


def test_temporary_key_ids_name_their_account(broker: Broker, iam: Any, unique: str) -> None:
    from fedbroker.credentials.access_key_ids import account_of_temporary_key_id

    account = account_of(broker)
    arn = make_role(iam, f"keyinfo-{unique}", trust_account(account), READ_IAM)
    creds = broker.client("sts").assume_role(RoleArn=arn, RoleSessionName="keys")["Credentials"]
    assert account_of_temporary_key_id(creds["AccessKeyId"]) == account
    # The session's own key, and a long-term key of the directory, answer today.
    mine = session(broker, creds, "sts").get_access_key_info(AccessKeyId=creds["AccessKeyId"])
    assert mine["Account"] == account
    admin = broker.client("sts").get_access_key_info(AccessKeyId=broker.admin_key_id)
    assert admin["Account"] == account


def test_get_access_key_info_of_another_callers_temporary_key(
    broker: Broker, iam: Any, unique: str
) -> None:
    account = account_of(broker)
    arn = make_role(iam, f"keyinfo2-{unique}", trust_account(account), READ_IAM)
    creds = broker.client("sts").assume_role(RoleArn=arn, RoleSessionName="keys")["Credentials"]
    # The administrator asks about a key that is not its own: AWS answers with its account.
    info = broker.client("sts").get_access_key_info(AccessKeyId=creds["AccessKeyId"])
    assert info["Account"] == account
