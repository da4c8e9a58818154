"""SigV4 verification against the real client signer (botocore) and AWS's documented example.

Requests are signed by boto3 clients (captured just before they would be sent) or by
botocore's ``SigV4Auth`` / ``SigV4QueryAuth``, with botocore's clock pinned, so no test reads
the real time; the verifier is always given ``now``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from fedbroker.credentials import sigv4_canonical
from fedbroker.credentials.sigv4 import HttpRequest, SigV4Auth, SigV4Verifier, parse_auth
from fedbroker.errors import (
    AuthenticationError,
    IncompleteSignatureError,
    SignatureDoesNotMatchError,
)

VECTORS = Path(__file__).parent / "vectors"
AKID = "AKIAFEDBROKERTEST001"
SECRET = "fedbrokerTestSecretKey0123456789abcdefGH"
OTHER_SECRET = "fedbrokerOtherSecret0123456789abcdefghIJ"
SESSION_AKID = "ASIAFEDBROKERTEST002"
SESSION_SECRET = "fedbrokerSessionSecret0123456789abcdefKL"
SESSION_TOKEN = "FQoGZXIvYXdzEXAMPLE+session/token=="
SIGNED_AT = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
MISMATCH = sigv4_canonical.SIGNATURE_MISMATCH
FORM = "application/x-www-form-urlencoded; charset=utf-8"


class _Captured(Exception):
    def __init__(self, request: AWSPreparedRequest) -> None:
        super().__init__("captured")
        self.request = request


class BotocoreClock:
    """Pins the time botocore signs with."""

    def __init__(self) -> None:
        self.moment = SIGNED_AT

    def __call__(self, *args: Any, **kwargs: Any) -> datetime:
        return self.moment.replace(tzinfo=None)


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[BotocoreClock]:
    for name in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_IAM",
        "AWS_ENDPOINT_URL_STS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    pinned = BotocoreClock()
    monkeypatch.setattr(botocore.auth, "get_current_datetime", pinned)
    yield pinned


def to_http(prepared: AWSPreparedRequest) -> HttpRequest:
    """What the web layer would hand over for this request as it goes on the wire."""
    url = urlsplit(prepared.url)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()}
    headers.setdefault("Host", url.netloc)  # added by the HTTP client, from the URL
    body = prepared.body or b""
    return HttpRequest(
        method=prepared.method,
        path=url.path or "/",
        query=url.query,
        headers=headers,
        body=body.encode() if isinstance(body, str) else body,
    )


@functools.cache
def boto3_session() -> boto3.session.Session:
    return boto3.session.Session(region_name="us-east-1")  # loading its data takes ~0.3 s


def client(service: str, *, token: str | None = None, signed: bool = True) -> Any:
    key_id, secret = (SESSION_AKID, SESSION_SECRET) if token else (AKID, SECRET)
    return boto3_session().client(
        service,
        endpoint_url=f"https://{service}.broker.test",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(retries={"max_attempts": 1}, signature_version=None if signed else UNSIGNED),
    )


def client_request(
    service: str, operation: str, token: str | None = None, **params: Any
) -> HttpRequest:
    """The request a boto3 client sends for ``operation``, captured before it is sent."""
    aws = client(service, token=token)

    def capture(request: AWSPreparedRequest, **_: Any) -> None:
        raise _Captured(request)

    aws.meta.events.register("before-send", capture)
    with pytest.raises(_Captured) as sent:
        getattr(aws, operation)(**params)
    return to_http(sent.value.request)


def botocore_request(
    method: str,
    url: str,
    *,
    data: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    signer: Callable[..., botocore.auth.SigV4Auth] = botocore.auth.SigV4Auth,
    service: str = "iam",
    credentials: Credentials | None = None,
    **signer_args: Any,
) -> HttpRequest:
    """A request signed by botocore's own signer classes."""
    request = AWSRequest(
        method=method,
        url=url,
        data=data,
        params=params or {},
        headers={"Content-Type": FORM, **(headers or {})},
    )
    signer(credentials or Credentials(AKID, SECRET), service, "us-east-1", **signer_args).add_auth(
        request
    )
    return to_http(request.prepare())


