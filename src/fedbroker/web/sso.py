"""Browser sign-in (issue 5): the pages every identity provider shares.

Each kind of provider signs people in its own way (:mod:`fedbroker.web.sso_oidc`, the SAML
module) and ends with :func:`finish_sign_in`, which keeps the :class:`~fedbroker.sso.SignedIn`
identity in a fresh server-side broker session (:mod:`fedbroker.web.sso_sessions`; a new
session id at sign-in, so an id planted before it is worth nothing) and shows what follows:

- no role trusts this sign-in: a page naming, for each role whose trust policy names the
  provider, the conditions that did not hold (operator, key, your value);
- one role: its credentials at once; several: the role picker (``POST /sso/role``);
- ``GET /sso/roles``: "switch role", the picker again from the stored identity, with no new
  sign-in while the broker session lasts; ``POST /sso/signout`` ends the broker session (and
  then, for a SAML sign-in whose IdP supports it, goes on to SAML single logout).

Credentials come from :func:`fedbroker.sso.issue_audited` (the role's trust policy decides again
each time; one audit event named after the API call, ``via: broker-session``) and appear only
in the body of a ``no-store`` page: never in a URL or a log. Every form carries the session's
CSRF token. Errors show a fixed safe message and the request id; the details go to the log.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, make_response, render_template
from flask import request as flask_request

from fedbroker.directory.ids import new_request_id
from fedbroker.errors import FedbrokerError, ValidationError
from fedbroker.iam.api import RequestMeta
from fedbroker.iam.context import Services
from fedbroker.sso import (
    InvalidCsrfTokenError,
    Issued,
    OfferedRole,
    SignedIn,
    audit_sign_in,
    explain_refusals,
    issue_audited,
    offered_roles,
    refuse_audited,
)
from fedbroker.sts.api import StsContext
from fedbroker.web.sso_sessions import IDLE, LIFETIME, SessionTable, WebSession

blueprint = Blueprint("sso", __name__, url_prefix="/sso", template_folder="templates")
log = logging.getLogger("fedbroker.sso")

COOKIE = "fedbroker_sso"
MAX_DURATION_FIELD = 12  # characters of the requested-duration field


class SsoError(Exception):
    """A sign-in failure: ``message`` is shown, ``detail`` only logged."""

    def __init__(self, message: str, detail: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class SignInOption:
    """One way to sign in, for the start page."""

    label: str
    url: str
    kind: str  # "OpenID Connect", "SAML"


# Each provider module adds a function listing its configured providers.
SIGN_IN_OPTIONS: list[Callable[[Services], list[SignInOption]]] = []

# Called once a sign-in succeeded, before the roles are offered; the first answer that is not
# None is sent instead (web/cli_auth.py: back to the CLI authorization that asked for it).
AFTER_SIGN_IN: list[Callable[[], Response | None]] = []

# Called once a broker session has ended at sign-out (with who it held, the request id, now);
# the first answer that is not None is sent instead of the signed-out page (web/sso_saml.py:
# on to the IdP with a LogoutRequest).
AFTER_SIGN_OUT: list[Callable[[SignedIn, str, datetime], Response | None]] = []


# --- shared helpers (also used by the provider modules) --------------------------------------


def services() -> Services:
    found: Services = current_app.extensions["fedbroker.services"]
    return found


def table() -> SessionTable:
    idle = current_app.config.get("SSO_IDLE_TIMEOUT", IDLE)
    lifetime = current_app.config.get("SSO_SESSION_LIFETIME", LIFETIME)
    return SessionTable(services(), idle, lifetime)


def request_meta(request_id: str) -> RequestMeta:
    return RequestMeta(
        request_id=request_id,
        source_ip=flask_request.remote_addr or "unknown",
        user_agent=flask_request.headers.get("User-Agent", "")[:256],
        secure_transport=flask_request.scheme == "https",
    )


def sts_context(request_id: str, now: datetime) -> StsContext:
    return StsContext(services(), None, request_meta(request_id), now)


def page(template: str, status: int = 200, **values: Any) -> Response:
    response = make_response(render_template(template, **values), status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def error_page(error: SsoError, request_id: str) -> Response:
    log.warning("sso request %s failed: %s", request_id, error.detail)
    return page("sso_error.html", error.status, message=error.message, request_id=request_id)


def sign_in_failed(
    error: SsoError, request_id: str, *, kind: str, provider_name: str | None
) -> Response:
    """A failed sign-in: audited (``ConsoleLogin``, ``Failure``, the precise reason), logged,
    and the error page with the safe message and the request id."""
    audit_sign_in(
        services(),
        request_meta(request_id),
        kind=kind,
        provider_name=provider_name,
        failure=error.detail,
    )
    return error_page(error, request_id)


def set_cookie(response: Response, sid: str) -> None:
    response.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="Lax",
        secure=bool(current_app.config.get("SSO_SECURE_COOKIE", True)),
        path="/sso",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(
        COOKIE,
        path="/sso",
        httponly=True,
        samesite="Lax",
        secure=bool(current_app.config.get("SSO_SECURE_COOKIE", True)),
    )


def current_session(now: datetime) -> tuple[str, WebSession] | None:
    """The browser's broker session, if it has a live one."""
    sid = flask_request.cookies.get(COOKIE, "")
    session = table().get(sid, now)
    return None if session is None else (sid, session)


