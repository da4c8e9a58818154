"""Verifying the SAML 2.0 Response a user brings to ``AssumeRoleWithSAML``.

    assertion = verify_saml_response(encoded, idp, ServiceProvider(), now=clock.now(),
                                     replay=store)   # raises SamlResponseError
    assertion.subject, assertion.issuer, assertion.attributes["https://aws.amazon.com/..."]

python3-saml (``OneLogin_Saml2_Response`` in strict mode) verifies the response against the
provider's facts (:class:`~fedbroker.federation.saml_metadata.IdpMetadata`); this module
configures it, adds what it leaves out (marked *), and turns its verdict into one of three
outward errors. A response is accepted only when all of this holds:

- it is base64 of at most 100,000 characters* (STS's limit on ``SAMLAssertion``), well-formed
  XML without a DTD, valid against the SAML 2.0 protocol schema, version 2.0, status Success;
- it holds exactly one assertion, and every signature sits on the Response or the Assertion
  and references that element's own unique ID: a second assertion, or the signed assertion
  moved elsewhere (XML signature wrapping), is refused before any signature is believed;
- the assertion is signed (``wantAssertionsSigned``) by one of the provider's signing
  certificates, and the assertion python3-saml reads claims from is the signed one;
  SHA-1 signatures and digests are refused unless the provider opts in
  (``rejectDeprecatedAlgorithm``);
- ``Issuer`` of the Response (if any) and of the Assertion is the provider's entity id;
- the assertion's ``AudienceRestriction`` names the broker's entity id (python3-saml accepts
  an assertion with no audience at all; the broker* does not);
- a bearer ``SubjectConfirmationData`` has ``Recipient`` exactly* the broker's ACS URL and a
  ``NotOnOrAfter``* (python3-saml accepts any Recipient that contains the URL, and a
  Destination that merely starts with it); the Response's ``Destination``, if present, is
  exactly* the ACS URL;
- time: ``Conditions`` ``NotBefore``/``NotOnOrAfter`` with python3-saml's five minutes of
  allowed clock drift; ``SubjectConfirmationData`` and ``SessionNotOnOrAfter`` without;
  ``now`` is a parameter* (python3-saml reads the system clock; here its clock is pinned to
  ``now`` for the call, per thread);
- the assertion has not been used before*: its id (with its issuer) is remembered through
  the :class:`ReplayCache` until it could no longer be accepted anyway.

Outward errors (AWS STS API Reference, "AssumeRoleWithSAML", Errors): every failure is
``InvalidIdentityToken`` with one fixed message, except a genuine assertion outside its
time window (``ExpiredTokenException``: reported only when the response passes every other
check at an instant inside its window, so a forgery learns nothing from it) and a response
whose status is not Success (``IDPRejectedClaim``). The precise reason is in ``detail``.

Encrypted assertions (``EncryptedAssertion``, SAML core 2.7.3.3) are opened with the
provider's decryption keys (``decryption_keys``, newest first: two are held during a key
rotation, as IAM's ``PrivateKeyList``); python3-saml decrypts and the decrypted assertion goes
through every check above. ``require_encryption`` (IAM's ``AssertionEncryptionMode``
``Required``) refuses a plain assertion.

For a browser sign-in (``in_response_to`` given) the response must answer the request this
browser started: ``InResponseTo`` of the Response, if present, and of the assertion's bearer
``SubjectConfirmationData`` equal the request id*; ``in_response_to=None`` is an unsolicited
(IdP-initiated) response, which carries none*. ``AssumeRoleWithSAML`` leaves it unchecked,
as AWS does. ``clock_skew`` replaces python3-saml's fixed five minutes on ``Conditions``
(a per-provider setting; python3-saml reads a class constant, swapped here per call).

python3-saml re-reads and compiles its XSD schemas on every call (about half the cost of a
verification); this module compiles each schema once per thread instead.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Protocol

import onelogin.saml2
import onelogin.saml2.response
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils, OneLogin_Saml2_ValidationError
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from fedbroker.errors import FedbrokerError
from fedbroker.federation.saml_metadata import IdpMetadata
from fedbroker.federation.saml_sp import ServiceProvider

MAX_RESPONSE_CHARS = 100_000
# python3-saml's allowance for disagreeing clocks on Conditions (ALLOWED_CLOCK_DRIFT).
CLOCK_DRIFT = timedelta(seconds=OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT)
INVALID = "the SAML response could not be validated"
EXPIRED = "the SAML assertion has expired or is not yet valid"
REJECTED = "the identity provider reported that authentication failed"
BEARER = OneLogin_Saml2_Constants.CM_BEARER
_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
_E = OneLogin_Saml2_ValidationError
_TIME_ERRORS = frozenset({_E.ASSERTION_TOO_EARLY, _E.ASSERTION_EXPIRED, _E.SESSION_EXPIRED})
MAX_CLOCK_SKEW = timedelta(minutes=15)


class Unchecked(Enum):
    """``in_response_to=UNCHECKED``: whether the response answers a request is not asked."""

    UNCHECKED = "unchecked"


UNCHECKED = Unchecked.UNCHECKED


class SamlResponseError(FedbrokerError):
    """A response that is not accepted; ``detail`` says why, for the log and the audit."""

    status = 400

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class InvalidSamlResponseError(SamlResponseError):
    code = "InvalidIdentityToken"


class ExpiredSamlResponseError(SamlResponseError):
    code = "ExpiredTokenException"  # the wire code of STS's ExpiredToken error


class RejectedSamlClaimError(SamlResponseError):
    """The IdP said no (status not Success), or a genuine assertion's claims do not allow
    what is asked (STS's ``IDPRejectedClaim``)."""

    code = "IDPRejectedClaim"
    status = 403


class ReplayCache(Protocol):
    """Remembers assertion ids; shared by every replica (the directory store implements it)."""

    def remember_assertion(self, key: str, not_on_or_after: datetime, now: datetime) -> bool:
        """``False`` if ``key`` is already remembered; else remember it until
        ``not_on_or_after`` and return ``True``. Entries expired at ``now`` are dropped."""
        ...


@dataclass(frozen=True, slots=True)
class SamlAssertion:
    """What a verified assertion says (attribute values in document order, strings only)."""

    assertion_id: str
    issuer: str
    subject: str
    subject_format: str | None
    audiences: tuple[str, ...]
    recipient: str
    not_on_or_after: datetime
    session_not_on_or_after: datetime | None
    attributes: Mapping[str, tuple[str, ...]]
    # For single logout: the NameID's qualifiers and the AuthnStatement's SessionIndex.
    name_qualifier: str | None = None
    sp_name_qualifier: str | None = None
    session_index: str | None = None

    def values(self, name: str) -> tuple[str, ...]:
        return self.attributes.get(name, ())


def verify_saml_response(
    encoded: str,
    idp: IdpMetadata,
    sp: ServiceProvider,
    *,
    now: datetime,
    replay: ReplayCache | None,
    allow_sha1: bool = False,
    decryption_keys: tuple[tuple[str, str], ...] = (),
    require_encryption: bool = False,
    in_response_to: str | Literal[Unchecked.UNCHECKED] | None = UNCHECKED,
    clock_skew: timedelta = CLOCK_DRIFT,
) -> SamlAssertion:
    """Verify ``encoded`` (base64 of a ``samlp:Response``) as sent by ``idp`` to ``sp`` at
    ``now``; raises :class:`SamlResponseError`. ``replay`` ``None`` skips the replay check
    (tests of single checks only). ``decryption_keys`` are (PEM private key, its PEM
    certificate), newest first; ``in_response_to`` the id of the AuthnRequest the response
    must answer (``None``: an unsolicited response, :data:`UNCHECKED`: either)."""
    document = _decode(encoded)
    certificates = tuple(c.pem for c in idp.certificates)
    settings = [
        _settings(idp.entity_id, certificates, sp, allow_sha1, key, require_encryption)
        for key in (decryption_keys or (None,))
    ]
    skew = _skew(clock_skew)
    response = _validated(document, settings, sp, now, skew)
    assertion = _read(response, idp, sp, now)
    if in_response_to is not UNCHECKED:
        _check_in_response_to(response, in_response_to)
    if replay is not None:
        key = hashlib.sha256(f"{assertion.issuer}\x00{assertion.assertion_id}".encode()).hexdigest()
        keep_until = max(assertion.not_on_or_after, _conditions_end(response) + skew)
        if not replay.remember_assertion(key, keep_until, now):
            raise InvalidSamlResponseError(
                INVALID, f"assertion `{assertion.assertion_id[:80]}` was already used (replay)"
            )
    return assertion


# --- python3-saml, configured and called -----------------------------------------------------


def _decode(encoded: str) -> str:
    if len(encoded) > MAX_RESPONSE_CHARS:
        raise InvalidSamlResponseError(
            INVALID, f"the response is longer than {MAX_RESPONSE_CHARS} characters"
        )
    try:
        raw = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSamlResponseError(INVALID, "the response is not base64") from None
    if not raw:
        raise InvalidSamlResponseError(INVALID, "the response is empty")
    return base64.b64encode(raw).decode("ascii")


def _skew(clock_skew: timedelta) -> timedelta:
    return min(max(clock_skew, timedelta(0)), MAX_CLOCK_SKEW)


def _check_in_response_to(response: Any, expected: str | None) -> None:
    """The response answers ``expected`` (``None``: no request): the Response's
    ``InResponseTo`` (if any) and every bearer confirmation's say so (signed, in the
    assertion)."""
    stated = [response.document.get("InResponseTo")]
    for confirmation in response._query_assertion("/saml:Subject/saml:SubjectConfirmation"):
        data = confirmation.find("saml:SubjectConfirmationData", OneLogin_Saml2_Constants.NSMAP)
        if confirmation.get("Method") == BEARER and data is not None:
            stated.append(data.get("InResponseTo"))
    if expected is None:
        if any(value is not None for value in stated):
            raise InvalidSamlResponseError(
                INVALID,
                f"InResponseTo `{next(v for v in stated if v)[:80]}` names a request "
                "that this browser did not start",
            )
        return
    if (
        stated[1:] == []
        or any(value != expected for value in stated[1:])
        or (stated[0] is not None and stated[0] != expected)
    ):
        found = [str(v)[:80] for v in stated]
        raise InvalidSamlResponseError(
            INVALID, f"InResponseTo {found} is not the request this browser started"
        )


@functools.lru_cache(maxsize=256)
def _settings(
    entity_id: str,
    certificates: tuple[str, ...],
    sp: ServiceProvider,
    allow_sha1: bool,
    private_key: tuple[str, str] | None = None,
    require_encryption: bool = False,
) -> Any:
    keys = {"privateKey": private_key[0], "x509cert": private_key[1]} if private_key else {}
    return OneLogin_Saml2_Settings(
        {
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": sp.entity_id,
                "assertionConsumerService": {"url": sp.acs_url, "binding": _POST},
                **keys,
            },
            "idp": {
                "entityId": entity_id,
                "x509certMulti": {"signing": list(certificates)},
                # Not used to verify anything; python3-saml wants the IdP settings complete.
                "singleSignOnService": {"url": "https://idp.invalid/sso", "binding": _POST},
            },
            "security": {
                "wantAssertionsSigned": True,
                "wantAssertionsEncrypted": require_encryption,
                "wantMessagesSigned": False,
                "wantNameId": True,
                "wantAttributeStatement": True,
                "rejectDeprecatedAlgorithm": not allow_sha1,
                "allowRepeatAttributeName": True,
            },
        },
        sp_validation_only=True,
    )