def verify(
    request: HttpRequest, secret: str = SECRET, now: datetime = SIGNED_AT, **checks: Any
) -> SigV4Auth:
    auth = parse_auth(request)
    assert auth is not None
    SigV4Verifier().verify(request, auth, secret, now, **checks)
    return auth


def with_headers(request: HttpRequest, **changes: str | None) -> HttpRequest:
    headers = {
        k: v
        for k, v in request.headers.items()
        if k.lower() not in {name.lower().replace("_", "-") for name in changes}
    }
    for name, value in changes.items():
        if value is not None:
            headers[name.replace("_", "-")] = value
    return dataclasses.replace(request, headers=headers)


def authorization(request: HttpRequest) -> str:
    return next(v for k, v in request.headers.items() if k.lower() == "authorization")


def rejected(
    request: HttpRequest, secret: str = SECRET, **kwargs: Any
) -> SignatureDoesNotMatchError:
    with pytest.raises(SignatureDoesNotMatchError) as caught:
        verify(request, secret, **kwargs)
    return caught.value


# --- genuine requests pass ------------------------------------------------------------------


def test_iam_query_post_from_a_boto3_client() -> None:
    request = client_request("iam", "list_users", PathPrefix="/engineering/")
    assert request.method == "POST"
    assert b"Action=ListUsers" in request.body
    auth = verify(request, service="iam", regions={"us-east-1"})
    assert (auth.access_key_id, auth.region, auth.service) == (AKID, "us-east-1", "iam")
    assert auth.signed_headers == ("content-type", "host", "x-amz-date")
    assert not auth.presigned
    assert auth.security_token is None


def test_form_body_with_characters_that_need_encoding() -> None:
    request = client_request(
        "iam", "create_user", UserName="a+b=c@d.e,f_g-h", Path="/division abc/sub~div/"
    )
    verify(request, service="iam")


def test_sts_with_a_session_token_signs_the_token() -> None:
    request = client_request("sts", "get_caller_identity", token=SESSION_TOKEN)
    auth = verify(request, SESSION_SECRET, service="sts")
    assert auth.security_token == SESSION_TOKEN
    assert auth.access_key_id == SESSION_AKID
    assert "x-amz-security-token" in auth.signed_headers


def test_get_with_query_parameters() -> None:
    # botocore puts params on the URL with urlencode ("+" for a space) and signs "%20".
    request = botocore_request(
        "GET",
        "https://iam.broker.test/",
        params={"Action": "ListUsers", "Version": "2010-05-08", "PathPrefix": "/a b+c~*/"},
    )
    assert "+" in request.query
    verify(request, service="iam")


def test_non_root_path_is_normalised_and_encoded_twice_like_botocore() -> None:
    request = botocore_request("GET", "https://iam.broker.test/a%20b/./x/../c/", params={"k": "v"})
    verify(request)
    assert sigv4_canonical.canonical_uri("/a%20b/./x/../c/", "iam") == "/a%2520b/c/"
    assert sigv4_canonical.canonical_uri("/a%20b//c", "s3") == "/a%20b//c"


def test_canonical_query_string() -> None:
    query = "b=2&a=1&a=0&c&sp+ace=x%2By&t=%7E%2a&X-Amz-Signature=ff"
    expected = "X-Amz-Signature=ff&a=0&a=1&b=2&c=&sp%20ace=x%2By&t=~%2A"
    assert sigv4_canonical.canonical_query(query, presigned=False) == expected
    assert sigv4_canonical.canonical_query(query, presigned=True) == expected.replace(
        "X-Amz-Signature=ff&", ""
    )


def test_date_header_instead_of_x_amz_date() -> None:
    request = botocore_request(
        "POST", "https://iam.broker.test/", data={"Action": "ListUsers"}, headers={"Date": "x"}
    )
    assert "date" in authorization(request) and "X-Amz-Date" not in request.headers
    assert verify(request).amz_date == SIGNED_AT