def session_for_login(now: datetime) -> tuple[str, WebSession]:
    """The browser's broker session, or a new one, to keep a login being started."""
    found = current_session(now)
    return found if found is not None else table().create(now)


def _signed_in(session: WebSession) -> SignedIn | None:
    if session.signed_in is None:
        return None
    try:
        return SignedIn.from_json(session.signed_in)
    except (ValueError, TypeError) as error:
        log.warning("unreadable signed-in identity dropped: %s", error)
        return None


def _check_csrf(session: WebSession) -> None:
    token = flask_request.form.get("csrf", "")
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise SsoError("the form could not be accepted; reload the page", "bad CSRF token", 403)


# --- after any sign-in -------------------------------------------------------------------------


def finish_sign_in(who: SignedIn, request_id: str) -> Response:
    """End of every successful sign-in: a new broker session holding ``who`` (the session the
    login started in, if any, is dropped), then the roles on offer: none, one, or the picker."""
    now = services().clock.now()
    sessions = table()
    sessions.delete(flask_request.cookies.get(COOKIE))
    sid, session = sessions.create(now)
    session.signed_in = who.to_json()
    sessions.save(sid, session, now)
    log.info("sso request %s: %s signed in through %s", request_id, who.subject, who.provider_name)
    audit_sign_in(
        services(),
        request_meta(request_id),
        kind=who.kind,
        provider_name=who.provider_name,
        who=who,
    )
    for hook in AFTER_SIGN_IN:
        resumed = hook()
        if resumed is not None:
            set_cookie(resumed, sid)
            return resumed
    response = _offer(who, session, request_id, now, straight_through=True)
    set_cookie(response, sid)
    return response


def _offer(
    who: SignedIn,
    session: WebSession,
    request_id: str,
    now: datetime,
    *,
    straight_through: bool,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    ctx = sts_context(request_id, now)
    roles = offered_roles(ctx, who)
    if not roles:
        refusals = explain_refusals(ctx, who)
        log.info(
            "sso request %s: no role trusts %s (%d refusals explained)",
            request_id,
            who.subject,
            len(refusals),
        )
        return page(
            "sso_none.html",
            403,
            who=who,
            refusals=refusals,
            csrf=session.csrf,
            request_id=request_id,
        )
    if len(roles) == 1 and straight_through:
        try:
            return _issue(who, session, roles[0], None, request_id)
        except FedbrokerError as error:  # audited; e.g. the trust changed since the offer
            return error_page(
                SsoError(
                    "no credentials could be issued for that role", error.audit_message(), 403
                ),
                request_id,
            )
    return _picker(who, session, roles, problem=problem, status=status)


def _picker(
    who: SignedIn,
    session: WebSession,
    roles: list[OfferedRole],
    *,
    problem: str | None = None,
    status: int = 200,
    chosen: str | None = None,
    duration: str = "",
) -> Response:
    accounts: dict[str, list[OfferedRole]] = {}
    for role in roles:
        accounts.setdefault(role.account_id, []).append(role)
    return page(
        "sso_pick.html",
        status,
        who=who,
        accounts=accounts,
        csrf=session.csrf,
        problem=problem,
        chosen=chosen or roles[0].arn,
        duration=duration,
    )


def _issue(
    who: SignedIn,
    session: WebSession,
    role: OfferedRole,
    duration_seconds: int | None,
    request_id: str,
) -> Response:
    issued: Issued = issue_audited(
        services(), request_meta(request_id), who, role.arn, duration_seconds, "broker-session"
    )
    return _session_page(who, session, role, issued, duration_seconds)


def _session_page(
    who: SignedIn,
    session: WebSession,
    role: OfferedRole,
    issued: Issued,
    duration_seconds: int | None,
) -> Response:
    creds = issued.credentials
    broker_url = flask_request.host_url.rstrip("/")
    return page(
        "sso_session.html",
        who=who,
        role=role,
        issued=issued,
        arn=issued.assumed_role_arn,
        expiration=issued.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        access_key_id=creds.access_key_id,
        secret_access_key=creds.secret_access_key,
        session_token=creds.session_token,
        region=services().region,
        broker_url=broker_url,
        profile=_profile_name(role),
        duration_seconds=duration_seconds,
        csrf=session.csrf,
    )


def _profile_name(role: OfferedRole) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in role.name)[:64] or "fedbroker"


