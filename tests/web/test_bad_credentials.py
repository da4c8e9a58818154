"""Credentials that must not work, presented by boto3 over HTTP: to the broker's Query API (STS
and IAM) and to the example S3 service. Each is refused with AWS's code in the protocol's own
error document, issues nothing, changes nothing, and is audited with its reason.

Time is moved, not waited for: the broker and the S3 service here run in this process (the
broker's Flask app and the example's WSGI app, each on its own port, over the directory of the
`fedbroker serve` that issues the credentials) with a clock that runs ``offset`` ahead of the
real one, and botocore signs with its clock moved the same way.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.types import WSGIApplication

import boto3
import botocore.auth
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from examples.s3_service import create_app as create_s3_app
from werkzeug.serving import make_server

from fedbroker.audit.events import JsonlAuditSink
from fedbroker.config import load_settings
from fedbroker.enforce import open_local_checker
from fedbroker.web.app import create_app
from tests.web.conftest import Broker
from tests.web.test_sts import READ_IAM, account_of, doc, make_role, trust_account

NO_RETRY = Config(retries={"max_attempts": 1})
S3_CONFIG = Config(
    signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}
)


class ShiftedClock:
    """The real time plus ``offset``: the server's clock and botocore's signing clock."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def __call__(self, *args: Any, **kwargs: Any) -> datetime:
        return self.now().replace(tzinfo=None)  # botocore's signing time is naive UTC


@contextmanager
def serving(app: WSGIApplication) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Setup:
    def __init__(self, broker: Broker, tmp: Path) -> None:
        self.broker = broker
        self.server_clock = ShiftedClock()
        self.signing_clock = ShiftedClock()
        self.broker_audit = tmp / "broker-events.jsonl"
        self.s3_audit = tmp / "s3-events.jsonl"
        self.s3_root = tmp / "s3"
        self.broker_url = ""
        self.s3_url = ""

    def jsonl(self, path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text().splitlines()]

    def client(self, service: str, creds: dict[str, Any], url: str | None = None) -> Any:
        return boto3.client(
            service,
            endpoint_url=url or self.broker_url,
            region_name="us-east-1",
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds.get("SessionToken"),
            config=S3_CONFIG if service == "s3" else NO_RETRY,
        )

    def s3(self, creds: dict[str, Any]) -> Any:
        return self.client("s3", creds, self.s3_url)


@pytest.fixture
def setup(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Setup]:
    setup = Setup(broker, tmp_path)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", setup.signing_clock)
    settings = load_settings(
        None, overrides={"data_dir": broker.data_dir, "database_url": broker.database_url}
    )
    app = create_app(settings, clock=setup.server_clock, audit=JsonlAuditSink(setup.broker_audit))
    checker = open_local_checker(broker.data_dir, broker.database_url)
    s3_app = create_s3_app(
        checker, setup.s3_root, clock=setup.server_clock, audit=JsonlAuditSink(setup.s3_audit)
    )
    try:
        with serving(app) as broker_url, serving(s3_app) as s3_url:
            setup.broker_url, setup.s3_url = broker_url, s3_url
            yield setup
    finally:
        app.extensions["fedbroker.services"].store.close()
        checker.directory.store.close()


def assume(broker: Broker, iam: Any, unique: str, **policy: Any) -> tuple[str, dict[str, Any]]:
    """A role that may read IAM and use one bucket, and a 15-minute session of it."""
    account = account_of(broker)
    bucket = f"bad-creds-{unique}"
    s3_policy = doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    arn = make_role(iam, f"badcreds-{unique}", trust_account(account), READ_IAM, s3_policy)
    creds = broker.client("sts").assume_role(
        RoleArn=arn, RoleSessionName="victim", DurationSeconds=900
    )["Credentials"]
    return bucket, dict(creds)


