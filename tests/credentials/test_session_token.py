"""Temporary credentials and session tokens: every claim round-trips; expiry, tampering, another
access key id, unknown or retired keys and garbage are refused with AWS's outward errors and the
precise reason in ``detail``, never the secret; a typical token stays small."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from fedbroker.credentials.keyring import KeyRing
from fedbroker.credentials.sealing import MasterKey
from fedbroker.credentials.session_token import (
    EXPIRED,
    INVALID,
    MAX_TOKEN_LENGTH,
    PackedPolicyTooLargeError,
    PrincipalType,
    SessionClaims,
    TemporaryCredentials,
    compact_json,
    issue_credentials,
    new_session_id,
    open_session_token,
)
from fedbroker.directory.model import KeyPurpose
from fedbroker.directory.sql import SqlStore
from fedbroker.errors import AuthenticationError, ExpiredTokenError, InvalidClientTokenIdError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ci-deploy"
POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject",'
    '"Resource":"arn:aws:s3:::reports/*","Condition":{"StringEquals":{"s3:prefix":"a b"}}}]}'
)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def role_session(**changes: object) -> SessionClaims:
    """A typical role session: web identity, two session tags, no session policy."""
    claims = SessionClaims(
        account_id=ACCOUNT,
        principal_type=PrincipalType.ASSUMED_ROLE,
        principal_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-deploy/github-actions-1234567890",
        principal_id="AROA3XFRBF535PLBIFPI4:github-actions-1234567890",
        role_arn=ROLE,
        role_session_name="github-actions-1234567890",
        tags={"team": "payments", "env": "prod"},
        issued=T0,
        expires=later(3600),
        provider=f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",
        subject="repo:example-org/payments-service:ref:refs/heads/main",
        session_id="Zk3bq0yJ4n2o1mXc8yR6Vw",
    )
    return replace(claims, **changes)  # type: ignore[arg-type]


def every_claim() -> SessionClaims:
    """Every field away from its default, including characters JSON must escape."""
    return SessionClaims(
        account_id=ACCOUNT,
        principal_type=PrincipalType.ASSUMED_ROLE,
        principal_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-deploy/sess@example.com",
        principal_id="AROA3XFRBF535PLBIFPI4:sess@example.com",
        role_arn=ROLE,
        role_session_name="sess@example.com",
        source_identity="alice@example.com",
        tags={"Project": "Ünïcode ✓", "cost-center": '12"34', "empty": ""},
        transitive_tag_keys=("Project", "cost-center"),
        session_policy=POLICY,
        session_policy_arns=(
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            f"arn:aws:iam::{ACCOUNT}:policy/team/Reports",
        ),
        mfa_authenticated=True,
        mfa_time=later(-600),
        issued=T0,
        expires=later(3600),
        provider="arn:aws:iam::123456789012:saml-provider/Okta",
        subject="alice\\corp",
        session_id=new_session_id(),
        chained=True,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'directory.db'}")
    yield opened
    opened.close()


@pytest.fixture
def ring(store: SqlStore) -> KeyRing:
    made = KeyRing(store, MasterKey(bytes(range(32)), development=True))
    made.ensure_keys(T0)
    return made


@pytest.fixture
def creds(ring: KeyRing) -> TemporaryCredentials:
    return issue_credentials(ring, role_session(), T0)


def open_(ring: KeyRing, creds: TemporaryCredentials, now: datetime = T0) -> SessionClaims:
    return open_session_token(ring, creds.session_token, creds.access_key_id, now)


# --- issue and round trip ---------------------------------------------------------------------


def test_credentials_have_aws_shapes(creds: TemporaryCredentials) -> None:
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", creds.access_key_id)
    assert re.fullmatch(r"[A-Za-z0-9+/]{40}", creds.secret_access_key)
    assert creds.expiration == later(3600)
    assert creds.claims.secret_access_key == creds.secret_access_key
    assert re.fullmatch(r"fb1\.a256gcm-[a-z2-7]{8}\.[A-Za-z0-9_-]+", creds.session_token)


def test_every_claim_round_trips(ring: KeyRing) -> None:
    claims = every_claim()
    creds = issue_credentials(ring, claims, T0)
    opened = open_(ring, creds, later(60))
    assert opened == creds.claims
    assert opened == replace(claims, secret_access_key=creds.secret_access_key)
    assert type(opened.tags) is dict and type(opened.transitive_tag_keys) is tuple
    assert opened.principal_type is PrincipalType.ASSUMED_ROLE
    assert opened.issued.tzinfo is UTC


@pytest.mark.parametrize("kind", list(PrincipalType), ids=lambda k: k.value)
def test_minimal_sessions_of_every_type_round_trip(ring: KeyRing, kind: PrincipalType) -> None:
    claims = SessionClaims(
        account_id=ACCOUNT,
        principal_type=kind,
        principal_arn=f"arn:aws:iam::{ACCOUNT}:user/alice",
        principal_id="AIDAEXAMPLEEXAMPLE123",
        issued=T0,
        expires=later(900),
        session_id="s",
    )
    creds = issue_credentials(ring, claims, T0)
    opened = open_(ring, creds)
    assert opened == creds.claims
    assert (opened.role_arn, opened.tags, opened.session_policy, opened.mfa_time) == (
        None,
        {},
        None,
        None,
    )
    assert not opened.mfa_authenticated and not opened.chained


def test_times_are_kept_in_whole_seconds_in_utc(ring: KeyRing) -> None:
    plus_two = timezone(timedelta(hours=2))
    claims = role_session(
        issued=datetime(2024, 5, 1, 14, 0, 0, 987654, tzinfo=plus_two),
        expires=datetime(2024, 5, 1, 15, 0, 0, 5, tzinfo=plus_two),
        mfa_time=datetime(2024, 5, 1, 13, 59, 1, 500000, tzinfo=plus_two),
    )
    assert (claims.issued, claims.expires, claims.mfa_time) == (T0, later(3600), later(-59))
    with pytest.raises(ValueError, match="timezone-aware"):
        role_session(issued=datetime(2024, 5, 1, 12))
    creds = issue_credentials(ring, claims, later(0.5))
    assert creds.expiration == later(3600)
    assert open_(ring, creds).issued == T0


def test_the_session_policy_is_compacted_without_changing_its_strings(ring: KeyRing) -> None:
    spaced = json.dumps(json.loads(POLICY), indent=4)
    creds = issue_credentials(ring, role_session(session_policy=spaced), T0)
    opened = open_(ring, creds)
    assert opened.session_policy == POLICY  # "a b" keeps its space
    assert json.loads(opened.session_policy) == json.loads(spaced)


def test_compact_json_is_lexical() -> None:
    assert compact_json('{ "a" : "x \\" y" ,\n\t"b" : [ 1 , 2 ] }') == '{"a":"x \\" y","b":[1,2]}'
    duplicate = '{"Effect": "Deny", "Effect": "Allow"}'  # kept as it is, both keys
    assert compact_json(duplicate) == '{"Effect":"Deny","Effect":"Allow"}'


def test_every_issue_is_fresh(ring: KeyRing) -> None:
    issued = [issue_credentials(ring, role_session(), T0) for _ in range(20)]
    assert len({c.access_key_id for c in issued}) == 20
    assert len({c.secret_access_key for c in issued}) == 20
    assert len({c.session_token for c in issued}) == 20


def test_a_session_that_has_already_ended_is_not_issued(ring: KeyRing) -> None:
    with pytest.raises(ValueError):
        issue_credentials(ring, role_session(), later(3600))
    with pytest.raises(ValueError):
        issue_credentials(ring, role_session(expires=T0), T0)


def test_repr_shows_no_secret(creds: TemporaryCredentials) -> None:
    for shown in (repr(creds), repr(creds.claims), str(creds)):
        assert creds.secret_access_key not in shown
        assert creds.session_token not in shown
    assert creds.access_key_id in repr(creds)  # the id is not secret
    assert "secret_access_key" not in repr(creds.claims)


# --- sizes ------------------------------------------------------------------------------------


def test_a_typical_token_is_under_one_and_a_half_kilobytes(creds: TemporaryCredentials) -> None:
    assert len(creds.session_token) < 1536
    assert len(creds.session_token) < 600  # what it is today: about 410


def test_the_largest_realistic_session_fits(ring: KeyRing) -> None:
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": f"S{n}",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject"],
                    "Resource": f"arn:aws:s3:::bucket-{n:04d}-{'x' * 8}/prefix/*",
                }
                for n in range(16)
            ],
        },
        separators=(",", ":"),
    )[:2048]
    claims = role_session(
        source_identity="s" * 64,
        tags={f"tag-key-{n:02d}-{'k' * 10}": f"value-{n:02d}-{'v' * 30}" for n in range(50)},
        session_policy=policy,
        session_policy_arns=tuple(
            f"arn:aws:iam::{ACCOUNT}:policy/p{n:02d}-{'a' * 25}" for n in range(10)
        ),
    )
    creds = issue_credentials(ring, claims, T0)
    assert len(creds.session_token) < MAX_TOKEN_LENGTH
    assert open_(ring, creds) == creds.claims


def test_a_session_over_the_token_limit_is_packed_policy_too_large(ring: KeyRing) -> None:
    """50 tags at AWS's maximum lengths of incompressible text: AWS refuses such a session
    (PackedPolicyTooLarge), and so does the token limit."""

    def noise(seed: str, length: int) -> str:
        blocks = b"".join(hashlib.sha512(f"{seed}/{i}".encode()).digest() for i in range(4))
        return base64.b64encode(blocks).decode()[:length]

    tags = {noise(f"key{n}", 128): noise(f"value{n}", 256) for n in range(50)}
    with pytest.raises(PackedPolicyTooLargeError) as caught:
        issue_credentials(ring, role_session(tags=tags), T0)
    assert caught.value.code == "PackedPolicyTooLarge" and caught.value.status == 400
    assert str(MAX_TOKEN_LENGTH) in caught.value.message


# --- expiry -----------------------------------------------------------------------------------


def test_a_token_opens_until_it_expires(ring: KeyRing, creds: TemporaryCredentials) -> None:
    assert open_(ring, creds, later(3599)) == creds.claims
    for when in (later(3600), later(86400)):
        with pytest.raises(ExpiredTokenError) as caught:
            open_(ring, creds, when)
        assert caught.value.code == "ExpiredToken" and caught.value.status == 403
        assert caught.value.message == EXPIRED
        assert "2024-05-01T13:00:00+00:00" in caught.value.detail


def test_an_expired_token_that_was_tampered_with_is_invalid(
    ring: KeyRing, creds: TemporaryCredentials
) -> None:
    with pytest.raises(InvalidClientTokenIdError):
        open_session_token(ring, creds.session_token[:-2] + "AA", creds.access_key_id, later(9999))


# --- what is refused --------------------------------------------------------------------------


def refused(
    ring: KeyRing, token: object, access_key_id: str, secret: str, full_token: str
) -> InvalidClientTokenIdError:
    with pytest.raises(InvalidClientTokenIdError) as caught:
        open_session_token(ring, token, access_key_id, later(60))  # type: ignore[arg-type]
    error = caught.value
    assert (error.code, error.status, error.message) == ("InvalidClientTokenId", 403, INVALID)
    for shown in (str(error), repr(error), error.detail, error.message, repr(error.args)):
        assert secret not in shown
        assert full_token not in shown
        body = full_token.rsplit(".", 1)[1]
        assert body[:20] not in shown
    return error


def test_every_changed_character_is_refused(ring: KeyRing, creds: TemporaryCredentials) -> None:
    token = creds.session_token
    for index in range(len(token)):
        for replacement in {B64URL[(B64URL.find(token[index]) + 1) % 64], "."} - {token[index]}:
            tampered = token[:index] + replacement + token[index + 1 :]
            refused(ring, tampered, creds.access_key_id, creds.secret_access_key, token)


def test_truncated_tokens_are_refused(ring: KeyRing, creds: TemporaryCredentials) -> None:
    token = creds.session_token
    for cut in (1, 2, 3, 4, 16, len(token) // 2, len(token) - 25, len(token) - 4):
        error = refused(ring, token[:-cut], creds.access_key_id, creds.secret_access_key, token)
        assert error.detail
    header = token[: token.rindex(".") + 1]
    refused(ring, header, creds.access_key_id, creds.secret_access_key, token)
    refused(ring, token + "A", creds.access_key_id, creds.secret_access_key, token)


def test_a_token_presented_with_another_access_key_id_is_refused(
    ring: KeyRing, creds: TemporaryCredentials
) -> None:
    other = issue_credentials(ring, role_session(), T0)
    error = refused(
        ring, creds.session_token, other.access_key_id, creds.secret_access_key, creds.session_token
    )
    assert "another access key id" in error.detail
    error = refused(
        ring,
        creds.session_token,
        "AKIA" + creds.access_key_id[4:],
        creds.secret_access_key,
        creds.session_token,
    )
    assert "not temporary" in error.detail


def test_a_token_naming_an_unknown_key_is_refused(
    ring: KeyRing, creds: TemporaryCredentials
) -> None:
    version, kid, body = creds.session_token.split(".")
    for other in ("a256gcm-zzzzzzzz", "es256-unknown0", kid.upper()):
        forged = f"{version}.{other}.{body}"
        error = refused(ring, forged, creds.access_key_id, creds.secret_access_key, forged)
        assert "unknown or retired key" in error.detail or "malformed" in error.detail


def test_the_kid_is_bound_to_the_token(ring: KeyRing, creds: TemporaryCredentials) -> None:
    """Swapping in another key that opens is refused too: the header is associated data."""
    new_kid = ring.rotate(KeyPurpose.SEAL, None, later(1)).kid
    version, _, body = creds.session_token.split(".")
    forged = f"{version}.{new_kid}.{body}"
    error = refused(ring, forged, creds.access_key_id, creds.secret_access_key, forged)
    assert "failed authentication" in error.detail


def test_tokens_of_a_retiring_key_open_and_of_a_retired_key_do_not(
    ring: KeyRing, creds: TemporaryCredentials
) -> None:
    old_kid = creds.session_token.split(".")[1]
    new_kid = ring.rotate(KeyPurpose.SEAL, None, later(1)).kid
    fresh = issue_credentials(ring, role_session(), later(1))
    assert fresh.session_token.split(".")[1] == new_kid
    assert open_(ring, creds, later(2)) == creds.claims  # retiring: still opens
    ring.retire(old_kid, later(3))
    error = refused(
        ring, creds.session_token, creds.access_key_id, creds.secret_access_key, creds.session_token
    )
    assert f"`{old_kid}`" in error.detail
    assert open_(ring, fresh, later(3)) == fresh.claims


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "fb1",
        "fb1..",
        "fb1.a256gcm-abcdefgh.",
        "fb1.a256gcm-abcdefgh.!!!!not-base64!!!!",
        "fb1.a256gcm-abcdefgh.AAAA====",
        "fb1.a256gcm-abcdefgh.A",
        "fb1.a256gcm-abcdefgh." + "A" * 40,
        "fb1.a256gcm-abcdefgh." + "A" * (MAX_TOKEN_LENGTH + 1),
        "A" * 100_000,
        "fb2.a256gcm-abcdefgh." + "A" * 60,
        "FQoGZXIvYXdzEJr//////////wEaDM",  # an AWS session token
        "fb1.../../etc/passwd." + "A" * 60,
        "fb1.a256gcm-abcdefgh.\u00e9\u00e9\u00e9\u00e9",
        "\x00" * 64,
    ],
    ids=lambda g: f"{g[:24]!r}…{len(g)}",
)
def test_garbage_is_refused(ring: KeyRing, creds: TemporaryCredentials, garbage: str) -> None:
    refused(ring, garbage, creds.access_key_id, creds.secret_access_key, creds.session_token)


def test_non_text_is_refused(ring: KeyRing, creds: TemporaryCredentials) -> None:
    for value in (None, b"fb1.x.y", 42):
        refused(ring, value, creds.access_key_id, creds.secret_access_key, creds.session_token)


def test_a_token_of_a_wrong_version_in_a_valid_envelope_is_refused(
    ring: KeyRing, creds: TemporaryCredentials
) -> None:
    forged = "fb2" + creds.session_token[3:]
    error = refused(ring, forged, creds.access_key_id, creds.secret_access_key, forged)
    assert "version" in error.detail


def test_both_errors_are_authentication_errors_with_a_detail(
    ring: KeyRing, creds: TemporaryCredentials
) -> None:
    for token, when in ((creds.session_token, later(4000)), ("garbage", T0)):
        with pytest.raises(AuthenticationError) as caught:
            open_session_token(ring, token, creds.access_key_id, when)
        assert caught.value.detail and caught.value.detail != caught.value.message
