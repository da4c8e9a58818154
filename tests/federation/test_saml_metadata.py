"""The SAML 2.0 IdP metadata parser: what it keeps, what it refuses, and that it refuses
entity tricks before anything is expanded or fetched."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fedbroker.errors import InvalidInputError
from fedbroker.federation.saml_metadata import (
    MAX_DOCUMENT_CHARS,
    Endpoint,
    IdpMetadata,
    InvalidMetadataError,
    parse_idp_metadata,
)
from tests.support.saml_metadata import (
    BROKEN,
    DS_NS,
    EMAIL,
    ENTITY_ID,
    MD_NS,
    NOT_AFTER,
    NOT_BEFORE,
    PERSISTENT,
    POST,
    REDIRECT,
    SAML2_PROTOCOL,
    SSO_URL,
    certificate,
    certificate_base64,
    idp_metadata,
    oversize,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def refused(document: str, now: datetime | None = NOW) -> str:
    with pytest.raises(InvalidMetadataError) as caught:
        parse_idp_metadata(document, now=now)
    return caught.value.message


def test_the_facts_of_a_valid_document() -> None:
    metadata = parse_idp_metadata(idp_metadata(), now=NOW)
    assert metadata.entity_id == ENTITY_ID
    [cert] = metadata.certificates
    der = certificate().public_bytes(Encoding.DER)
    assert cert.sha256 == hashlib.sha256(der).hexdigest()
    assert x509.load_pem_x509_certificate(cert.pem.encode()) == certificate()
    assert cert.subject == "CN=idp.example.test"
    assert (cert.not_before, cert.not_after) == (NOT_BEFORE, NOT_AFTER)
    assert metadata.sso_endpoints == (Endpoint(POST, SSO_URL), Endpoint(REDIRECT, SSO_URL))
    assert metadata.slo_endpoints == ()
    assert metadata.name_id_formats == (EMAIL, PERSISTENT)
    assert metadata.want_authn_requests_signed is False
    assert metadata.valid_until is None


def test_the_facts_survive_json_for_the_directory() -> None:
    metadata = parse_idp_metadata(
        idp_metadata(valid_until="2030-01-01T00:00:00Z", key_use=None), now=NOW
    )
    stored = json.loads(json.dumps(metadata.to_json()))
    assert IdpMetadata.from_json(stored) == metadata
    assert stored["certificates"][0]["sha256"] == metadata.certificates[0].sha256
    assert stored["sso_endpoints"][0] == {"binding": POST, "location": SSO_URL}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2030-01-01T00:00:00Z", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01T00:00:00", datetime(2030, 1, 1, tzinfo=UTC)),  # no zone: UTC
        ("2030-01-01T02:00:00+02:00", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01T00:00:00.1234567Z", datetime(2030, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        (" 2030-01-01T00:00:00Z ", datetime(2030, 1, 1, tzinfo=UTC)),
    ],
)
def test_valid_until_is_an_xs_datetime_in_utc(value: str, expected: datetime) -> None:
    assert parse_idp_metadata(idp_metadata(valid_until=value), now=NOW).valid_until == expected


def test_the_earliest_valid_until_bounds_the_document() -> None:
    document = idp_metadata(in_entities=True, valid_until="2031-01-01T00:00:00Z").replace(
        f'entityID="{ENTITY_ID}"', f'entityID="{ENTITY_ID}" validUntil="2029-06-01T00:00:00Z"'
    )
    metadata = parse_idp_metadata(document, now=NOW)
    assert metadata.valid_until == datetime(2029, 6, 1, tzinfo=UTC)


def test_expiry_is_checked_against_the_time_given() -> None:
    document = idp_metadata(valid_until="2024-05-01T12:00:00Z")
    assert "expired at 2024-05-01T12:00:00Z" in refused(document, now=NOW)  # at the instant
    earlier = datetime(2024, 5, 1, 11, 59, 59, tzinfo=UTC)
    assert parse_idp_metadata(document, now=earlier).valid_until == NOW
    assert parse_idp_metadata(document).valid_until == NOW  # no time given: not checked
    assert "is not a valid time" in refused(idp_metadata(valid_until="2030-02-30T00:00:00Z"))


def test_an_entities_descriptor_may_hold_service_providers_besides_one_idp() -> None:
    sp = (
        '<md:EntityDescriptor entityID="https://sp.example.test/">'
        '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:AssertionConsumerService index="0" Location="https://sp.example.test/acs" '
        'Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )
    document = idp_metadata(in_entities=True).replace(
        "</md:EntitiesDescriptor>", sp + "</md:EntitiesDescriptor>"
    )
    assert parse_idp_metadata(document, now=NOW).entity_id == ENTITY_ID
    only_sp = document.split("<md:EntityDescriptor", 1)[0] + sp + "</md:EntitiesDescriptor>"
    assert "this one holds 0" in refused(only_sp)


def test_keys_signing_or_unspecified_use_count_and_repeats_are_kept_once() -> None:
    rollover = certificate_base64(certificate("rollover.example.test"))
    metadata = parse_idp_metadata(
        idp_metadata(key_use=None, certificates=[certificate_base64(), rollover, rollover]),
        now=NOW,
    )
    assert [c.subject for c in metadata.certificates] == [
        "CN=idp.example.test",
        "CN=rollover.example.test",
    ]
    encryption = (
        '<md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f"{rollover}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
    )
    with_encryption = idp_metadata().replace(
        "<md:KeyDescriptor", encryption + "<md:KeyDescriptor", 1
    )
    [kept] = parse_idp_metadata(with_encryption, now=NOW).certificates
    assert kept.subject == "CN=idp.example.test"
    assert "`use` is `bogus`" in refused(idp_metadata(key_use="bogus"))


def test_several_protocols_may_be_listed() -> None:
    both = f"urn:oasis:names:tc:SAML:1.1:protocol {SAML2_PROTOCOL}"
    assert parse_idp_metadata(idp_metadata(protocols=both), now=NOW).entity_id == ENTITY_ID


def test_endpoints_need_a_binding_and_an_absolute_http_location() -> None:
    assert "is not an http(s) URL" in refused(idp_metadata(sso=[(POST, "/sso")]))
    assert "is not an http(s) URL" in refused(idp_metadata(sso=[(POST, "https://")]))
    assert "has no `Binding`" in refused(idp_metadata(sso=[("", SSO_URL)]))
    logout = (
        f'<md:SingleLogoutService Binding="{REDIRECT}" Location="https://idp.example.test/slo"/>'
    )
    document = idp_metadata().replace("<md:NameIDFormat>", logout + "<md:NameIDFormat>", 1)
    metadata = parse_idp_metadata(document, now=NOW)
    assert metadata.slo_endpoints == (Endpoint(REDIRECT, "https://idp.example.test/slo"),)


def test_entity_id_is_required_and_bounded() -> None:
    assert "no `entityID`" in refused(idp_metadata(entity_id="   "))
    assert "longer than 1024" in refused(idp_metadata(entity_id="https://e/" + "x" * 1020))


def test_what_is_not_idp_metadata() -> None:
    sp_only = (
        f'<md:EntityDescriptor xmlns:md="{MD_NS}" entityID="https://sp.example.test/">'
        f'<md:SPSSODescriptor protocolSupportEnumeration="{SAML2_PROTOCOL}"/>'
        "</md:EntityDescriptor>"
    )
    assert "no IDPSSODescriptor" in refused(sp_only)
    assert "without a namespace" in refused("<EntityDescriptor entityID='x'/>")
    assert "root element is `Signature`" in refused(f'<ds:Signature xmlns:ds="{DS_NS}"/>')


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_broken_documents_are_invalid_input_naming_the_problem(variant: str) -> None:
    document, expected = BROKEN[variant]
    with pytest.raises(InvalidMetadataError) as caught:
        parse_idp_metadata(document, now=NOW)
    assert expected in caught.value.message
    assert isinstance(caught.value, InvalidInputError)
    assert (caught.value.code, caught.value.status) == ("InvalidInput", 400)
    assert "\n" not in caught.value.message


def test_entities_are_never_expanded_nor_fetched() -> None:
    """XXE and billion laughs are refused for their document type declaration, before the
    parser sees them; nothing of the referenced file or the expansion reaches the message."""
    for variant in ("XXE", "billion laughs"):
        message = refused(BROKEN[variant][0])
        assert message.startswith("the metadata document has a document type declaration")
        assert "root:" not in message and "lol" not in message
    external_dtd = (
        '<?xml version="1.0"?>\n<!DOCTYPE md:EntityDescriptor SYSTEM "http://127.0.0.1:9/x.dtd">\n'
        + idp_metadata().split("\n", 1)[1]
    )
    assert "DTDs and entities are not allowed" in refused(external_dtd)


def test_size_limit_is_iams() -> None:
    assert "longer than 10000000 characters" in refused(oversize())
    at_limit = idp_metadata(padding=MAX_DOCUMENT_CHARS - len(idp_metadata()) - len("<!--  -->\n"))
    assert len(at_limit) == MAX_DOCUMENT_CHARS
    assert parse_idp_metadata(at_limit, now=NOW).entity_id == ENTITY_ID


def test_text_is_read_as_text_whatever_the_declaration_says() -> None:
    document = idp_metadata().replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    document = document.replace("Example IdP", "Exämple IdP — Zürich")
    assert parse_idp_metadata(document, now=NOW).entity_id == ENTITY_ID


def test_comments_and_processing_instructions_are_ignored() -> None:
    document = idp_metadata().replace(
        "<md:IDPSSODescriptor", "<!-- a comment --><?pi ignored?><md:IDPSSODescriptor", 1
    )
    assert parse_idp_metadata(document, now=NOW).entity_id == ENTITY_ID
