"""SAML 2.0 identity provider metadata for tests: a valid document built around a self-signed
certificate (made here with `cryptography`, not secret), and broken variants of it.

    document = idp_metadata()                         # usable metadata, > 1000 characters
    document = idp_metadata(valid_until="2001-01-01T00:00:00Z", key_use="encryption")
    for name, (document, message) in BROKEN.items(): ...   # each with the expected complaint

Certificates have fixed validity dates and nothing here reads the clock.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
ENTITY_ID = "https://idp.example.test/metadata"
SSO_URL = "https://idp.example.test/sso"
NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2120, 1, 1, tzinfo=UTC)


@functools.cache
def certificate(common_name: str = "idp.example.test") -> x509.Certificate:
    """A self-signed RSA certificate, the same one for the same name within a test run."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(key, hashes.SHA256())
    )


def certificate_base64(cert: x509.Certificate | None = None) -> str:
    """The DER certificate in base64, wrapped at 64 columns as IdPs publish it."""
    der = (cert or certificate()).public_bytes(Encoding.DER)
    text = base64.b64encode(der).decode("ascii")
    return "\n".join(text[i : i + 64] for i in range(0, len(text), 64))


def idp_metadata(
    *,
    entity_id: str = ENTITY_ID,
    certificates: Sequence[str] | None = None,
    key_use: str | None = "signing",
    sso: Sequence[tuple[str, str]] = ((POST, SSO_URL), (REDIRECT, SSO_URL)),
    name_id_formats: Sequence[str] = (EMAIL, PERSISTENT),
    valid_until: str | None = None,
    namespace: str = MD_NS,
    protocols: str = SAML2_PROTOCOL,
    in_entities: bool = False,
    other_idps: int = 0,
    padding: int = 0,
) -> str:
    """An IdP metadata document; each keyword changes one thing (``certificates`` are base64
    texts, ``None`` meaning one valid certificate; ``padding`` adds a comment of that size)."""
    certs = [certificate_base64()] if certificates is None else list(certificates)
    use = f" use={quoteattr(key_use)}" if key_use is not None else ""
    keys = "".join(
        f"<md:KeyDescriptor{use}><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{text}"
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\n"
        for text in certs
    )
    formats = "".join(f"<md:NameIDFormat>{f}</md:NameIDFormat>\n" for f in name_id_formats)
    services = "".join(
        f"<md:SingleSignOnService Binding={quoteattr(b)} Location={quoteattr(loc)}/>\n"
        for b, loc in sso
    )
    until = f" validUntil={quoteattr(valid_until)}" if valid_until is not None else ""
    entity = (
        f"<md:EntityDescriptor xmlns:md={quoteattr(namespace)} xmlns:ds={quoteattr(DS_NS)} "
        f"entityID={quoteattr(entity_id)}{'' if in_entities else until}>\n"
        f'<md:IDPSSODescriptor WantAuthnRequestsSigned="false" '
        f"protocolSupportEnumeration={quoteattr(protocols)}>\n"
        f"{keys}{formats}{services}"
        "</md:IDPSSODescriptor>\n"
        '<md:Organization><md:OrganizationName xml:lang="en">Example</md:OrganizationName>'
        '<md:OrganizationDisplayName xml:lang="en">Example IdP</md:OrganizationDisplayName>'
        '<md:OrganizationURL xml:lang="en">https://idp.example.test/</md:OrganizationURL>'
        "</md:Organization>\n"
        "</md:EntityDescriptor>\n"
    )
    pad = f"<!-- {'x' * padding} -->\n" if padding else ""
    if not in_entities:
        return f'<?xml version="1.0" encoding="UTF-8"?>\n{pad}{entity}'
    others = "".join(
        idp_metadata(entity_id=f"https://other{i}.example.test/", namespace=namespace)
        .split("\n", 1)[1]
        .replace(f" xmlns:md={quoteattr(namespace)} xmlns:ds={quoteattr(DS_NS)}", "")
        for i in range(other_idps)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{pad}'
        f"<md:EntitiesDescriptor xmlns:md={quoteattr(namespace)} xmlns:ds={quoteattr(DS_NS)}"
        f"{until}>\n{entity}{others}</md:EntitiesDescriptor>\n"
    )


def _billion_laughs() -> str:
    lines = ['<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        lines.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE md:EntityDescriptor [\n'
        + "\n".join(lines)
        + "\n]>\n"
        + idp_metadata(entity_id="&lol9;").split("\n", 1)[1]
    )


def _xxe() -> str:
    return (
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE md:EntityDescriptor [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + idp_metadata(entity_id="https://idp.example.test/&xxe;").split("\n", 1)[1]
    )


def _not_xml() -> str:
    return "this is not an XML document, but it is long enough to be sent. " * 20


# name -> (document, a fragment of the InvalidInput message it must get)
BROKEN: dict[str, tuple[str, str]] = {
    "no certificate": (idp_metadata(certificates=[], padding=1200), "no signing certificate"),
    "only an encryption certificate": (
        idp_metadata(key_use="encryption"),
        "no signing certificate",
    ),
    "bad certificate": (
        idp_metadata(certificates=[base64.b64encode(b"not a certificate" * 60).decode()]),
        "not a base64 DER X.509 certificate",
    ),
    "certificate not base64": (
        idp_metadata(certificates=["%%%not base64%%%" * 80]),
        "not a base64 DER X.509 certificate",
    ),
    "no SSO endpoint": (idp_metadata(sso=[]), "no SingleSignOnService"),
    "SSO endpoint not http": (
        idp_metadata(sso=[(POST, "ftp://idp.example.test/sso")]),
        "is not an http(s) URL",
    ),
    "wrong namespace": (
        idp_metadata(namespace="urn:oasis:names:tc:SAML:1.0:metadata"),
        "expected an EntityDescriptor or EntitiesDescriptor in the SAML 2.0 metadata namespace",
    ),
    "not SAML 2.0": (
        idp_metadata(protocols="urn:oasis:names:tc:SAML:1.1:protocol"),
        "does not support the SAML 2.0 protocol",
    ),
    "no entityID": (idp_metadata(entity_id=""), "no `entityID`"),
    "expired validUntil": (
        idp_metadata(valid_until="2001-01-01T00:00:00Z"),
        "the metadata expired at 2001-01-01T00:00:00Z",
    ),
    "validUntil not a time": (idp_metadata(valid_until="next tuesday"), "not an xs:dateTime"),
    "two IdPs in an EntitiesDescriptor": (
        idp_metadata(in_entities=True, other_idps=1),
        "exactly one identity provider EntityDescriptor",
    ),
    "XXE": (_xxe(), "DTDs and entities are not allowed"),
    "billion laughs": (_billion_laughs(), "DTDs and entities are not allowed"),
    "not XML": (_not_xml(), "not well-formed XML"),
    "truncated XML": (idp_metadata()[:-40], "not well-formed XML"),
}


def oversize() -> str:
    """A document one character over IAM's 10,000,000-character limit (built on demand)."""
    base = idp_metadata()
    return idp_metadata(padding=10_000_001 - len(base) - len("<!--  -->\n"))