def _request_data(acs_url: str) -> dict[str, str]:
    """The "current request" python3-saml compares Destination and Recipient with."""
    parts = urllib.parse.urlsplit(acs_url)
    return {
        "https": "on" if parts.scheme == "https" else "off",
        "http_host": parts.netloc,
        "script_name": parts.path,
        "path_info": "",
    }


def _validated(
    document: str, settings: list[Any], sp: ServiceProvider, now: datetime, skew: timedelta
) -> Any:
    response, failure = _attempt(document, settings, sp, now, skew)
    if failure is None:
        return response
    code, reason = failure
    if code == _E.STATUS_CODE_IS_NOT_SUCCESS:
        raise RejectedSamlClaimError(REJECTED, reason)
    if code in _TIME_ERRORS or code == _E.WRONG_SUBJECTCONFIRMATION:
        # A time failure is reported as such only for a response that is otherwise good:
        # check it again at an instant inside its own window.
        inside = _instant_inside(response)
        if inside is not None:
            _, again = _attempt(document, settings, sp, inside, skew)
            if again is None:
                raise ExpiredSamlResponseError(EXPIRED, f"{reason} (now {_stamp(now)})")
            if code == _E.WRONG_SUBJECTCONFIRMATION:
                reason = f"{reason}: Recipient or its time window does not match"
            else:
                reason = again[1]
    raise InvalidSamlResponseError(INVALID, reason)


