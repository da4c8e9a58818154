"""The Flask application factory."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask

from fedbroker.audit.events import AuditSink, JsonlAuditSink
from fedbroker.clock import Clock, SystemClock
from fedbroker.config import Settings, master_key_from_env
from fedbroker.credentials.authn import Authenticator
from fedbroker.credentials.keyring import KeyRing
from fedbroker.credentials.sealing import load_master_key
from fedbroker.directory.access import PolicyCache
from fedbroker.directory.sql import SqlStore
from fedbroker.federation.saml_sp import ServiceProvider
from fedbroker.iam.context import Services


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    audit: AuditSink | None = None,
    test_config: dict[str, Any] | None = None,
) -> Flask:
    """Build the broker: directory store, master key, audit sink, and the Query endpoint."""
    master_key = load_master_key(
        settings.effective_master_key_file, master_key_from_env(), settings.dev_mode
    )
    store = SqlStore(settings.effective_database_url)
    the_clock = clock or SystemClock()
    keyring = KeyRing(store, master_key)
    keyring.ensure_keys(the_clock.now())
    services = Services(
        store=store,
        clock=the_clock,
        master_key=master_key,
        policies=PolicyCache(store),
        audit=audit or JsonlAuditSink(settings.audit_log),
        region=settings.region,
        keyring=keyring,
        saml=ServiceProvider(settings.saml_entity_id, settings.saml_acs_url),
        issuer=settings.effective_issuer_url,
    )
    app = Flask("fedbroker")
    app.config["MAX_CONTENT_LENGTH"] = None  # checked by each endpoint, in its own format
    if test_config:
        app.config.update(test_config)
    authenticator = Authenticator(store, master_key, keyring=keyring)
    app.extensions["fedbroker.services"] = services
    app.extensions["fedbroker.authenticator"] = authenticator

    from fedbroker.web.query import QueryEndpoint
    from fedbroker.web.wellknown import blueprint as wellknown

    # POST / and GET /: the Query protocol (IAM and STS), answered before Flask.
    app.wsgi_app = QueryEndpoint(  # type: ignore[method-assign]
        app.wsgi_app, services, authenticator, settings.max_body_bytes
    )
    app.register_blueprint(wellknown)
    # POST /authorize: the check on use for resource services (fedbroker.enforce.remote).
    from fedbroker.credentials.check import RequestChecker
    from fedbroker.enforce.remote import RemoteAuthorizer
    from fedbroker.web.authorize import blueprint as authorize

    checker = RequestChecker(services.directory, master_key, keyring)
    authorizer = RemoteAuthorizer(checker, services.audit, services.region)
    app.extensions["fedbroker.authorizer"] = authorizer
    app.register_blueprint(authorize)
    # Browser sign-in (issue 5): /sso pages, server-side broker sessions.
    import fedbroker.web.sso_oidc
    import fedbroker.web.sso_saml  # noqa: F401 - adds the SAML sign-in routes to the blueprint
    from fedbroker.web.sso import blueprint as sso

    app.config["SSO_SECURE_COOKIE"] = not settings.dev_mode
    app.config["SSO_IDLE_TIMEOUT"] = timedelta(seconds=settings.sso_idle_timeout)
    app.config["SSO_SESSION_LIFETIME"] = timedelta(seconds=settings.sso_session_lifetime)
    app.register_blueprint(sso)
    # The CLI credential helper's endpoints (issue 6): /sso/cli/...
    from fedbroker.web import cli_api  # noqa: F401 - adds the JSON endpoints to the blueprint
    from fedbroker.web.cli_auth import blueprint as sso_cli

    app.config["CLI_SESSION_LIFETIME"] = timedelta(seconds=settings.cli_session_lifetime)
    app.register_blueprint(sso_cli)
    logging.getLogger("fedbroker").setLevel(logging.INFO)
    return app