def test_declared_payload_hash_is_accepted_when_it_is_the_bodys() -> None:
    body = b"Action=ListUsers&Version=2010-05-08"
    digest = hashlib.sha256(body).hexdigest()
    request = botocore_request(
        "POST", "https://iam.broker.test/", data=body, headers={"X-Amz-Content-SHA256": digest}
    )
    verify(request)
    tampered = dataclasses.replace(request, body=b"Action=DeleteUser&UserName=alice")
    assert "not the hash of the body" in rejected(tampered).detail


def presigned(url: str, method: str = "GET") -> HttpRequest:
    parts = urlsplit(url)
    return HttpRequest(method, parts.path, parts.query, {"Host": parts.netloc}, b"")


def test_presigned_sts_url_from_generate_presigned_url() -> None:
    # HttpMethod="GET" is how such URLs are made to be fetched (EKS-style identity tokens).
    url = client("sts", token=SESSION_TOKEN).generate_presigned_url(
        "get_caller_identity", ExpiresIn=900, HttpMethod="GET"
    )
    request = presigned(url)
    auth = verify(request, SESSION_SECRET, service="sts")
    assert auth.presigned and auth.expires == 900
    assert auth.security_token == SESSION_TOKEN
    verify(request, SESSION_SECRET, now=SIGNED_AT + timedelta(seconds=900))
    error = rejected(request, SESSION_SECRET, now=SIGNED_AT + timedelta(seconds=901))
    assert error.message == "Request has expired."


def test_presigned_url_is_bound_to_its_method() -> None:
    # Without HttpMethod, botocore signs the operation's own method: POST for the Query API.
    url = client("sts").generate_presigned_url("get_caller_identity", ExpiresIn=60)
    verify(presigned(url, "POST"), service="sts")
    assert rejected(presigned(url, "GET")).message == MISMATCH


def test_presigned_iam_url_from_sigv4_query_auth() -> None:
    request = botocore_request(
        "GET",
        "https://iam.broker.test/",
        params={"Action": "ListUsers", "Version": "2010-05-08"},
        signer=botocore.auth.SigV4QueryAuth,
        expires=300,
    )
    assert "Authorization" not in request.headers
    assert verify(request, service="iam").expires == 300
    tampered = dataclasses.replace(request, query=request.query.replace("ListUsers", "ListRoles"))
    assert rejected(tampered).message == MISMATCH


