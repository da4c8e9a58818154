"""``fedbroker apply`` and ``fedbroker export``: the directory as a YAML or JSON file.

Output is a contract other tools read: ``apply`` prints one line per change as it is made
(``+ user alice``, ``~ role ci-deploy: trust policy``, ``- group old``) or ``no changes``, and
exits 0; for a file it cannot apply it prints every problem to standard error, changes
nothing, and exits 1. The format is documented in docs/directory-file.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from fedbroker.audit.events import JsonlAuditSink
from fedbroker.cli.server import _common, _settings
from fedbroker.clock import SystemClock
from fedbroker.config import Settings, master_key_from_env
from fedbroker.credentials.sealing import load_master_key
from fedbroker.directory.access import PolicyCache
from fedbroker.directory.model import Account
from fedbroker.directory.sql import SqlStore
from fedbroker.errors import FedbrokerError
from fedbroker.iam import declarative
from fedbroker.iam.context import Services


def _open(settings: Settings) -> tuple[SqlStore, Account]:
    if settings.database_url is None and not settings.data_dir.is_dir():
        raise click.ClickException(
            f"no data directory `{settings.data_dir}`; run `fedbroker init` first"
        )
    try:
        store = SqlStore(settings.effective_database_url)
    except FedbrokerError as exc:
        raise click.ClickException(exc.message) from None
    accounts = store.list_accounts()
    if len(accounts) != 1:
        store.close()
        raise click.ClickException(
            "this directory has no account; run `fedbroker init` first"
            if not accounts
            else f"this directory has {len(accounts)} accounts; apply and export handle one"
        )
    return store, accounts[0]


def _fail(problems: tuple[str, ...], changed: int, where: str) -> NoReturn:
    for problem in problems:
        click.echo(f"{where}: {problem}", err=True)
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    outcome = "nothing was changed" if not changed else f"{changed} changes were made before this"
    click.echo(f"{count}; {outcome}", err=True)
    sys.exit(1)


@click.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@_common
@click.option(
    "--prune", is_flag=True, help="Delete users, groups, roles, policies (providers) not in FILE."
)
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
def apply_file(
    file: str,
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    prune: bool,
    dry_run: bool,
) -> None:
    """Make the directory match FILE (YAML, or JSON if it ends in .json), idempotently."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    try:
        desired = declarative.load_file(file, now=SystemClock().now())
    except declarative.DirectoryFileError as exc:
        _fail(exc.problems, 0, file)
    store, account = _open(settings)
    made: list[declarative.Change] = []
    try:
        if dry_run:
            for change in declarative.plan(store, account, desired, prune=prune):
                click.echo(str(change))
                made.append(change)
        else:
            services = _services(settings, store)

            def report(change: declarative.Change) -> None:
                made.append(change)
                click.echo(str(change))

            declarative.apply(services, account, desired, prune=prune, on_change=report)
    except declarative.DirectoryFileError as exc:
        _fail(exc.problems, 0 if dry_run else len(made), file)
    except FedbrokerError as exc:
        _fail((exc.message,), 0 if dry_run else len(made), file)
    finally:
        store.close()
    if not made:
        click.echo("no changes")
    elif dry_run:
        click.echo("(dry run: nothing was changed)")


def _services(settings: Settings, store: SqlStore) -> Services:
    master_key = load_master_key(
        settings.effective_master_key_file, master_key_from_env(), settings.dev_mode
    )
    return Services(
        store=store,
        clock=SystemClock(),
        master_key=master_key,
        policies=PolicyCache(store),
        audit=JsonlAuditSink(settings.audit_log),
        region=settings.region,
    )


@click.command("export")
@_common
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["yaml", "json"]),
    help="Default: json if -o names a .json file, else yaml.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Default: standard output.")
def export_file(
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    file_format: str | None,
    output: str | None,
) -> None:
    """Write the directory (users, groups, roles, policies, providers) in the format `apply`
    reads."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    store, account = _open(settings)
    try:
        data: Any = declarative.export(store, account)
    finally:
        store.close()
    as_json = file_format == "json" or (
        file_format is None and output is not None and output.lower().endswith(".json")
    )
    text = declarative.dump(data, as_json)
    if not as_json:
        text = "# fedbroker directory file: see docs/directory-file.md\n" + text
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
