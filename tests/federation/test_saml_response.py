"""The SAML response verifier, on responses recorded from a real IdP (pysaml2) and attacks
made from them (tests/support/saml_attacks.py records both). ``now`` is pinned to the capture.
"""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fedbroker.federation import saml_response
from fedbroker.federation.saml_metadata import IdpMetadata, parse_idp_metadata
from fedbroker.federation.saml_response import (
    SamlAssertion,
    SamlResponseError,
    verify_saml_response,
)
from fedbroker.federation.saml_sp import ServiceProvider

VECTORS = Path(__file__).parent / "vectors" / "saml"
AWS = "https://aws.amazon.com/SAML/Attributes/"


@dataclass(frozen=True)
class Vectors:
    idp: IdpMetadata
    captured_at: datetime
    cases: dict[str, tuple[str, str | None]]  # name: (base64 response, expected error code)

    def response(self, name: str) -> str:
        return self.cases[name][0]


@functools.cache
def vectors() -> Vectors:
    """The one loader of the recorded SAML vectors."""
    manifest = json.loads((VECTORS / "manifest.json").read_text())
    cases = {
        name: (
            base64.b64encode((VECTORS / f"{name}.xml").read_bytes()).decode("ascii"),
            case["expect"],
        )
        for name, case in manifest["cases"].items()
    }
    captured = datetime.strptime(manifest["captured_at"], "%Y-%m-%dT%H:%M:%SZ")
    return Vectors(parse_idp_metadata(manifest["metadata"]), captured.replace(tzinfo=UTC), cases)


class MemoryReplayCache:
    def __init__(self) -> None:
        self.seen: dict[str, datetime] = {}

    def remember_assertion(self, key: str, not_on_or_after: datetime, now: datetime) -> bool:
        self.seen = {k: v for k, v in self.seen.items() if v > now}
        if key in self.seen:
            return False
        self.seen[key] = not_on_or_after
        return True


def verify(
    name: str,
    *,
    after: timedelta = timedelta(seconds=30),
    sp: ServiceProvider | None = None,
    replay: Any = None,
    allow_sha1: bool = False,
    response: str | None = None,
) -> SamlAssertion:
    v = vectors()
    return verify_saml_response(
        response if response is not None else v.response(name),
        v.idp,
        sp or ServiceProvider(),
        now=v.captured_at + after,
        replay=replay,
        allow_sha1=allow_sha1,
    )


def refused(name: str, **kwargs: Any) -> SamlResponseError:
    with pytest.raises(SamlResponseError) as info:
        verify(name, **kwargs)
    return info.value


def test_a_genuine_response_says_who_and_what() -> None:
    assertion = verify("genuine", replay=MemoryReplayCache())
    v = vectors()
    assert assertion.issuer == v.idp.entity_id
    assert assertion.subject == "alice-0001"
    assert assertion.subject_format == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert assertion.recipient == "https://signin.aws.amazon.com/saml"
    assert assertion.audiences == ("urn:amazon:webservices",)
    assert assertion.values(AWS + "RoleSessionName") == ("alice",)
    assert assertion.values(AWS + "SessionDuration") == ("1800",)
    role = assertion.values(AWS + "Role")[0]
    assert role.endswith(":saml-provider/ExampleIdP")
    assert assertion.not_on_or_after == v.captured_at + timedelta(minutes=5)


ATTACKS = sorted(
    name
    for name, case in json.loads((VECTORS / "manifest.json").read_text())["cases"].items()
    if case["expect"] is not None
)


@pytest.mark.parametrize("name", ATTACKS)
def test_every_recorded_attack_is_refused(name: str) -> None:
    error = refused(name, replay=MemoryReplayCache())
    assert error.code == vectors().cases[name][1]
    assert error.message in (saml_response.INVALID, saml_response.EXPIRED)
    assert error.detail and error.detail != error.message


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("unsigned", "not signed"),
        ("signed-with-another-key", "Signature validation failed"),
        ("sha1-signed", "Deprecated signature algorithm"),
        ("genuine-sha1-by-pysaml2", "Deprecated signature algorithm"),
        ("tampered-subject", "Signature validation failed"),
        ("wrong-audience", "not a valid audience"),
        ("no-audience", "omit `urn:amazon:webservices`"),
        ("wrong-recipient", "SubjectConfirmation"),
        ("recipient-containing-the-acs-url", "Recipient"),
        ("wrong-destination", "received at"),
        ("destination-extending-the-acs-url", "Destination"),
        ("issuer-mismatch", "Invalid issuer"),
        ("expired", "expired"),
        ("not-yet-valid", "not yet valid"),
        ("wrapped-second-assertion", "must contain 1 assertion"),
        ("wrapped-moved-into-evil-assertion", "must contain 1 assertion"),
        ("wrapped-moved-into-extensions", "must contain 1 assertion"),
    ],
)
def test_the_audit_detail_names_the_failed_check(name: str, reason: str) -> None:
    assert reason in refused(name).detail