def test_unsigned_web_identity_call_carries_no_auth() -> None:
    aws = client("sts", signed=False)
    sent: list[AWSPreparedRequest] = []

    def capture(request: AWSPreparedRequest, **_: Any) -> None:
        sent.append(request)
        raise _Captured(request)

    aws.meta.events.register("before-send", capture)
    with pytest.raises(_Captured):
        aws.assume_role_with_web_identity(
            RoleArn="arn:aws:iam::111122223333:role/ci",
            RoleSessionName="job-1",
            WebIdentityToken="eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        )
    assert parse_auth(to_http(sent[0])) is None


# --- tampering and wrong keys ----------------------------------------------------------------


@pytest.fixture
def iam_post() -> HttpRequest:
    return client_request("iam", "list_users")


def test_tampered_body(iam_post: HttpRequest) -> None:
    tampered = dataclasses.replace(iam_post, body=iam_post.body.replace(b"ListUsers", b"ListRoles"))
    error = rejected(tampered)
    assert error.message == MISMATCH
    assert error.code == "SignatureDoesNotMatch" and error.status == 403


def test_tampered_signed_header(iam_post: HttpRequest) -> None:
    assert rejected(with_headers(iam_post, Content_Type="text/plain")).message == MISMATCH


def test_unsigned_header_may_change(iam_post: HttpRequest) -> None:
    verify(with_headers(iam_post, User_Agent="something else", X_Forwarded_For="203.0.113.7"))


def test_signed_header_missing(iam_post: HttpRequest) -> None:
    assert (
        "`content-type` is not in the request"
        in rejected(with_headers(iam_post, Content_Type=None)).detail
    )


def test_wrong_secret(iam_post: HttpRequest) -> None:
    error = rejected(iam_post, OTHER_SECRET)
    assert error.message == MISMATCH
    assert "signature mismatch" in error.detail


def test_signature_not_lower_hex(iam_post: HttpRequest) -> None:
    auth = authorization(iam_post)
    signature = auth.rsplit("Signature=", 1)[1]
    upper = with_headers(iam_post, Authorization=auth.replace(signature, signature.upper()))
    assert rejected(upper).message == MISMATCH


def test_session_token_tampered_or_unsigned() -> None:
    request = client_request("sts", "get_caller_identity", token=SESSION_TOKEN)
    swapped = with_headers(request, X_Amz_Security_Token="FQoGZXIvYXdzOTHERtoken")
    assert rejected(swapped, SESSION_SECRET).message == MISMATCH
    unsigned = with_headers(
        client_request("sts", "get_caller_identity"), X_Amz_Security_Token=SESSION_TOKEN
    )
    assert "not signed" in rejected(unsigned).detail


def test_service_and_region_are_checked_against_the_endpoint(iam_post: HttpRequest) -> None:
    wrong_service = rejected(iam_post, service="sts")
    assert wrong_service.message == "Credential should be scoped to correct service: 'sts'."
    wrong_region = rejected(iam_post, regions={"eu-west-1"})
    assert wrong_region.message == (
        "Credential should be scoped to a valid region, not 'us-east-1'."
    )


def test_scope_edited_after_signing(iam_post: HttpRequest) -> None:
    header = authorization(iam_post)
    for old, new in (("/us-east-1/", "/eu-west-1/"), ("/iam/", "/sts/")):
        edited = with_headers(iam_post, Authorization=header.replace(old, new))
        assert rejected(edited).message == MISMATCH  # nothing pinned: the signature catches it


def test_scope_date_must_be_the_request_date(iam_post: HttpRequest) -> None:
    edited = with_headers(
        iam_post, Authorization=authorization(iam_post).replace("/20260101/", "/20251231/")
    )
    assert rejected(edited).message == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from"
        " HTTP: '20251231' != '20260101', from '20260101T001000Z'."
    )


class _HostlessSigner(botocore.auth.SigV4Auth):
    def headers_to_sign(self, request: AWSRequest) -> Any:
        headers = super().headers_to_sign(request)
        del headers["host"]
        return headers


def test_host_must_be_signed() -> None:
    request = botocore_request(
        "POST", "https://iam.broker.test/", data={"Action": "ListUsers"}, signer=_HostlessSigner
    )
    assert "host" not in parse_auth(request).signed_headers
    assert rejected(request).message == (
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
    )


def test_unsigned_payload_is_refused_outside_s3() -> None:
    request = botocore_request(
        "POST",
        "https://iam.broker.test/",
        data={"Action": "ListUsers"},
        headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
    )
    assert "x-amz-content-sha256" in rejected(request).detail


# --- time ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset", [timedelta(0), timedelta(minutes=5), -timedelta(minutes=5), timedelta(seconds=299)]
)
def test_skew_inside_five_minutes(iam_post: HttpRequest, offset: timedelta) -> None:
    verify(iam_post, now=SIGNED_AT + offset)


def test_skew_just_outside_five_minutes_late(iam_post: HttpRequest) -> None:
    error = rejected(iam_post, now=SIGNED_AT + timedelta(minutes=5, seconds=1))
    assert error.message == (
        "Signature expired: 20260101T001000Z is now earlier than 20260101T001001Z"
        " (20260101T001501Z - 5 min.)"
    )