@blueprint.app_template_filter("duration_text")
def duration_text(seconds: int) -> str:
    """``3600`` → ``1 h``, ``5400`` → ``1 h 30 min``, ``900`` → ``15 min``."""
    hours, minutes = divmod(int(seconds) // 60, 60)
    parts = ([f"{hours} h"] if hours else []) + ([f"{minutes} min"] if minutes else [])
    return " ".join(parts) or f"{seconds} s"


# --- routes ------------------------------------------------------------------------------------


@blueprint.get("")
def start_page() -> Response:
    options = [option for lister in SIGN_IN_OPTIONS for option in lister(services())]
    now = services().clock.now()
    found = current_session(now)
    who = _signed_in(found[1]) if found is not None else None
    return page(
        "sso_start.html",
        options=options,
        who=who,
        csrf=found[1].csrf if found is not None else None,
    )


@blueprint.get("/<path:name>")
def start_named(name: str) -> Response:
    """``/sso/<provider>``: a login through the provider of that name, started at once (for
    bookmarks and IdP dashboards). A name registered as both an OIDC and a SAML provider gets
    the start page with just those two."""
    options = [
        option
        for lister in SIGN_IN_OPTIONS
        for option in lister(services())
        if option.label == name
    ]
    if not options:
        error = SsoError("no identity provider of that name", f"no provider `{name[:256]}`", 404)
        return error_page(error, new_request_id())
    if len(options) > 1:
        return page("sso_start.html", options=options, who=None, csrf=None)
    response = make_response("", 302)
    response.headers["Location"] = options[0].url
    response.headers["Cache-Control"] = "no-store"
    return response


def _signed_in_session(now: datetime) -> tuple[str, WebSession, SignedIn]:
    found = current_session(now)
    if found is None:
        raise SsoError("your sign-in has expired; sign in again", "no broker session", 401)
    sid, session = found
    who = _signed_in(session)
    if who is None:
        raise SsoError("you are not signed in; sign in first", "no signed-in identity", 401)
    return sid, session, who


@blueprint.get("/roles")
def switch_role() -> Response:
    """The role picker again, from the identity this broker session keeps."""
    request_id = new_request_id()
    now = services().clock.now()
    try:
        sid, session, who = _signed_in_session(now)
    except SsoError as error:
        return error_page(error, request_id)
    table().save(sid, session, now)
    return _offer(who, session, request_id, now, straight_through=False)


@blueprint.post("/role")
def pick_role() -> Response:
    request_id = new_request_id()
    now = services().clock.now()
    role_arn = flask_request.form.get("role", "")[:2048]
    try:
        sid, session, who = _signed_in_session(now)
        try:
            _check_csrf(session)
        except SsoError as error:
            refused = InvalidCsrfTokenError(error.message, error.detail)
            refuse_audited(
                services(), request_meta(request_id), who, role_arn, refused, "broker-session"
            )
            raise
        table().save(sid, session, now)
    except SsoError as error:
        return error_page(error, request_id)
    raw = flask_request.form.get("duration", "").strip()[:MAX_DURATION_FIELD]
    roles = offered_roles(sts_context(request_id, now), who)
    # The issue decides (the trust policy is evaluated again); the offer only describes it.
    role = next((r for r in roles if r.arn == role_arn), None) or _unlisted(who, role_arn)
    seconds: int | None = None
    if raw:
        if not raw.isdigit():
            return _picker(
                who,
                session,
                roles,
                problem="the session duration must be a whole number of seconds",
                status=400,
                chosen=role.arn,
                duration=raw,
            )
        seconds = int(raw)
    try:
        return _issue(who, session, role, seconds, request_id)
    except ValidationError as error:
        if not roles:
            return error_page(SsoError(error.message, error.audit_message()), request_id)
        return _picker(
            who, session, roles, problem=error.message, status=400, chosen=role.arn, duration=raw
        )
    except FedbrokerError as error:
        return error_page(
            SsoError("no credentials could be issued for that role", error.audit_message(), 403),
            request_id,
        )


def _unlisted(who: SignedIn, role_arn: str) -> OfferedRole:
    return OfferedRole(role_arn, role_arn.rsplit("/", 1)[-1], who.account_id, None, "", 0)


@blueprint.post("/signout")
def sign_out() -> Response:
    request_id = new_request_id()
    now = services().clock.now()
    found = current_session(now)
    if found is not None:
        sid, session = found
        try:
            _check_csrf(session)
        except SsoError as error:
            return error_page(error, request_id)
        table().delete(sid)
        who = _signed_in(session)
        if who is not None:
            log.info("sso request %s: %s signed out", request_id, who.subject)
            for hook in AFTER_SIGN_OUT:  # e.g. SAML single logout: on to the IdP
                onward = hook(who, request_id, now)
                if onward is not None:
                    return onward
    response = page("sso_signed_out.html")
    clear_cookie(response)
    return response
