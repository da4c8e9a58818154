"""The broker's SP side of browser sign-in: its signed metadata and its AuthnRequest."""

from __future__ import annotations

import base64
import urllib.parse
import zlib
from dataclasses import replace

from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from fedbroker.federation.saml_login import KeyPair, authn_request, in_response_to_of, sp_metadata
from fedbroker.federation.saml_sp import ServiceProvider
from tests.federation.test_saml_response import vectors
from tests.support.saml_attacks import new_keypair

SP = ServiceProvider(
    "https://broker.example.test/sso/saml/corp/metadata",
    "https://broker.example.test/sso/saml/corp/acs",
)
MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


def _pair(name: str) -> KeyPair:
    made = new_keypair(name)
    return KeyPair(made.key_pem, made.cert_pem)


def test_the_metadata_names_both_certificates_and_is_signed() -> None:
    signing, encryption = _pair("sp signing"), _pair("sp encryption")
    document = sp_metadata(SP, vectors().idp, signing, [encryption.cert_pem])
    assert OneLogin_Saml2_Utils.validate_metadata_sign(document, signing.cert_pem)
    assert not OneLogin_Saml2_Utils.validate_metadata_sign(document, _pair("someone else").cert_pem)
    root = etree.fromstring(document.encode())
    assert root.get("entityID") == SP.entity_id
    descriptor = root.find(f"{MD}SPSSODescriptor")
    assert descriptor is not None and descriptor.get("WantAssertionsSigned") == "true"
    uses = [k.get("use") for k in descriptor.findall(f"{MD}KeyDescriptor")]
    assert uses == ["signing", "encryption"]
    [acs] = descriptor.findall(f"{MD}AssertionConsumerService")
    assert acs.get("Location") == SP.acs_url
    assert acs.get("Binding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    assert [f.text for f in descriptor.findall(f"{MD}NameIDFormat")] == [PERSISTENT]


def _request_of(url: str) -> tuple[dict[str, str], etree._Element]:
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"]), -15)
    return query, etree.fromstring(xml)


def test_an_authn_request_goes_by_redirect_unsigned_unless_wanted() -> None:
    idp = vectors().idp
    start = authn_request(SP, idp, _pair("sp signing"), "")
    assert start.redirect_url.startswith(idp.sso_endpoints[1].location + "?")
    query, request = _request_of(start.redirect_url)
    assert "Signature" not in query
    assert request.get("ID") == start.request_id
    assert request.get("AssertionConsumerServiceURL") == SP.acs_url
    assert request.get("ProtocolBinding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    policy = request.find("{urn:oasis:names:tc:SAML:2.0:protocol}NameIDPolicy")
    assert policy is not None and policy.get("Format") == PERSISTENT
    again = authn_request(SP, idp, _pair("sp signing"), "")
    assert again.request_id != start.request_id


def test_an_authn_request_is_signed_when_the_idp_wants_it() -> None:
    signing = _pair("sp signing")
    start = authn_request(SP, replace(vectors().idp, want_authn_requests_signed=True), signing, "")
    query, _ = _request_of(start.redirect_url)
    assert query["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    # SAML bindings 3.4.4.1: the signature covers the query string as sent, before it.
    parts = urllib.parse.urlsplit(start.redirect_url).query.split("&")
    signed = "&".join(p for p in parts if not p.startswith("Signature="))
    assert OneLogin_Saml2_Utils.validate_binary_sign(
        signed,
        base64.b64decode(query["Signature"]),
        signing.cert_pem,
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    )


def test_the_claimed_in_response_to_is_read_without_trusting_it() -> None:
    assert in_response_to_of(vectors().response("genuine")) is None
    xml = b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" InResponseTo="x1"/>'
    assert in_response_to_of(base64.b64encode(xml).decode()) == "x1"
    assert in_response_to_of("not base64 !") is None
    assert in_response_to_of(base64.b64encode(b"<not-closed").decode()) is None
