"""``fedbroker root``: what only the root user does, from the machine that holds the data.

The root user has no access keys unless one is created on purpose (AWS's advice is to have
none). ``fedbroker root create-access-key`` is that purpose: it asks for the root password,
writes the key to a shared-credentials file (mode 0600) and audits the act as a root action.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fedbroker.cli.server import _common, _settings, _write_profile


@click.group()
def root() -> None:
    """Root-user actions (bootstrap and recovery only)."""


@root.command("create-access-key")
@_common
@click.option(
    "--root-password-file",
    type=click.File("r"),
    help="Read the root password from this file (default: prompt).",
)
@click.option(
    "--credentials-file",
    type=click.Path(dir_okay=False),
    required=True,
    help="AWS shared-credentials file to write the key to.",
)
@click.option("--profile", default="fedbroker-root", show_default=True)
def create_access_key(
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    root_password_file: Any,
    credentials_file: str,
    profile: str,
) -> None:
    """Create an access key for the root user (at most two, as for any user)."""
    from fedbroker.audit.events import AuditEvent, JsonlAuditSink, UserIdentity
    from fedbroker.clock import SystemClock
    from fedbroker.config import master_key_from_env
    from fedbroker.credentials.passwords import verify_password
    from fedbroker.credentials.sealing import load_master_key
    from fedbroker.directory.ids import new_request_id
    from fedbroker.directory.sql import SqlStore
    from fedbroker.errors import FedbrokerError
    from fedbroker.iam.operations.access_keys import create_key

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    try:
        store = SqlStore(settings.effective_database_url)
        master_key = load_master_key(
            settings.effective_master_key_file, master_key_from_env(), settings.dev_mode
        )
    except FedbrokerError as exc:
        raise click.ClickException(exc.message) from None
    accounts = store.list_accounts()
    if len(accounts) != 1:
        raise click.ClickException("expected exactly one account; run `fedbroker init` first")
    account = accounts[0]
    if root_password_file is not None:
        password = root_password_file.read().strip()
    else:
        password = click.prompt("root password", hide_input=True)
    now = SystemClock().now()
    audit = JsonlAuditSink(settings.audit_log)
    identity = UserIdentity(
        "Root", account.id, account.root_arn, account.id, invoked_by="fedbroker root"
    )
    event: dict[str, Any] = {
        "event_time": now,
        "event_source": "iam.amazonaws.com",
        "event_name": "CreateAccessKey",
        "region": settings.region,
        "source_ip": "localhost",
        "user_agent": "fedbroker-cli",
        "user_identity": identity,
        "request_id": new_request_id(),
        "recipient_account_id": account.id,
    }
    if not verify_password(password, account.root_password_hash):
        audit.emit(
            AuditEvent(**event, error_code="AccessDenied", error_message="wrong root password")
        )
        raise click.ClickException("wrong root password; nothing created")
    try:
        key, secret = create_key(store, master_key, account.id, None, now)
    except FedbrokerError as exc:
        audit.emit(AuditEvent(**event, error_code=exc.code, error_message=exc.message))
        raise click.ClickException(exc.message) from None
    audit.emit(
        AuditEvent(
            **event,
            response_elements={
                "accessKey": {"accessKeyId": key.access_key_id, "status": key.status.value}
            },
        )
    )
    _write_profile(Path(credentials_file), profile, key.access_key_id, secret)
    click.echo(
        f"root access key {key.access_key_id} written as profile `{profile}` to "
        f"{credentials_file}; delete it when the task that needed it is done"
    )
    store.close()
