"""SAML attack responses, each made from a genuine one, and the script that records them.

    variants = attacks(genuine_xml, idp_key, other_key)   # {name: (xml, expected error code)}

Each attack edits a genuine response from the real IdP (tests/support/saml_idp.py) with lxml,
then either re-signs it with the IdP's own key, so that only the targeted check can fail
(audience, recipient, destination, time window, issuer), or leaves the signatures as they are
(unsigned, tampered, XML signature wrapping), as PEERS.md advises.

Run as a script it records test vectors (the Dex habit: SAML test data made by a committed
script, from real IdP captures)::

    python -m tests.support.saml_attacks            # rewrites tests/federation/vectors/saml/

It starts the pysaml2 IdP with throw-away keys, captures genuine responses (SHA-256, SHA-1,
a user whose Role attribute names another provider), derives the attacks and writes each
response as XML, with ``manifest.json`` naming the IdP metadata, the capture time and what
each case must produce. The keys are not kept: the vectors need only the IdP's certificate,
which is in its metadata. Nothing here reads the clock except the capture itself; tests pin
``now`` to the capture time.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": SAMLP, "saml": SAML, "ds": DS}
VECTORS = Path(__file__).resolve().parents[1] / "federation" / "vectors" / "saml"
ACCOUNT = "111122223333"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:saml-provider/ExampleIdP"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/saml-reader"
ATTRIBUTES = "https://aws.amazon.com/SAML/Attributes/"
INVALID = "InvalidIdentityToken"
EXPIRED = "ExpiredTokenException"
_TIME = re.compile(r"(IssueInstant|NotBefore|NotOnOrAfter|AuthnInstant)=\"([^\"]+)\"")


@dataclass(frozen=True)
class KeyPair:
    key_pem: str
    cert_pem: str


def new_keypair(common_name: str) -> KeyPair:
    """A throw-away RSA key and self-signed certificate (valid 2020-2120; not secret)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2120, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return KeyPair(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode("ascii"),
        cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )


def write_keypair(directory: Path, pair: KeyPair) -> None:
    (directory / "idp.key").write_text(pair.key_pem)
    (directory / "idp.crt").write_text(pair.cert_pem)


# --- editing and signing ---------------------------------------------------------------------


def parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def encode(xml: bytes) -> str:
    return base64.b64encode(xml).decode("ascii")


def assertion_of(root: etree._Element) -> etree._Element:
    found = root.find("saml:Assertion", NS)
    assert found is not None
    return found


def strip_signatures(root: etree._Element) -> None:
    for signature in root.iter(f"{{{DS}}}Signature"):
        parent = signature.getparent()
        assert parent is not None
        parent.remove(signature)


def sign(element: etree._Element, pair: KeyPair, *, sha1: bool = False) -> None:
    """An enveloped signature of ``element`` (after its Issuer), as IdPs place it."""
    for old in element.findall("ds:Signature", NS):
        element.remove(old)
    method = xmlsec.Transform.RSA_SHA1 if sha1 else xmlsec.Transform.RSA_SHA256
    digest = xmlsec.Transform.SHA1 if sha1 else xmlsec.Transform.SHA256
    signature = xmlsec.template.create(element, xmlsec.Transform.EXCL_C14N, method, ns="ds")
    issuer = element.find("saml:Issuer", NS)
    if issuer is not None:
        issuer.addnext(signature)
    else:
        element.insert(0, signature)
    reference = xmlsec.template.add_reference(signature, digest, uri="#" + element.get("ID", ""))
    xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    key = xmlsec.Key.from_memory(pair.key_pem.encode(), xmlsec.KeyFormat.PEM)
    key.load_cert_from_memory(pair.cert_pem.encode(), xmlsec.KeyFormat.PEM)
    context = xmlsec.SignatureContext()
    context.key = key
    xmlsec.tree.add_ids(element, ["ID"])
    context.sign(signature)


