"""``fedbroker keys``: the key ring from the machine that holds the data and the master key.

Every replica picks a rotation up within a second, with no restart. Rotations and retirements
are audited (``eventSource`` ``keys.fedbroker``), as root actions made through this tool.
Output is one line per key: kid, purpose, algorithm, state, created.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from fedbroker.cli.server import _common, _settings

if TYPE_CHECKING:
    from fedbroker.config import Settings
    from fedbroker.credentials.keyring import KeyRing
    from fedbroker.directory.model import KeyRecord
    from fedbroker.directory.store import Store

_PURPOSES = ("seal", "sign")
_ALGORITHMS = ("A256GCM", "ES256", "RS256", "EdDSA")


@click.group()
def keys() -> None:
    """The key ring: seal keys for session tokens, signing keys for JWTs."""


def _now() -> datetime:
    # Tests hand a fixed clock in as the context object; everyone else gets the system's.
    from fedbroker.clock import SystemClock

    obj = click.get_current_context().obj
    clock = obj if callable(getattr(obj, "now", None)) else SystemClock()
    now: datetime = clock.now()
    return now


def _line(record: KeyRecord) -> str:
    created = record.created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{record.kid:<18} {record.purpose.value:<4} {record.algorithm.value:<7} "
        f"{record.state.value:<8} {created}"
    )


@contextmanager
def _ring(
    data_dir: str | None, database_url: str | None, config: str | None
) -> Iterator[tuple[Settings, Store, KeyRing]]:
    from fedbroker.config import master_key_from_env
    from fedbroker.credentials.keyring import KeyRing
    from fedbroker.credentials.sealing import load_master_key
    from fedbroker.directory.sql import SqlStore
    from fedbroker.errors import FedbrokerError

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    try:
        master_key = load_master_key(
            settings.effective_master_key_file, master_key_from_env(), settings.dev_mode
        )
        store = SqlStore(settings.effective_database_url)
    except FedbrokerError as exc:
        raise click.ClickException(exc.message) from None
    try:
        yield settings, store, KeyRing(store, master_key)
    finally:
        store.close()


def _audit(
    settings: Settings,
    store: Store,
    now: datetime,
    name: str,
    parameters: dict[str, Any],
    response: dict[str, Any] | None = None,
    error: tuple[str, str] | None = None,
) -> None:
    from fedbroker.audit.events import AuditEvent, JsonlAuditSink, UserIdentity
    from fedbroker.directory.ids import new_request_id

    accounts = store.list_accounts()
    account = accounts[0] if len(accounts) == 1 else None
    identity = (
        UserIdentity("Root", account.id, account.root_arn, account.id, invoked_by="fedbroker keys")
        if account is not None
        else UserIdentity("Unknown", invoked_by="fedbroker keys")
    )
    JsonlAuditSink(settings.audit_log).emit(
        AuditEvent(
            event_time=now,
            event_source="keys.fedbroker",
            event_name=name,
            region=settings.region,
            source_ip="localhost",
            user_agent="fedbroker-cli",
            user_identity=identity,
            request_id=new_request_id(),
            request_parameters=parameters,
            response_elements=response,
            error_code=error[0] if error else None,
            error_message=error[1] if error else None,
            recipient_account_id=account.id if account is not None else None,
        )
    )


@keys.command("list")
@_common
def list_keys(data_dir: str | None, database_url: str | None, config: str | None) -> None:
    """Every key, oldest first: kid, purpose, algorithm, state, created."""
    with _ring(data_dir, database_url, config) as (_, store, _):
        for record in store.list_keys():
            click.echo(_line(record))


@keys.command()
@_common
@click.option(
    "--purpose", type=click.Choice(_PURPOSES), help="seal (session tokens) or sign (JWTs)."
)
@click.option(
    "--algorithm",
    type=click.Choice(_ALGORITHMS),
    help="Default: A256GCM to seal, ES256 to sign.",
)
def rotate(
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    purpose: str | None,
    algorithm: str | None,
) -> None:
    """Add a new key; the active key it replaces keeps opening or verifying as `retiring`.

    Prints the new key and every key that moved to `retiring`.
    """
    from fedbroker.directory.model import KeyAlgorithm, KeyPurpose, KeyState
    from fedbroker.errors import FedbrokerError

    chosen = KeyAlgorithm(algorithm) if algorithm else None
    if purpose is None:
        wanted = chosen.purpose if chosen is not None else KeyPurpose.SEAL
    else:
        wanted = KeyPurpose(purpose)
    if chosen is not None and chosen.purpose is not wanted:
        raise click.UsageError(f"--algorithm {chosen.value} is not a {wanted.value} algorithm")
    now = _now()
    parameters = {"purpose": wanted.value, "algorithm": chosen.value if chosen else None}
    with _ring(data_dir, database_url, config) as (settings, store, ring):
        before = {r.kid: r.state for r in store.list_keys()}
        try:
            record = ring.rotate(wanted, chosen, now)
        except FedbrokerError as exc:
            _audit(settings, store, now, "RotateKey", parameters, error=(exc.code, exc.message))
            raise click.ClickException(exc.message) from None
        after = store.list_keys()
        retiring = [
            r
            for r in after
            if r.state is KeyState.RETIRING and before.get(r.kid) is not KeyState.RETIRING
        ]
        _audit(
            settings,
            store,
            now,
            "RotateKey",
            parameters,
            response={
                "keyId": record.kid,
                "purpose": record.purpose.value,
                "algorithm": record.algorithm.value,
                "retiring": [r.kid for r in retiring if r.kid != record.kid],
            },
        )
        click.echo(_line(next(r for r in after if r.kid == record.kid)))
        for changed in retiring:
            if changed.kid != record.kid:
                click.echo(_line(changed))


@keys.command()
@_common
@click.argument("kid")
def retire(data_dir: str | None, database_url: str | None, config: str | None, kid: str) -> None:
    """Retire KID for good: what it sealed or signed no longer opens or verifies.

    Retire a key once the sessions and tokens it sealed or signed have expired (36 hours at
    most after it started retiring). The active key cannot be retired: rotate first.
    """
    from fedbroker.errors import FedbrokerError

    now = _now()
    with _ring(data_dir, database_url, config) as (settings, store, ring):
        try:
            record = ring.retire(kid, now)
        except FedbrokerError as exc:
            _audit(settings, store, now, "RetireKey", {"keyId": kid}, error=(exc.code, exc.message))
            raise click.ClickException(exc.message) from None
        _audit(
            settings,
            store,
            now,
            "RetireKey",
            {"keyId": kid},
            response={"keyId": kid, "state": record.state.value},
        )
        click.echo(_line(record))
