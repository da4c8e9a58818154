"""The JSON endpoints of the CLI helper (issue 6), on the ``/sso/cli`` blueprint.

Errors are RFC 6749 §5.2 JSON (bearer failures: RFC 6750 §3.1 with ``WWW-Authenticate``):
``POST device_authorization`` (RFC 8628 §3.1), ``POST token`` (``authorization_code`` with its
``code_verifier``, or the device code grant), ``GET providers``, and with the CLI session as
bearer: ``GET roles``, ``POST credentials``, ``GET whoami``, ``POST revoke`` (RFC 7009 shape).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from flask import Response
from flask import request as flask_request

from fedbroker.directory.ids import new_request_id
from fedbroker.errors import FedbrokerError
from fedbroker.iam.context import Services
from fedbroker.sso import cli_device, cli_loopback, cli_sessions, service
from fedbroker.sso.cli_sessions import CliAuthError, CliSession
from fedbroker.sso.service import Issued
from fedbroker.web import sso as web_sso
from fedbroker.web.cli_auth import (
    DEVICE_GRANT,
    PORTAL_SOURCE,
    audit_event,
    bearer_session,
    blueprint,
    client_ip,
    json_answer,
    oauth_error,
    safe_params,
    session_lifetime,
    sign_in_options,
)


def _services() -> Services:
    return web_sso.services()


@blueprint.post("/device_authorization")
def device_authorization() -> Response:
    request_id = new_request_id()
    services = _services()
    params = dict(flask_request.form.items())
    try:
        if params.get("client_id", cli_sessions.CLIENT_ID) != cli_sessions.CLIENT_ID:
            raise CliAuthError("invalid_client", "unknown client", status=401)
        start = cli_device.start_device(
            services, params.get("host", ""), client_ip(), services.clock.now()
        )
    except CliAuthError as error:
        audit_event(
            "StartDeviceAuthorization", request_id, None, params=safe_params(params), error=error
        )
        return oauth_error(error, request_id)
    base = flask_request.host_url.rstrip("/") + "/sso/cli/device"
    audit_event(
        "StartDeviceAuthorization",
        request_id,
        None,
        params=safe_params(params),
        response={"expiresIn": start.expires_in, "interval": start.interval},
    )
    return json_answer(
        {
            "device_code": start.device_code,
            "user_code": start.user_code,
            "verification_uri": base,
            "verification_uri_complete": base
            + "?"
            + urllib.parse.urlencode({"user_code": start.user_code}),
            "expires_in": start.expires_in,
            "interval": start.interval,
        }
    )


# --- token endpoint --------------------------------------------------------------------------


@blueprint.post("/token")
def token() -> Response:
    request_id = new_request_id()
    services = _services()
    now = services.clock.now()
    params = dict(flask_request.form.items())
    grant_type = params.get("grant_type", "")
    try:
        if params.get("client_id", cli_sessions.CLIENT_ID) != cli_sessions.CLIENT_ID:
            raise CliAuthError("invalid_client", "unknown client", status=401)
        if grant_type == "authorization_code":
            issued = cli_loopback.redeem_code(
                services,
                params.get("code", ""),
                params.get("code_verifier", ""),
                params.get("redirect_uri", ""),
                client_ip(),
                session_lifetime(),
                now,
            )
        elif grant_type == DEVICE_GRANT:
            issued = cli_device.poll_device(
                services, params.get("device_code", ""), client_ip(), session_lifetime(), now
            )
        else:
            raise CliAuthError(
                "unsupported_grant_type",
                f"grant_type must be authorization_code or {DEVICE_GRANT}",
            )
    except CliAuthError as error:
        # Pending polls are the normal state of a device flow: not an audited refusal each.
        if error.error not in ("authorization_pending", "slow_down"):
            audit_event("CreateToken", request_id, None, params=safe_params(params), error=error)
        return oauth_error(error, request_id)
    session = issued.session
    audit_event(
        "CreateToken",
        request_id,
        session.who,
        params=safe_params(params),
        response={"cliSessionId": session.id, "expiration": session.expires.isoformat()},
    )
    return json_answer(
        {
            "access_token": issued.handle,
            "token_type": "Bearer",
            "expires_in": int((session.expires - now).total_seconds()),
            **_describe(session),
        }
    )


def _describe(session: CliSession) -> dict[str, Any]:
    who = session.who
    return {
        "session_id": session.id,
        "expiration": session.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "provider": who.provider_name,
        "subject": who.subject,
        "session_name": who.session_name,
        "account_id": who.account_id,
        "display": dict(who.display),
        "host": session.host,
    }


# --- bearer endpoints ------------------------------------------------------------------------


@blueprint.get("/providers")
def providers() -> Response:
    return json_answer(
        {"providers": [{"name": o.label, "kind": o.kind} for o in sign_in_options()]}
    )


@blueprint.get("/whoami")
def whoami() -> Response:
    request_id = new_request_id()
    try:
        session = bearer_session()
    except CliAuthError as error:
        audit_event(
            "GetCliSession", request_id, None, source=PORTAL_SOURCE, error=error, read_only=True
        )
        return oauth_error(error, request_id)
    audit_event(
        "GetCliSession",
        request_id,
        session.who,
        source=PORTAL_SOURCE,
        response={"cliSessionId": session.id},
        read_only=True,
    )
    return json_answer(_describe(session))


@blueprint.post("/revoke")
def revoke() -> Response:
    request_id = new_request_id()
    services = _services()
    handle = (
        flask_request.form.get("token")
        or flask_request.headers.get("Authorization", "").partition(" ")[2].strip()
    )
    session = cli_sessions.revoke_session(services, handle, services.clock.now())
    audit_event(
        "Logout",
        request_id,
        session.who if session else None,
        source=PORTAL_SOURCE,
        response={"cliSessionId": session.id if session else None},
    )
    return json_answer({})


@blueprint.get("/roles")
def roles() -> Response:
    request_id = new_request_id()
    services = _services()
    try:
        session = bearer_session()
    except CliAuthError as error:
        audit_event(
            "ListAccountRoles", request_id, None, source=PORTAL_SOURCE, error=error, read_only=True
        )
        return oauth_error(error, request_id)
    offered = service.offered_roles(
        web_sso.sts_context(request_id, services.clock.now()), session.who
    )
    audit_event(
        "ListAccountRoles",
        request_id,
        session.who,
        source=PORTAL_SOURCE,
        response={"roles": len(offered)},
        read_only=True,
    )
    return json_answer(
        {
            "provider": session.who.provider_name,
            "region": services.region,
            "roles": [
                {
                    "arn": r.arn,
                    "name": r.name,
                    "account_id": r.account_id,
                    "account_alias": r.account_alias,
                    "description": r.description,
                    "max_session_duration": r.max_session_duration,
                }
                for r in offered
            ],
        }
    )


@blueprint.post("/credentials")
def credentials() -> Response:
    request_id = new_request_id()
    services = _services()
    params = dict(flask_request.form.items())
    try:
        session = bearer_session()
    except CliAuthError as error:
        audit_event(
            "GetRoleCredentials",
            request_id,
            None,
            source=PORTAL_SOURCE,
            params=safe_params(params),
            error=error,
        )
        return oauth_error(error, request_id)
    role_arn = params.get("role_arn", "")
    duration: int | None = None
    raw = params.get("duration_seconds", "")
    try:
        if raw:
            if not raw.isdigit() or len(raw) > 6:
                raise CliAuthError("invalid_request", "duration_seconds must be a number")
            duration = int(raw)
        if not role_arn or len(role_arn) > 2048:
            raise CliAuthError("invalid_request", "role_arn is required")
    except CliAuthError as error:
        audit_event(
            "GetRoleCredentials",
            request_id,
            session.who,
            source=PORTAL_SOURCE,
            params=safe_params(params),
            error=error,
        )
        return oauth_error(error, request_id)
    try:
        issued = _issue(services, session, role_arn, duration, request_id)
    except CliAuthError as error:
        return oauth_error(error, request_id)
    creds = issued.credentials
    return json_answer(
        {
            "Version": 1,
            "AccessKeyId": creds.access_key_id,
            "SecretAccessKey": creds.secret_access_key,
            "SessionToken": creds.session_token,
            "Expiration": issued.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "AssumedRoleArn": issued.assumed_role_arn,
        }
    )


def _issue(
    services: Services, session: CliSession, role_arn: str, duration: int | None, request_id: str
) -> Issued:
    """Role credentials from the CLI session's identity, audited like the API call."""
    meta = web_sso.request_meta(request_id)
    try:
        return service.issue_audited(services, meta, session.who, role_arn, duration, "cli-session")
    except FedbrokerError as error:
        if error.code == "ValidationError" and "duration" in error.message.lower():
            limit = _role_limit(services, session, role_arn)
            raise CliAuthError(
                "invalid_request",
                error.message,
                extra={"max_session_duration": limit} if limit else None,
            ) from None
        raise CliAuthError(
            "access_denied",
            "no credentials could be issued for that role",
            f"{error.code}: {error.audit_message()}",
            403,
        ) from None


def _role_limit(services: Services, session: CliSession, role_arn: str) -> int | None:
    ctx = web_sso.sts_context(new_request_id(), services.clock.now())
    for role in service.offered_roles(ctx, session.who):
        if role.arn == role_arn:
            return role.max_session_duration
    return None
