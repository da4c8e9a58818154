"""The broker as a SAML 2.0 service provider for browser sign-in: its metadata and its
``AuthnRequest`` (python3-saml builds both; this module configures it).

    xml = sp_metadata(sp, idp, signing=key_pair, encryption=(new, old))   # signed
    start = authn_request(sp, idp, signing=key_pair, name_id_format=..., relay_state=...)
    start.redirect_url, start.request_id     # HTTP-Redirect binding; id kept for InResponseTo

SAML profiles 4.1 (Web Browser SSO): the ``AuthnRequest`` goes to the IdP's
``SingleSignOnService`` with the HTTP-Redirect binding (SAML bindings 3.4, deflated, signed
in the query string with RSA-SHA256 when the IdP's metadata says ``WantAuthnRequestsSigned``);
the answer comes back with HTTP-POST to the assertion consumer service and is verified by
:func:`fedbroker.federation.saml_response.verify_saml_response`.

The metadata (SAML metadata 2.4.4, ``SPSSODescriptor``) names the signing certificate and
the encryption certificate(s) in separate ``KeyDescriptor`` elements, says
``WantAssertionsSigned="true"``, lists the NameID format the IdP declares, and is signed
(enveloped XML signature, RSA-SHA256) with the SP's signing key.
"""

from __future__ import annotations

import base64
import urllib.parse
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.metadata import OneLogin_Saml2_Metadata
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from fedbroker.errors import FedbrokerError
from fedbroker.federation.saml_metadata import IdpMetadata
from fedbroker.federation.saml_sp import ServiceProvider

REDIRECT = OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT
POST = OneLogin_Saml2_Constants.BINDING_HTTP_POST
UNSPECIFIED = OneLogin_Saml2_Constants.NAMEID_UNSPECIFIED
MD = OneLogin_Saml2_Constants.NS_MD
DS = OneLogin_Saml2_Constants.NS_DS
MAX_RESPONSE_BYTES = 100_000


class SamlLoginError(FedbrokerError):
    """The IdP cannot be sent a request (no HTTP-Redirect endpoint in its metadata)."""

    code = "InvalidConfiguration"
    status = 500


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A private key and its certificate, PEM (the private key opened for this call only)."""

    key_pem: str
    cert_pem: str


@dataclass(frozen=True, slots=True)
class LoginStart:
    redirect_url: str
    request_id: str


def _cert_body(pem: str) -> str:
    return "".join(line for line in pem.strip().splitlines() if "-----" not in line)


def _settings(
    sp: ServiceProvider,
    idp: IdpMetadata,
    signing: KeyPair | None,
    name_id_format: str,
    sign_requests: bool,
) -> Any:
    redirect = [e.location for e in idp.sso_endpoints if e.binding == REDIRECT]
    sso_url = redirect[0] if redirect else "https://idp.invalid/sso"
    slo = [e.location for e in idp.slo_endpoints if e.binding == REDIRECT]
    sp_slo = {"singleLogoutService": {"url": sp.sls_url, "binding": REDIRECT}} if sp.sls_url else {}
    idp_slo = {"singleLogoutService": {"url": slo[0], "binding": REDIRECT}} if slo else {}
    keys = {"x509cert": signing.cert_pem, "privateKey": signing.key_pem} if signing else {}
    return OneLogin_Saml2_Settings(
        {
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": sp.entity_id,
                "assertionConsumerService": {"url": sp.acs_url, "binding": POST},
                "NameIDFormat": name_id_format,
                **sp_slo,
                **keys,
            },
            "idp": {
                "entityId": idp.entity_id,
                "singleSignOnService": {"url": sso_url, "binding": REDIRECT},
                "x509certMulti": {"signing": [c.pem for c in idp.certificates]},
                **idp_slo,
            },
            "security": {
                "authnRequestsSigned": sign_requests,
                "logoutRequestSigned": signing is not None,  # always, when there is a key
                "wantAssertionsSigned": True,
                "signatureAlgorithm": OneLogin_Saml2_Constants.RSA_SHA256,
                "digestAlgorithm": OneLogin_Saml2_Constants.SHA256,
            },
        },
        sp_validation_only=not sign_requests,
    )


def name_id_format_of(idp: IdpMetadata) -> str:
    """The NameID format to ask for: the first the IdP declares, else ``unspecified``."""
    return idp.name_id_formats[0] if idp.name_id_formats else UNSPECIFIED


def authn_request(
    sp: ServiceProvider, idp: IdpMetadata, signing: KeyPair, relay_state: str
) -> LoginStart:
    """An ``AuthnRequest`` for ``idp`` as a redirect URL (HTTP-Redirect binding), signed when
    the IdP wants signed requests; ``request_id`` is what its response must answer."""
    if not any(e.binding == REDIRECT for e in idp.sso_endpoints):
        raise SamlLoginError(
            f"the identity provider `{idp.entity_id[:200]}` has no HTTP-Redirect "
            "SingleSignOnService in its metadata"
        )
    settings = _settings(sp, idp, signing, name_id_format_of(idp), idp.want_authn_requests_signed)
    auth = OneLogin_Saml2_Auth({"https": "on", "http_host": "broker.invalid"}, settings)
    url = auth.login(return_to=relay_state)
    return LoginStart(str(url), str(auth.get_last_request_id()))


class SamlLogoutError(FedbrokerError):
    """A ``LogoutResponse`` that is not a valid answer to this browser's ``LogoutRequest``."""

    code = "InvalidLogoutResponse"
    status = 400