def test_skew_just_outside_five_minutes_early(iam_post: HttpRequest) -> None:
    error = rejected(iam_post, now=SIGNED_AT - timedelta(minutes=5, seconds=1))
    assert error.message == (
        "Signature not yet current: 20260101T001000Z is still later than 20260101T000959Z"
        " (20260101T000459Z + 5 min.)"
    )


def test_expired_message_has_aws_shape(clock: BotocoreClock) -> None:
    clock.moment = datetime(2026, 1, 1, tzinfo=UTC)
    request = client_request("iam", "list_users")
    error = rejected(request, now=datetime(2026, 1, 1, 0, 10, tzinfo=UTC))
    assert error.message == (
        "Signature expired: 20260101T000000Z is now earlier than 20260101T000500Z"
        " (20260101T001000Z - 5 min.)"
    )


def test_now_in_another_timezone_and_naive_now(iam_post: HttpRequest) -> None:
    verify(iam_post, now=SIGNED_AT.astimezone(timezone(timedelta(hours=2))))
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(iam_post, now=SIGNED_AT.replace(tzinfo=None))


def test_presigned_url_signed_in_the_future(clock: BotocoreClock) -> None:
    clock.moment = SIGNED_AT + timedelta(minutes=6)
    url = client("sts").generate_presigned_url(
        "get_caller_identity", ExpiresIn=60, HttpMethod="GET"
    )
    assert rejected(presigned(url)).message.startswith("Signature not yet current:")


# --- claims that cannot be read --------------------------------------------------------------

GOOD_CREDENTIAL = f"Credential={AKID}/20260101/us-east-1/iam/aws4_request"
GOOD_REST = "SignedHeaders=content-type;host;x-amz-date, Signature=" + "ab" * 32


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param(
            f"AWS4-HMAC-SHA256 {GOOD_REST}",
            "Authorization header requires 'Credential' parameter.",
            id="no-credential",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL}",
            "Authorization header requires 'Signature' parameter. Authorization header"
            " requires 'SignedHeaders' parameter.",
            id="credential-only",
        ),
        pytest.param(
            "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
            "Authorization header requires 'Credential' parameter.",
            id="bearer",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA512 {GOOD_CREDENTIAL}, {GOOD_REST}",
            "The authorization mechanism you have provided is not supported.",
            id="unknown-algorithm",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 Credential {AKID}/20260101/us-east-1/iam/aws4_request, {GOOD_REST}",
            "not a valid key=value pair",
            id="missing-equal-sign",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 Credential={AKID}/20260101/us-east-1/iam, {GOOD_REST}",
            "the Credential is mal-formed",
            id="scope-four-parts",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 Credential={AKID}/20260101/us-east-1/iam/aws4_request/x,"
            f" {GOOD_REST}",
            "the Credential is mal-formed",
            id="scope-six-parts",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 Credential={AKID}/2026-01-01/us-east-1/iam/aws4_request,"
            f" {GOOD_REST}",
            "the Credential is mal-formed",
            id="scope-date",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 Credential={AKID}/20260101//iam/aws4_request, {GOOD_REST}",
            "the Credential is mal-formed",
            id="scope-empty-region",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 Credential={AKID}/20260101/us-east-1/iam/aws4_reqest, {GOOD_REST}",
            "valid terminator: 'aws4_request', not 'aws4_reqest'",
            id="scope-terminator",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL}, {GOOD_CREDENTIAL}, {GOOD_REST}",
            "repeats 'Credential'",
            id="repeated-credential",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL}, SignedHeaders=host;;x-amz-date, Signature=00",
            "SignedHeaders",
            id="empty-signed-header-name",
        ),
    ],
)
def test_malformed_authorization_header(header: str, message: str) -> None:
    request = HttpRequest(
        "POST",
        "/",
        "",
        {"Host": "iam.broker.test", "Authorization": header, "X-Amz-Date": "20260101T001000Z"},
        b"",
    )
    with pytest.raises(IncompleteSignatureError) as caught:
        parse_auth(request)
    assert message in caught.value.message
    assert caught.value.code == "IncompleteSignature" and caught.value.status == 400


