"""``POST /authorize`` on a real broker (SQLite and PostgreSQL), and
``sts:DecodeAuthorizationMessage`` through boto3: a service forwards requests that boto3
signed with temporary credentials from AssumeRole; the broker decides them, explains denials,
refuses callers not allowed ``fedbroker:Authorize``, malformed and oversize bodies, and audits
every answer."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.web.conftest import Broker
from tests.web.test_sts import account_of, doc, make_role, trust_account

BUCKET = "reports"
KEY = "2026/q1.csv"
OBJECT = f"arn:aws:s3:::{BUCKET}/{KEY}"
ROLE_POLICY = doc(
    {
        "Sid": "ReadReports",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/*",
        "Condition": {"StringEquals": {"aws:PrincipalTag/team": "data"}},
    },
    {"Sid": "NoDeletes", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"},
)
AUTHORIZE = doc({"Effect": "Allow", "Action": "fedbroker:Authorize", "Resource": "*"})


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def signed_s3(creds: dict[str, Any], operation: str, **params: Any) -> dict[str, Any]:
    """What a resource service received from boto3, as /authorize wants it forwarded."""
    client = boto3.client(
        "s3",
        endpoint_url="http://s3.example.test",
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )

    def capture(request: Any, **_: Any) -> None:
        raise _Captured(request)

    client.meta.events.register("before-send", capture)
    with pytest.raises(_Captured) as caught:
        getattr(client, operation)(**params)
    prepared = caught.value.request
    url = urlsplit(prepared.url)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()}
    headers.setdefault("Host", url.netloc)
    body = prepared.body or b""
    if hasattr(body, "read"):
        body = body.read()
    return {
        "method": prepared.method,
        "path": url.path,
        "query": url.query,
        "headers": headers,
        "payload_hash": hashlib.sha256(body).hexdigest(),
    }


def post(
    broker: Broker,
    body: bytes,
    key: tuple[str, str] | None,
    service: str = "fedbroker",
) -> tuple[int, dict[str, Any]]:
    request = AWSRequest(
        method="POST",
        url=broker.url + "/authorize",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    if key is not None:
        SigV4Auth(Credentials(*key), service, "us-east-1").add_auth(request)
    prepared = request.prepare()
    sent = urllib.request.Request(
        prepared.url, data=body, headers=dict(prepared.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def ask(
    broker: Broker, key: tuple[str, str] | None, forwarded: dict[str, Any], **fields: Any
) -> tuple[int, dict[str, Any]]:
    return post(broker, json.dumps({**forwarded, **fields}).encode(), key)


def user_key(iam: Any, name: str, policy: str | None) -> tuple[str, str]:
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy)
    made = iam.create_access_key(UserName=name)["AccessKey"]
    return made["AccessKeyId"], made["SecretAccessKey"]


@pytest.fixture
def setup(broker: Broker, iam: Any, unique: str) -> dict[str, Any]:
    account = account_of(broker)
    role_arn = make_role(iam, f"analyst-{unique}", trust_account(account), ROLE_POLICY)
    creds = broker.client("sts").assume_role(
        RoleArn=role_arn,
        RoleSessionName="job-1",
        Tags=[{"Key": "team", "Value": "data"}],
    )["Credentials"]
    return {
        "account": account,
        "role_arn": role_arn,
        "creds": creds,
        "service": user_key(iam, f"s3svc-{unique}", AUTHORIZE),
        "stranger": user_key(iam, f"stranger-{unique}", None),
        "session_arn": f"arn:aws:sts::{account}:assumed-role/analyst-{unique}/job-1",
    }


def test_allowed_request(broker: Broker, setup: dict[str, Any]) -> None:
    forwarded = signed_s3(setup["creds"], "get_object", Bucket=BUCKET, Key=KEY)
    status, answer = ask(
        broker, setup["service"], forwarded, action="s3:GetObject", resource=OBJECT
    )
    assert status == 200, answer
    assert answer["decision"] == "Allow"
    principal = answer["principal"]
    assert principal["arn"] == setup["session_arn"]
    assert principal["type"] == "AssumedRole" and principal["role_arn"] == setup["role_arn"]
    assert principal["session_tags"] == {"team": "data"}
    assert answer["explanation"]["decided_by"] == "identity"
    assert "encoded_message" not in answer
    # A resource policy from the service can grant what the identity policies do not.
    put = signed_s3(setup["creds"], "put_object", Bucket=BUCKET, Key="new", Body=b"data")
    grant = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": setup["session_arn"]},
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{BUCKET}/*",
            }
        ],
    }
    target = f"arn:aws:s3:::{BUCKET}/new"
    status, answer = ask(broker, setup["service"], put, action="s3:PutObject", resource=target)
    assert (status, answer["decision"]) == (200, "ImplicitDeny")
    status, answer = ask(
        broker,
        setup["service"],
        put,
        action="s3:PutObject",
        resource=target,
        resource_policy=grant,
    )
    assert (status, answer["decision"]) == (200, "Allow")
    assert answer["explanation"]["decided_by"] == "resource"


def test_denied_with_explanation_decoded_by_sts(
    broker: Broker, iam: Any, setup: dict[str, Any], unique: str
) -> None:
    forwarded = signed_s3(setup["creds"], "delete_object", Bucket=BUCKET, Key=KEY)
    status, answer = ask(
        broker, setup["service"], forwarded, action="s3:DeleteObject", resource=OBJECT
    )
    assert status == 200, answer
    assert answer["decision"] == "ExplicitDeny"
    assert answer["message"].endswith("with an explicit deny in an identity-based policy")
    denied_by = answer["explanation"]["policy_types"]["identity"]["denied_by"]
    assert denied_by[0]["sid"] == "NoDeletes"
    encoded = answer["encoded_message"]
    assert "NoDeletes" not in encoded
    # The admin may decode it (AdministratorAccess-like policy) ...
    decoded = json.loads(
        broker.client("sts").decode_authorization_message(EncodedMessage=encoded)["DecodedMessage"]
    )
    assert decoded["explicitDeny"] is True
    assert decoded["matchedStatements"]["items"][0]["statementId"] == "NoDeletes"
    assert decoded["context"]["principal"]["arn"] == setup["session_arn"]
    assert decoded["context"]["action"] == "s3:DeleteObject"
    # ... a user allowed sts:DecodeAuthorizationMessage may too; others may not.
    reader = user_key(
        iam,
        f"decoder-{unique}",
        doc({"Effect": "Allow", "Action": "sts:DecodeAuthorizationMessage", "Resource": "*"}),
    )
    sts_reader = broker.client("sts", *reader)
    assert (
        "NoDeletes"
        in sts_reader.decode_authorization_message(EncodedMessage=encoded)["DecodedMessage"]
    )
    with pytest.raises(ClientError) as caught:
        broker.client("sts", *setup["stranger"]).decode_authorization_message(
            EncodedMessage=encoded
        )
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as caught:
        sts_reader.decode_authorization_message(EncodedMessage=encoded[:-4] + "AAAA")
    assert caught.value.response["Error"]["Code"] == "InvalidAuthorizationMessageException"
    # The condition that failed, for an implicit deny.
    tagless = broker.client("sts").assume_role(RoleArn=setup["role_arn"], RoleSessionName="s2")
    forwarded = signed_s3(tagless["Credentials"], "get_object", Bucket=BUCKET, Key=KEY)
    _, answer = ask(broker, setup["service"], forwarded, action="s3:GetObject", resource=OBJECT)
    assert answer["decision"] == "ImplicitDeny"
    decoded = json.loads(
        sts_reader.decode_authorization_message(EncodedMessage=answer["encoded_message"])[
            "DecodedMessage"
        ]
    )
    (failure,) = decoded["failures"]["items"]
    assert failure["condition"]["key"] == "aws:PrincipalTag/team"
    assert failure["condition"]["request_value"] is None


def test_unauthenticated_forwarded_request_is_a_deny(broker: Broker, setup: dict[str, Any]) -> None:
    forwarded = signed_s3(setup["creds"], "get_object", Bucket=BUCKET, Key=KEY)
    forwarded["path"] = f"/{BUCKET}/another-key"  # not what was signed
    status, answer = ask(
        broker, setup["service"], forwarded, action="s3:GetObject", resource=OBJECT
    )
    assert status == 200
    assert answer["decision"] == "ImplicitDeny"
    assert answer["error"]["code"] == "SignatureDoesNotMatch"
    assert "principal" not in answer


def test_only_callers_allowed_fedbroker_authorize(broker: Broker, setup: dict[str, Any]) -> None:
    forwarded = signed_s3(setup["creds"], "get_object", Bucket=BUCKET, Key=KEY)
    query = {**forwarded, "action": "s3:GetObject", "resource": OBJECT}
    body = json.dumps(query).encode()
    status, answer = post(broker, body, setup["stranger"])
    assert status == 403
    assert answer["__type"] == "AccessDenied"
    assert "fedbroker:Authorize" in answer["message"]
    assert post(broker, body, None) == (
        403,
        {
            "__type": "MissingAuthenticationToken",
            "message": "Request is missing Authentication Token",
        },
    )
    status, answer = post(broker, body, setup["service"], service="s3")
    assert (status, answer["__type"]) == (403, "SignatureDoesNotMatch")
    assert "fedbroker" in answer["message"]
    # Even a temporary session of the role is refused: it has no fedbroker:Authorize.
    creds = setup["creds"]
    request = AWSRequest(
        method="POST",
        url=broker.url + "/authorize",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(
        Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]),
        "fedbroker",
        "us-east-1",
    ).add_auth(request)
    prepared = request.prepare()
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(
            urllib.request.Request(
                prepared.url, data=body, headers=dict(prepared.headers), method="POST"
            ),
            timeout=30,
        )
    assert caught.value.code == 403
    assert json.loads(caught.value.read())["__type"] == "AccessDenied"
    caught.value.close()


def test_malformed_and_oversize_bodies(broker: Broker, setup: dict[str, Any]) -> None:
    key = setup["service"]
    status, answer = post(broker, b"{not json", key)
    assert (status, answer["__type"]) == (400, "SerializationException")
    status, answer = post(broker, b"[1, 2]", key)
    assert (status, answer["__type"]) == (400, "SerializationException")
    forwarded = signed_s3(setup["creds"], "get_object", Bucket=BUCKET, Key=KEY)
    good = {**forwarded, "action": "s3:GetObject", "resource": OBJECT}
    for broken, field in (
        ({**good, "action": "GetObject"}, "action"),
        ({**good, "headers": ["x"]}, "headers"),
        ({**good, "payload_hash": "abc"}, "payload_hash"),
        ({**good, "surprise": 1}, "surprise"),
        ({**good, "context": {"aws:PrincipalTag/team": "data"}}, "aws:PrincipalTag/team"),
        ({k: v for k, v in good.items() if k != "resource"}, "resource"),
    ):
        status, answer = post(broker, json.dumps(broken).encode(), key)
        assert (status, answer["__type"]) == (400, "ValidationError"), (field, answer)
        assert field in answer["message"]
    status, answer = post(
        broker, json.dumps({**good, "resource_policy": {"Statement": "nope"}}).encode(), key
    )
    assert (status, answer["__type"]) == (400, "MalformedPolicyDocument")
    huge = json.dumps({**good, "context": {"pad": "x" * 70_000}}).encode()
    status, answer = post(broker, huge, key)
    assert (status, answer["__type"]) == (413, "RequestEntityTooLarge")


def test_every_answer_is_audited(broker: Broker, setup: dict[str, Any]) -> None:
    forwarded = signed_s3(setup["creds"], "delete_object", Bucket=BUCKET, Key=KEY)
    query = {**forwarded, "action": "s3:DeleteObject", "resource": OBJECT}
    assert post(broker, json.dumps(query).encode(), setup["service"])[0] == 200
    assert post(broker, json.dumps(query).encode(), setup["stranger"])[0] == 403
    deadline = time.monotonic() + 5
    while True:
        events = [
            e
            for e in broker.audit_events()
            if e["eventSource"] == "fedbroker.amazonaws.com"
            and e["eventName"] == "Authorize"
            and e["userIdentity"].get("accessKeyId") in (setup["service"][0], setup["stranger"][0])
        ]
        if len(events) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    decided = next(e for e in events if e["userIdentity"]["accessKeyId"] == setup["service"][0])
    assert decided["responseElements"]["decision"] == "ExplicitDeny"
    assert decided["responseElements"]["principal"] == setup["session_arn"]
    assert decided["requestParameters"]["action"] == "s3:DeleteObject"
    assert decided["additionalEventData"]["subject"]["arn"] == setup["session_arn"]
    assert "errorCode" not in decided
    refused = next(e for e in events if e["userIdentity"]["accessKeyId"] == setup["stranger"][0])
    assert refused["errorCode"] == "AccessDenied"
    text = json.dumps(events)
    assert setup["creds"]["SessionToken"] not in text
    assert setup["creds"]["SecretAccessKey"] not in text
