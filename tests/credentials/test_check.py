"""The check on every use, in process, on a fixed clock: requests signed by boto3's own signer
(botocore's clock pinned) are authenticated and decided by the engine over the caller's
identity policies, permissions boundary, session policies and a resource policy; every
credential problem is refused with AWS's outward code; denials explain themselves through an
encoded message only the key ring opens."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
from botocore.config import Config

from fedbroker.credentials.authz_message import (
    MAX_MESSAGE_LENGTH,
    InvalidAuthorizationMessageError,
    open_message,
    seal_message,
)
from fedbroker.credentials.check import CheckResult, RequestChecker
from fedbroker.credentials.keyring import KeyRing
from fedbroker.credentials.sealing import MasterKey, access_key_context
from fedbroker.credentials.session_token import (
    PrincipalType,
    SessionClaims,
    TemporaryCredentials,
    issue_credentials,
)
from fedbroker.credentials.sigv4 import HttpRequest
from fedbroker.directory import ids
from fedbroker.directory.model import (
    AccessKey,
    Account,
    Entity,
    KeyStatus,
    Kind,
    PolicyVersion,
)
from fedbroker.directory.sql import SqlStore
from fedbroker.directory.view import DirectoryView
from fedbroker.errors import (
    ExpiredTokenError,
    InvalidClientTokenIdError,
    MalformedPolicyDocumentError,
    MissingAuthenticationTokenError,
    SignatureDoesNotMatchError,
)
from fedbroker.policy import Effect

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BUCKET = "reports"
KEY = "2026/q1 summary.csv"
OBJECT = f"arn:aws:s3:::{BUCKET}/{KEY}"


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


READ_REPORTS = doc(
    {
        "Sid": "ReadReports",
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        "Condition": {"StringEquals": {"aws:PrincipalTag/team": "data"}},
    },
    {"Sid": "WriteDrafts", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"},
    {"Sid": "NoDeletes", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"},
)


class BotocoreClock:
    def __init__(self) -> None:
        self.moment = T0

    def __call__(self, *args: Any, **kwargs: Any) -> datetime:
        return self.moment.replace(tzinfo=None)


@pytest.fixture(autouse=True)
def signing_clock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BotocoreClock:
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    pinned = BotocoreClock()
    monkeypatch.setattr(botocore.auth, "get_current_datetime", pinned)
    return pinned


@dataclasses.dataclass
class World:
    store: SqlStore
    master: MasterKey
    ring: KeyRing
    account: Account
    role: Entity
    checker: RequestChecker

    def session(self, **changes: Any) -> TemporaryCredentials:
        name = changes.pop("session_name", "job-1")
        claims = SessionClaims(
            account_id=self.account.id,
            principal_type=PrincipalType.ASSUMED_ROLE,
            principal_arn=f"arn:aws:sts::{self.account.id}:assumed-role/analyst/{name}",
            principal_id=f"{self.role.id}:{name}",
            role_arn=self.role.arn,
            role_session_name=name,
            tags={"team": "data"},
            issued=T0,
            expires=T0 + timedelta(hours=1),
            session_id=f"session-{name}",
        )
        return issue_credentials(self.ring, dataclasses.replace(claims, **changes), T0)

    def user_key(self, name: str, policy: str) -> tuple[str, str]:
        user = Entity(Kind.USER, self.account.id, name, ids.new_unique_id("AIDA"), "/", T0)
        self.store.create_entity(user)
        self.store.put_inline(user, "p", policy)
        key_id, secret = ids.new_access_key_id(), ids.new_secret_access_key()
        sealed = self.master.seal(secret.encode(), access_key_context(key_id))
        self.store.create_access_key(
            AccessKey(key_id, self.account.id, user.id, sealed, KeyStatus.ACTIVE, T0)
        )
        return key_id, secret

    def managed_policy(self, name: str, document: str) -> str:
        policy = Entity(Kind.POLICY, self.account.id, name, ids.new_unique_id("ANPA"), "/", T0)
        self.store.create_entity(policy, PolicyVersion(policy.arn, "v1", document, True, T0))
        return policy.arn

    def role_with(self, name: str, policy: str, **attrs: object) -> Entity:
        role = Entity(Kind.ROLE, self.account.id, name, ids.new_unique_id("AROA"), "/", T0, attrs)
        self.store.create_entity(role)
        self.store.put_inline(role, "p", policy)
        return role


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = SqlStore(f"sqlite:///{tmp_path / 'directory.db'}")
    master = MasterKey(os.urandom(32), development=True)
    account = Account(ids.new_account_id(), None, "root@example.com", "-", T0)
    store.create_account(account)
    role = Entity(Kind.ROLE, account.id, "analyst", ids.new_unique_id("AROA"), "/", T0)
    store.create_entity(role)
    store.put_inline(role, "reports", READ_REPORTS)
    ring = KeyRing(store, master)
    ring.ensure_keys(T0)
    yield World(store, master, ring, account, role, RequestChecker(store, master, ring))
    store.close()


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session(region_name="us-east-1")


def s3(key_id: str, secret: str, token: str | None = None) -> Any:
    return _session().client(
        "s3",
        endpoint_url="http://s3.example.test",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
        ),
    )


def session_s3(creds: TemporaryCredentials) -> Any:
    return s3(creds.access_key_id, creds.secret_access_key, creds.session_token)


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def sent(client: Any, operation: str, **params: Any) -> HttpRequest:
    """The request boto3 would send, exactly, captured before it leaves."""

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
    if hasattr(body, "read"):  # a stream (PutObject): what it would send
        body.seek(0)
        body = body.read()
    return HttpRequest(
        prepared.method,
        url.path,
        url.query,
        headers,
        body.encode() if isinstance(body, str) else bytes(body),
    )


def get(creds: TemporaryCredentials, key: str = KEY, bucket: str = BUCKET) -> HttpRequest:
    return sent(session_s3(creds), "get_object", Bucket=bucket, Key=key)


def check(
    world: World,
    request: HttpRequest,
    action: str,
    resource: str = OBJECT,
    at: timedelta = timedelta(seconds=1),
    **kwargs: Any,
) -> CheckResult:
    return world.checker.check(request, action, resource, T0 + at, **kwargs)


# --- allowed -----------------------------------------------------------------------------------


def test_a_role_session_is_allowed_what_its_role_allows(world: World) -> None:
    creds = world.session()
    result = check(world, get(creds), "s3:GetObject", source_ip="203.0.113.9")
    assert result.allowed and result.decision.decided_by == "identity"
    assert result.principal.arn.endswith(":assumed-role/analyst/job-1")
    assert result.principal.role_arn == world.role.arn
    assert result.caller.session is not None and result.caller.session.session_id == "session-job-1"
    context = result.context
    assert context["aws:PrincipalTag/team"] == "data"
    assert context["aws:SourceIp"] == "203.0.113.9"
    assert context["aws:PrincipalArn"] == world.role.arn
    assert context["aws:TokenIssueTime"] == "2026-03-02T09:00:00Z"
    assert context["aws:SecureTransport"] == "false"
    assert result.auth.service == "s3" and not result.auth.presigned


def test_a_long_term_user_key_is_checked_too(world: World) -> None:
    key_id, secret = world.user_key(
        "carol", doc({"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"})
    )
    request = sent(s3(key_id, secret), "get_object", Bucket=BUCKET, Key=KEY)
    result = check(world, request, "s3:GetObject")
    assert result.allowed
    assert result.principal.arn == f"arn:aws:iam::{world.account.id}:user/carol"
    assert "aws:SourceIp" not in result.context  # not given: absent, never made up
    denied = check(
        world, sent(s3(key_id, secret), "delete_object", Bucket=BUCKET, Key=KEY), "s3:DeleteObject"
    )
    assert denied.decision.effect is Effect.IMPLICIT_DENY


def test_service_condition_keys_come_with_the_request(world: World) -> None:
    role = world.role_with(
        "lister",
        doc(
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{BUCKET}",
                "Condition": {"StringLike": {"s3:prefix": "public/*"}},
            }
        ),
    )
    creds = world.session(role_arn=role.arn, principal_id=f"{role.id}:job-1")
    request = sent(session_s3(creds), "list_objects_v2", Bucket=BUCKET, Prefix="public/a")
    bucket = f"arn:aws:s3:::{BUCKET}"
    assert check(
        world, request, "s3:ListBucket", bucket, extra_context={"s3:prefix": "public/a"}
    ).allowed
    assert not check(
        world, request, "s3:ListBucket", bucket, extra_context={"s3:prefix": "private/"}
    ).allowed
    # Keys that come from the credentials cannot be supplied by the service.
    for forged in ("aws:PrincipalTag/team", "aws:principalarn", "aws:MultiFactorAuthPresent"):
        with pytest.raises(ValueError, match="comes from the credentials"):
            check(world, request, "s3:ListBucket", bucket, extra_context={forged: "x"})
    # The transport keys may be: a service behind a proxy knows them better.
    result = check(
        world,
        request,
        "s3:ListBucket",
        bucket,
        extra_context={"s3:prefix": "public/", "aws:SecureTransport": "true"},
    )
    assert result.context["aws:SecureTransport"] == "true"


# --- denied, and why ---------------------------------------------------------------------------


def test_explicit_deny_names_the_policy_type_and_the_message_names_the_statement(
    world: World,
) -> None:
    creds = world.session()
    request = sent(session_s3(creds), "delete_object", Bucket=BUCKET, Key=KEY)
    result = check(world, request, "s3:DeleteObject")
    assert result.decision.effect is Effect.EXPLICIT_DENY
    message = result.denial_message()
    assert message == (
        f"User: arn:aws:sts::{world.account.id}:assumed-role/analyst/job-1 is not authorized "
        f'to perform: s3:DeleteObject on resource: "{OBJECT}" with an explicit deny in an '
        "identity-based policy"
    )
    encoded = world.checker.encode(result, T0)
    assert "NoDeletes" not in encoded and len(encoded) <= MAX_MESSAGE_LENGTH
    decoded = open_message(world.ring, encoded, T0)
    assert decoded["allowed"] is False and decoded["explicitDeny"] is True
    matched = decoded["matchedStatements"]["items"]
    assert matched == [
        {
            "effect": "DENY",
            "policyType": "identity",
            "policy": "role/analyst/reports",
            "statement": 3,
            "statementId": "NoDeletes",
        }
    ]
    assert decoded["context"]["action"] == "s3:DeleteObject"
    assert decoded["context"]["resource"] == OBJECT
    assert decoded["context"]["principal"]["account"] == world.account.id
    assert decoded["explanation"]["decided_by"] == "identity"


def test_implicit_deny_and_the_failed_condition_key(world: World) -> None:
    creds = world.session(tags={"team": "web"})
    result = check(world, get(creds), "s3:GetObject")
    assert result.decision.effect is Effect.IMPLICIT_DENY
    assert result.denial_message().endswith(
        "because no identity-based policy allows the s3:GetObject action"
    )
    decoded = open_message(world.ring, world.checker.encode(result, T0), T0)
    (failure,) = decoded["failures"]["items"]
    assert failure["statementId"] == "ReadReports"
    assert failure["condition"]["key"] == "aws:PrincipalTag/team"
    assert failure["condition"]["request_value"] == "web"
    identity = decoded["explanation"]["policy_types"]["identity"]
    assert identity["result"] == "ImplicitDeny"
    assert "aws:PrincipalTag/team" in identity["not_matched"][0]["reason"]
    conditions = {c["key"]: c["values"]["items"] for c in decoded["context"]["conditions"]["items"]}
    assert conditions["aws:PrincipalTag/team"] == [{"value": "web"}]


def test_session_policy_caps_the_role(world: World) -> None:
    only_list = doc({"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"})
    creds = world.session(session_policy=only_list)
    result = check(world, get(creds), "s3:GetObject")
    assert result.decision.effect is Effect.IMPLICIT_DENY
    assert result.decision.decided_by == "session"
    assert "because no session policy allows the s3:GetObject action" in result.denial_message()
    # Managed session policies by ARN cap it the same way.
    arn = world.managed_policy(
        "get-only", doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    )
    capped = world.session(session_name="job-2", session_policy_arns=(arn,))
    assert check(world, get(capped), "s3:GetObject").allowed
    put = sent(session_s3(capped), "put_object", Bucket=BUCKET, Key="k", Body=b"x")
    assert check(world, put, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/k").decision.decided_by == (
        "session"
    )


def test_permissions_boundary_caps_the_role(world: World) -> None:
    boundary = world.managed_policy(
        "read-only-boundary", doc({"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"})
    )
    role = world.role_with("bounded", READ_REPORTS, permissions_boundary=boundary)
    creds = world.session(role_arn=role.arn, principal_id=f"{role.id}:job-1")
    assert check(world, get(creds), "s3:GetObject").allowed
    put = sent(session_s3(creds), "put_object", Bucket=BUCKET, Key="k", Body=b"x")
    result = check(world, put, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/k")
    assert result.decision.effect is Effect.IMPLICIT_DENY
    assert result.decision.decided_by == "boundary"
    assert "because no permissions boundary allows" in result.denial_message()


def test_resource_policy_grants_a_role_session_and_denies_over_identity(world: World) -> None:
    creds = world.session(tags={"team": "web"})  # the identity policy's condition fails
    session_arn = f"arn:aws:sts::{world.account.id}:assumed-role/analyst/job-1"
    grant = doc(
        {
            "Effect": "Allow",
            "Principal": {"AWS": session_arn},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
        }
    )
    result = check(world, get(creds), "s3:GetObject", resource_policy=grant)
    assert result.allowed and result.decision.decided_by == "resource"
    # Another session of the same role is not named by the grant.
    other = world.session(session_name="job-2", tags={"team": "web"})
    assert not check(world, get(other), "s3:GetObject", resource_policy=grant).allowed
    # A Deny in the resource policy beats the identity policy's Allow.
    deny = doc(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
    allowed_one = world.session(session_name="job-3")
    refused = check(world, get(allowed_one), "s3:GetObject", resource_policy=deny)
    assert refused.decision.effect is Effect.EXPLICIT_DENY
    assert "with an explicit deny in a resource-based policy" in refused.denial_message()
    assert check(
        world, get(allowed_one), "s3:GetObject", resource_policy=deny, secure_transport=True
    ).allowed
    with pytest.raises(MalformedPolicyDocumentError):
        check(world, get(allowed_one), "s3:GetObject", resource_policy='{"Statement": 1}')


def test_cross_account_needs_both_sides(world: World) -> None:
    creds = world.session()
    other_account = "999988887777"
    assert not check(world, get(creds), "s3:GetObject", resource_account=other_account).allowed
    grant = doc(
        {
            "Effect": "Allow",
            "Principal": {"AWS": world.role.arn},
            "Action": "s3:GetObject",
            "Resource": "*",
        }
    )
    assert check(
        world, get(creds), "s3:GetObject", resource_account=other_account, resource_policy=grant
    ).allowed


# --- anonymous requests -----------------------------------------------------------------------


def test_an_anonymous_request_is_allowed_only_by_a_policy_granting_everyone(world: World) -> None:
    def public(principal: object, effect: str = "Allow", **condition: object) -> str:
        statement: dict[str, Any] = {
            "Effect": effect,
            "Principal": principal,
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
        }
        if condition:
            statement["Condition"] = condition
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    def anonymous(policy: str | None, **kwargs: Any) -> Any:
        return world.checker.check_anonymous(
            "s3:GetObject", OBJECT, T0, None, policy, resource_account=world.account.id, **kwargs
        )

    assert not anonymous(None).allowed
    assert not anonymous(public({"AWS": world.account.id})).allowed
    assert not anonymous(public({"AWS": world.role.arn})).allowed
    everyone = anonymous(public("*"))
    assert everyone.allowed and everyone.decision.decided_by == "resource"
    assert everyone.principal.type.value == "Anonymous"
    assert "aws:PrincipalArn" not in everyone.context
    assert anonymous(public({"AWS": "*"})).allowed
    # Conditions on what an anonymous request has: its source address.
    only_here = public("*", IpAddress={"aws:SourceIp": "192.0.2.0/24"})
    assert anonymous(only_here, source_ip="192.0.2.7").allowed
    assert not anonymous(only_here, source_ip="198.51.100.1").allowed
    assert not anonymous(only_here).allowed
    # An explicit deny for everyone holds, and denies signed callers too.
    denied = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                json.loads(public("*"))["Statement"][0],
                json.loads(public("*", "Deny"))["Statement"][0],
            ],
        }
    )
    assert not anonymous(denied).allowed
    assert not check(world, get(world.session()), "s3:GetObject", resource_policy=denied).allowed
    # Keys the credentials would own cannot be supplied for nobody either.
    with pytest.raises(ValueError):
        world.checker.check_anonymous(
            "s3:GetObject", OBJECT, T0, {"aws:PrincipalArn": world.role.arn}, public("*")
        )


# --- credentials that do not authenticate -------------------------------------------------------


def test_expired_token(world: World, signing_clock: BotocoreClock) -> None:
    creds = world.session(expires=T0 + timedelta(minutes=15))
    early = get(creds)
    assert check(world, early, "s3:GetObject").allowed  # opened once, remembered
    signing_clock.moment = T0 + timedelta(minutes=15, seconds=5)
    late = get(creds)
    with pytest.raises(ExpiredTokenError) as caught:
        check(world, late, "s3:GetObject", at=timedelta(minutes=15, seconds=6))
    assert caught.value.code == "ExpiredToken"
    assert "expired at" in caught.value.detail


def test_tampered_token(world: World) -> None:
    creds = world.session()
    body = creds.session_token
    flipped = body[:-5] + ("A" if body[-5] != "A" else "B") + body[-4:]
    forged = dataclasses.replace(creds, session_token=flipped)
    with pytest.raises(InvalidClientTokenIdError) as caught:
        check(world, get(forged), "s3:GetObject")
    assert "failed authentication" in caught.value.detail
    assert caught.value.message == "The security token included in the request is invalid."


def test_token_of_another_access_key_id(world: World) -> None:
    mine, theirs = world.session(), world.session(session_name="job-2")
    swapped = dataclasses.replace(
        theirs, access_key_id=mine.access_key_id, secret_access_key=theirs.secret_access_key
    )
    with pytest.raises(InvalidClientTokenIdError) as caught:
        check(world, get(swapped), "s3:GetObject")
    assert "another access key id" in caught.value.detail


def test_token_sealed_by_another_broker(world: World, tmp_path: Path) -> None:
    elsewhere = SqlStore(f"sqlite:///{tmp_path / 'other.db'}")
    ring = KeyRing(elsewhere, MasterKey(os.urandom(32), development=True))
    ring.ensure_keys(T0)
    claims = world.session().claims
    foreign = issue_credentials(ring, claims, T0)
    with pytest.raises(InvalidClientTokenIdError) as caught:
        check(world, get(foreign), "s3:GetObject")
    assert "unknown or retired key" in caught.value.detail
    elsewhere.close()


def test_wrong_secret_skew_and_no_signature(world: World, signing_clock: BotocoreClock) -> None:
    creds = world.session()
    wrong = dataclasses.replace(creds, secret_access_key="x" * 40)
    with pytest.raises(SignatureDoesNotMatchError):
        check(world, get(wrong), "s3:GetObject")
    request = get(creds)
    with pytest.raises(SignatureDoesNotMatchError) as caught:
        check(world, request, "s3:GetObject", at=timedelta(minutes=5, seconds=1))
    assert "Signature expired" in caught.value.message
    signing_clock.moment = T0 + timedelta(minutes=6)
    with pytest.raises(SignatureDoesNotMatchError) as caught:
        check(world, get(creds), "s3:GetObject", at=timedelta(0))
    assert "not yet current" in caught.value.message
    unsigned = HttpRequest("GET", f"/{BUCKET}/k", "", {"Host": "s3.example.test"}, b"")
    with pytest.raises(MissingAuthenticationTokenError):
        check(world, unsigned, "s3:GetObject")


def test_a_changed_path_or_body_no_longer_matches(world: World) -> None:
    creds = world.session()
    put = sent(session_s3(creds), "put_object", Bucket=BUCKET, Key="k", Body=b"payload")
    assert check(world, put, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/k").allowed
    with pytest.raises(SignatureDoesNotMatchError):
        check(world, dataclasses.replace(put, body=b"other"), "s3:PutObject")
    with pytest.raises(SignatureDoesNotMatchError):
        check(world, dataclasses.replace(put, path=f"/{BUCKET}/other"), "s3:PutObject")
    # A body hash vouched for by the receiver stands in for the body (POST /authorize).
    import hashlib

    vouched = dataclasses.replace(put, body=b"", body_hash=hashlib.sha256(b"payload").hexdigest())
    assert check(world, vouched, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/k").allowed


def test_presigned_url(world: World) -> None:
    creds = world.session()
    url = urlsplit(
        session_s3(creds).generate_presigned_url(
            "get_object", {"Bucket": BUCKET, "Key": KEY}, ExpiresIn=600
        )
    )
    assert "X-Amz-Security-Token=" in url.query
    request = HttpRequest("GET", url.path, url.query, {"Host": url.netloc}, b"")
    result = check(world, request, "s3:GetObject", at=timedelta(minutes=9))
    assert result.allowed and result.auth.presigned
    with pytest.raises(SignatureDoesNotMatchError) as caught:
        check(world, request, "s3:GetObject", at=timedelta(minutes=10, seconds=1))
    assert caught.value.message == "Request has expired."
    other_key = dataclasses.replace(request, path=f"/{BUCKET}/another-key")
    with pytest.raises(SignatureDoesNotMatchError):
        check(world, other_key, "s3:GetObject")


# --- the directory, read without a database round trip per request ------------------------------


def test_directory_changes_apply_at_once(world: World) -> None:
    """The store signals its writes (SQLite's data_version, PostgreSQL's NOTIFY): the checker
    sees a change on the next request, with no interval to wait."""
    creds = world.session()
    request = get(creds)
    assert check(world, request, "s3:GetObject", at=timedelta(seconds=1)).allowed
    world.store.put_inline(
        world.role, "reports", doc({"Effect": "Deny", "Action": "s3:*", "Resource": "*"})
    )
    later = check(world, request, "s3:GetObject", at=timedelta(seconds=1))
    assert later.decision.effect is Effect.EXPLICIT_DENY
    # A deleted role ends its sessions.
    world.store.delete_inline(world.role, "reports")
    world.store.delete_entity(world.role)
    with pytest.raises(InvalidClientTokenIdError):
        check(world, request, "s3:GetObject", at=timedelta(seconds=1))


ALLOW_ALL = doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})


class _Counting:
    """The world's store, counting version reads; ``hints`` False hides the change hint."""

    def __init__(self, store: Any, *, hints: bool) -> None:
        self.store = store
        self.hints = hints
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def change_hint(self) -> int | None:
        return self.store.change_hint() if self.hints else None

    def directory_version(self) -> int:
        self.reads += 1
        return int(self.store.directory_version())


