"""``fedbroker sso configure-saml`` and ``fedbroker sso saml-keys``: browser sign-in through a
registered SAML provider (issue 5).

``configure-saml`` sets how the broker treats the provider's responses
(:mod:`fedbroker.iam.saml_options`); ``saml-keys`` makes the broker's SP keys for it (a signing
key and a first decryption key, on first use too), rotates them and lists them. Private keys
are sealed under the master key and never printed; the listing shows key ids, uses, creation
times and certificate SHA-256 fingerprints.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from fedbroker.cli.server import _common, _settings

if TYPE_CHECKING:
    from fedbroker.credentials.sealing import MasterKey
    from fedbroker.directory.model import Entity
    from fedbroker.directory.store import Store


def _now() -> datetime:
    from fedbroker.clock import SystemClock

    obj = click.get_current_context().obj
    clock = obj if callable(getattr(obj, "now", None)) else SystemClock()
    now: datetime = clock.now()
    return now


@contextmanager
def _provider(
    data_dir: str | None, database_url: str | None, config: str | None, name: str
) -> Iterator[tuple[Any, Store, MasterKey, Entity]]:
    from fedbroker.config import master_key_from_env
    from fedbroker.credentials.sealing import load_master_key
    from fedbroker.directory.model import Kind
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
        found = [
            entity
            for account in store.list_accounts()
            for entity in store.list_entities(account.id, Kind.SAML_PROVIDER)
            if entity.name == name
        ]
        if len(found) != 1:
            raise click.ClickException(
                f"no SAML provider `{name}`" if not found else f"`{name}` names several providers"
            )
        try:
            yield settings, store, master_key, found[0]
        except FedbrokerError as exc:
            raise click.ClickException(exc.message) from None
    finally:
        store.close()


def _metadata_url(settings: Any, name: str) -> str:
    return f"{settings.effective_issuer_url}/sso/saml/{name}/metadata"


@click.command("configure-saml")
@_common
@click.option("--provider", "name", required=True, help="The registered SAML provider's name.")
@click.option(
    "--idp-initiated/--no-idp-initiated",
    default=None,
    help="Accept sign-ins that start at the IdP (no InResponseTo). Default: off.",
)
@click.option(
    "--require-encryption/--allow-unencrypted",
    default=None,
    help="Refuse assertions that are not encrypted (AssertionEncryptionMode Required).",
)
@click.option(
    "--allow-sha1/--no-allow-sha1", default=None, help="Accept SHA-1 signatures. Default: off."
)
@click.option(
    "--clock-skew",
    type=click.IntRange(0, 900),
    default=None,
    help="Seconds of clock disagreement allowed on Conditions (default 300).",
)
@click.option(
    "--source-identity-attribute",
    metavar="ATTRIBUTE",
    help="The attribute (by its Name) whose value becomes the SourceIdentity.",
)
@click.option(
    "--tag-attribute",
    "tag_attributes",
    multiple=True,
    metavar="ATTRIBUTE=TAG",
    help="An attribute whose value(s) become the session tag TAG (repeatable).",
)
def configure_saml(
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    name: str,
    idp_initiated: bool | None,
    require_encryption: bool | None,
    allow_sha1: bool | None,
    clock_skew: int | None,
    source_identity_attribute: str | None,
    tag_attributes: tuple[str, ...],
) -> None:
    """Set how the broker treats the SAML provider NAME's responses, and make its SP keys."""
    from dataclasses import replace

    from fedbroker.iam import saml_keys
    from fedbroker.iam.saml_options import options_of
    from fedbroker.sso.claims import ClaimMapping

    mapping: dict[str, object] | None = None
    if source_identity_attribute is not None or tag_attributes:
        pairs = [t.rsplit("=", 1) for t in tag_attributes]
        if any(len(p) != 2 for p in pairs):
            raise click.BadParameter("expected ATTRIBUTE=TAG", param_hint="--tag-attribute")
        raw: dict[str, object] = {"tags": dict(pairs)}
        if source_identity_attribute is not None:
            raw["source_identity"] = source_identity_attribute
        try:
            mapping = ClaimMapping.from_attr(raw).to_attr()
        except ValueError as error:
            raise click.ClickException(str(error)) from None

    with _provider(data_dir, database_url, config, name) as (settings, store, master, found):
        attrs = dict(found.attrs)
        if idp_initiated is not None:
            attrs["idp_initiated"] = idp_initiated
        if require_encryption is not None:
            attrs["assertion_encryption_mode"] = "Required" if require_encryption else "Allowed"
        if allow_sha1 is not None:
            attrs["allow_sha1"] = allow_sha1
        if clock_skew is not None:
            attrs["clock_skew_seconds"] = clock_skew
        if mapping is not None:
            attrs["sso_claims"] = mapping
        entity = replace(found, attrs=attrs)
        entity = saml_keys.ensure_sp_keys(master, entity, _now()) or entity
        store.update_entity(entity)
        options = options_of(entity)
        click.echo(
            f"{entity.arn}: idp-initiated={'on' if options.idp_initiated else 'off'} "
            f"require-encryption={'on' if options.require_encryption else 'off'} "
            f"allow-sha1={'on' if options.allow_sha1 else 'off'} "
            f"clock-skew={int(options.clock_skew.total_seconds())}s"
        )
        click.echo(f"SP metadata for the IdP: {_metadata_url(settings, name)}")


@click.command("saml-keys")
@_common
@click.option("--provider", "name", required=True, help="The registered SAML provider's name.")
@click.option(
    "--rotate-encryption",
    is_flag=True,
    help="Add a new decryption key (advertised from now on; the old one still decrypts).",
)
@click.option("--remove-key", metavar="KEY_ID", help="Remove a decryption key.")
@click.option("--rotate-signing", is_flag=True, help="Replace the SP signing key.")
def saml_keys_command(
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    name: str,
    rotate_encryption: bool,
    remove_key: str | None,
    rotate_signing: bool,
) -> None:
    """Make (on first use), rotate and list the broker's SAML SP keys for provider NAME."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from fedbroker.iam import saml_keys

    with _provider(data_dir, database_url, config, name) as (settings, store, master, found):
        now = _now()
        entity = found
        if remove_key:
            entity = saml_keys.remove_private_key(entity, remove_key)
        if rotate_encryption:
            entity, _ = saml_keys.add_private_key(master, entity, now)
        if rotate_signing:
            entity = saml_keys.rotate_signing_key(master, entity, now)
        entity = saml_keys.ensure_sp_keys(master, entity, now) or entity
        if entity is not found:
            store.update_entity(entity)
        signing = saml_keys.signing_key(entity)
        listed = [("signing", signing)] if signing else []
        listed += [("encryption", key) for key in saml_keys.private_keys(entity)]
        for use, key in listed:
            assert key is not None
            cert = x509.load_pem_x509_certificate(key.certificate.encode())
            fingerprint = cert.fingerprint(hashes.SHA256()).hex()
            created = key.created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            mark = " DEVELOPMENT" if key.development else ""
            click.echo(f"{key.key_id} {use:<10} {created} sha256:{fingerprint}{mark}")
        click.echo(f"SP metadata for the IdP: {_metadata_url(settings, name)}")
