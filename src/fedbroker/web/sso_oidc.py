"""Browser sign-in through a registered OpenID Connect provider (issue 5).

The broker is a relying party (OpenID Connect Core 1.0 §3.1, authorization code flow) with
PKCE S256 (RFC 7636), ``state`` and ``nonce``, for each OIDC provider that has a relying-party
client configured (``fedbroker sso configure-oidc``: ``rp_client_id`` and either the sealed
client secret or, with ``--private-key-jwt``, a sealed signing key in the provider entity).
Discovery, the authorization redirect and the token request are three small HTTP steps written
on the standard library; the ID token is verified by
:mod:`fedbroker.federation.oidc`, the code path of AssumeRoleWithWebIdentity, and what it
proved becomes a :class:`~fedbroker.sso.SignedIn` (:func:`fedbroker.sso.signed_in_from_oidc`)
handed to :func:`fedbroker.web.sso.finish_sign_in`.

- ``GET /sso/oidc/<provider>``: starts a login (state, nonce and the PKCE verifier are kept in
  the server-side broker session, never in the browser);
- ``GET /sso/oidc/callback``: checks ``state`` (once: a replayed callback finds nothing), redeems
  the code, verifies the ID token, its issuer and its ``nonce``; with ``rp_userinfo`` set
  (``configure-oidc --userinfo``), fetches the userinfo claims with the access token and
  requires their ``sub`` to be the ID token's (OpenID Connect Core 1.0 §5.3.4), for the claim
  mapping and the pages only;
- ``GET /sso/oidc/<provider>/jwks.json``: the public key of a ``private_key_jwt`` client, for
  providers that fetch client keys (``jwks_uri``); 404 for a client-secret client.

Client authentication at the token endpoint: ``client_secret_basic``, or ``private_key_jwt``
(RFC 7523 §2.2, OpenID Connect Core 1.0 §9): a JWT signed by the provider's RP key with
``iss`` = ``sub`` = the client id, ``aud`` = the token endpoint, a random ``jti``, and a
lifetime of one minute, signed by joserfc through :mod:`fedbroker.credentials.jws`.

The RP is written by hand rather than with authlib's client: the steps are three small
standard-library HTTP exchanges with a response size cap, and the ID token must be verified by
the broker's own verifier anyway (the code path of the API); authlib would add two dependencies
(it needs ``requests`` for its clients) and untyped imports for a few lines of URL and header
building. Its value would have been ``private_key_jwt`` client authentication, which is a few
lines on top of the key ring's JWT signing (the same joserfc code that signs the broker's own
tokens).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from flask import Response, make_response
from flask import request as flask_request

from fedbroker.credentials.jws import SigningKey, load_signing_key
from fedbroker.credentials.sealing import rp_key_context, rp_secret_context
from fedbroker.directory.ids import new_request_id
from fedbroker.directory.model import Entity, KeyAlgorithm, Kind
from fedbroker.errors import FedbrokerError
from fedbroker.iam.context import Services
from fedbroker.sso import default_session_name, signed_in_from_oidc
from fedbroker.sts.web_identity import provider_lookup
from fedbroker.web.sso import (
    SIGN_IN_OPTIONS,
    SignInOption,
    SsoError,
    blueprint,
    error_page,
    finish_sign_in,
    services,
    session_for_login,
    set_cookie,
    sign_in_failed,
    sts_context,
    table,
)
from fedbroker.web.sso_sessions import LIFETIME, PendingLogin

PENDING_LOGINS = 8  # logins started in one browser session and not finished
HTTP_TIMEOUT = 10
MAX_RESPONSE = 256 * 1024
INVALID_TOKEN = "the identity provider's token could not be validated"
CLIENT_ASSERTION_LIFETIME = 60  # seconds; RFC 7523 wants it short, the brief says ≤ 5 minutes
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MISCONFIGURED = "sign-in through this provider is misconfigured"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _http_json(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    """GET (or POST ``data``) and parse a JSON object; any failure is an :class:`SsoError`."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as response:
            body = response.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as error:
        text = error.read(2048).decode(errors="replace")
        error.close()
        raise SsoError(
            "the identity provider refused the sign-in", f"{url}: HTTP {error.code} {text}"
        ) from None
    except OSError as error:
        raise SsoError(
            "the identity provider could not be reached", f"{url}: {error}", 502
        ) from None
    if len(body) > MAX_RESPONSE:
        raise SsoError("the identity provider's answer was invalid", f"{url}: answer too large")
    try:
        value = json.loads(body)
    except ValueError:
        raise SsoError("the identity provider's answer was invalid", f"{url}: not JSON") from None
    if not isinstance(value, dict):
        raise SsoError("the identity provider's answer was invalid", f"{url}: not an object")
    return value