def test_without_a_signal_changes_apply_within_the_check_interval(world: World) -> None:
    counting = _Counting(world.store, hints=False)
    view = DirectoryView(counting, check_interval=timedelta(seconds=1))  # type: ignore[arg-type]
    view.refresh(T0)
    assert view.get_entity(world.account.id, Kind.ROLE, world.role.name).name == world.role.name
    world.store.put_inline(world.role, "extra", ALLOW_ALL)
    view.refresh(T0 + timedelta(seconds=0.5))  # within a second: what it holds
    assert counting.reads == 1
    view.refresh(T0 + timedelta(seconds=1.5))  # a second later: it looks again
    assert counting.reads == 2


def test_with_a_signal_the_version_is_read_only_after_a_write(world: World) -> None:
    counting = _Counting(world.store, hints=True)
    view = DirectoryView(counting, check_interval=timedelta(seconds=1))  # type: ignore[arg-type]
    for step in range(20):
        view.refresh(T0 + timedelta(milliseconds=100 * step))
        view.get_entity(world.account.id, Kind.ROLE, world.role.name)
    assert counting.reads == 1
    world.store.put_inline(world.role, "extra", ALLOW_ALL)
    view.refresh(T0)
    assert counting.reads == 2


def test_the_view_reads_the_version_at_most_once_per_interval(world: World) -> None:
    reads: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(world.store, name)

        def directory_version(self) -> int:
            reads.append(1)
            return world.store.directory_version()

        def change_hint(self) -> None:
            return None  # polling only

    view = DirectoryView(Counting(), check_interval=timedelta(seconds=1))  # type: ignore[arg-type]
    for step in range(20):
        view.refresh(T0 + timedelta(milliseconds=100 * step))
        view.get_account(world.account.id)
        view.get_entity(world.account.id, Kind.ROLE, "ANALYST")
    assert len(reads) == 2  # at 0 s and at 1 s
    with pytest.raises(Exception, match="cannot be found"):
        view.get_entity(world.account.id, Kind.ROLE, "missing")


