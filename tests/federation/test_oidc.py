"""OIDC token verification against a real JWKS served over HTTP on 127.0.0.1.

One test per attack of issue 4's "Bad input" list, and the cache's behaviour when the
provider rotates keys, goes down or slows down. Time is injected: nothing here reads the clock
except the generous upper bounds on how long a timed-out fetch may take.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fedbroker.errors import (
    ExpiredIdentityTokenError,
    IdpCommunicationError,
    InvalidIdentityTokenError,
)
from fedbroker.federation.jwks import JwksCache
from fedbroker.federation.oidc import INVALID, OidcVerifier, TrustedProvider, VerifiedToken
from tests.support.oidc_issuer import Issuer, elapsed, running_issuer
from tests.support.tokens import JwtKey, hmac_signed, unsigned

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CLIENT = "sts.amazonaws.com"


@pytest.fixture(scope="module")
def key() -> JwtKey:
    return JwtKey.rsa("k1")


@pytest.fixture(scope="module")
def other_key() -> JwtKey:
    return JwtKey.rsa("k2")


@pytest.fixture
def issuer(key: JwtKey) -> Iterator[Issuer]:
    with running_issuer() as issuer:
        issuer.keys = [key.jwk(alg="RS256", use="sig")]
        yield issuer


@pytest.fixture
def verifier() -> OidcVerifier:
    return OidcVerifier(JwksCache(timeout=0.5))


def provider_of(issuer: Issuer, *client_ids: str) -> TrustedProvider:
    name = issuer.url.split("://", 1)[1]
    return TrustedProvider(name, issuer.url, client_ids or (CLIENT,))


def lookup_for(*providers: TrustedProvider) -> Any:
    table = {p.name: p for p in providers}
    return table.get


def claims(issuer: Issuer, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": issuer.url,
        "sub": "repo:octo/app:ref:refs/heads/main",
        "aud": CLIENT,
        "iat": int(NOW.timestamp()) - 10,
        "nbf": int(NOW.timestamp()) - 10,
        "exp": int(NOW.timestamp()) + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def verify(
    verifier: OidcVerifier,
    issuer: Issuer,
    token: str,
    at: datetime = NOW,
    provider: TrustedProvider | None = None,
) -> VerifiedToken:
    return verifier.verify(token, lookup_for(provider or provider_of(issuer)), at)


def refused(
    verifier: OidcVerifier, issuer: Issuer, token: str, at: datetime = NOW, **kw: Any
) -> InvalidIdentityTokenError:
    with pytest.raises(InvalidIdentityTokenError) as info:
        verify(verifier, issuer, token, at, **kw)
    assert info.value.message == INVALID  # one outward message, whatever the reason
    assert len(token) < 8 or token not in info.value.detail
    return info.value


# --- what passes ------------------------------------------------------------------------------


def test_a_genuine_token_verifies(verifier: OidcVerifier, issuer: Issuer, key: JwtKey) -> None:
    result = verify(verifier, issuer, key.sign(claims(issuer, amr=["pwd"])))
    assert result.subject == "repo:octo/app:ref:refs/heads/main"
    assert result.audience == CLIENT and result.audiences == (CLIENT,)
    assert result.issuer == issuer.url and result.kid == "k1" and result.algorithm == "RS256"
    assert result.claims["amr"] == ["pwd"]
    # Discovery and the JWKS were fetched once; the next token uses the cache.
    verify(verifier, issuer, key.sign(claims(issuer)))
    assert issuer.hits["/.well-known/openid-configuration"] == 1 and issuer.jwks_fetches == 1


def test_other_allowed_algorithms(verifier: OidcVerifier, issuer: Issuer, key: JwtKey) -> None:
    ec_key = JwtKey.ec("e1")
    issuer.keys = [key.jwk(), ec_key.jwk(use="sig")]
    for alg in ("RS384", "RS512", "PS256", "PS512"):
        verify(verifier, issuer, key.sign(claims(issuer), alg))
    assert verify(verifier, issuer, ec_key.sign(claims(issuer))).algorithm == "ES256"


def test_audience_as_a_list_or_through_azp(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey
) -> None:
    as_list = verify(verifier, issuer, key.sign(claims(issuer, aud=["other", CLIENT])))
    assert as_list.audience == CLIENT and as_list.audiences == ("other", CLIENT)
    # Google's hybrid apps: `azp` is the client id, `aud` another (AWS's `oaud`).
    hybrid = verify(verifier, issuer, key.sign(claims(issuer, aud="android-app", azp=CLIENT)))
    assert hybrid.audience == CLIENT and hybrid.audiences == ("android-app",)


def test_no_kid_is_fine_with_exactly_one_key(verifier: OidcVerifier, issuer: Issuer) -> None:
    lone = JwtKey.rsa(None)
    issuer.keys = [lone.jwk()]
    assert verify(verifier, issuer, lone.sign(claims(issuer))).kid is None


def test_an_issuer_with_a_trailing_slash(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey
) -> None:
    verify(verifier, issuer, key.sign(claims(issuer, iss=issuer.url + "/")))


# --- the attacks of the "Bad input" list -------------------------------------------------------


def test_alg_none_is_refused(verifier: OidcVerifier, issuer: Issuer) -> None:
    for token in (
        unsigned(claims(issuer)),
        unsigned(claims(issuer), signature="AAAA"),
        unsigned(claims(issuer), signature="AAAA", kid="k1"),
        unsigned(claims(issuer), alg="None", signature="AAAA"),
    ):
        refused(verifier, issuer, token)
    assert issuer.jwks_fetches == 0  # refused before any key was looked at


def test_hs256_keyed_with_the_public_key_is_refused(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey
) -> None:
    pem = key.public_pem()
    for secret in (pem, pem.strip(), key.jwk()["n"].encode()):
        error = refused(verifier, issuer, hmac_signed(claims(issuer), secret, kid="k1"))
        assert "HS256" in error.detail and "not allowed" in error.detail
    # A JWKS that publishes a symmetric key does not make HMAC acceptable either.
    issuer.keys = [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]
    refused(verifier, issuer, hmac_signed(claims(issuer), b"secret", kid="k1"))


def test_unknown_kid_refreshes_once_then_cools_down(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey
) -> None:
    verify(verifier, issuer, key.sign(claims(issuer)))
    assert issuer.jwks_fetches == 1
    later = NOW + timedelta(minutes=1)
    stranger = JwtKey.rsa("nobody-knows-me")
    error = refused(verifier, issuer, stranger.sign(claims(issuer)), later)
    assert "even after a refresh" in error.detail
    assert issuer.jwks_fetches == 2
    # More made-up kids within the cooldown: refused without fetching again.
    for n in range(5):
        token = JwtKey(f"made-up-{n}", stranger.private).sign(claims(issuer))
        error = refused(verifier, issuer, token, later + timedelta(seconds=n))
        assert "not fetched again" in error.detail
    assert issuer.jwks_fetches == 2


def test_a_rotated_key_is_picked_up(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey, other_key: JwtKey
) -> None:
    verify(verifier, issuer, key.sign(claims(issuer)))
    issuer.keys = [key.jwk(), other_key.jwk()]  # the provider publishes a new key
    # Right after the first fetch, the cooldown holds: the new kid is refused ...
    refused(verifier, issuer, other_key.sign(claims(issuer)), NOW + timedelta(seconds=5))
    # ... and once it has passed, one refresh finds it.
    later = NOW + timedelta(seconds=40)
    assert verify(verifier, issuer, other_key.sign(claims(issuer)), later).kid == "k2"
    assert issuer.jwks_fetches == 2


def test_no_kid_with_several_keys_is_refused(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey, other_key: JwtKey
) -> None:
    issuer.keys = [key.jwk(), other_key.jwk()]
    token = JwtKey(None, key.private).sign(claims(issuer))
    error = refused(verifier, issuer, token)
    assert "no `kid`" in error.detail


def test_wrong_issuer_is_refused_and_never_fetched(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey
) -> None:
    for iss in ("https://evil.example", "http://127.0.0.1:9", "", None, "127.0.0.1"):
        refused(verifier, issuer, key.sign(claims(issuer, iss=iss)))
    # The registered host and port, but https where http was registered.
    refused(verifier, issuer, key.sign(claims(issuer, iss=issuer.url.replace("http", "https"))))
    assert issuer.jwks_fetches == 0 and not issuer.hits


def test_wrong_audience_is_refused(verifier: OidcVerifier, issuer: Issuer, key: JwtKey) -> None:
    for aud in ("someone-else", ["a", "b"], [], None, 42, [CLIENT, 7]):
        refused(verifier, issuer, key.sign(claims(issuer, aud=aud)))
    error = refused(verifier, issuer, key.sign(claims(issuer, aud="x", azp="y")))
    assert "incorrect token audience" in error.detail
    # A provider with no client id accepts no token at all.
    empty = TrustedProvider(provider_of(issuer).name, issuer.url, ())
    refused(verifier, issuer, key.sign(claims(issuer)), provider=empty)


def test_expired_token(verifier: OidcVerifier, issuer: Issuer, key: JwtKey) -> None:
    exp = int(NOW.timestamp()) - 120
    with pytest.raises(ExpiredIdentityTokenError) as info:
        verify(verifier, issuer, key.sign(claims(issuer, exp=exp)))
    assert info.value.code == "ExpiredTokenException" and info.value.status == 400
    # Within the leeway (60 s) it still passes; without `exp` it never does.
    verify(verifier, issuer, key.sign(claims(issuer, exp=int(NOW.timestamp()) - 30)))
    refused(verifier, issuer, key.sign(claims(issuer, exp=None)))
    refused(verifier, issuer, key.sign(claims(issuer, exp="tomorrow")))
    refused(verifier, issuer, key.sign(claims(issuer, exp=True)))
    # A forged token is invalid, never "expired": expiry is told only to genuine tokens.
    forged = JwtKey("k1", JwtKey.rsa("k1").private).sign(claims(issuer, exp=exp))
    refused(verifier, issuer, forged)


def test_not_yet_valid_token(verifier: OidcVerifier, issuer: Issuer, key: JwtKey) -> None:
    future = int(NOW.timestamp()) + 300
    assert (
        "not valid before" in refused(verifier, issuer, key.sign(claims(issuer, nbf=future))).detail
    )
    assert (
        "issued in the future"
        in refused(verifier, issuer, key.sign(claims(issuer, iat=future))).detail
    )
    verify(verifier, issuer, key.sign(claims(issuer, nbf=int(NOW.timestamp()) + 30)))


def test_missing_subject(verifier: OidcVerifier, issuer: Issuer, key: JwtKey) -> None:
    for sub in (None, "", 12345, ["a"], "x" * 256):
        refused(verifier, issuer, key.sign(claims(issuer, sub=sub)))


def test_oversize_token_is_refused_unread(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey
) -> None:
    token = key.sign(claims(issuer, padding="x" * 17_000))
    assert "over 16384" in refused(verifier, issuer, token).detail
    assert not issuer.hits


def test_malformed_tokens(verifier: OidcVerifier, issuer: Issuer, key: JwtKey) -> None:
    good = key.sign(claims(issuer))
    head, body, sig = good.split(".")
    duplicate = '{"iss":"a","iss":"' + issuer.url + '"}'
    import base64

    dup = base64.urlsafe_b64encode(duplicate.encode()).rstrip(b"=").decode()
    for token in (
        "",
        "a.b",
        f"{head}.{body}.{sig}.x.y",  # five segments: a JWE
        f"{head}.{body}.{sig}=",
        f"{head}.{body}.{sig[:-4]}AAAA",  # signature altered
        f"{head}.{key.sign(claims(issuer, sub='mallory')).split('.')[1]}.{sig}",  # payload swapped
        f"{head}.{dup}.{sig}",
        key.sign(claims(issuer), crit=["exp"]),
        key.sign(claims(issuer), kid=7),
        "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.AAAA",
        '{"alg":"RS256"}.e30.AAAA',
    ):
        refused(verifier, issuer, token)


def test_keys_that_do_not_fit_the_algorithm(verifier: OidcVerifier, issuer: Issuer) -> None:
    rsa = JwtKey.rsa("r")
    ec_key = JwtKey.ec("e")
    issuer.keys = [rsa.jwk(alg="RS384"), ec_key.jwk(), JwtKey.rsa("weak", 1024).jwk()]
    assert "is for `RS384`" in refused(verifier, issuer, rsa.sign(claims(issuer))).detail
    # An RSA signature under the EC key's kid, and the reverse.
    refused(verifier, issuer, JwtKey("e", rsa.private).sign(claims(issuer)))
    refused(verifier, issuer, JwtKey("r", ec_key.private).sign(claims(issuer)))
    # Keys under 2048 bits are not used at all.
    weak = JwtKey("weak", JwtKey.rsa("x", 1024).private)
    refused(verifier, issuer, weak.sign(claims(issuer)), NOW + timedelta(minutes=1))


# --- the provider down or slow -----------------------------------------------------------------


def test_endpoint_down_with_nothing_cached(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey
) -> None:
    issuer.status = 500
    with pytest.raises(IdpCommunicationError) as info:
        verify(verifier, issuer, key.sign(claims(issuer)))
    assert info.value.code == "IDPCommunicationError" and info.value.status == 400
    assert "HTTP 500" in info.value.detail
    # Within the cooldown the broker does not try again on every request.
    with pytest.raises(IdpCommunicationError):
        verify(verifier, issuer, key.sign(claims(issuer)), NOW + timedelta(seconds=10))
    assert issuer.hits["/.well-known/openid-configuration"] == 1
    issuer.status = 200
    verify(verifier, issuer, key.sign(claims(issuer)), NOW + timedelta(seconds=31))


def test_endpoint_down_cached_keys_still_work(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey
) -> None:
    verify(verifier, issuer, key.sign(claims(issuer)))
    issuer.status = 503
    later = NOW + timedelta(hours=2)  # past the default lifetime of an hour
    token = key.sign(claims(issuer, exp=int(later.timestamp()) + 600))
    assert verify(verifier, issuer, token, later).kid == "k1"
    assert issuer.jwks_fetches == 1 and issuer.hits["/.well-known/openid-configuration"] == 2
    # Stale keys serve a day at most.
    much_later = NOW + timedelta(hours=26)
    token = key.sign(claims(issuer, exp=int(much_later.timestamp()) + 600))
    with pytest.raises(IdpCommunicationError):
        verify(verifier, issuer, token, much_later)


def test_slow_endpoint_times_out(verifier: OidcVerifier, issuer: Issuer, key: JwtKey) -> None:
    issuer.stall = True
    start = time.monotonic()
    with pytest.raises(IdpCommunicationError) as info:
        verify(verifier, issuer, key.sign(claims(issuer)))
    assert elapsed(start) < 5  # the budget is 0.5 s; the server would wait 30 s
    assert "within 0.5 s" in info.value.detail


def test_dripping_endpoint_times_out(verifier: OidcVerifier, issuer: Issuer, key: JwtKey) -> None:
    # Headers arrive at once and the body a byte every 50 ms: a per-read timeout would wait
    # for all of it; the whole-request budget does not.
    issuer.drip = True
    start = time.monotonic()
    with pytest.raises(IdpCommunicationError) as info:
        verify(verifier, issuer, key.sign(claims(issuer)))
    assert elapsed(start) < 5
    assert "within 0.5 s" in info.value.detail


def test_slow_endpoint_cached_keys_still_work(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey
) -> None:
    verify(verifier, issuer, key.sign(claims(issuer)))
    issuer.stall = True
    later = NOW + timedelta(hours=2)
    token = key.sign(claims(issuer, exp=int(later.timestamp()) + 600))
    assert verify(verifier, issuer, token, later).subject


def test_cache_lifetime_follows_cache_control(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey
) -> None:
    def at(moment: datetime) -> None:
        token = key.sign(claims(issuer, exp=int(moment.timestamp()) + 600))
        verify(verifier, issuer, token, moment)

    issuer.cache_control = "public, max-age=7200"
    at(NOW)
    at(NOW + timedelta(minutes=90))
    assert issuer.jwks_fetches == 1
    # `no-store` still caches for the minimum lifetime (five minutes).
    issuer.cache_control = "no-store"
    three_hours = NOW + timedelta(hours=3)
    at(three_hours)
    at(three_hours + timedelta(minutes=4))
    assert issuer.jwks_fetches == 2
    at(three_hours + timedelta(minutes=6))
    assert issuer.jwks_fetches == 3


def test_broken_documents_are_communication_errors(
    verifier: OidcVerifier, issuer: Issuer, key: JwtKey
) -> None:
    issuer.keys = [{"kty": "oct", "k": "c2VjcmV0"}, {"kty": "RSA", "n": "!!", "e": "AQAB"}]
    with pytest.raises(IdpCommunicationError) as info:
        verify(verifier, issuer, key.sign(claims(issuer)))
    assert "no usable signature key" in info.value.detail
