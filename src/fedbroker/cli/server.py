"""``fedbroker init`` and ``fedbroker serve``."""

from __future__ import annotations

import configparser
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from fedbroker.clock import SystemClock
from fedbroker.config import Settings, load_settings, master_key_from_env
from fedbroker.errors import FedbrokerError

# The server stack (SQLAlchemy, cryptography, Flask) is imported inside the commands that need
# it, so `fedbroker policy ...` starts in a fraction of the time.


def _settings(config: str | None, **overrides: Any) -> Settings:
    try:
        return load_settings(Path(config) if config else None, overrides)
    except FedbrokerError as exc:
        raise click.ClickException(exc.message) from None


def _common(func: Any) -> Any:
    func = click.option("--config", type=click.Path(dir_okay=False), help="TOML settings file.")(
        func
    )
    func = click.option(
        "--database-url", help="postgresql://… (default: SQLite in the data directory)."
    )(func)
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        help="Where the broker keeps its files (default: ./data).",
    )(func)


@click.command()
@_common
@click.option("--root-email", default="root@localhost", show_default=True)
@click.option(
    "--root-password-file",
    type=click.File("r"),
    help="Read the root password from this file (default: generate one).",
)
@click.option("--account-alias", help="Optional account alias.")
@click.option(
    "--bootstrap-admin",
    "admin",
    metavar="NAME",
    help="Also create an IAM user NAME with administrator access and an access key.",
)
@click.option(
    "--credentials-file",
    type=click.Path(dir_okay=False),
    help="AWS shared-credentials file to write the admin's key to.",
)
@click.option(
    "--profile",
    default="fedbroker-admin",
    show_default=True,
    help="Profile name for the admin's key in the credentials file.",
)
def init(
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    root_email: str,
    root_password_file: Any,
    account_alias: str | None,
    admin: str | None,
    credentials_file: str | None,
    profile: str,
) -> None:
    """Create the account and its root user (and optionally a first administrator)."""
    from fedbroker.credentials.sealing import load_master_key
    from fedbroker.directory.sql import SqlStore
    from fedbroker.iam.bootstrap import create_account, create_admin

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    if admin and not credentials_file:
        raise click.UsageError("--bootstrap-admin needs --credentials-file")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        master_key = load_master_key(
            settings.effective_master_key_file, master_key_from_env(), settings.dev_mode
        )
        store = SqlStore(settings.effective_database_url)
    except FedbrokerError as exc:
        raise click.ClickException(exc.message) from None
    if store.list_accounts():
        raise click.ClickException("this directory already has an account; nothing changed")
    generated = root_password_file is None
    password = secrets.token_urlsafe(18) if generated else root_password_file.read().strip()
    now = SystemClock().now()
    try:
        account = create_account(store, root_email, password, account_alias, now)
        admin_key = create_admin(store, master_key, account, admin, now) if admin else None
    except FedbrokerError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"created account {account.id}" + (f" ({account_alias})" if account_alias else ""))
    click.echo(f"root user: {root_email}")
    if generated:
        click.echo(f"root password (shown once, store it now): {password}")
    click.echo(
        "sign in as root only to bootstrap; turn on MFA for the root user, and use IAM "
        "users and roles for everything else"
    )
    if admin_key is not None and credentials_file:
        _write_profile(
            Path(credentials_file), profile, admin_key.access_key_id, admin_key.secret_access_key
        )
        click.echo(
            f"administrator `{admin}` created; its access key is profile `{profile}` in "
            f"{credentials_file}"
        )
    store.close()


def _write_profile(path: Path, profile: str, key_id: str, secret: str) -> None:
    parser = configparser.RawConfigParser()
    if path.exists():
        parser.read(path)
    if not parser.has_section(profile):
        parser.add_section(profile)
    parser.set(profile, "aws_access_key_id", key_id)
    parser.set(profile, "aws_secret_access_key", secret)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.chmod(path, 0o600)
    with os.fdopen(fd, "w") as handle:
        parser.write(handle)


@click.command()
@_common
@click.option("--host", help="Listen address (default 127.0.0.1).")
@click.option("--port", type=int, help="Listen port (default 8080).")
@click.option("--workers", type=int, help="Worker processes (default 2).")
def serve(
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
) -> None:
    """Run the broker (gunicorn, sync workers)."""
    settings = _settings(
        config, data_dir=data_dir, database_url=database_url, host=host, port=port, workers=workers
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from fedbroker.web.app import create_app

    try:
        # Build once in the parent so configuration errors stop start-up with a clear message.
        create_app(settings)
    except FedbrokerError as exc:
        raise click.ClickException(exc.message) from None
    from fedbroker.web.server import run

    click.echo(
        f"fedbroker listening on http://{settings.host}:{settings.port} "
        f"(data: {settings.data_dir}, store: "
        f"{'PostgreSQL' if settings.database_url else 'SQLite'})"
    )
    sys.stdout.flush()
    run(settings)
