"""The broker's endpoints for the CLI credential helper (issue 6), under ``/sso/cli``.

Browser pages (inside the SSO pages, on the broker web session of ``web/sso.py``):

- ``GET /sso/cli/authorize``: the loopback authorization request (RFC 6749 §4.1, PKCE S256
  RFC 7636, loopback redirect RFC 8252 §7.3); signs the user in through ``/sso`` first if
  needed, then asks them to allow the CLI; ``POST`` (CSRF token) redirects to the loopback
  with a one-time code;
- ``GET /sso/cli/device``: the device-authorization approval page (RFC 8628 §3.3): the user
  types (or follows a link with) the code, sees the requesting host, approves or denies
  (``POST``, CSRF token).

JSON endpoints for the CLI (errors as RFC 6749 §5.2 JSON; bearer errors as RFC 6750 §3.1):

- ``POST /sso/cli/device_authorization`` (RFC 8628 §3.1);
- ``POST /sso/cli/token``: ``authorization_code`` (with ``code_verifier``) or
  ``urn:ietf:params:oauth:grant-type:device_code``; answers the CLI session handle as
  ``access_token`` (``token_type`` Bearer, ``expires_in`` = the session's remaining life);
- ``GET /sso/cli/providers``; with ``Authorization: Bearer <handle>``: ``GET /sso/cli/roles``,
  ``POST /sso/cli/credentials`` (``role_arn``, ``duration_seconds``: role credentials, trust
  evaluated again), ``GET /sso/cli/whoami``, ``POST /sso/cli/revoke`` (RFC 7009 shape).

Every call emits one audit event; the handle, codes and credentials never appear in one.
"""

from __future__ import annotations

import hmac
import logging
import urllib.parse
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, make_response, redirect
from flask import request as flask_request

from fedbroker.audit.events import AuditEvent, UserIdentity
from fedbroker.directory.ids import new_request_id
from fedbroker.iam.context import Services
from fedbroker.sso import cli_device, cli_loopback, cli_sessions
from fedbroker.sso.cli_sessions import CliAuthError, CliSession
from fedbroker.sso.identity import SignedIn
from fedbroker.web import sso as web_sso

blueprint = Blueprint("sso_cli", __name__, url_prefix="/sso/cli", template_folder="templates")
log = logging.getLogger("fedbroker.sso.cli")

RESUME_COOKIE = "fedbroker_cli_resume"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
OAUTH_SOURCE = "sso-oauth.amazonaws.com"
PORTAL_SOURCE = "sso.amazonaws.com"


# --- helpers -------------------------------------------------------------------------------


def _services() -> Services:
    return web_sso.services()


def session_lifetime() -> timedelta:
    value = current_app.config.get("CLI_SESSION_LIFETIME", cli_sessions.DEFAULT_LIFETIME)
    return value if isinstance(value, timedelta) else timedelta(seconds=int(value))


def client_ip() -> str:
    return flask_request.remote_addr or "unknown"


def _identity(who: SignedIn | None) -> UserIdentity:
    if who is None:
        return UserIdentity("Unknown")
    return UserIdentity(
        "SAMLUser" if who.kind == "saml" else "WebIdentityUser",
        principal_id=f"{who.provider_name}:{who.subject}",
        account_id=who.account_id,
        user_name=who.subject,
        identity_provider=who.provider_name,
        invoked_by="fedbroker-cli",
    )


def audit_event(
    name: str,
    request_id: str,
    who: SignedIn | None,
    *,
    source: str = OAUTH_SOURCE,
    params: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    error: CliAuthError | None = None,
    read_only: bool = False,
) -> None:
    services = _services()
    message = None
    if error is not None:
        log.info("cli request %s refused (%s): %s", request_id, error.error, error.detail)
        message = error.description
        if error.detail != error.description:
            message = f"{error.description} ({error.detail})"
    services.audit.emit(
        AuditEvent(
            event_time=services.clock.now(),
            event_source=source,
            event_name=name,
            region=services.region,
            source_ip=client_ip(),
            user_agent=flask_request.headers.get("User-Agent", "")[:256],
            user_identity=_identity(who),
            request_id=request_id,
            request_parameters=params or {},
            response_elements=response,
            error_code=error.error if error else None,
            error_message=message,
            read_only=read_only,
            recipient_account_id=who.account_id if who else None,
        )
    )


