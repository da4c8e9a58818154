"""Browser sign-in through a registered SAML 2.0 identity provider (issue 5).

The broker is a SAML service provider per registered SAML provider ``NAME`` (IAM's
``CreateSAMLProvider``), under its public URL (setting ``issuer_url``):

- ``GET /sso/saml/NAME/metadata``: the SP metadata to give the IdP (entity id: this URL; ACS
  below; the SP signing certificate and the encryption certificate(s); signed). The SP keys
  are made on first use, or with ``fedbroker sso saml-keys``;
- ``GET /sso/saml/NAME``: starts an SP-initiated login: an ``AuthnRequest`` through the
  HTTP-Redirect binding (signed when the IdP's metadata wants it); its id is kept in the
  server-side broker session as a pending login;
- ``GET /sso/saml/NAME/sls``: single logout (SP-initiated only). Sign-out (``POST
  /sso/signout``) of a sign-in through NAME ends the broker session, then, when the IdP's
  metadata has an HTTP-Redirect ``SingleLogoutService``, sends the browser there with a signed
  ``LogoutRequest`` (the NameID and SessionIndex of the sign-in), its id kept in a fresh broker
  session that holds nothing else; the IdP's ``LogoutResponse`` comes back here and must answer
  that request (``InResponseTo``, once; its signature checked when signed; status
  ``Success``). A ``LogoutRequest`` the IdP starts is not handled (not implemented);
- ``POST /sso/saml/NAME/acs``: the assertion consumer service (HTTP-POST binding). The
  response is verified by the code path of AssumeRoleWithSAML
  (:func:`fedbroker.sts.saml.verify_with_provider`: signed assertion, audience, recipient,
  time with the provider's clock skew, replay cache, SHA-1 only by opt-in, encrypted
  assertions with the provider's keys and required where it says so) and must answer a
  request *this browser* started (``InResponseTo``, once); an unsolicited (IdP-initiated)
  response only where the provider allows it (``fedbroker sso configure-saml
  --idp-initiated``). The NameID must be in a format the IdP's metadata declares.

Then :func:`fedbroker.web.sso.finish_sign_in` offers the roles. Every sign-in attempt is one
audit event (``AssumeRoleWithSAML``, ``additionalEventData.via`` ``broker-sign-in``), with the
precise reason of a refusal; the page shows a fixed safe message and the request id.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from flask import Response, make_response, url_for
from flask import request as flask_request

from fedbroker.audit.events import UserIdentity
from fedbroker.directory.ids import new_request_id
from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import FedbrokerError
from fedbroker.federation.saml_login import (
    KeyPair,
    NameId,
    authn_request,
    in_response_to_of,
    logout_request,
    logout_response_in_response_to,
    sp_metadata,
    supports_logout,
    verify_logout_response,
)
from fedbroker.federation.saml_metadata import IdpMetadata
from fedbroker.federation.saml_response import (
    INVALID,
    MAX_RESPONSE_CHARS,
    InvalidSamlResponseError,
    SamlAssertion,
)
from fedbroker.iam import saml_keys
from fedbroker.iam.context import Services
from fedbroker.iam.saml_options import options_of
from fedbroker.sso import SignedIn, signed_in_from_saml
from fedbroker.sts.api import StsContext, run_audited
from fedbroker.sts.saml import (
    browser_sp,
    check_metadata_valid,
    name_qualifier,
    verify_with_provider,
)
from fedbroker.web.sso import (
    AFTER_SIGN_OUT,
    SIGN_IN_OPTIONS,
    SignInOption,
    SsoError,
    blueprint,
    clear_cookie,
    current_session,
    error_page,
    finish_sign_in,
    page,
    request_meta,
    services,
    session_for_login,
    set_cookie,
    sts_context,
    table,
)
from fedbroker.web.sso_sessions import PendingLogin, WebSession

log = logging.getLogger("fedbroker.sso")

PENDING_LOGINS = 8
NOT_VALID = "the identity provider's response could not be validated"
NOT_STARTED = "this sign-in was not started here, has expired or was already used"
NO_IDP_INITIATED = "sign-in through this identity provider must start here"
KIND = "saml"
LOGOUT_KIND = "saml-logout"
NOT_SIGNED_OUT = (
    "the identity provider did not confirm the sign-out there; your broker session has ended"
)


def _saml_providers(found_in: Services) -> list[Entity]:
    return [
        entity
        for account in found_in.store.list_accounts()
        for entity in found_in.store.list_entities(account.id, Kind.SAML_PROVIDER)
        if isinstance(entity.attrs.get("idp"), dict)
    ]


def _options(found_in: Services) -> list[SignInOption]:
    return [
        SignInOption(p.name, url_for("sso.start_saml", name=p.name), "SAML")
        for p in _saml_providers(found_in)
    ]


SIGN_IN_OPTIONS.append(_options)


def _provider(found_in: Services, name: str) -> Entity:
    for entity in _saml_providers(found_in):
        if entity.name == name:
            return entity
    raise SsoError("no identity provider of that name", f"no SAML provider `{name[:256]}`", 404)


def _with_keys(found_in: Services, provider: Entity) -> tuple[Entity, KeyPair]:
    """``provider`` with its SP keys (made and stored on first use), and its signing key."""
    try:
        made = saml_keys.ensure_sp_keys(found_in.master_key, provider, found_in.clock.now())
        if made is not None:
            found_in.store.update_entity(made)
            log.info("SAML SP keys made for %s", provider.arn)
            provider = made
        key, cert = saml_keys.open_signing_key(found_in.master_key, provider)
    except FedbrokerError as error:
        raise SsoError(
            "sign-in through this provider is misconfigured", error.audit_message(), 500
        ) from None
    return provider, KeyPair(key, cert)


def _idp(provider: Entity) -> IdpMetadata:
    return IdpMetadata.from_json(provider.attrs["idp"])  # type: ignore[arg-type]


@blueprint.get("/saml/<name>/metadata")
def saml_metadata(name: str) -> Response:
    request_id = new_request_id()
    found_in = services()
    try:
        provider, signing = _with_keys(found_in, _provider(found_in, name))
        ctx = sts_context(request_id, found_in.clock.now())
        document = sp_metadata(
            browser_sp(ctx, provider),
            _idp(provider),
            signing,
            [key.certificate for key in saml_keys.private_keys(provider)[:1]],
        )
    except SsoError as error:
        return error_page(error, request_id)
    response = make_response(document, 200)
    response.headers["Content-Type"] = "application/samlmetadata+xml"
    return response


@blueprint.get("/saml/<name>")
def start_saml(name: str) -> Response:
    request_id = new_request_id()
    found_in = services()
    now = found_in.clock.now()
    try:
        provider, signing = _with_keys(found_in, _provider(found_in, name))
        ctx = sts_context(request_id, now)
        try:
            start = authn_request(browser_sp(ctx, provider), _idp(provider), signing, "")
        except FedbrokerError as error:
            raise SsoError(
                "sign-in through this provider is misconfigured", error.audit_message(), 500
            ) from None
    except SsoError as error:
        return error_page(error, request_id)
    sid, session = session_for_login(now)
    while len(session.pending) >= PENDING_LOGINS:
        session.pending.pop(next(iter(session.pending)))
    session.pending[start.request_id] = PendingLogin(
        account_id=provider.account_id, provider=provider.name, state=start.request_id, kind=KIND
    )
    table().save(sid, session, now)
    response = make_response("", 302)
    response.headers["Location"] = start.redirect_url
    response.headers["Cache-Control"] = "no-store"
    set_cookie(response, sid)
    return response


@blueprint.post("/saml/<name>/acs")
def saml_acs(name: str) -> Response:
    request_id = new_request_id()
    found_in = services()
    now = found_in.clock.now()
    provider: Entity | None = None
    try:
        provider = _provider(found_in, name)
        encoded = flask_request.form.get("SAMLResponse", "")
        if not encoded or len(encoded) > MAX_RESPONSE_CHARS:
            raise SsoError(NOT_VALID, "no SAMLResponse, or one too long")
        claimed = in_response_to_of(encoded)
        if (
            claimed is not None
            and current_session(now) is None
            and flask_request.form.get("resubmitted") != "1"
        ):
            return _resubmitted(encoded)
        expected = _expected_request(provider, claimed, now)
    except SsoError as error:
        return _refused(error, request_id, provider)
    try:
        who = run_audited(
            found_in,
            request_meta(request_id),
            "AssumeRoleWithSAML",
            {"PrincipalArn": provider.arn},
            lambda ctx: _sign_in(ctx, provider, encoded, expected),
            additional={"via": "broker-sign-in"},
        )
    except FedbrokerError as error:
        return error_page(SsoError(NOT_VALID, error.audit_message()), request_id)
    return finish_sign_in(who, request_id)


def _resubmitted(encoded: str) -> Response:
    """The response posted again, from the broker's own page.

    The IdP's form posts across sites when the IdP is on another site than the broker, and a
    ``SameSite=Lax`` cookie does not travel with a cross-site POST: the broker session that
    started the login is not seen. The same POST made from a page of the broker is same-site
    and carries it (once: ``resubmitted``)."""
    return page(
        "sso_saml_post.html",
        action=flask_request.path,
        response=encoded,
        relay_state=flask_request.form.get("RelayState", "")[:1024],
    )


def _expected_request(provider: Entity, claimed: str | None, now: datetime) -> str | None:
    """The request id the response must answer (``None``: an allowed unsolicited response);
    a pending login is used once."""
    if claimed is None:
        if not options_of(provider).idp_initiated:
            raise SsoError(
                NO_IDP_INITIATED,
                f"unsolicited (IdP-initiated) response to `{provider.arn}`, which does not "
                "allow IdP-initiated sign-in",
            )
        return None
    found = _pending(claimed, KIND, provider, now)
    if found is None:
        raise SsoError(
            NOT_STARTED,
            f"InResponseTo `{claimed[:80]}` names no SAML login this browser "
            f"started with `{provider.arn}`",
        )
    sid, session = found
    session.pending.pop(claimed)
    table().save(sid, session, now)
    return claimed


def _pending(
    claimed: str, kind: str, provider: Entity, now: datetime
) -> tuple[str, WebSession] | None:
    """This browser's broker session, if it holds a pending ``kind`` request ``claimed`` that
    was sent to ``provider``."""
    found = current_session(now)
    pending = found[1].pending.get(claimed) if found is not None else None
    if (
        pending is None
        or pending.kind != kind
        or pending.provider != provider.name
        or pending.account_id != provider.account_id
    ):
        return None
    return found


def _sign_in(ctx: StsContext, provider: Entity, encoded: str, expected: str | None) -> SignedIn:
    check_metadata_valid(provider, ctx.now)  # read from the store by this request
    assertion = verify_with_provider(ctx, provider, encoded, in_response_to=expected)
    qualifier = name_qualifier(assertion.issuer, provider.account_id, provider.name)
    ctx.identity = UserIdentity(
        "SAMLUser",
        principal_id=f"{qualifier}:{assertion.subject}",
        user_name=assertion.subject,
        identity_provider=qualifier,
    )
    _check_name_id_format(provider, assertion)
    return signed_in_from_saml(ctx, provider, assertion)


def _check_name_id_format(provider: Entity, assertion: SamlAssertion) -> None:
    declared = _idp(provider).name_id_formats
    if declared and assertion.subject_format not in declared:
        raise InvalidSamlResponseError(
            INVALID,
            f"NameID format `{assertion.subject_format}` is not one the IdP declares "
            f"({', '.join(declared)})",
        )


def _refused(error: SsoError, request_id: str, provider: Entity | None) -> Response:
    """A refusal before verification: audited as a failed sign-in too."""

    def refuse(ctx: StsContext) -> None:
        raise InvalidSamlResponseError(INVALID, error.detail)

    with contextlib.suppress(FedbrokerError):  # raised by design, already audited
        run_audited(
            services(),
            request_meta(request_id),
            "AssumeRoleWithSAML",
            {"PrincipalArn": provider.arn} if provider is not None else {},
            refuse,
            additional={"via": "broker-sign-in"},
        )
    return error_page(error, request_id)


# --- single logout (SP-initiated) ------------------------------------------------------------


def _single_logout(who: SignedIn, request_id: str, now: datetime) -> Response | None:
    """After sign-out of a SAML sign-in: on to the IdP with a ``LogoutRequest``, when its
    metadata has a ``SingleLogoutService`` (else ``None``: the signed-out page)."""
    if who.kind != KIND:
        return None
    found_in = services()
    try:
        provider = _provider(found_in, who.provider_name)
    except SsoError:
        return None  # the provider is gone: nothing to sign out of
    if provider.account_id != who.account_id or not supports_logout(_idp(provider)):
        return None
    name_id = NameId(
        who.subject,
        who.name_id_format,
        who.name_qualifier,
        who.sp_name_qualifier,
        who.session_index,
    )
    try:
        provider, signing = _with_keys(found_in, provider)
        ctx = sts_context(request_id, now)
        start = logout_request(browser_sp(ctx, provider), _idp(provider), signing, name_id)
    except (SsoError, FedbrokerError) as error:
        detail = error.detail if isinstance(error, SsoError) else error.audit_message()
        log.warning("sso request %s: no single logout at %s: %s", request_id, provider.arn, detail)
        return None
    sid, session = table().create(now)
    session.pending[start.request_id] = PendingLogin(
        account_id=provider.account_id,
        provider=provider.name,
        state=start.request_id,
        kind=LOGOUT_KIND,
    )
    table().save(sid, session, now)
    log.info("sso request %s: single logout sent to %s", request_id, provider.arn)
    response = make_response("", 302)
    response.headers["Location"] = start.redirect_url
    response.headers["Cache-Control"] = "no-store"
    set_cookie(response, sid)
    return response


AFTER_SIGN_OUT.append(_single_logout)


@blueprint.get("/saml/<name>/sls")
def saml_sls(name: str) -> Response:
    """The IdP's ``LogoutResponse`` (HTTP-Redirect): the end of single logout."""
    request_id = new_request_id()
    found_in = services()
    now = found_in.clock.now()
    try:
        provider = _provider(found_in, name)
        encoded = flask_request.args.get("SAMLResponse", "")
        if not encoded:
            raise SsoError(
                NOT_SIGNED_OUT,
                "no SAMLResponse (an IdP-initiated LogoutRequest is not handled)",
            )
        claimed = logout_response_in_response_to(encoded) or ""
        found = _pending(claimed, LOGOUT_KIND, provider, now)
        if found is None:
            raise SsoError(
                NOT_SIGNED_OUT,
                f"InResponseTo `{claimed[:80]}` names no LogoutRequest this browser sent "
                f"to `{provider.arn}`",
            )
        table().delete(found[0])  # it held only this pending logout: used once
        ctx = sts_context(request_id, now)
        try:
            verify_logout_response(
                browser_sp(ctx, provider),
                _idp(provider),
                {k: flask_request.args.get(k, "") for k in flask_request.args},
                flask_request.query_string.decode("ascii", "replace"),
                claimed,
            )
        except FedbrokerError as error:
            raise SsoError(NOT_SIGNED_OUT, error.audit_message()) from None
    except SsoError as error:
        log.warning("sso request %s failed: %s", request_id, error.detail)
        response = page(
            "sso_error.html",
            error.status,
            heading="Sign-out not confirmed",
            message=error.message,
            request_id=request_id,
        )
        clear_cookie(response)
        return response
    log.info("sso request %s: single logout confirmed by %s", request_id, provider.arn)
    response = page("sso_signed_out.html", identity_provider=provider.name)
    clear_cookie(response)
    return response