def _rp_providers(found_in: Services) -> list[Entity]:
    found: list[Entity] = []
    for account in found_in.store.list_accounts():
        for entity in found_in.store.list_entities(account.id, Kind.OIDC_PROVIDER):
            if entity.attrs.get("rp_client_id") and (
                entity.attrs.get("rp_client_secret_sealed") or entity.attrs.get("rp_key")
            ):
                found.append(entity)
    return found


def _options(found_in: Services) -> list[SignInOption]:
    from flask import url_for

    return [
        SignInOption(p.name, url_for("sso.start_oidc", name=p.name), "OpenID Connect")
        for p in _rp_providers(found_in)
    ]


SIGN_IN_OPTIONS.append(_options)


def _rp_provider(found_in: Services, name: str) -> Entity:
    for entity in _rp_providers(found_in):
        if entity.name == name:
            return entity
    raise SsoError("no identity provider of that name", f"no RP provider `{name[:256]}`", 404)


def _discovery(provider: Entity) -> dict[str, Any]:
    url = str(provider.attrs.get("url") or f"https://{provider.name}").rstrip("/")
    document = _http_json(url + "/.well-known/openid-configuration")
    for name in ("authorization_endpoint", "token_endpoint", "issuer"):
        if not isinstance(document.get(name), str):
            raise SsoError(
                "the identity provider's answer was invalid", f"discovery lacks `{name}`"
            )
    return dict(document)


def _redirect_uri() -> str:
    return flask_request.host_url.rstrip("/") + "/sso/oidc/callback"


@blueprint.get("/oidc/<path:name>")
def start_oidc(name: str) -> Response:
    request_id = new_request_id()
    now = services().clock.now()
    try:
        provider = _rp_provider(services(), name)
        discovery = _discovery(provider)
    except SsoError as error:
        return error_page(error, request_id)
    sid, session = session_for_login(now)
    login = PendingLogin(
        account_id=provider.account_id,
        provider=provider.name,
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        verifier=secrets.token_urlsafe(48),
    )
    while len(session.pending) >= PENDING_LOGINS:
        session.pending.pop(next(iter(session.pending)))
    session.pending[login.state] = login
    table().save(sid, session, now)
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": str(provider.attrs["rp_client_id"]),
            "redirect_uri": _redirect_uri(),
            "scope": "openid email",
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": _b64(hashlib.sha256(login.verifier.encode()).digest()),
            "code_challenge_method": "S256",
        }
    )
    endpoint = str(discovery["authorization_endpoint"])
    separator = "&" if "?" in endpoint else "?"
    response = make_response("", 302)
    response.headers["Location"] = endpoint + separator + query
    response.headers["Cache-Control"] = "no-store"
    set_cookie(response, sid)
    return response


@blueprint.get("/oidc/callback")
def callback() -> Response:
    request_id = new_request_id()
    found_in = services()
    now = found_in.clock.now()
    login: PendingLogin | None = None
    try:
        sessions = table()
        sid = flask_request.cookies.get("fedbroker_sso", "")
        session = sessions.get(sid, now)
        state = flask_request.args.get("state", "")
        login = session.pending.pop(state, None) if session is not None and state else None
        if session is None or login is None or login.kind != "oidc":
            raise SsoError(
                "this sign-in was not started here, has expired or was already used",
                "callback with an unknown state or without a broker session",
            )
        sessions.save(sid, session, now)
        if not found_in.store.remember_assertion(f"oidc-state:{state}", now + LIFETIME, now):
            raise SsoError("this sign-in was already used", "state seen before (replay)")
        if "error" in flask_request.args:
            raise SsoError(
                "the identity provider did not sign you in",
                f"provider error `{flask_request.args.get('error', '')[:128]}`",
            )
        code = flask_request.args.get("code", "")
        if not code:
            raise SsoError("the identity provider did not sign you in", "callback without code")
        provider = _rp_provider(found_in, login.provider)
        id_token, access_token = _redeem(found_in, provider, code, login)
        ctx = sts_context(request_id, now)
        try:
            verified = found_in.web_identity.verify(
                id_token, provider_lookup(ctx, login.account_id), now
            )
        except FedbrokerError as error:
            raise SsoError(INVALID_TOKEN, f"ID token: {error.audit_message()}") from None
        if verified.provider.name != provider.name:
            raise SsoError(
                INVALID_TOKEN,
                f"ID token from `{verified.provider.name}`, expected `{provider.name}`",
            )
        nonce = verified.claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(
            nonce.encode(), login.nonce.encode()
        ):
            raise SsoError(INVALID_TOKEN, "wrong or missing nonce")
        userinfo = None
        if provider.attrs.get("rp_userinfo") is True:
            userinfo = _userinfo(provider, access_token, verified.subject)
        claims = {**(userinfo or {}), **verified.claims}
        try:
            who = signed_in_from_oidc(
                ctx, verified, default_session_name(claims, verified.subject), userinfo
            )
        except FedbrokerError as error:
            raise SsoError(INVALID_TOKEN, f"ID token: {error.audit_message()}") from None
    except SsoError as error:
        name = login.provider if login is not None else None
        return sign_in_failed(error, request_id, kind="oidc", provider_name=name)
    return finish_sign_in(who, request_id)