def _attempt(
    document: str, settings: list[Any], sp: ServiceProvider, now: datetime, skew: timedelta
) -> tuple[Any, tuple[int | None, str] | None]:
    """(the parsed response or ``None``, ``None`` or (python3-saml's error code, reason)).
    With several decryption keys, each is tried in turn (python3-saml decrypts on parsing)."""
    with _pinned_clock(now, skew):
        response: Any = None
        for index, candidate in enumerate(settings):
            try:
                response = OneLogin_Saml2_Response(candidate, document)
                break
            except Exception as exc:  # python3-saml, lxml and xmlsec raise many kinds
                if index == len(settings) - 1:
                    return None, (None, _reason("the response cannot be read", exc))
        try:
            response.is_valid(_request_data(sp.acs_url), raise_exceptions=True)
        except OneLogin_Saml2_ValidationError as exc:
            return response, (exc.code, _reason("", exc))
        except Exception as exc:
            return response, (None, _reason("the response cannot be checked", exc))
    return response, None


def _reason(prefix: str, exc: Exception) -> str:
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    return f"{prefix}: {text}" if prefix else text


def _instant_inside(response: Any) -> datetime | None:
    """An instant inside the (unverified) assertion's window: its Conditions' NotBefore or
    else its IssueInstant; ``None`` when there is none to read."""
    if response is None:
        return None
    try:
        conditions = response._query_assertion("/saml:Conditions")
        value = conditions[0].get("NotBefore") if conditions else None
        if value is None:
            value = response._query_assertion("")[0].get("IssueInstant")
        return _time(value) if value else None
    except Exception:
        return None


