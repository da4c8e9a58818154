"""Browser sign-in through a registered OpenID Connect provider (issue 5, first slice).

The broker is a relying party (OpenID Connect Core 1.0 §3.1, authorization code flow) with
PKCE S256 (RFC 7636), ``state`` and ``nonce``, for each OIDC provider that has a relying-party
client configured (``fedbroker sso configure-oidc``: ``rp_client_id`` and the sealed client
secret in the provider entity). The flow is hand-written on the standard library: discovery,
the authorization redirect and the token request are three small HTTP steps, and the ID token
is verified by :mod:`fedbroker.federation.oidc`, the code path of AssumeRoleWithWebIdentity.

- ``GET /sso``: the providers one can sign in with;
- ``GET /sso/oidc/<provider>``: starts a login (state, nonce and the PKCE verifier are kept in
  the server-side broker session, never in the browser);
- ``GET /sso/oidc/callback``: checks ``state`` (once: a replayed callback finds nothing), redeems
  the code, verifies the ID token and its ``nonce``, then offers the roles whose trust policy
  allows ``sts:AssumeRoleWithWebIdentity`` for this token;
- ``POST /sso/role``: the role picker's form (CSRF token required).

Credentials are issued by the ``AssumeRoleWithWebIdentity`` operation itself (same checks, same
audit event) and shown only in the body of a ``no-store`` response: never in a URL or a log.
Errors show a fixed safe message and the request id; the details go to the log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from flask import Blueprint, Response, current_app, make_response, render_template
from flask import request as flask_request

from fedbroker.credentials.sealing import rp_secret_context
from fedbroker.directory.ids import new_request_id
from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import FedbrokerError
from fedbroker.iam.api import RequestMeta
from fedbroker.iam.context import Services
from fedbroker.sts import api as sts_api
from fedbroker.sts.api import StsContext
from fedbroker.sts.web_identity import provider_lookup, trusting_roles
from fedbroker.web.sso_sessions import LIFETIME, PendingLogin, SessionTable, WebSession

blueprint = Blueprint("sso", __name__, url_prefix="/sso", template_folder="templates")
log = logging.getLogger("fedbroker.sso")

COOKIE = "fedbroker_sso"
PENDING_LOGINS = 8  # logins started in one browser session and not finished
HTTP_TIMEOUT = 10
MAX_RESPONSE = 256 * 1024
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
_UNSAFE = re.compile(r"[^\w+=,.@-]")


class SsoError(Exception):
    """A sign-in failure: ``message`` is shown, ``detail`` only logged."""

    def __init__(self, message: str, detail: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.status = status


# --- helpers -------------------------------------------------------------------------------


def _services() -> Services:
    services: Services = current_app.extensions["fedbroker.services"]
    return services


def _table() -> SessionTable:
    return SessionTable(_services())


def _meta(request_id: str) -> RequestMeta:
    return RequestMeta(
        request_id=request_id,
        source_ip=flask_request.remote_addr or "unknown",
        user_agent=flask_request.headers.get("User-Agent", "")[:256],
        secure_transport=flask_request.scheme == "https",
    )


def _page(template: str, status: int = 200, **values: Any) -> Response:
    response = make_response(render_template(template, **values), status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _error(error: SsoError, request_id: str) -> Response:
    log.warning("sso request %s failed: %s", request_id, error.detail)
    return _page("sso_error.html", error.status, message=error.message, request_id=request_id)


def _set_cookie(response: Response, sid: str) -> None:
    response.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="Lax",
        secure=bool(current_app.config.get("SSO_SECURE_COOKIE", True)),
        path="/sso",
    )


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


def _rp_providers(services: Services) -> list[Entity]:
    found: list[Entity] = []
    for account in services.store.list_accounts():
        for entity in services.store.list_entities(account.id, Kind.OIDC_PROVIDER):
            if entity.attrs.get("rp_client_id") and entity.attrs.get("rp_client_secret_sealed"):
                found.append(entity)
    return found


def _rp_provider(services: Services, name: str) -> Entity:
    for entity in _rp_providers(services):
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


def _session_name(claims: Any, subject: str) -> str:
    email = claims.get("email")
    if isinstance(email, str) and _SESSION_NAME.fullmatch(email):
        return email
    name = _UNSAFE.sub("-", subject)[:64]
    return name if len(name) >= 2 else f"{name}--"


# --- routes ----------------------------------------------------------------------------------


@blueprint.get("")
def start_page() -> Response:
    providers = [p.name for p in _rp_providers(_services())]
    return _page("sso_start.html", providers=providers)


@blueprint.get("/oidc/<path:name>")
def start_oidc(name: str) -> Response:
    request_id = new_request_id()
    services = _services()
    now = services.clock.now()
    try:
        provider = _rp_provider(services, name)
        discovery = _discovery(provider)
    except SsoError as error:
        return _error(error, request_id)
    table = _table()
    sid = flask_request.cookies.get(COOKIE)
    session = table.get(sid, now)
    if session is None or sid is None:
        sid, session = table.create(now)
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
    table.save(sid, session, now)
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
    _set_cookie(response, sid)
    return response


@blueprint.get("/oidc/callback")
def callback() -> Response:
    request_id = new_request_id()
    services = _services()
    now = services.clock.now()
    try:
        table = _table()
        sid = flask_request.cookies.get(COOKIE, "")
        session = table.get(sid, now)
        state = flask_request.args.get("state", "")
        login = session.pending.pop(state, None) if session is not None and state else None
        if session is None or login is None:
            raise SsoError(
                "this sign-in was not started here, has expired or was already used",
                "callback with an unknown state or without a broker session",
            )
        table.save(sid, session, now)
        if not services.store.remember_assertion(f"oidc-state:{state}", now + LIFETIME, now):
            raise SsoError("this sign-in was already used", "state seen before (replay)")
        if "error" in flask_request.args:
            raise SsoError(
                "the identity provider did not sign you in",
                f"provider error `{flask_request.args.get('error', '')[:128]}`",
            )
        code = flask_request.args.get("code", "")
        if not code:
            raise SsoError("the identity provider did not sign you in", "callback without code")
        provider = _rp_provider(services, login.provider)
        id_token = _redeem(services, provider, code, login)
        ctx = StsContext(services, None, _meta(request_id), now)
        try:
            verified = services.web_identity.verify(
                id_token, provider_lookup(ctx, login.account_id), now
            )
        except FedbrokerError as error:
            raise SsoError(
                "the identity provider's token could not be validated",
                f"ID token: {getattr(error, 'detail', None) or error.message}",
            ) from None
        if verified.provider.name != provider.name:
            raise SsoError(
                "the identity provider's token could not be validated",
                f"ID token from `{verified.provider.name}`, expected `{provider.name}`",
            )
        nonce = verified.claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(
            nonce.encode(), login.nonce.encode()
        ):
            raise SsoError(
                "the identity provider's token could not be validated", "wrong or missing nonce"
            )
        session_name = _session_name(verified.claims, verified.subject)
        roles = trusting_roles(ctx, verified, session_name)
    except SsoError as error:
        return _error(error, request_id)
    session.id_token = id_token
    session.session_name = session_name
    session.offered = tuple(role.arn for role in roles)
    table.save(sid, session, now)
    if not roles:
        log.info("sso request %s: no role trusts %s", request_id, verified.subject)
        return _page(
            "sso_none.html",
            403,
            subject=verified.subject,
            provider=provider.name,
            request_id=request_id,
        )
    if len(roles) == 1:
        return _issue(services, session, roles[0].arn, request_id)
    return _page(
        "sso_pick.html",
        roles=[
            {
                "arn": r.arn,
                "name": r.name,
                "account": r.account_id,
                "description": str(r.attrs.get("description") or ""),
            }
            for r in roles
        ],
        csrf=session.csrf,
        subject=verified.subject,
        provider=provider.name,
    )


@blueprint.post("/role")
def pick_role() -> Response:
    request_id = new_request_id()
    services = _services()
    now = services.clock.now()
    try:
        table = _table()
        sid = flask_request.cookies.get(COOKIE, "")
        session = table.get(sid, now)
        if session is None:
            raise SsoError("your sign-in has expired; sign in again", "no broker session")
        table.save(sid, session, now)
        token = flask_request.form.get("csrf", "")
        if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise SsoError("the form could not be accepted; sign in again", "bad CSRF token", 403)
        role_arn = flask_request.form.get("role", "")
        if session.id_token is None or role_arn not in session.offered:
            raise SsoError("that role is not offered to you", f"role `{role_arn[:256]}`", 403)
    except SsoError as error:
        return _error(error, request_id)
    return _issue(services, session, role_arn, request_id)


def _redeem(services: Services, provider: Entity, code: str, login: PendingLogin) -> str:
    """The token request (RFC 6749 §4.1.3, client_secret_basic, with the PKCE verifier)."""
    client_id = str(provider.attrs["rp_client_id"])
    try:
        sealed = base64.b64decode(str(provider.attrs["rp_client_secret_sealed"]))
        secret = services.master_key.open(sealed, rp_secret_context(provider.name)).decode()
    except (FedbrokerError, ValueError) as error:
        raise SsoError(
            "sign-in through this provider is misconfigured",
            f"client secret of `{provider.name}` cannot be opened: {error}",
            500,
        ) from None
    basic = base64.b64encode(
        f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}".encode()
    ).decode()
    body = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": _redirect_uri(),
            "code_verifier": login.verifier,
        }
    ).encode()
    answer = _http_json(
        str(_discovery(provider)["token_endpoint"]),
        body,
        {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    id_token = answer.get("id_token")
    if not isinstance(id_token, str):
        raise SsoError("the identity provider did not sign you in", "token answer without id_token")
    return id_token


def _issue(services: Services, session: WebSession, role_arn: str, request_id: str) -> Response:
    """Credentials for ``role_arn`` through AssumeRoleWithWebIdentity itself."""
    assert session.id_token is not None and session.session_name is not None
    form = {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": role_arn,
        "RoleSessionName": session.session_name,
        "WebIdentityToken": session.id_token,
    }
    try:
        result = sts_api.execute(
            services, None, _meta(request_id), "AssumeRoleWithWebIdentity", form
        )
    except FedbrokerError as error:
        return _error(
            SsoError(
                "no credentials could be issued for that role",
                f"{error.code}: {error.message} {getattr(error, 'detail', None) or ''}",
                403,
            ),
            request_id,
        )
    creds = result["Credentials"]
    return _page(
        "sso_session.html",
        arn=result["AssumedRoleUser"]["Arn"],
        expiration=creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
        region=services.region,
    )
