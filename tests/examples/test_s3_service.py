"""The example S3 service (examples/s3_service) with `fedbroker serve`, both started on
127.0.0.1: boto3's own ``s3`` client, with temporary credentials from ``sts.assume_role``, is
allowed and denied exactly as the role's policies and the bucket policy say; a denial's encoded
message decodes through boto3's ``sts.decode_authorization_message`` for a caller allowed to,
and only for such a caller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.web.conftest import REPO, Broker, free_port
from tests.web.test_sts import account_of, doc, make_role, trust_account

S3_CONFIG = Config(
    signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}
)


class Service:
    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root

    def client(self, key_id: str, secret: str, token: str | None = None) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=S3_CONFIG,
        )

    def session_client(self, creds: dict[str, Any]) -> Any:
        return self.client(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])

    def audit_events(self) -> list[dict[str, Any]]:
        path = self.root / ".audit" / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def service(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp(f"s3-{broker.backend}")
    port = free_port()
    db = ["--database-url", broker.database_url] if broker.database_url else []
    log = open(root.parent / f"s3-{broker.backend}.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.s3_service",
            "--broker-data-dir",
            str(broker.data_dir),
            *db,
            "--root",
            str(root),
            "--port",
            str(port),
            "--check-interval",
            "0.2",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=1)
            break
        except urllib.error.HTTPError as answered:
            answered.close()  # its response holds the connection's socket
            break  # answered (AccessDenied: unsigned): it is up
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.close()
                log_text = (root.parent / f"s3-{broker.backend}.log").read_text()
                raise RuntimeError("the S3 example did not start:\n" + log_text) from None
            time.sleep(0.1)
    try:
        yield Service(url, root)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def error_of(info: pytest.ExceptionInfo[ClientError]) -> dict[str, Any]:
    return dict(info.value.response["Error"])


def role_policy(bucket: str) -> str:
    arn = f"arn:aws:s3:::{bucket}"
    return doc(
        {"Sid": "SeeBuckets", "Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
        {
            "Sid": "ListPublic",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": arn,
            "Condition": {"StringLike": {"s3:prefix": ["public/", "public/*"]}},
        },
        {
            "Sid": "UsePublic",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"{arn}/public/*",
        },
        {"Sid": "NeverDelete", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"},
    )


@pytest.fixture
def world(broker: Broker, iam: Any, service: Service, unique: str) -> dict[str, Any]:
    bucket = f"data-{unique}"
    admin = service.client(broker.admin_key_id, broker.admin_secret)
    admin.create_bucket(Bucket=bucket)
    admin.put_object(Bucket=bucket, Key="public/a.txt", Body=b"public a")
    admin.put_object(Bucket=bucket, Key="private/b.txt", Body=b"private b")
    account = account_of(broker)
    role_name = f"s3-reader-{unique}"
    role_arn = make_role(iam, role_name, trust_account(account), role_policy(bucket))
    creds = broker.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="reader")[
        "Credentials"
    ]
    return {
        "bucket": bucket,
        "admin": admin,
        "role_name": role_name,
        "creds": creds,
        "s3": service.session_client(creds),
        "session_arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/reader",
    }


def test_role_session_is_allowed_and_denied_as_its_policies_say(
    broker: Broker, service: Service, world: dict[str, Any]
) -> None:
    s3, bucket = world["s3"], world["bucket"]
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="public/")
    assert [o["Key"] for o in listed["Contents"]] == ["public/a.txt"]
    assert s3.get_object(Bucket=bucket, Key="public/a.txt")["Body"].read() == b"public a"
    s3.put_object(Bucket=bucket, Key="public/new file.txt", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="public/new file.txt")["Body"].read() == b"hello"

    with pytest.raises(ClientError) as denied:
        s3.get_object(Bucket=bucket, Key="private/b.txt")
    error = error_of(denied)
    assert error["Code"] == "AccessDenied"
    assert world["session_arn"] in error["Message"]
    assert "because no identity-based policy allows the s3:GetObject action" in error["Message"]
    assert error["EncodedAuthorizationMessage"] in error["Message"]
    with pytest.raises(ClientError) as denied:
        s3.list_objects_v2(Bucket=bucket, Prefix="private/")
    assert error_of(denied)["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as denied:
        s3.list_objects_v2(Bucket=bucket)  # no prefix: s3:prefix is "", not public/*
    assert error_of(denied)["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as denied:
        s3.put_object(Bucket=bucket, Key="private/x", Body=b"no")
    assert error_of(denied)["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as denied:
        s3.delete_object(Bucket=bucket, Key="public/a.txt")
    assert "with an explicit deny in an identity-based policy" in error_of(denied)["Message"]
    # Nothing denied happened: the object is still there, the refused one was never written.
    admin = world["admin"]
    assert admin.get_object(Bucket=bucket, Key="public/a.txt")["Body"].read() == b"public a"
    keys = [o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["private/b.txt", "public/a.txt", "public/new file.txt"]


def test_bucket_policy_grants_and_denies(service: Service, world: dict[str, Any]) -> None:
    s3, bucket, admin = world["s3"], world["bucket"], world["admin"]
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="private/b.txt")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReaderMaySeePrivate",
                "Effect": "Allow",
                "Principal": {"AWS": world["session_arn"]},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/private/*",
            },
            {
                "Sid": "LockedIsReadOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{bucket}/public/locked/*",
            },
        ],
    }
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert json.loads(admin.get_bucket_policy(Bucket=bucket)["Policy"]) == policy
    assert s3.get_object(Bucket=bucket, Key="private/b.txt")["Body"].read() == b"private b"
    s3.put_object(Bucket=bucket, Key="public/open.txt", Body=b"ok")
    with pytest.raises(ClientError) as denied:
        s3.put_object(Bucket=bucket, Key="public/locked/x.txt", Body=b"no")
    assert "with an explicit deny in a resource-based policy" in error_of(denied)["Message"]
    # The policy file is the bucket policy: a malformed one is refused by the API ...
    with pytest.raises(ClientError) as bad:
        admin.put_bucket_policy(Bucket=bucket, Policy='{"Statement": "nope"}')
    assert error_of(bad)["Code"] == "MalformedPolicy"
    # ... and, written by hand, fails closed.
    (service.root / bucket / "policy.json").write_text("{not json")
    with pytest.raises(ClientError) as denied:
        s3.get_object(Bucket=bucket, Key="public/a.txt")
    assert error_of(denied)["Code"] == "AccessDenied"
    admin_denied = pytest.raises(ClientError)
    with admin_denied:
        admin.get_object(Bucket=bucket, Key="public/a.txt")
    (service.root / bucket / "policy.json").unlink()
    assert s3.get_object(Bucket=bucket, Key="public/a.txt")["Body"].read() == b"public a"


def test_denial_decoded_by_an_allowed_caller_only(
    broker: Broker, iam: Any, world: dict[str, Any], unique: str
) -> None:
    s3, bucket = world["s3"], world["bucket"]
    with pytest.raises(ClientError) as denied:
        s3.list_objects_v2(Bucket=bucket, Prefix="private/")
    encoded = error_of(denied)["EncodedAuthorizationMessage"]
    assert "ListPublic" not in encoded and "s3:prefix" not in encoded
    # The role session itself has no sts:DecodeAuthorizationMessage.
    sts_session = boto3.client(
        "sts",
        endpoint_url=broker.url,
        region_name="us-east-1",
        aws_access_key_id=world["creds"]["AccessKeyId"],
        aws_secret_access_key=world["creds"]["SecretAccessKey"],
        aws_session_token=world["creds"]["SessionToken"],
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as refused:
        sts_session.decode_authorization_message(EncodedMessage=encoded)
    assert error_of(refused)["Code"] == "AccessDenied"
    # A user allowed sts:DecodeAuthorizationMessage sees why.
    name = f"auditor-{unique}"
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="decode",
        PolicyDocument=doc(
            {"Effect": "Allow", "Action": "sts:DecodeAuthorizationMessage", "Resource": "*"}
        ),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    sts = broker.client("sts", key["AccessKeyId"], key["SecretAccessKey"])
    decoded = json.loads(sts.decode_authorization_message(EncodedMessage=encoded)["DecodedMessage"])
    assert decoded["allowed"] is False and decoded["explicitDeny"] is False
    assert decoded["context"]["action"] == "s3:ListBucket"
    assert decoded["context"]["resource"] == f"arn:aws:s3:::{bucket}"
    assert decoded["context"]["principal"]["arn"] == world["session_arn"]
    failure = next(f for f in decoded["failures"]["items"] if f.get("statementId") == "ListPublic")
    assert failure["condition"]["key"] == "s3:prefix"
    assert failure["condition"]["request_value"] == "private/"
    assert decoded["explanation"]["decided_by"] == "identity"
    conditions = {c["key"] for c in decoded["context"]["conditions"]["items"]}
    assert {"s3:prefix", "aws:SourceIp", "aws:PrincipalArn"} <= conditions


def test_credentials_that_do_not_authenticate(
    broker: Broker, service: Service, world: dict[str, Any]
) -> None:
    creds, bucket = world["creds"], world["bucket"]
    wrong = service.client(creds["AccessKeyId"], "x" * 40, creds["SessionToken"])
    with pytest.raises(ClientError) as refused:
        wrong.get_object(Bucket=bucket, Key="public/a.txt")
    assert error_of(refused)["Code"] == "SignatureDoesNotMatch"
    token = creds["SessionToken"]
    forged = service.client(creds["AccessKeyId"], creds["SecretAccessKey"], token[:-4] + "AAAA")
    with pytest.raises(ClientError) as refused:
        forged.get_object(Bucket=bucket, Key="public/a.txt")
    assert error_of(refused)["Code"] == "InvalidAccessKeyId"
    # Unsigned: anonymous, and no bucket policy lets anonymous callers in.
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{service.url}/{bucket}/public/a.txt", timeout=10)
    assert anonymous.value.code == 403 and b"<Code>AccessDenied</Code>" in anonymous.value.read()
    anonymous.value.close()
    # A presigned URL (SigV4 query form, with the session token) works as the signer could.
    url = world["s3"].generate_presigned_url(
        "get_object", {"Bucket": bucket, "Key": "public/a.txt"}, ExpiresIn=300
    )
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"public a"
    with pytest.raises(urllib.error.HTTPError) as tampered:
        urllib.request.urlopen(url.replace("public/a.txt", "private/b.txt"), timeout=10)
    assert tampered.value.code == 403
    tampered.value.close()


def test_policy_changes_reach_the_service_and_decisions_are_audited(
    iam: Any, service: Service, world: dict[str, Any]
) -> None:
    s3, bucket = world["s3"], world["bucket"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="public/")["KeyCount"] == 1
    iam.delete_role_policy(RoleName=world["role_name"], PolicyName="p0")
    deadline = time.monotonic() + 10
    while True:  # the service looks at the directory every 0.2 s (--check-interval)
        try:
            s3.list_objects_v2(Bucket=bucket, Prefix="public/")
        except ClientError as error:
            assert error.response["Error"]["Code"] == "AccessDenied"
            break
        assert time.monotonic() < deadline, "the policy change never reached the service"
        time.sleep(0.1)
    events = [
        e
        for e in service.audit_events()
        if e["eventSource"] == "s3.amazonaws.com"
        and e["userIdentity"].get("arn") == world["session_arn"]
    ]
    allowed = [e for e in events if e["eventName"] == "ListBucket" and "errorCode" not in e]
    denied = [e for e in events if e["eventName"] == "ListBucket" and "errorCode" in e]
    assert allowed and denied
    assert denied[-1]["errorCode"] == "AccessDenied"
    assert denied[-1]["requestParameters"]["resource"] == f"arn:aws:s3:::{bucket}"
    assert world["creds"]["SecretAccessKey"] not in json.dumps(events)


def test_anonymous_requests_only_where_the_bucket_policy_grants_everyone(
    service: Service, world: dict[str, Any]
) -> None:
    bucket, admin = world["bucket"], world["admin"]
    anonymous = boto3.client(
        "s3",
        endpoint_url=service.url,
        region_name="us-east-1",
        config=Config(
            signature_version=botocore.UNSIGNED,
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
        ),
    )
    # A policy naming a principal does not name nobody.
    named = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": world["session_arn"]},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps(named))
    with pytest.raises(ClientError) as denied:
        anonymous.get_object(Bucket=bucket, Key="public/a.txt")
    assert error_of(denied)["Code"] == "AccessDenied"
    assert error_of(denied)["Message"] == "Access Denied"
    assert "EncodedAuthorizationMessage" not in error_of(denied)
    public = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/public/*",
            },
            {
                "Sid": "ListPublic",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": "public/*"}},
            },
            {
                "Sid": "NoTrash",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/public/trash/*",
            },
        ],
    }
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public))
    assert anonymous.get_object(Bucket=bucket, Key="public/a.txt")["Body"].read() == b"public a"
    with urllib.request.urlopen(f"{service.url}/{bucket}/public/a.txt", timeout=10) as answer:
        assert answer.read() == b"public a"
    listed = anonymous.list_objects_v2(Bucket=bucket, Prefix="public/")
    assert [o["Key"] for o in listed["Contents"]] == ["public/a.txt"]
    admin.put_object(Bucket=bucket, Key="public/trash/old.txt", Body=b"old")
    for refused in (
        lambda: anonymous.get_object(Bucket=bucket, Key="private/b.txt"),
        lambda: anonymous.get_object(Bucket=bucket, Key="public/trash/old.txt"),
        lambda: anonymous.list_objects_v2(Bucket=bucket),
        lambda: anonymous.put_object(Bucket=bucket, Key="public/new.txt", Body=b"x"),
        lambda: anonymous.delete_object(Bucket=bucket, Key="public/a.txt"),
        anonymous.list_buckets,
    ):
        with pytest.raises(ClientError) as denied:
            refused()
        assert (error_of(denied)["Code"], error_of(denied)["Message"]) == (
            "AccessDenied",
            "Access Denied",
        )
    # Nothing refused happened; a half-signed request is not anonymous.
    keys = [o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["private/b.txt", "public/a.txt", "public/trash/old.txt"]
    half = urllib.request.Request(
        f"{service.url}/{bucket}/public/a.txt", headers={"Authorization": "AWS4-HMAC-SHA256 x"}
    )
    with pytest.raises(urllib.error.HTTPError) as malformed:
        urllib.request.urlopen(half, timeout=10)
    assert malformed.value.code == 400
    assert b"<Code>AuthorizationHeaderMalformed</Code>" in malformed.value.read()
    malformed.value.close()
    events = [
        e
        for e in service.audit_events()
        if e["userIdentity"]["type"] == "AWSAccount"
        and e["requestParameters"]["resource"].startswith(f"arn:aws:s3:::{bucket}")
    ]
    assert events and all(e["userIdentity"]["accountId"] == "anonymous" for e in events)
    allowed = [e["eventName"] for e in events if "errorCode" not in e]
    assert allowed == ["GetObject", "GetObject", "ListBucket"]
    decided = [e["additionalEventData"]["decidedBy"] for e in events if "errorCode" not in e]
    assert decided == ["resource"] * 3
    assert {e["errorCode"] for e in events if "errorCode" in e} == {"AccessDenied"}
    admin.delete_bucket_policy(Bucket=bucket)
