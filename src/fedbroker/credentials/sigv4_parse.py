"""Reading a SigV4 claim from a request: who signed it, for which scope, over what, when.

The ``Authorization`` header and presigned-URL query parameters of the IAM User Guide,
"Elements of an AWS API request signature" and "Authentication methods". Unreadable claims
raise IncompleteSignatureError in AWS's words. Checking a claim is
:class:`fedbroker.credentials.sigv4.SigV4Verifier`'s job; import everything from there.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_plus

from fedbroker.credentials.sigv4_canonical import ALGORITHM, clip
from fedbroker.errors import IncompleteSignatureError

MAX_PRESIGNED_EXPIRES = 604_800  # seven days: AWS's limit for X-Amz-Expires
_QUERY_AUTH = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SCOPE_DATE = re.compile(r"[0-9]{8}")
_EXPIRES = re.compile(r"-?[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request as the web layer received it, body already read. Header names in any case.

    ``body_hash`` (hex SHA-256) stands in for the body when whoever received the request vouches
    for its hash instead of forwarding it (``POST /authorize``); ``body`` is then ignored.
    """

    method: str
    path: str
    query: str = field(repr=False)  # a presigned URL carries the session token here
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    body_hash: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SigV4Auth:
    """What a request claims: who signed it, for which scope, over which headers, when."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: datetime
    security_token: str | None = field(repr=False)
    presigned: bool
    expires: int | None = None  # X-Amz-Expires in seconds, presigned URLs only

    @property
    def scope(self) -> str:
        """The credential scope, ``date/region/service/aws4_request``."""
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def parse_auth(request: HttpRequest) -> SigV4Auth | None:
    """Read the SigV4 claim from the ``Authorization`` header or the presigned-URL parameters.

    Returns None for a request with no authentication at all (AssumeRoleWithWebIdentity and
    AssumeRoleWithSAML are sent unsigned). Raises IncompleteSignatureError, in AWS's words, for
    a claim that cannot be read ("Elements of an AWS API request signature").
    """
    headers = lowered(request.headers)
    header = headers.get("authorization")
    params = _auth_params(request.query) if "X-Amz-" in request.query else {}
    if header is None and not params:
        return None
    if header is not None and params:
        raise IncompleteSignatureError(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter,"
            " Signature query string parameter or the Authorization header should be specified."
        )
    return _from_header(header, headers) if header is not None else _from_query(params)


def _from_header(header: str, headers: Mapping[str, str]) -> SigV4Auth:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm.startswith("AWS4-") and algorithm != ALGORITHM:
        raise IncompleteSignatureError(
            "The authorization mechanism you have provided is not supported."
            f" Please use {ALGORITHM}.",
            detail=f"unsupported algorithm `{clip(algorithm)}`",
        )
    fields: dict[str, str] = {}
    for part in rest.split(",") if algorithm == ALGORITHM else ():
        if not part.strip():
            continue
        name, equals, value = part.strip().partition("=")
        if not equals:
            raise IncompleteSignatureError(
                f"'{clip(part.strip())}' not a valid key=value pair"
                " (missing equal-sign) in Authorization header."
            )
        if name in fields:
            raise IncompleteSignatureError(f"Authorization header repeats '{clip(name)}'.")
        fields[name] = value.strip()
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(name)
    ]
    amz_date, date = headers.get("x-amz-date"), headers.get("date")
    if not (amz_date or date):
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        raise IncompleteSignatureError(" ".join(problems))
    moment = _iso_basic(amz_date) if amz_date else _http_date(date or "")
    if moment is None:
        raise IncompleteSignatureError(
            f"Date must be in ISO-8601 'basic format'. Got '{clip(amz_date or date or '')}'."
            " See http://en.wikipedia.org/wiki/ISO_8601"
        )
    return _claim(
        fields["Credential"],
        "The authorization header is malformed",
        fields["SignedHeaders"],
        fields["Signature"],
        moment,
        headers.get("x-amz-security-token"),
        None,
    )


def _from_query(params: Mapping[str, str]) -> SigV4Auth:
    if not all(params.get(name) for name in _QUERY_AUTH):
        raise IncompleteSignatureError(
            f"Query-string authentication version 4 requires the {', '.join(_QUERY_AUTH[:-1])},"
            f" and {_QUERY_AUTH[-1]} parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignatureError(f'X-Amz-Algorithm only supports "{ALGORITHM}".')
    moment = _iso_basic(params["X-Amz-Date"])
    if moment is None:
        raise IncompleteSignatureError(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"."
        )
    if not _EXPIRES.fullmatch(params["X-Amz-Expires"]):
        raise IncompleteSignatureError("X-Amz-Expires should be a number.")
    expires = int(params["X-Amz-Expires"])
    if expires < 0:
        raise IncompleteSignatureError("X-Amz-Expires must be non-negative.")
    if expires > MAX_PRESIGNED_EXPIRES:
        raise IncompleteSignatureError(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES}."
        )
    return _claim(
        params["X-Amz-Credential"],
        "Error parsing the X-Amz-Credential parameter",
        params["X-Amz-SignedHeaders"],
        params["X-Amz-Signature"],
        moment,
        params.get("X-Amz-Security-Token"),
        expires,
    )


def _claim(
    credential: str,
    where: str,
    signed: str,
    signature: str,
    amz_date: datetime,
    token: str | None,
    expires: int | None,
) -> SigV4Auth:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts) or not _SCOPE_DATE.fullmatch(parts[1]):
        raise IncompleteSignatureError(
            f'{where}; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/'
            'SERVICE/aws4_request".',
            detail=f"credential `{clip(credential)}`",
        )
    if parts[4] != "aws4_request":
        raise IncompleteSignatureError(
            "Credential should be scoped with a valid terminator:"
            f" 'aws4_request', not '{clip(parts[4])}'."
        )
    names = tuple(name.strip().lower() for name in signed.split(";"))
    if not all(names):
        raise IncompleteSignatureError(f"SignedHeaders '{clip(signed)}' is malformed.")
    key_id, date, region, service = parts[:4]
    return SigV4Auth(
        access_key_id=key_id,
        date=date,
        region=region,
        service=service,
        signed_headers=names,
        signature=signature,
        amz_date=amz_date,
        security_token=token,
        presigned=expires is not None,
        expires=expires,
    )


def _auth_params(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    # parse_qsl's decoding, done only where it changes something: a presigned URL's session
    # token is most of its query, and plain.
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if name.startswith("X-Amz-"):
            if "%" in value or "+" in value:
                value = unquote_plus(value)
            if name in params:
                raise IncompleteSignatureError(f"Query parameter '{clip(name)}' is repeated.")
            params[name] = value
    # Only these mark a presigned URL; an X-Amz-Date alone may ride along a signed header.
    return params if any(name in params for name in _QUERY_AUTH[:3]) else {}


def _iso_basic(value: str) -> datetime | None:
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    # RFC 5322's "-0000" (what botocore's formatdate writes) parses as naive: it is UTC.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@functools.lru_cache(maxsize=1024)  # one request time per signature, checked several times
def amz_stamp(moment: datetime) -> str:
    """A time as SigV4 writes it: ``20150830T123600Z``."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def lowered(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers by lower-case name."""
    return {name.lower(): value for name, value in headers.items()}