def refused(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = info.value.response
    return (
        str(response["Error"]["Code"]),
        int(response["ResponseMetadata"]["HTTPStatusCode"]),
        str(response["Error"]["Message"]),
    )


def broken_variants(
    creds: dict[str, Any], other: dict[str, Any]
) -> dict[str, tuple[dict[str, Any], str, str]]:
    """Label: (credentials, Query protocol code, S3 code)."""
    token = creds["SessionToken"]
    tampered = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    return {
        "tampered token": (
            dict(creds, SessionToken=tampered),
            "InvalidClientTokenId",
            "InvalidAccessKeyId",
        ),
        "token of another access key id": (
            dict(creds, SessionToken=other["SessionToken"]),
            "InvalidClientTokenId",
            "InvalidAccessKeyId",
        ),
        "wrong secret": (
            dict(creds, SecretAccessKey="z" * 40),
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
        ),
    }


# --- the broker's Query API ----------------------------------------------------------------------


def test_broken_credentials_issue_nothing_and_are_audited(
    setup: Setup, broker: Broker, iam: Any, unique: str
) -> None:
    _, creds = assume(broker, iam, unique)
    _, other = assume(broker, iam, unique + "x")
    role_arn = f"arn:aws:iam::{account_of(broker)}:role/badcreds-{unique}"
    for label, (broken, code, _) in broken_variants(creds, other).items():
        sts = setup.client("sts", broken)
        with pytest.raises(ClientError) as info:
            sts.assume_role(RoleArn=role_arn, RoleSessionName="chained")
        assert refused(info)[:2] == (code, 403), label
        assert info.value.response["Error"]["Type"] == "Sender", label
        assert "Credentials" not in info.value.response, label
        assert "fb1." not in refused(info)[2], label
    events = setup.jsonl(setup.broker_audit)
    assumes = [e for e in events if e["eventName"] == "AssumeRole"]
    assert [e["errorCode"] for e in assumes] == [
        "InvalidClientTokenId",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    ]
    assert all("responseElements" not in e or not e["responseElements"] for e in assumes)
    text = setup.broker_audit.read_text()
    assert creds["SecretAccessKey"] not in text and creds["SessionToken"] not in text
    # The genuine credentials still work: nothing was damaged.
    setup.client("sts", creds).get_caller_identity()


def test_expired_credentials(setup: Setup, broker: Broker, iam: Any, unique: str) -> None:
    _, creds = assume(broker, iam, unique)
    role_arn = f"arn:aws:iam::{account_of(broker)}:role/badcreds-{unique}"
    setup.client("iam", creds).get_role(RoleName=f"badcreds-{unique}")
    # Sixteen minutes later (the session was for fifteen), on both sides.
    setup.server_clock.offset = setup.signing_clock.offset = timedelta(minutes=16)
    with pytest.raises(ClientError) as info:
        setup.client("iam", creds).get_role(RoleName=f"badcreds-{unique}")
    assert refused(info) == (
        "ExpiredToken",
        403,
        "The security token included in the request is expired",
    )
    with pytest.raises(ClientError) as info:
        setup.client("sts", creds).assume_role(RoleArn=role_arn, RoleSessionName="chained")
    assert refused(info)[0] == "ExpiredToken"
    assert "Credentials" not in info.value.response
    events = setup.jsonl(setup.broker_audit)
    assert [(e["eventName"], e.get("errorCode")) for e in events] == [
        ("GetRole", None),
        ("GetRole", "ExpiredToken"),
        ("AssumeRole", "ExpiredToken"),
    ]
    assert "expired at" in events[-1]["errorMessage"]


@pytest.mark.parametrize(
    ("shift", "words"),
    [(-6, "Signature expired: "), (6, "Signature not yet current: ")],
    ids=["signed-6-min-ago", "signed-6-min-ahead"],
)
def test_requests_outside_the_skew_window(
    setup: Setup, broker: Broker, iam: Any, unique: str, shift: int, words: str
) -> None:
    _, creds = assume(broker, iam, unique)
    role_arn = f"arn:aws:iam::{account_of(broker)}:role/badcreds-{unique}"
    setup.signing_clock.offset = timedelta(minutes=4 if shift > 0 else -4)
    setup.client("sts", creds).get_caller_identity()  # 4 minutes off: within the window
    setup.signing_clock.offset = timedelta(minutes=shift)
    with pytest.raises(ClientError) as info:
        setup.client("sts", creds).assume_role(RoleArn=role_arn, RoleSessionName="chained")
    code, status, message = refused(info)
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    assert message.startswith(words) and "5 min." in message
    assert "Credentials" not in info.value.response
    # A long-term key is held to the same window.
    admin = {"AccessKeyId": broker.admin_key_id, "SecretAccessKey": broker.admin_secret}
    with pytest.raises(ClientError) as info:
        setup.client("iam", admin).list_roles()
    assert refused(info)[0] == "SignatureDoesNotMatch"
    events = setup.jsonl(setup.broker_audit)
    assert [(e["eventName"], e.get("errorCode")) for e in events] == [
        ("GetCallerIdentity", None),
        ("AssumeRole", "SignatureDoesNotMatch"),
        ("ListRoles", "SignatureDoesNotMatch"),
    ]


# --- the example S3 service ----------------------------------------------------------------------


def s3_refusals(setup: Setup) -> list[tuple[str, str, str]]:
    return [
        (e["eventName"], e["errorCode"], e["errorMessage"])
        for e in setup.jsonl(setup.s3_audit)
        if e.get("errorCode")
    ]


def test_s3_broken_credentials_change_nothing_and_are_audited(
    setup: Setup, broker: Broker, iam: Any, unique: str
) -> None:
    bucket, creds = assume(broker, iam, unique)
    _, other = assume(broker, iam, unique + "x")
    s3 = setup.s3(creds)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="kept.txt", Body=b"original")
    for label, (broken, _, code) in broken_variants(creds, other).items():
        with pytest.raises(ClientError) as info:
            setup.s3(broken).put_object(Bucket=bucket, Key="kept.txt", Body=b"overwritten")
        assert refused(info)[:2] == (code, 403), label
        with pytest.raises(ClientError) as info:
            setup.s3(broken).delete_object(Bucket=bucket, Key="kept.txt")
        assert refused(info)[0] == code, label
    assert s3.get_object(Bucket=bucket, Key="kept.txt")["Body"].read() == b"original"
    assert [k["Key"] for k in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["kept.txt"]
    audited = s3_refusals(setup)
    assert [(name, code) for name, code, _ in audited] == [
        ("PutObject", "InvalidClientTokenId"),
        ("DeleteObject", "InvalidClientTokenId"),
        ("PutObject", "InvalidClientTokenId"),
        ("DeleteObject", "InvalidClientTokenId"),
        ("PutObject", "SignatureDoesNotMatch"),
        ("DeleteObject", "SignatureDoesNotMatch"),
    ]
    assert "failed authentication" in audited[0][2]
    assert "another access key id" in audited[2][2]
    text = setup.s3_audit.read_text()
    assert creds["SecretAccessKey"] not in text and creds["SessionToken"] not in text


def test_s3_expired_credentials_and_skew(
    setup: Setup, broker: Broker, iam: Any, unique: str
) -> None:
    bucket, creds = assume(broker, iam, unique)
    s3 = setup.s3(creds)
    s3.create_bucket(Bucket=bucket)
    # Signed six minutes ago: S3's own code for it.
    setup.signing_clock.offset = timedelta(minutes=-6)
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="late.txt", Body=b"late")
    assert refused(info) == (
        "RequestTimeTooSkewed",
        403,
        "The difference between the request time and the current time is too large.",
    )
    # Sixteen minutes on (the session was for fifteen).
    setup.server_clock.offset = setup.signing_clock.offset = timedelta(minutes=16)
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="late.txt", Body=b"late")
    assert refused(info) == ("ExpiredToken", 400, "The provided token has expired.")
    setup.server_clock.offset = setup.signing_clock.offset = timedelta(0)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert [(name, code) for name, code, _ in s3_refusals(setup)] == [
        ("PutObject", "SignatureDoesNotMatch"),
        ("PutObject", "ExpiredToken"),
    ]


def test_s3_presigned_url_replayed_past_its_expiry(
    setup: Setup, broker: Broker, iam: Any, unique: str
) -> None:
    bucket, creds = assume(broker, iam, unique)
    s3 = setup.s3(creds)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="report.csv", Body=b"a,b\n")
    url = s3.generate_presigned_url(
        "get_object", {"Bucket": bucket, "Key": "report.csv"}, ExpiresIn=60
    )
    assert "X-Amz-Expires=60" in url and "X-Amz-Security-Token=" in url
    setup.server_clock.offset = timedelta(seconds=50)
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"a,b\n"
    setup.server_clock.offset = timedelta(seconds=70)
    with pytest.raises(urllib.error.HTTPError) as replayed:
        urllib.request.urlopen(url, timeout=10)
    assert replayed.value.code == 403
    body = replayed.value.read().decode()
    replayed.value.close()
    assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in body
    assert [(name, code) for name, code, _ in s3_refusals(setup)] == [
        ("GetObject", "SignatureDoesNotMatch")
    ]
    assert "expired at" in s3_refusals(setup)[0][2]