# --- encoded messages ---------------------------------------------------------------------------


def test_messages_are_opaque_bound_and_bounded(world: World) -> None:
    creds = world.session()
    request = sent(session_s3(creds), "delete_object", Bucket=BUCKET, Key=KEY)
    result = check(world, request, "s3:DeleteObject")
    encoded = world.checker.encode(result, T0)
    assert encoded.startswith("fbm1.")
    for broken in (encoded[:-3] + "AAA", encoded + "x", "fbm1.nokey.AAAA", "garbage", ""):
        with pytest.raises(InvalidAuthorizationMessageError) as caught:
            open_message(world.ring, broken, T0)
        assert caught.value.code == "InvalidAuthorizationMessageException"
    # A session token is sealed by the same ring but never opens as a message.
    with pytest.raises(InvalidAuthorizationMessageError):
        open_message(world.ring, creds.session_token.replace("fb1.", "fbm1.", 1), T0)
    # Huge explanations are cut down to fit boto3's limit on EncodedMessage.
    content = open_message(world.ring, encoded, T0)
    content["failures"] = {"items": [{"reason": os.urandom(64).hex()} for _ in range(400)]}
    content["explanation"]["summary"] = os.urandom(3000).hex()
    big = seal_message(world.ring, content, T0)
    assert len(big) <= MAX_MESSAGE_LENGTH
    trimmed = open_message(world.ring, big, T0)
    assert trimmed["truncated"] is True and trimmed["failures"] == {"items": []}
    assert trimmed["explanation"]["decided_by"] == "identity"