def test_missing_or_malformed_request_date(iam_post: HttpRequest) -> None:
    with pytest.raises(IncompleteSignatureError, match="'X-Amz-Date' or a 'Date' header"):
        parse_auth(with_headers(iam_post, X_Amz_Date=None))
    with pytest.raises(IncompleteSignatureError, match="ISO-8601 'basic format'"):
        parse_auth(with_headers(iam_post, X_Amz_Date="2026-01-01T00:10:00Z"))
    with pytest.raises(IncompleteSignatureError, match="ISO-8601 'basic format'"):
        parse_auth(with_headers(iam_post, X_Amz_Date="20261301T001000Z"))


def presigned_query(**changes: str | None) -> str:
    request = botocore_request(
        "GET",
        "https://iam.broker.test/",
        params={"Action": "ListUsers"},
        signer=botocore.auth.SigV4QueryAuth,
        expires=300,
    )
    pairs = dict(part.split("=", 1) for part in request.query.split("&"))
    for name, value in changes.items():
        if value is None:
            pairs.pop(name, None)
        else:
            pairs[name] = value
    return "&".join(f"{k}={v}" for k, v in pairs.items())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"X-Amz-Expires": "604801"}, "less than a week (in seconds) that is 604800"),
        ({"X-Amz-Expires": "soon"}, "X-Amz-Expires should be a number"),
        ({"X-Amz-Expires": "-1"}, "X-Amz-Expires must be non-negative"),
        ({"X-Amz-Expires": None}, "requires the X-Amz-Algorithm"),
        ({"X-Amz-Signature": None}, "requires the X-Amz-Algorithm"),
        ({"X-Amz-Algorithm": "AWS4-ECDSA-P256-SHA256"}, 'only supports "AWS4-HMAC-SHA256"'),
        ({"X-Amz-Date": "2026-01-01"}, "ISO8601 Long Format"),
        ({"X-Amz-Credential": "AKID%2F20260101"}, "Error parsing the X-Amz-Credential"),
    ],
)
def test_malformed_presigned_url(changes: dict[str, str | None], message: str) -> None:
    request = HttpRequest("GET", "/", presigned_query(**changes), {"Host": "iam.broker.test"}, b"")
    with pytest.raises(IncompleteSignatureError, match=re.escape(message)):
        parse_auth(request)


def test_presigned_url_at_the_seven_day_limit_parses() -> None:
    query = presigned_query(**{"X-Amz-Expires": "604800"})
    auth = parse_auth(HttpRequest("GET", "/", query, {"Host": "iam.broker.test"}, b""))
    assert auth is not None and auth.expires == 604_800


def test_header_and_query_signature_together(iam_post: HttpRequest) -> None:
    both = dataclasses.replace(iam_post, query=presigned_query())
    with pytest.raises(IncompleteSignatureError, match="Only one auth mechanism allowed"):
        parse_auth(both)


# --- secrets never leak ----------------------------------------------------------------------


def test_no_message_detail_or_repr_contains_a_secret_or_the_expected_signature() -> None:
    request = client_request("sts", "get_caller_identity", token=SESSION_TOKEN)
    auth = verify(request, SESSION_SECRET)
    genuine = auth.signature  # what the verifier computes for the forged claim below
    forged = dataclasses.replace(auth, signature="0" * 64)
    verifier = SigV4Verifier()
    verifier.verify(request, auth, SESSION_SECRET, SIGNED_AT)  # leaves a derived key cached
    attempts = [
        (forged, SESSION_SECRET, SIGNED_AT),
        (auth, OTHER_SECRET, SIGNED_AT),
        (auth, SESSION_SECRET, SIGNED_AT + timedelta(hours=1)),
        (dataclasses.replace(auth, signed_headers=("x-amz-date",)), SESSION_SECRET, SIGNED_AT),
    ]
    errors: list[AuthenticationError] = []
    for claim, secret, now in attempts:
        with pytest.raises(SignatureDoesNotMatchError) as caught:
            verifier.verify(request, claim, secret, now)
        errors.append(caught.value)
    assert "string to sign" in errors[0].detail  # the detail is useful ...
    texts = [repr(verifier), repr(request), repr(forged)]
    texts += [f"{error!s} {error!r} {error.detail} {error.args}" for error in errors]
    for text in texts:  # ... and holds no secret, session token or expected signature
        for secret in (SESSION_SECRET, OTHER_SECRET, SESSION_TOKEN, genuine):
            assert secret not in text