# --- reading the verified assertion ----------------------------------------------------------


def _read(response: Any, idp: IdpMetadata, sp: ServiceProvider, now: datetime) -> SamlAssertion:
    def invalid(detail: str) -> InvalidSamlResponseError:
        return InvalidSamlResponseError(INVALID, detail)

    destination = response.document.get("Destination")
    if destination is not None and destination != sp.acs_url:
        raise invalid(f"Destination `{destination[:200]}` is not `{sp.acs_url}`")
    audiences = tuple(response.get_audiences())
    if sp.entity_id not in audiences:
        raise invalid(f"the assertion's audiences {list(audiences)[:5]} omit `{sp.entity_id}`")
    recipient, not_on_or_after = _bearer_confirmation(response, sp, now, invalid)
    try:
        issuers = response.get_issuers()
        name_id = response.get_nameid_data()
        assertion_id = response.get_assertion_id()
        session_end = response.get_session_not_on_or_after()
        raw_attributes = response.get_attributes()
        session_index = response.get_session_index()
    except Exception as exc:
        raise invalid(_reason("the assertion cannot be read", exc)) from None
    if issuers != [idp.entity_id]:  # python3-saml checked each; be sure there is one
        raise invalid(f"issuers {issuers[:3]} are not `{idp.entity_id}`")
    attributes = {
        str(name): tuple(v for v in values if isinstance(v, str))
        for name, values in raw_attributes.items()
    }
    return SamlAssertion(
        assertion_id=str(assertion_id),
        issuer=idp.entity_id,
        subject=str(name_id["Value"]),
        subject_format=name_id.get("Format"),
        audiences=audiences,
        recipient=recipient,
        not_on_or_after=not_on_or_after,
        session_not_on_or_after=(
            datetime.fromtimestamp(session_end, UTC) if session_end is not None else None
        ),
        attributes=attributes,
        name_qualifier=name_id.get("NameQualifier"),
        sp_name_qualifier=name_id.get("SPNameQualifier"),
        session_index=str(session_index) if session_index else None,
    )


