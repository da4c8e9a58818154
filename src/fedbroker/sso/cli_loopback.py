"""The loopback authorization of ``fedbroker login`` (issue 6), framework-free.

RFC 6749 §4.1 (authorization code) with PKCE S256 (RFC 7636 §4.6) and a loopback redirect URI
(RFC 8252 §7.3: ``http://127.0.0.1:PORT/...``, any port). The one-time code is kept under
``cli-code:<code>`` (hashed) for 2 minutes, bound to the challenge and the redirect URI, and
redeemed once for a CLI session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta

from fedbroker.iam.context import Services
from fedbroker.sso.cli_sessions import (
    CLIENT_ID,
    CliAuthError,
    Issued,
    Records,
    clean_host,
    create_session,
)
from fedbroker.sso.identity import SignedIn

CODE_LIFETIME = timedelta(minutes=2)


@dataclass(frozen=True)
class AuthorizeRequest:
    redirect_uri: str
    code_challenge: str
    state: str
    host: str


def check_authorize(params: dict[str, str]) -> AuthorizeRequest:
    """Validate the authorization request. A bad ``redirect_uri`` must never be redirected to
    (RFC 6749 §4.1.2.1), so every error here is shown on the broker's page instead."""
    if params.get("client_id", CLIENT_ID) != CLIENT_ID:
        raise CliAuthError(
            "invalid_request", "unknown client", f"client_id {params['client_id'][:64]!r}"
        )
    redirect_uri = params.get("redirect_uri", "")
    check_loopback(redirect_uri)
    if params.get("response_type", "code") != "code":
        raise CliAuthError("unsupported_response_type", "only the code response type is supported")
    if params.get("code_challenge_method") != "S256":
        raise CliAuthError("invalid_request", "PKCE with code_challenge_method S256 is required")
    challenge = params.get("code_challenge", "")
    if not 43 <= len(challenge) <= 128 or not _B64URL.issuperset(challenge):
        raise CliAuthError("invalid_request", "the code_challenge is malformed")
    state = params.get("state", "")
    if len(state) > 512:
        raise CliAuthError("invalid_request", "the state is too long")
    return AuthorizeRequest(redirect_uri, challenge, state, clean_host(params.get("host", "")))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def check_loopback(redirect_uri: str) -> None:
    """RFC 8252 §7.3: ``http`` to the loopback IP literal, any port, no fragment."""
    try:
        parts = urllib.parse.urlsplit(redirect_uri)
        port = parts.port
    except ValueError:
        raise CliAuthError("invalid_request", "the redirect_uri is malformed") from None
    if (
        parts.scheme != "http"
        or parts.hostname not in ("127.0.0.1", "::1")
        or port is None
        or parts.fragment
        or parts.username is not None
        or len(redirect_uri) > 512
    ):
        raise CliAuthError(
            "invalid_request",
            "the redirect_uri must be http://127.0.0.1:PORT/... (a loopback address)",
            f"redirect_uri {redirect_uri[:256]!r}",
        )


def issue_code(
    services: Services, who: SignedIn, request: AuthorizeRequest, source_ip: str, now: datetime
) -> str:
    """A one-time code for ``request``, bound to its PKCE challenge and redirect URI."""
    code = secrets.token_urlsafe(32)
    record = json.dumps(
        {
            "who": who.to_json(),
            "redirect_uri": request.redirect_uri,
            "code_challenge": request.code_challenge,
            "host": request.host,
            "source_ip": source_ip,
            "expires": (now + CODE_LIFETIME).isoformat(),
        }
    )
    records = Records(services)
    records.put(records.key("cli-code", code), record, now + CODE_LIFETIME, now)
    return code


def redeem_code(
    services: Services,
    code: str,
    verifier: str,
    redirect_uri: str,
    source_ip: str,
    lifetime: timedelta,
    now: datetime,
) -> Issued:
    """RFC 6749 §4.1.3 with RFC 7636 §4.6: the code once, its verifier, its redirect URI."""
    if not code or len(code) > 256:
        raise CliAuthError("invalid_request", "the code is missing")
    if not 43 <= len(verifier) <= 128 or not _B64URL.union("~.").issuperset(verifier):
        raise CliAuthError("invalid_request", "the code_verifier is missing or malformed")
    records = Records(services)
    key = records.key("cli-code", code)
    text = records.get(key, now)
    if text is None or not records.once(key, now + CODE_LIFETIME, now):
        raise CliAuthError(
            "invalid_grant", "the code is invalid, expired or was already used", status=400
        )
    records.delete(key)
    record = json.loads(text)
    if now >= datetime.fromisoformat(record["expires"]):
        raise CliAuthError("invalid_grant", "the code is invalid, expired or was already used")
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    if not hmac.compare_digest(challenge.encode(), str(record["code_challenge"]).encode()):
        raise CliAuthError(
            "invalid_grant", "the code_verifier does not match", "PKCE verification failed"
        )
    if redirect_uri != record["redirect_uri"]:
        raise CliAuthError(
            "invalid_grant", "the redirect_uri does not match the authorization request"
        )
    who = SignedIn.from_json(record["who"])
    return create_session(services, who, str(record["host"]), source_ip, lifetime, now)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
