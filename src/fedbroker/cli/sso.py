"""``fedbroker sso configure-oidc``: the broker as an OpenID Connect relying party of a
registered provider (issue 5, browser sign-in).

The client secret is read from a file and stored in the provider entity sealed with the master
key (as access-key secrets are), bound to the provider's name; it is never printed or logged.
"""

from __future__ import annotations

from pathlib import Path

import click

from fedbroker.cli.server import _common, _settings


@click.group()
def sso() -> None:
    """Browser sign-in (SSO) through registered identity providers."""


@sso.command("configure-oidc")
@_common
@click.option("--provider-url", required=True, help="The registered OIDC provider's URL.")
@click.option("--client-id", required=True, help="The broker's client id at that provider.")
@click.option(
    "--client-secret-file",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="File holding the client secret (one line).",
)
def configure_oidc(
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    provider_url: str,
    client_id: str,
    client_secret_file: str,
) -> None:
    """Let people sign in through the OIDC provider PROVIDER_URL (code flow with PKCE)."""
    import base64
    from dataclasses import replace

    from fedbroker.config import master_key_from_env
    from fedbroker.credentials.sealing import load_master_key, rp_secret_context
    from fedbroker.directory.model import Kind
    from fedbroker.directory.sql import SqlStore
    from fedbroker.errors import FedbrokerError

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    name = provider_url.split("://", 1)[-1].rstrip("/")
    secret = Path(client_secret_file).read_text().strip()
    if not secret:
        raise click.ClickException(f"`{client_secret_file}` is empty")
    try:
        master_key = load_master_key(
            settings.effective_master_key_file, master_key_from_env(), settings.dev_mode
        )
        store = SqlStore(settings.effective_database_url)
        accounts = store.list_accounts()
        if len(accounts) != 1:
            raise click.ClickException("expected exactly one account; run `fedbroker init`")
        entity = store.get_entity(accounts[0].id, Kind.OIDC_PROVIDER, name)
        sealed = master_key.seal(secret.encode(), rp_secret_context(name))
        attrs = {
            **entity.attrs,
            "rp_client_id": client_id,
            "rp_client_secret_sealed": base64.b64encode(sealed).decode(),
        }
        store.update_entity(replace(entity, attrs=attrs))
    except FedbrokerError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"sign-in through {name} configured for client {client_id}")


# SAML sign-in commands live in their own module (fedbroker.cli.sso_saml).
from fedbroker.cli.sso_saml import configure_saml, saml_keys_command  # noqa: E402

sso.add_command(configure_saml)
sso.add_command(saml_keys_command)