def supports_logout(idp: IdpMetadata) -> bool:
    """Whether ``idp`` has an HTTP-Redirect ``SingleLogoutService`` in its metadata."""
    return any(e.binding == REDIRECT for e in idp.slo_endpoints)


@dataclass(frozen=True, slots=True)
class NameId:
    """The NameID of a sign-in, as the IdP sent it, and the session it started there."""

    value: str
    format: str | None = None
    name_qualifier: str | None = None
    sp_name_qualifier: str | None = None
    session_index: str | None = None


def logout_request(
    sp: ServiceProvider, idp: IdpMetadata, signing: KeyPair, name_id: NameId
) -> LoginStart:
    """A signed ``LogoutRequest`` (SAML profiles 4.4, SP-initiated, HTTP-Redirect binding)
    for the session ``name_id`` names; ``request_id`` is what the LogoutResponse must answer."""
    if not supports_logout(idp):
        raise SamlLoginError(
            f"the identity provider `{idp.entity_id[:200]}` has no HTTP-Redirect "
            "SingleLogoutService in its metadata"
        )
    settings = _settings(sp, idp, signing, name_id_format_of(idp), True)
    auth = OneLogin_Saml2_Auth({"https": "on", "http_host": "broker.invalid"}, settings)
    url = auth.logout(
        return_to="",
        name_id=name_id.value,
        session_index=name_id.session_index,
        nq=name_id.name_qualifier,
        name_id_format=name_id.format,
        spnq=name_id.sp_name_qualifier,
    )
    return LoginStart(str(url), str(auth.get_last_request_id()))


def logout_response_in_response_to(encoded: str) -> str | None:
    """The ``InResponseTo`` a (deflated, HTTP-Redirect) ``LogoutResponse`` *claims*,
    unverified: only to find the request it says it answers. ``None`` when unreadable."""
    if len(encoded) > MAX_RESPONSE_BYTES:
        return None
    try:
        raw = zlib.decompress(base64.b64decode(encoded, validate=True), -15)
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )
        root = etree.fromstring(raw, parser)
    except (ValueError, etree.XMLSyntaxError, zlib.error):
        return None
    value = root.get("InResponseTo")
    return value[:256] if value else None