def resign(root: etree._Element, pair: KeyPair, *, sha1: bool = False) -> None:
    """Sign the assertion, then the response around it, as the IdP did."""
    strip_signatures(root)
    sign(assertion_of(root), pair, sha1=sha1)
    sign(root, pair, sha1=sha1)


def edited(
    xml: bytes, change: Callable[[etree._Element], None], pair: KeyPair | None = None
) -> bytes:
    """``xml`` changed by ``change``; re-signed with ``pair`` when one is given."""
    root = parse(xml)
    change(root)
    if pair is not None:
        resign(root, pair)
    return serialize(root)


def shift_times(xml: bytes, delta: timedelta) -> bytes:
    """Every timestamp of the response moved by ``delta`` (not re-signed)."""

    def move(match: re.Match[bytes]) -> bytes:
        value = match.group(2).decode()
        moment = datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        return b'%s="%s"' % (
            match.group(1),
            (moment + delta).strftime("%Y-%m-%dT%H:%M:%SZ").encode(),
        )

    return re.sub(_TIME.pattern.encode(), move, xml)


# --- the attacks -------------------------------------------------------------------------------


def _set_text(path: str, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        for element in root.iterfind(path, NS):
            element.text = value

    return change


def _set_attribute(path: str, name: str, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        for element in root.iterfind(path, NS):
            element.set(name, value)

    return change


def _remove(path: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        for element in list(root.iterfind(path, NS)):
            parent = element.getparent()
            assert parent is not None
            parent.remove(element)

    return change


def _evil_copy(original: etree._Element) -> etree._Element:
    evil = copy.deepcopy(original)
    for signature in evil.findall("ds:Signature", NS):
        evil.remove(signature)
    evil.set("ID", "id-evil-assertion")
    for name_id in evil.iterfind("saml:Subject/saml:NameID", NS):
        name_id.text = "mallory"
    return evil


def _second_assertion(root: etree._Element) -> None:
    """XSW: the signed assertion stays; an unsigned one is added after it."""
    original = assertion_of(root)
    original.addnext(_evil_copy(original))


def _moved_into_evil(root: etree._Element) -> None:
    """XSW: an unsigned assertion takes the signed one's place; the signed one moves inside it."""
    original = assertion_of(root)
    evil = _evil_copy(original)
    root.replace(original, evil)
    evil.append(original)


def _moved_into_extensions(root: etree._Element) -> None:
    """XSW: the signed assertion moves into the response's Extensions; an unsigned one is read."""
    original = assertion_of(root)
    evil = _evil_copy(original)
    root.replace(original, evil)
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    extensions.append(original)
    issuer = root.find("saml:Issuer", NS)
    assert issuer is not None
    issuer.addnext(extensions)


def _tamper_subject(root: etree._Element) -> None:
    _set_text("saml:Assertion/saml:Subject/saml:NameID", "mallory")(root)


def attacks(genuine: bytes, idp: KeyPair, other: KeyPair) -> dict[str, tuple[bytes, str]]:
    """Attack responses made from ``genuine``; each with the error code it must get."""
    scd = "saml:Assertion/saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData"

    def resigned(root: etree._Element, pair: KeyPair = idp, sha1: bool = False) -> None:
        resign(root, pair, sha1=sha1)

    unsigned = parse(genuine)
    strip_signatures(unsigned)
    other_signed = parse(genuine)
    resigned(other_signed, other)
    sha1_signed = parse(genuine)
    resigned(sha1_signed, idp, sha1=True)
    expired, early = (
        parse(shift_times(genuine, -timedelta(hours=1))),
        parse(shift_times(genuine, timedelta(hours=1))),
    )
    resigned(expired)
    resigned(early)
    evil = "https://evil.example/saml"
    return {
        "unsigned": (serialize(unsigned), INVALID),
        "signed-with-another-key": (serialize(other_signed), INVALID),
        "sha1-signed": (serialize(sha1_signed), INVALID),
        "tampered-subject": (edited(genuine, _tamper_subject), INVALID),
        "wrong-audience": (
            edited(genuine, _set_text(".//saml:Audience", "urn:example:another-sp"), idp),
            INVALID,
        ),
        "no-audience": (edited(genuine, _remove(".//saml:AudienceRestriction"), idp), INVALID),
        "wrong-recipient": (edited(genuine, _set_attribute(scd, "Recipient", evil), idp), INVALID),
        "recipient-containing-the-acs-url": (
            edited(
                genuine,
                _set_attribute(scd, "Recipient", evil + "?https://signin.aws.amazon.com/saml"),
                idp,
            ),
            INVALID,
        ),
        "wrong-destination": (
            edited(genuine, _set_attribute(".", "Destination", evil), idp),
            INVALID,
        ),
        "destination-extending-the-acs-url": (
            edited(
                genuine,
                _set_attribute(".", "Destination", "https://signin.aws.amazon.com/saml/evil"),
                idp,
            ),
            INVALID,
        ),
        "issuer-mismatch": (
            edited(genuine, _set_text(".//saml:Issuer", "https://evil.example/idp"), idp),
            INVALID,
        ),
        "expired": (serialize(expired), EXPIRED),
        "not-yet-valid": (serialize(early), EXPIRED),
        "wrapped-second-assertion": (edited(genuine, _second_assertion), INVALID),
        "wrapped-moved-into-evil-assertion": (edited(genuine, _moved_into_evil), INVALID),
        "wrapped-moved-into-extensions": (edited(genuine, _moved_into_extensions), INVALID),
    }


# --- recording the vectors --------------------------------------------------------------------


def users() -> dict[str, object]:
    """The IdP's users for the recorded vectors."""

    def user(name_id: str, roles: list[str], **extra: list[str]) -> dict[str, object]:
        attributes = {
            f"{ATTRIBUTES}Role": roles,
            f"{ATTRIBUTES}RoleSessionName": [name_id.split("-", 1)[0]],
            f"{ATTRIBUTES}PrincipalTag:team": ["blue"],
            **{f"{ATTRIBUTES}{k}": v for k, v in extra.items()},
        }
        return {"name_id": name_id, "attributes": attributes}

    return {
        "alice": user("alice-0001", [f"{ROLE_ARN},{PROVIDER_ARN}"], SessionDuration=["1800"]),
        "bob": user("bob-0002", [f"{PROVIDER_ARN.replace('ExampleIdP', 'OtherIdP')},{ROLE_ARN}"]),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def record(out: Path = VECTORS) -> None:
    from tests.support.saml_idp import IdpProcess

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        idp_keys, other_keys = new_keypair("idp.example.test"), new_keypair("attacker")
        write_keypair(directory, idp_keys)
        (directory / "users.json").write_text(json.dumps(users()))
        idp = IdpProcess(directory, _free_port())
        try:
            metadata = idp.metadata()
            genuine = base64.b64decode(idp.login("alice"))
            sha1 = base64.b64decode(idp.login("alice", alg="sha1"))
            other_provider = base64.b64decode(idp.login("bob"))
            entity_id = idp.entity_id
        finally:
            idp.stop()
    issued = re.search(rb'IssueInstant="([^"]+)"', genuine)
    assert issued is not None
    cases: dict[str, tuple[bytes, str | None]] = {
        "genuine": (genuine, None),
        "genuine-sha1-by-pysaml2": (sha1, INVALID),
        "genuine-other-provider": (other_provider, None),
        **attacks(genuine, idp_keys, other_keys),
    }
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.xml"):
        old.unlink()
    for name, (xml, _) in cases.items():
        (out / f"{name}.xml").write_bytes(xml)
    manifest = {
        "about": "Recorded by `python -m tests.support.saml_attacks`; do not edit by hand.",
        "captured_at": issued.group(1).decode(),
        "entity_id": entity_id,
        "metadata": metadata,
        "provider_arn": PROVIDER_ARN,
        "role_arn": ROLE_ARN,
        "cases": {name: {"expect": code} for name, (_, code) in cases.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    record()