def _userinfo(provider: Entity, access_token: str | None, subject: str) -> dict[str, Any]:
    """The userinfo claims (OpenID Connect Core 1.0 §5.3), only for the ID token's subject."""
    endpoint = _discovery(provider).get("userinfo_endpoint")
    if not isinstance(endpoint, str) or not access_token:
        raise SsoError(
            "sign-in through this provider is misconfigured",
            "userinfo wanted, but no userinfo endpoint or no access token",
            500,
        )
    claims: dict[str, Any] = _http_json(
        endpoint, headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    )
    if claims.get("sub") != subject:
        raise SsoError(INVALID_TOKEN, "the userinfo `sub` is not the ID token's")
    return claims


def _rp_key(found_in: Services, provider: Entity) -> SigningKey:
    """The provider's ``private_key_jwt`` signing key, opened from its sealed attribute."""
    attr = provider.attrs.get("rp_key")
    try:
        if not isinstance(attr, dict):
            raise ValueError("no rp_key")
        private = found_in.master_key.open(
            base64.b64decode(str(attr["sealed"])), rp_key_context(provider.name)
        )
        return load_signing_key(str(attr["kid"]), KeyAlgorithm(str(attr["alg"])), private)
    except (FedbrokerError, ValueError, KeyError) as error:
        raise SsoError(
            MISCONFIGURED,
            f"RP signing key of `{provider.name}` cannot be opened: {type(error).__name__}",
            500,
        ) from None


@blueprint.get("/oidc/<path:name>/jwks.json")
def rp_jwks(name: str) -> Response:
    """The public JWKS (RFC 7517 §5) of a ``private_key_jwt`` client, for the provider."""
    request_id = new_request_id()
    try:
        provider = _rp_provider(services(), name)
        if "rp_key" not in provider.attrs:
            raise SsoError(
                "no identity provider of that name", f"`{name[:256]}` has no RP key", 404
            )
        key = _rp_key(services(), provider)
    except SsoError as error:
        return error_page(error, request_id)
    response = make_response(json.dumps({"keys": [dict(key.public_jwk)]}), 200)
    response.headers["Content-Type"] = "application/jwk-set+json"
    response.headers["Cache-Control"] = "max-age=300"
    return response


def _client_authentication(
    found_in: Services, provider: Entity, token_endpoint: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Form fields and headers that authenticate the broker at the token endpoint:
    ``private_key_jwt`` (RFC 7523 §2.2) with an RP key, else ``client_secret_basic``."""
    client_id = str(provider.attrs["rp_client_id"])
    if provider.attrs.get("rp_key"):
        key = _rp_key(found_in, provider)
        now = int(found_in.clock.now().timestamp())
        assertion = key.sign(
            {
                "iss": client_id,
                "sub": client_id,
                "aud": token_endpoint,
                "jti": secrets.token_urlsafe(24),
                "iat": now,
                "exp": now + CLIENT_ASSERTION_LIFETIME,
            }
        )
        return {
            "client_id": client_id,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
        }, {}
    try:
        sealed = base64.b64decode(str(provider.attrs["rp_client_secret_sealed"]))
        secret = found_in.master_key.open(sealed, rp_secret_context(provider.name)).decode()
    except (FedbrokerError, ValueError, KeyError) as error:
        raise SsoError(
            MISCONFIGURED,
            f"client secret of `{provider.name}` cannot be opened: {type(error).__name__}",
            500,
        ) from None
    basic = base64.b64encode(
        f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}".encode()
    ).decode()
    return {}, {"Authorization": f"Basic {basic}"}


def _redeem(
    found_in: Services, provider: Entity, code: str, login: PendingLogin
) -> tuple[str, str | None]:
    """The token request (RFC 6749 §4.1.3, with the PKCE verifier and the client's
    authentication): the ID token and the access token (if any)."""
    token_endpoint = str(_discovery(provider)["token_endpoint"])
    fields, headers = _client_authentication(found_in, provider, token_endpoint)
    body = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": _redirect_uri(),
            "code_verifier": login.verifier,
            **fields,
        }
    ).encode()
    answer = _http_json(
        token_endpoint,
        body,
        {
            **headers,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    id_token = answer.get("id_token")
    if not isinstance(id_token, str):
        raise SsoError("the identity provider did not sign you in", "token answer without id_token")
    access_token = answer.get("access_token")
    return id_token, access_token if isinstance(access_token, str) else None
