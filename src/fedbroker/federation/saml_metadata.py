"""SAML 2.0 identity provider metadata: parsed securely, checked, and reduced to the facts a
service provider needs to verify that IdP's responses.

OASIS "Metadata for the OASIS Security Assertion Markup Language (SAML) V2.0"
(saml-metadata-2.0-os): section 2.3 (``EntityDescriptor``, ``EntitiesDescriptor``,
``validUntil``), 2.4.1 (``protocolSupportEnumeration``), 2.4.1.1 (``KeyDescriptor``), 2.4.3
(``IDPSSODescriptor``, ``SingleSignOnService``).

    metadata = parse_idp_metadata(document, now=clock.now())  # raises InvalidMetadataError
    metadata.entity_id, metadata.certificates, metadata.sso_endpoints
    attrs = metadata.to_json()                                 # for the directory
    same = IdpMetadata.from_json(attrs)                        # without parsing XML again

The document is untrusted. It is parsed by lxml with entity substitution, DTD loading and
network access switched off, and a document type declaration is refused outright: metadata
never needs one, and refusing it closes entity expansion ("billion laughs") and external
entities (XXE) instead of relying on the parser's amplification limits. The metadata's own
XML signature, if any, is not checked (IAM does not check it either): whoever registers the
document vouches for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from fedbroker.errors import InvalidInputError

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
# IAM's limit on SAMLMetadataDocument, and saml-metadata-2.0-os 2.3.2 on entityID.
MAX_DOCUMENT_CHARS = 10_000_000
MAX_ENTITY_ID_CHARS = 1024

_MD = f"{{{MD_NS}}}"
_DS = f"{{{DS_NS}}}"
_DOCTYPE = re.compile(r"<!DOCTYPE", re.IGNORECASE)
# xs:dateTime: fractional seconds of any length, an optional zone (none means UTC here).
_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?", re.ASCII
)


class InvalidMetadataError(InvalidInputError):
    """The document is not usable SAML 2.0 identity provider metadata (IAM's ``InvalidInput``).

    The message names what is missing or wrong, for the administrator who uploaded it.
    """


@dataclass(frozen=True, slots=True)
class SigningCertificate:
    """An X.509 certificate the IdP signs with; ``sha256`` is the hex digest of its DER form."""

    sha256: str
    pem: str
    subject: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A ``SingleSignOnService`` or ``SingleLogoutService``: a binding URI and its URL."""

    binding: str
    location: str


@dataclass(frozen=True, slots=True)
class IdpMetadata:
    """What the broker keeps of an IdP's metadata (the document itself is stored as given)."""

    entity_id: str
    certificates: tuple[SigningCertificate, ...]
    sso_endpoints: tuple[Endpoint, ...]
    slo_endpoints: tuple[Endpoint, ...] = ()
    name_id_formats: tuple[str, ...] = ()
    want_authn_requests_signed: bool = False
    valid_until: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable form (times in ISO 8601, UTC) that :meth:`from_json` reads."""
        return {
            "entity_id": self.entity_id,
            "certificates": [
                {
                    "sha256": c.sha256,
                    "pem": c.pem,
                    "subject": c.subject,
                    "not_before": c.not_before.isoformat(),
                    "not_after": c.not_after.isoformat(),
                }
                for c in self.certificates
            ],
            "sso_endpoints": [
                {"binding": e.binding, "location": e.location} for e in self.sso_endpoints
            ],
            "slo_endpoints": [
                {"binding": e.binding, "location": e.location} for e in self.slo_endpoints
            ],
            "name_id_formats": list(self.name_id_formats),
            "want_authn_requests_signed": self.want_authn_requests_signed,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IdpMetadata:
        valid_until = data.get("valid_until")
        return cls(
            entity_id=str(data["entity_id"]),
            certificates=tuple(
                SigningCertificate(
                    str(c["sha256"]),
                    str(c["pem"]),
                    str(c["subject"]),
                    datetime.fromisoformat(str(c["not_before"])),
                    datetime.fromisoformat(str(c["not_after"])),
                )
                for c in data.get("certificates", [])
            ),
            sso_endpoints=_endpoints_from_json(data.get("sso_endpoints", [])),
            slo_endpoints=_endpoints_from_json(data.get("slo_endpoints", [])),
            name_id_formats=tuple(str(f) for f in data.get("name_id_formats", [])),
            want_authn_requests_signed=bool(data.get("want_authn_requests_signed", False)),
            valid_until=datetime.fromisoformat(str(valid_until)) if valid_until else None,
        )


def _endpoints_from_json(items: Any) -> tuple[Endpoint, ...]:
    return tuple(Endpoint(str(e["binding"]), str(e["location"])) for e in items)


def parse_idp_metadata(document: str, *, now: datetime | None = None) -> IdpMetadata:
    """Read and check ``document``; raises :class:`InvalidMetadataError` naming the problem.

    Accepted: an ``EntityDescriptor`` in the SAML 2.0 metadata namespace, or an
    ``EntitiesDescriptor`` holding exactly one identity provider ``EntityDescriptor``, with an
    ``entityID``, an ``IDPSSODescriptor`` whose ``protocolSupportEnumeration`` lists SAML 2.0,
    at least one signing certificate (a ``KeyDescriptor`` with ``use="signing"`` or no
    ``use``) that is an X.509 certificate, and at least one ``SingleSignOnService`` with an
    ``http(s)`` ``Location``. ``validUntil`` (the earliest of the root's, the entity's and the
    descriptor's) must be after ``now`` when ``now`` is given.
    """
    root = _parse_xml(document)
    entity = _idp_entity(root)
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id:
        raise InvalidMetadataError("the EntityDescriptor has no `entityID`")
    if len(entity_id) > MAX_ENTITY_ID_CHARS:
        raise InvalidMetadataError(
            f"the `entityID` is longer than {MAX_ENTITY_ID_CHARS} characters"
        )
    descriptor = _idp_descriptor(entity)
    valid_until = _valid_until(root, entity, descriptor)
    if now is not None and valid_until is not None and valid_until <= now:
        raise InvalidMetadataError(
            f"the metadata expired at {valid_until.strftime('%Y-%m-%dT%H:%M:%SZ')} (`validUntil`)"
        )
    return IdpMetadata(
        entity_id=entity_id,
        certificates=_signing_certificates(descriptor),
        sso_endpoints=_sso_endpoints(descriptor),
        slo_endpoints=_endpoints(descriptor, "SingleLogoutService"),
        name_id_formats=tuple(
            text for f in descriptor.iterchildren(f"{_MD}NameIDFormat") if (text := _text(f))
        ),
        want_authn_requests_signed=_boolean(descriptor, "WantAuthnRequestsSigned"),
        valid_until=valid_until,
    )


# --- XML -------------------------------------------------------------------------------------


def _parse_xml(document: str) -> etree._Element:
    if len(document) > MAX_DOCUMENT_CHARS:
        raise InvalidMetadataError(
            f"the metadata document is longer than {MAX_DOCUMENT_CHARS} characters"
        )
    if _DOCTYPE.search(document):
        raise InvalidMetadataError(
            "the metadata document has a document type declaration (<!DOCTYPE>); "
            "DTDs and entities are not allowed"
        )
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
        # The document arrived as text; whatever its XML declaration says, it is UTF-8 now.
        encoding="utf-8",
    )
    try:
        root = etree.fromstring(document.encode("utf-8", errors="replace"), parser)
    except etree.XMLSyntaxError as exc:
        reason = str(exc.msg or exc).strip().splitlines()[0][:160]
        raise InvalidMetadataError(
            f"the metadata document is not well-formed XML: {reason}"
        ) from None
    if root is None:
        raise InvalidMetadataError("the metadata document is empty")
    if root.getroottree().docinfo.internalDTD is not None:  # defence in depth, see above
        raise InvalidMetadataError("DTDs and entities are not allowed in metadata")
    return root


def _idp_entity(root: etree._Element) -> etree._Element:
    if root.tag == f"{_MD}EntityDescriptor":
        return root
    if root.tag == f"{_MD}EntitiesDescriptor":
        idps = [
            e
            for e in root.iter(f"{_MD}EntityDescriptor")
            if e.find(f"{_MD}IDPSSODescriptor") is not None
        ]
        if len(idps) != 1:
            raise InvalidMetadataError(
                "an EntitiesDescriptor must hold exactly one identity provider "
                f"EntityDescriptor (with an IDPSSODescriptor); this one holds {len(idps)}"
            )
        return idps[0]
    found = etree.QName(root)
    where = f" in namespace `{found.namespace}`" if found.namespace else " without a namespace"
    raise InvalidMetadataError(
        f"the root element is `{found.localname}`{where}; expected an EntityDescriptor or "
        f"EntitiesDescriptor in the SAML 2.0 metadata namespace `{MD_NS}`"
    )


def _idp_descriptor(entity: etree._Element) -> etree._Element:
    descriptors = list(entity.iterchildren(f"{_MD}IDPSSODescriptor"))
    if not descriptors:
        raise InvalidMetadataError(
            "the EntityDescriptor has no IDPSSODescriptor: this is not identity provider metadata"
        )
    for descriptor in descriptors:
        if SAML2_PROTOCOL in (descriptor.get("protocolSupportEnumeration") or "").split():
            return descriptor
    raise InvalidMetadataError(
        "the IDPSSODescriptor does not support the SAML 2.0 protocol "
        f"(`protocolSupportEnumeration` must list `{SAML2_PROTOCOL}`)"
    )


def _text(element: etree._Element) -> str:
    return (element.text or "").strip()


def _boolean(element: etree._Element, attribute: str) -> bool:
    return (element.get(attribute) or "").strip() in ("true", "1")


# --- validity --------------------------------------------------------------------------------


def _valid_until(*elements: etree._Element) -> datetime | None:
    """The earliest ``validUntil`` of ``elements`` (each bounds everything inside it)."""
    found = [_datetime(v) for e in elements if (v := e.get("validUntil")) is not None]
    return min(found) if found else None


def _datetime(value: str) -> datetime:
    match = _DATETIME.fullmatch(value.strip())
    if match is None:
        raise InvalidMetadataError(f"`validUntil` `{value[:64]}` is not an xs:dateTime")
    base, fraction, zone = match.groups()
    micro = (fraction or "")[:6].ljust(6, "0")
    offset = "+00:00" if zone in (None, "Z") else zone
    try:
        parsed = datetime.fromisoformat(f"{base}.{micro}{offset}")
    except ValueError:
        raise InvalidMetadataError(f"`validUntil` `{value[:64]}` is not a valid time") from None
    return parsed.astimezone(UTC)


# --- keys ------------------------------------------------------------------------------------


def _signing_certificates(descriptor: etree._Element) -> tuple[SigningCertificate, ...]:
    certificates: dict[str, SigningCertificate] = {}
    for index, key in enumerate(descriptor.iterchildren(f"{_MD}KeyDescriptor"), start=1):
        use = key.get("use")
        if use not in (None, "signing", "encryption"):
            raise InvalidMetadataError(
                f"KeyDescriptor {index}: `use` is `{use[:32]}`; expected `signing` or `encryption`"
            )
        if use == "encryption":
            continue
        for element in key.iterfind(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate"):
            certificate = _certificate(element, index)
            certificates.setdefault(certificate.sha256, certificate)
    if not certificates:
        raise InvalidMetadataError(
            "the IDPSSODescriptor has no signing certificate: it needs a KeyDescriptor "
            '(use="signing" or no use) with a ds:KeyInfo/ds:X509Data/ds:X509Certificate'
        )
    return tuple(certificates.values())


def _certificate(element: etree._Element, index: int) -> SigningCertificate:
    text = "".join((element.text or "").split())
    try:
        der = base64.b64decode(text, validate=True)
        certificate = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        raise InvalidMetadataError(
            f"KeyDescriptor {index}: the X509Certificate is not a base64 DER X.509 certificate"
        ) from None
    return SigningCertificate(
        sha256=hashlib.sha256(der).hexdigest(),
        pem=certificate.public_bytes(Encoding.PEM).decode("ascii"),
        subject=certificate.subject.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


# --- endpoints -------------------------------------------------------------------------------


def _sso_endpoints(descriptor: etree._Element) -> tuple[Endpoint, ...]:
    endpoints = _endpoints(descriptor, "SingleSignOnService")
    if not endpoints:
        raise InvalidMetadataError(
            "the IDPSSODescriptor has no SingleSignOnService endpoint with an http(s) Location"
        )
    return endpoints


def _endpoints(descriptor: etree._Element, name: str) -> tuple[Endpoint, ...]:
    endpoints = []
    for index, element in enumerate(descriptor.iterchildren(f"{_MD}{name}"), start=1):
        binding = (element.get("Binding") or "").strip()
        location = (element.get("Location") or "").strip()
        if not binding:
            raise InvalidMetadataError(f"{name} {index} has no `Binding`")
        if not _http_url(location):
            raise InvalidMetadataError(
                f"{name} {index}: `Location` `{location[:128]}` is not an http(s) URL"
            )
        endpoints.append(Endpoint(binding, location))
    return tuple(endpoints)


def _http_url(value: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value