# --- the signing-key cache -------------------------------------------------------------------


def test_cache_holds_only_proven_keys_and_stays_bounded() -> None:
    verifier = SigV4Verifier(max_keys=2)
    first = botocore_request("POST", "https://iam.broker.test/", data={"Action": "ListUsers"})
    auth = parse_auth(first)
    assert auth is not None
    with pytest.raises(SignatureDoesNotMatchError):
        verifier.verify(first, auth, OTHER_SECRET, SIGNED_AT)
    assert "cached_keys=0" in repr(verifier)
    for secret in (SECRET, OTHER_SECRET, SESSION_SECRET):
        request = botocore_request(
            "POST",
            "https://iam.broker.test/",
            data={"Action": "ListUsers"},
            credentials=Credentials(AKID, secret),
        )
        verify(request, secret)
        claim = parse_auth(request)
        assert claim is not None
        verifier.verify(request, claim, secret, SIGNED_AT)
    assert "cached_keys=2" in repr(verifier)


def test_cache_is_keyed_by_the_secret(iam_post: HttpRequest) -> None:
    verifier = SigV4Verifier()
    auth = parse_auth(iam_post)
    assert auth is not None
    verifier.verify(iam_post, auth, SECRET, SIGNED_AT)
    verifier.verify(iam_post, auth, SECRET, SIGNED_AT)  # warm
    with pytest.raises(SignatureDoesNotMatchError):  # a rotated secret does not reuse the key
        verifier.verify(iam_post, auth, OTHER_SECRET, SIGNED_AT)


# --- AWS's documented example ----------------------------------------------------------------


def load_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = []
    for path in sorted(VECTORS.glob("*.json")):
        vectors.extend(json.loads(path.read_text(encoding="utf-8")))
    return vectors


def vector_request(lines: list[str]) -> HttpRequest:
    method, url, _ = lines[0].split(" ")
    parts = urlsplit(url)
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return HttpRequest(method, parts.path, parts.query, headers, b"")


@pytest.mark.parametrize("vector", load_vectors(), ids=lambda v: v["name"])
def test_documented_vector(vector: dict[str, Any]) -> None:
    request = vector_request(vector["req"])
    auth = parse_auth(request)
    assert auth is not None
    secret = vector["credentials"]["secret_access_key"]
    canonical = sigv4_canonical.canonical_request(
        method=request.method,
        path=request.path,
        query=request.query,
        headers={k.lower(): v for k, v in request.headers.items()},
        signed_headers=auth.signed_headers,
        body=request.body,
        service=auth.service,
        presigned=auth.presigned,
    )
    assert canonical == "\n".join(vector["creq"])
    assert hashlib.sha256(canonical.encode()).hexdigest() == vector["creq_sha256"]
    to_sign = sigv4_canonical.string_to_sign(vector["now"], auth.scope, canonical)
    assert to_sign == "\n".join(vector["sts"])
    key = sigv4_canonical.derive_signing_key(secret, auth.date, vector["region"], vector["service"])
    assert key.hex() == vector["signing_key"]
    assert auth.signature == vector["signature"]
    now = datetime.strptime(vector["now"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    SigV4Verifier().verify(
        request, auth, secret, now, service=vector["service"], regions={vector["region"]}
    )
    with pytest.raises(SignatureDoesNotMatchError):
        SigV4Verifier().verify(request, auth, secret[:-1] + "X", now)
