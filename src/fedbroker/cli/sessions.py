"""``fedbroker sessions revoke``: end temporary credentials before they expire.

A revocation reaches every replica with the next request it serves: the check on use reads
it through the directory, whose version every replica compares on each request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from fedbroker.cli.server import _common, _settings


@click.group()
def sessions() -> None:
    """Temporary credentials (sessions)."""


@sessions.command("revoke")
@_common
@click.option("--role", "role_name", help="Revoke the sessions of this role (name).")
@click.option(
    "--before", help="With --role: sessions issued before this ISO 8601 time (default: now)."
)
@click.option(
    "--session-id",
    help="Revoke one session (its id is in the audit log, "
    "userIdentity.sessionContext.attributes.sessionId).",
)
@click.option(
    "--source-identity", help="Revoke every session of this source identity issued until now."
)
def revoke(
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    role_name: str | None,
    before: str | None,
    session_id: str | None,
    source_identity: str | None,
) -> None:
    """Revoke sessions by role, by session id, or by source identity."""
    from fedbroker.clock import SystemClock
    from fedbroker.credentials import revocation
    from fedbroker.directory.model import Kind
    from fedbroker.directory.sql import SqlStore
    from fedbroker.errors import FedbrokerError

    chosen = [x for x in (role_name, session_id, source_identity) if x]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --role, --session-id, --source-identity")
    if before and not role_name:
        raise click.UsageError("--before goes with --role")
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    now = SystemClock().now()
    try:
        store = SqlStore(settings.effective_database_url)
        accounts = store.list_accounts()
        if len(accounts) != 1:
            raise click.ClickException("expected exactly one account; run `fedbroker init`")
        account = accounts[0]
        params: dict[str, Any]
        if role_name:
            moment = datetime.fromisoformat(before) if before else now
            if moment.tzinfo is None:
                raise click.UsageError("--before needs a time zone, e.g. 2026-01-01T00:00:00Z")
            role = store.get_entity(account.id, Kind.ROLE, role_name)
            revocation.revoke_role_sessions(store, role, moment)
            params = {"roleName": role.name, "issuedBefore": moment.isoformat()}
            done = f"sessions of role {role.name} issued before {moment.isoformat()} revoked"
        elif session_id:
            revocation.revoke_session(store, account, session_id, now)
            params = {"sessionId": session_id}
            done = f"session {session_id} revoked"
        else:
            assert source_identity is not None
            revocation.revoke_source_identity(store, account, source_identity, now)
            params = {"sourceIdentity": source_identity}
            done = f"sessions of source identity {source_identity} revoked"
    except FedbrokerError as exc:
        raise click.ClickException(exc.message) from None
    except ValueError as exc:
        raise click.UsageError(f"--before: {exc}") from None
    _audit(settings, account, now, "sts.amazonaws.com", "RevokeSessions", params)
    click.echo(done)
    store.close()


@sessions.command("revoke-cli")
@_common
@click.option("--session-id", help="Revoke one CLI session (`cliSessionId` in the audit log).")
@click.option("--subject", help="Revoke every CLI session of this subject (OIDC sub, SAML NameID).")
@click.option("--provider", help="With --subject: the provider's name (its URL without https://).")
def revoke_cli(
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    session_id: str | None,
    subject: str | None,
    provider: str | None,
) -> None:
    """Revoke CLI sessions (`fedbroker login`): one by id, or all of a person until now."""
    from datetime import timedelta

    from fedbroker.clock import SystemClock
    from fedbroker.config import master_key_from_env
    from fedbroker.credentials.sealing import load_master_key
    from fedbroker.directory.sql import SqlStore
    from fedbroker.errors import FedbrokerError
    from fedbroker.sso import cli_sessions

    if bool(session_id) == bool(subject):
        raise click.UsageError("give exactly one of --session-id, --subject")
    if subject and not provider:
        raise click.UsageError("--subject needs --provider")
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    now = SystemClock().now()
    keep_until = now + timedelta(seconds=settings.cli_session_lifetime)
    try:
        master_key = load_master_key(
            settings.effective_master_key_file, master_key_from_env(), settings.dev_mode
        )
        store = SqlStore(settings.effective_database_url)
        accounts = store.list_accounts()
        if len(accounts) != 1:
            raise click.ClickException("expected exactly one account; run `fedbroker init`")
        account = accounts[0]
        params: dict[str, Any]
        if session_id:
            cli_sessions.revoke_session_id(store, master_key, session_id, keep_until, now)
            params = {"cliSessionId": session_id}
            done = f"CLI session {session_id} revoked"
        else:
            assert subject is not None and provider is not None
            cli_sessions.revoke_subject(
                store, master_key, account.id, provider, subject, now, keep_until, now
            )
            params = {"subject": subject, "provider": provider, "issuedBefore": now.isoformat()}
            done = f"CLI sessions of {subject} through {provider} revoked"
    except FedbrokerError as exc:
        raise click.ClickException(exc.message) from None
    _audit(settings, account, now, "sso.amazonaws.com", "RevokeCliSessions", params)
    click.echo(done)
    store.close()


def _audit(
    settings: Any, account: Any, now: Any, source: str, name: str, params: dict[str, str]
) -> None:
    """The audit event of a revocation made from the command line, as the account's root."""
    from fedbroker.audit.events import AuditEvent, JsonlAuditSink, UserIdentity
    from fedbroker.directory.ids import new_request_id

    JsonlAuditSink(settings.audit_log).emit(
        AuditEvent(
            event_time=now,
            event_source=source,
            event_name=name,
            region=settings.region,
            source_ip="localhost",
            user_agent="fedbroker-cli",
            user_identity=UserIdentity(
                "Root", account.id, account.root_arn, account.id, invoked_by="fedbroker sessions"
            ),
            request_id=new_request_id(),
            request_parameters=params,
            recipient_account_id=account.id,
        )
    )