def json_answer(body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def oauth_error(error: CliAuthError, request_id: str) -> Response:
    """RFC 6749 §5.2 JSON; RFC 6750 §3 ``WWW-Authenticate`` for bearer failures."""
    response = json_answer(
        {
            "error": error.error,
            "error_description": error.description,
            "request_id": request_id,
            **error.extra,
        },
        error.status,
    )
    if error.status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer error="{error.error}"'
    return response


def _bearer() -> str:
    header = flask_request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise CliAuthError(
            "invalid_token", "an `Authorization: Bearer` CLI session is required", status=401
        )
    return value.strip()


def bearer_session() -> CliSession:
    services = _services()
    return cli_sessions.find_session(services, _bearer(), services.clock.now())


def _browser() -> tuple[SignedIn | None, str | None]:
    """The identity of the browser's broker web session (if signed in) and its CSRF token."""
    found = web_sso.current_session(_services().clock.now())
    if found is None:
        return None, None
    session = found[1]
    if session.signed_in is None:
        return None, session.csrf
    try:
        return SignedIn.from_json(session.signed_in), session.csrf
    except (ValueError, TypeError, KeyError):
        return None, session.csrf


def _csrf_ok(expected: str | None) -> bool:
    given = flask_request.form.get("csrf", "")
    return bool(expected and given and hmac.compare_digest(given.encode(), expected.encode()))


def sign_in_options() -> list[web_sso.SignInOption]:
    return [option for lister in web_sso.SIGN_IN_OPTIONS for option in lister(_services())]


def _sign_in_first(provider: str | None) -> Response:
    """Send the browser to sign in, and bring it back here afterwards (see ``resume``)."""
    here = flask_request.full_path if flask_request.query_string else flask_request.path
    target = "/sso"
    for option in sign_in_options():
        if provider and option.label == provider:
            target = option.url
    response = make_response(redirect(target, 302))
    response.set_cookie(
        RESUME_COOKIE,
        here,
        max_age=int(cli_device.DEVICE_LIFETIME.total_seconds()),
        httponly=True,
        samesite="Lax",
        secure=bool(current_app.config.get("SSO_SECURE_COOKIE", True)),
        path="/sso",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def resume_after_sign_in() -> Response | None:
    """Registered in ``web/sso.py``'s ``AFTER_SIGN_IN``: once a sign-in succeeded, back to the
    CLI request that sent the browser to sign in. The cookie holds only a path under
    ``/sso/cli/`` (checked, so it cannot redirect anywhere else)."""
    path = flask_request.cookies.get(RESUME_COOKIE, "")
    if not path.startswith("/sso/cli/") or "//" in path or "\\" in path:
        return None
    response = make_response(redirect(path, 302))
    response.delete_cookie(RESUME_COOKIE, path="/sso")
    response.headers["Cache-Control"] = "no-store"
    return response


def _page(template: str, status: int = 200, **values: Any) -> Response:
    return web_sso.page(template, status, **values)


def _page_error(error: CliAuthError, request_id: str) -> Response:
    return web_sso.error_page(
        web_sso.SsoError(error.description, error.detail, error.status), request_id
    )


# --- loopback authorization ------------------------------------------------------------------


@blueprint.get("/authorize")
def authorize() -> Response:
    request_id = new_request_id()
    params = {k: v for k, v in flask_request.args.items()}
    try:
        request = cli_loopback.check_authorize(params)
    except CliAuthError as error:
        audit_event("Authorize", request_id, None, params=safe_params(params), error=error)
        return _page_error(error, request_id)
    who, csrf = _browser()
    if who is None:
        return _sign_in_first(params.get("provider"))
    return _page(
        "sso_cli_consent.html",
        who=who,
        host=request.host,
        csrf=csrf,
        params={
            "redirect_uri": request.redirect_uri,
            "code_challenge": request.code_challenge,
            "code_challenge_method": "S256",
            "state": request.state,
            "host": request.host,
        },
    )


@blueprint.post("/authorize")
def authorize_decision() -> Response:
    request_id = new_request_id()
    services = _services()
    now = services.clock.now()
    params = {k: v for k, v in flask_request.form.items() if k not in ("csrf", "decision")}
    who, csrf = _browser()
    try:
        request = cli_loopback.check_authorize(params)
        if who is None:
            raise CliAuthError(
                "access_denied", "your sign-in has expired; sign in again", status=403
            )
        if not _csrf_ok(csrf):
            raise CliAuthError(
                "access_denied",
                "the form could not be accepted; sign in again",
                "bad CSRF token",
                403,
            )
    except CliAuthError as error:
        audit_event("Authorize", request_id, who, params=safe_params(params), error=error)
        return _page_error(error, request_id)
    query: dict[str, str]
    if flask_request.form.get("decision") == "allow":
        code = cli_loopback.issue_code(services, who, request, client_ip(), now)
        query = {"code": code}
        audit_event(
            "Authorize", request_id, who, params=safe_params(params), response={"decision": "allow"}
        )
    else:
        query = {"error": "access_denied", "error_description": "the user denied the sign-in"}
        audit_event(
            "Authorize", request_id, who, params=safe_params(params), response={"decision": "deny"}
        )
    if request.state:
        query["state"] = request.state
    separator = "&" if "?" in request.redirect_uri else "?"
    response = make_response("", 302)
    response.headers["Location"] = request.redirect_uri + separator + urllib.parse.urlencode(query)
    response.headers["Cache-Control"] = "no-store"
    return response


def safe_params(params: dict[str, str]) -> dict[str, str]:
    """Request parameters for the audit event: codes, verifiers and handles left out."""
    keep = (
        "client_id",
        "redirect_uri",
        "response_type",
        "code_challenge_method",
        "host",
        "grant_type",
        "provider",
        "role_arn",
        "duration_seconds",
    )
    return {k: v[:256] for k, v in params.items() if k in keep}


# --- device authorization --------------------------------------------------------------------


@blueprint.get("/device")
def device_page() -> Response:
    request_id = new_request_id()
    services = _services()
    who, csrf = _browser()
    if who is None:
        return _sign_in_first(flask_request.args.get("provider"))
    user_code = flask_request.args.get("user_code", "")
    if not user_code:
        return _page("sso_cli_device.html", who=who, csrf=csrf, grant=None, error=None)
    try:
        _, grant = cli_device.find_device(services, user_code, services.clock.now())
    except CliAuthError as error:
        audit_event(
            "ApproveDeviceAuthorization", request_id, who, source=PORTAL_SOURCE, error=error
        )
        return _page(
            "sso_cli_device.html", 400, who=who, csrf=csrf, grant=None, error=error.description
        )
    return _page(
        "sso_cli_device.html",
        who=who,
        csrf=csrf,
        grant=grant,
        user_code=cli_device.format_user_code(grant.user_code),
        error=None,
    )


@blueprint.post("/device")
def device_decision() -> Response:
    request_id = new_request_id()
    services = _services()
    who, csrf = _browser()
    approve = flask_request.form.get("decision") == "approve"
    name = "ApproveDeviceAuthorization" if approve else "DenyDeviceAuthorization"
    try:
        if who is None:
            raise CliAuthError(
                "access_denied", "your sign-in has expired; sign in again", status=403
            )
        if not _csrf_ok(csrf):
            raise CliAuthError(
                "access_denied",
                "the form could not be accepted; sign in again",
                "bad CSRF token",
                403,
            )
        grant = cli_device.decide_device(
            services, flask_request.form.get("user_code", ""), who, approve, services.clock.now()
        )
    except CliAuthError as error:
        audit_event(name, request_id, who, source=PORTAL_SOURCE, error=error)
        return _page_error(error, request_id)
    audit_event(
        name,
        request_id,
        who,
        source=PORTAL_SOURCE,
        params={"host": grant.host, "sourceIPAddressOfDevice": grant.source_ip},
    )
    return _page("sso_cli_done.html", approved=approve, host=grant.host)


web_sso.AFTER_SIGN_IN.append(resume_after_sign_in)