def verify_logout_response(
    sp: ServiceProvider,
    idp: IdpMetadata,
    query: dict[str, str],
    query_string: str,
    request_id: str,
) -> None:
    """Check the ``LogoutResponse`` of an HTTP-Redirect ``query`` (python3-saml: its query
    signature by the IdP's certificate when signed, issuer, Destination this SP's SLS URL,
    ``InResponseTo`` exactly ``request_id``, status ``Success``); raises
    :class:`SamlLogoutError` naming what failed."""
    encoded = query.get("SAMLResponse", "")
    if not encoded or len(encoded) > MAX_RESPONSE_BYTES:
        raise SamlLogoutError("no SAMLResponse, or one too long")
    claimed = logout_response_in_response_to(encoded)
    if claimed != request_id:
        raise SamlLogoutError(
            f"the LogoutResponse answers `{(claimed or '')[:80]}`, not `{request_id}`"
        )
    settings = _settings(sp, idp, None, name_id_format_of(idp), False)
    parts = urllib.parse.urlsplit(sp.sls_url or "")
    get_data = {
        k: query[k] for k in ("SAMLResponse", "RelayState", "SigAlg", "Signature") if k in query
    }
    auth = OneLogin_Saml2_Auth(
        {
            "https": "on" if parts.scheme == "https" else "off",
            "http_host": parts.netloc,
            "script_name": parts.path,
            "path_info": "",
            "get_data": get_data,
            "query_string": query_string,
            "validate_signature_from_qs": True,
        },
        settings,
    )
    try:
        auth.process_slo(keep_local_session=True, request_id=request_id)
    except Exception as exc:  # python3-saml raises several kinds for a malformed message
        raise SamlLogoutError(f"the LogoutResponse cannot be read: {str(exc)[:300]}") from None
    errors = auth.get_errors()
    if errors:
        reason = " ".join(str(auth.get_last_error_reason() or "").split())[:300]
        raise SamlLogoutError(f"LogoutResponse refused ({', '.join(errors)}): {reason}")


def sp_metadata(
    sp: ServiceProvider,
    idp: IdpMetadata,
    signing: KeyPair,
    encryption: Sequence[str],
    *,
    valid_until: str | None = None,
) -> str:
    """The SP's metadata for ``idp``, signed with ``signing``; ``encryption`` are the
    certificates (PEM) the IdP may encrypt to, newest first."""
    settings = _settings(sp, idp, None, name_id_format_of(idp), idp.want_authn_requests_signed)
    document = OneLogin_Saml2_Metadata.builder(
        settings.get_sp_data(),
        authnsign=idp.want_authn_requests_signed,
        wsign=True,
        valid_until=valid_until,
    )
    root = etree.fromstring(document.encode())
    descriptor = root.find(f"{{{MD}}}SPSSODescriptor")
    assert descriptor is not None  # python3-saml's builder always writes it
    uses = [("signing", signing.cert_pem), *(("encryption", c) for c in encryption)]
    for position, (use, pem) in enumerate(uses):
        key = etree.Element(f"{{{MD}}}KeyDescriptor", use=use)
        info = etree.SubElement(key, f"{{{DS}}}KeyInfo")
        data = etree.SubElement(info, f"{{{DS}}}X509Data")
        etree.SubElement(data, f"{{{DS}}}X509Certificate").text = _cert_body(pem)
        descriptor.insert(position, key)
    unsigned = etree.tostring(root, encoding="unicode")
    signed = OneLogin_Saml2_Metadata.sign_metadata(
        unsigned,
        signing.key_pem,
        signing.cert_pem,
        OneLogin_Saml2_Constants.RSA_SHA256,
        OneLogin_Saml2_Constants.SHA256,
    )
    return signed.decode() if isinstance(signed, bytes) else str(signed)


def in_response_to_of(encoded: str) -> str | None:
    """The ``InResponseTo`` a response *claims* (unverified: only to find the request it
    says it answers; :func:`verify_saml_response` then checks it). ``None`` when there is
    none or the response cannot be read (verification will say why)."""
    if len(encoded) > MAX_RESPONSE_BYTES * 2:
        return None
    try:
        raw = base64.b64decode("".join(encoded.split()), validate=True)
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )
        root = etree.fromstring(raw, parser)
    except (ValueError, etree.XMLSyntaxError, zlib.error):
        return None
    value = root.get("InResponseTo")
    if value is None:
        for data in root.iter(f"{{{OneLogin_Saml2_Constants.NS_SAML}}}SubjectConfirmationData"):
            value = data.get("InResponseTo")
            if value is not None:
                break
    return value[:256] if value else None