def test_sha1_is_accepted_only_when_the_provider_opts_in() -> None:
    assert verify("genuine-sha1-by-pysaml2", allow_sha1=True).subject == "alice-0001"
    assert verify("sha1-signed", allow_sha1=True).subject == "alice-0001"


def test_the_time_window_and_its_bounded_skew() -> None:
    # Conditions allow 5 minutes of drift before NotBefore; the bearer confirmation's
    # NotOnOrAfter (capture + 5 minutes) allows none.
    assert verify("genuine", after=-timedelta(minutes=4)).subject == "alice-0001"
    assert refused("genuine", after=-timedelta(minutes=6)).code == "ExpiredTokenException"
    assert verify("genuine", after=timedelta(minutes=4, seconds=59)).subject == "alice-0001"
    assert refused("genuine", after=timedelta(minutes=5)).code == "ExpiredTokenException"
    assert refused("genuine", after=timedelta(days=1)).code == "ExpiredTokenException"


def test_an_expired_forgery_is_not_reported_as_expired() -> None:
    # Expiry is reported only for a response that is otherwise good, so a forger cannot
    # tell a time failure from a signature failure.
    for name in ("tampered-subject", "signed-with-another-key", "unsigned"):
        assert refused(name, after=timedelta(hours=2)).code == "InvalidIdentityToken"


def test_a_replayed_assertion_is_refused() -> None:
    cache = MemoryReplayCache()
    verify("genuine", replay=cache)
    error = refused("genuine", replay=cache, after=timedelta(minutes=1))
    assert (error.code, error.message) == ("InvalidIdentityToken", saml_response.INVALID)
    assert "already used" in error.detail
    [kept_until] = cache.seen.values()
    # kept until the assertion could no longer be accepted: Conditions end plus the drift
    assert kept_until == vectors().captured_at + timedelta(minutes=10)


def test_a_refused_response_is_not_remembered() -> None:
    cache = MemoryReplayCache()
    refused("wrong-audience", replay=cache)
    refused("tampered-subject", replay=cache)
    assert cache.seen == {}


def test_the_service_provider_names_are_configurable() -> None:
    other = ServiceProvider(entity_id="urn:example:broker", acs_url="https://broker.example/saml")
    assert "received at https://broker.example/saml" in refused("genuine", sp=other).detail
    assert "not a valid audience" in refused("genuine", sp=ServiceProvider("urn:x")).detail
    same_names = ServiceProvider("urn:amazon:webservices", "https://signin.aws.amazon.com/saml")
    assert verify("genuine", sp=same_names).subject == "alice-0001"


def test_a_provider_with_another_certificate_refuses_it() -> None:
    from tests.support.saml_metadata import idp_metadata

    other = parse_idp_metadata(idp_metadata(entity_id=vectors().idp.entity_id))
    with pytest.raises(SamlResponseError) as info:
        verify_saml_response(
            vectors().response("genuine"),
            other,
            ServiceProvider(),
            now=vectors().captured_at,
            replay=None,
        )
    assert "Signature validation failed" in info.value.detail


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("not base64!", "not base64"),
        ("", "empty"),
        ("A" * 100_004, "longer than 100000"),
        (base64.b64encode(b"<x/>").decode(), "Unsupported SAML version"),
        (base64.b64encode(b"not xml").decode(), "cannot be read"),
        (
            base64.b64encode(b'<!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>').decode(),
            "cannot be read",
        ),
    ],
)
def test_garbage_is_invalid(response: str, reason: str) -> None:
    error = refused("genuine", response=response)
    assert error.code == "InvalidIdentityToken"
    assert reason in error.detail


def test_schemas_are_compiled_once_per_thread() -> None:
    verify("genuine")
    first = saml_response._schema("saml-schema-protocol-2.0.xsd")
    verify("genuine")
    assert saml_response._schema("saml-schema-protocol-2.0.xsd") is first


# --- browser sign-in: InResponseTo and the provider's clock skew -----------------------------


def _verify_with(name: str, after: timedelta, **kwargs: Any) -> SamlAssertion:
    v = vectors()
    return verify_saml_response(
        v.response(name),
        v.idp,
        ServiceProvider(),
        now=v.captured_at + after,
        replay=None,
        **kwargs,
    )


def test_an_unsolicited_response_passes_only_as_unsolicited() -> None:
    assert _verify_with("genuine", timedelta(seconds=30), in_response_to=None).subject
    with pytest.raises(SamlResponseError) as info:
        _verify_with("genuine", timedelta(seconds=30), in_response_to="id-the-browser-started")
    assert info.value.code == "InvalidIdentityToken"
    assert info.value.message == saml_response.INVALID
    assert "not the request this browser started" in str(info.value.detail)


def test_the_clock_skew_is_the_providers() -> None:
    early = -timedelta(seconds=200)  # before the assertion's NotBefore
    assert _verify_with("genuine", early).subject  # python3-saml's five minutes
    with pytest.raises(SamlResponseError) as info:
        _verify_with("genuine", early, clock_skew=timedelta(seconds=60))
    assert info.value.code == "ExpiredTokenException"
    assert _verify_with("genuine", early, clock_skew=timedelta(seconds=240)).subject