def _bearer_confirmation(
    response: Any, sp: ServiceProvider, now: datetime, invalid: Any
) -> tuple[str, datetime]:
    """The Recipient and NotOnOrAfter of a bearer confirmation that holds at ``now``."""
    for confirmation in response._query_assertion("/saml:Subject/saml:SubjectConfirmation"):
        if confirmation.get("Method") != BEARER:
            continue
        data = confirmation.find("saml:SubjectConfirmationData", OneLogin_Saml2_Constants.NSMAP)
        if data is None or data.get("Recipient") != sp.acs_url:
            continue
        end, start = data.get("NotOnOrAfter"), data.get("NotBefore")
        if end is None or _time(end) <= now or (start is not None and _time(start) > now):
            continue
        return sp.acs_url, _time(end)
    raise invalid(
        f"no bearer SubjectConfirmationData with Recipient `{sp.acs_url}` and a "
        "NotOnOrAfter that holds now"
    )


def _conditions_end(response: Any) -> datetime:
    conditions = response._query_assertion("/saml:Conditions")
    value = conditions[0].get("NotOnOrAfter") if conditions else None
    return _time(value) if value else datetime.min.replace(tzinfo=UTC)


def _time(value: str) -> datetime:
    return datetime.fromtimestamp(OneLogin_Saml2_Utils.parse_SAML_to_time(value), UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- python3-saml's clock and schemas ----------------------------------------------------------
# Both are module-level in python3-saml, so they are replaced once, here: its clock reads the
# instant pinned for the current call (falling back to its own clock for any other user),
# and its schema validation keeps each compiled schema per thread (lxml's XMLSchema objects
# are not shared between threads).

_PINNED: ContextVar[int | None] = ContextVar("fedbroker_saml_now", default=None)
_SKEW: ContextVar[int | None] = ContextVar("fedbroker_saml_skew", default=None)
_library_now = OneLogin_Saml2_Utils.now


def _now() -> int:
    pinned = _PINNED.get()
    return int(_library_now()) if pinned is None else pinned


@contextmanager
def _pinned_clock(moment: datetime, skew: timedelta = CLOCK_DRIFT) -> Iterator[None]:
    token = _PINNED.set(int(moment.timestamp()))
    skew_token = _SKEW.set(int(skew.total_seconds()))
    try:
        yield
    finally:
        _SKEW.reset(skew_token)
        _PINNED.reset(token)


class _Constants(OneLogin_Saml2_Constants):  # type: ignore[misc]
    """python3-saml's constants, with ``ALLOWED_CLOCK_DRIFT`` the skew of the current call."""

    @property
    def ALLOWED_CLOCK_DRIFT(self) -> int:
        skew = _SKEW.get()
        return OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT if skew is None else skew


_SCHEMA_DIR = Path(onelogin.saml2.__file__).parent / "schemas"
_schemas = threading.local()


def _schema(name: str) -> etree.XMLSchema:
    cache: dict[str, etree.XMLSchema] | None = getattr(_schemas, "cache", None)
    if cache is None:
        cache = _schemas.cache = {}
    schema = cache.get(name)
    if schema is None:
        schema = cache[name] = etree.XMLSchema(etree.parse(str(_SCHEMA_DIR / name)))
    return schema


def _validate_xml(xml: Any, schema: str, debug: bool = False) -> Any:
    """python3-saml's ``validate_xml`` with the compiled schema kept."""
    try:
        xml = OneLogin_Saml2_XML.to_etree(xml)
    except Exception:
        return "unloaded_xml"
    if not _schema(schema).validate(xml):
        return "invalid_xml"
    return xml


OneLogin_Saml2_Utils.now = staticmethod(_now)
onelogin.saml2.response.OneLogin_Saml2_Constants = _Constants()
OneLogin_Saml2_XML.validate_xml = staticmethod(_validate_xml)
