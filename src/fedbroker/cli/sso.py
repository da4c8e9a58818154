"""``fedbroker sso configure-oidc``: the broker as an OpenID Connect relying party of a
registered provider (issue 5, browser sign-in).

The client authenticates at the token endpoint with a client secret (``client_secret_basic``)
or with a signed JWT (``--private-key-jwt``: ``private_key_jwt``, RFC 7523 §2.2 and OpenID
Connect Core 1.0 §9). The client secret is read from a file and stored in the provider entity
sealed with the master key (as access-key secrets are), bound to the provider's name; it is never
printed or logged. The private key is generated here (ES256 or RS256), sealed the same way, and
kept when the command is re-run with the same algorithm; its public JWK is printed for
registration at the provider and served at ``/sso/oidc/<provider>/jwks.json``.
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
    type=click.Path(dir_okay=False, exists=True),
    help="File holding the client secret (one line).",
)
@click.option(
    "--private-key-jwt",
    is_flag=True,
    help="Authenticate with a signed JWT (private_key_jwt) instead of a client secret; "
    "prints the public JWK to register at the provider.",
)
@click.option(
    "--key-algorithm",
    type=click.Choice(["ES256", "RS256"]),
    default="ES256",
    show_default=True,
    help="The signing algorithm of the private_key_jwt key.",
)
@click.option(
    "--source-identity-claim",
    metavar="CLAIM",
    help="The ID token claim that becomes the sessions' SourceIdentity (e.g. email).",
)
@click.option(
    "--tag-claim",
    "tag_claims",
    multiple=True,
    metavar="CLAIM=TAG",
    help="An ID token claim that becomes the session tag TAG (repeatable; lists join with `:`).",
)
@click.option(
    "--userinfo/--no-userinfo",
    default=False,
    help="Also read the provider's userinfo claims for the claim mapping and the pages.",
)
def configure_oidc(
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
    provider_url: str,
    client_id: str,
    client_secret_file: str | None,
    private_key_jwt: bool,
    key_algorithm: str,
    source_identity_claim: str | None,
    tag_claims: tuple[str, ...],
    userinfo: bool,
) -> None:
    """Let people sign in through the OIDC provider PROVIDER_URL (code flow with PKCE).

    Claims map to session tags and the source identity on top of AWS's own claims; re-running
    the command replaces the mapping (none given: none kept)."""
    import base64
    import json
    import secrets
    from dataclasses import replace

    from fedbroker.config import master_key_from_env
    from fedbroker.credentials.jws import generate_private, load_signing_key
    from fedbroker.credentials.sealing import load_master_key, rp_key_context, rp_secret_context
    from fedbroker.directory.model import KeyAlgorithm, Kind
    from fedbroker.directory.sql import SqlStore
    from fedbroker.errors import FedbrokerError
    from fedbroker.sso import ClaimMapping

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    name = provider_url.split("://", 1)[-1].rstrip("/")
    pairs = [claim.partition("=") for claim in tag_claims]
    if any(not sep for _, sep, _ in pairs):
        raise click.BadParameter("expected CLAIM=TAG", param_hint="--tag-claim")
    try:
        mapping = ClaimMapping.from_attr(
            {
                **({"source_identity": source_identity_claim} if source_identity_claim else {}),
                "tags": {claim: tag for claim, _, tag in pairs},
            }
        )
    except ValueError as error:
        raise click.ClickException(f"claim mapping: {error}") from None
    if private_key_jwt == (client_secret_file is not None):
        raise click.UsageError("give exactly one of --client-secret-file and --private-key-jwt")
    secret = Path(client_secret_file).read_text().strip() if client_secret_file else None
    if client_secret_file and not secret:
        raise click.ClickException(f"`{client_secret_file}` is empty")
    algorithm = KeyAlgorithm(key_algorithm)
    try:
        master_key = load_master_key(
            settings.effective_master_key_file, master_key_from_env(), settings.dev_mode
        )
        store = SqlStore(settings.effective_database_url)
        accounts = store.list_accounts()
        if len(accounts) != 1:
            raise click.ClickException("expected exactly one account; run `fedbroker init`")
        entity = store.get_entity(accounts[0].id, Kind.OIDC_PROVIDER, name)
        attrs = {
            **entity.attrs,
            "rp_client_id": client_id,
            "sso_claims": mapping.to_attr(),
            "rp_userinfo": userinfo,
        }
        public_jwk = None
        if secret is not None:
            sealed = master_key.seal(secret.encode(), rp_secret_context(name))
            attrs["rp_client_secret_sealed"] = base64.b64encode(sealed).decode()
            attrs.pop("rp_key", None)
        else:
            attrs.pop("rp_client_secret_sealed", None)
            kept = entity.attrs.get("rp_key")
            if isinstance(kept, dict) and kept.get("alg") == algorithm.value:
                kid = str(kept["kid"])
                private = master_key.open(base64.b64decode(kept["sealed"]), rp_key_context(name))
            else:
                kid = f"rp-{secrets.token_hex(8)}"
                private = generate_private(algorithm)
                sealed = master_key.seal(private, rp_key_context(name))
                attrs["rp_key"] = {
                    "kid": kid,
                    "alg": algorithm.value,
                    "sealed": base64.b64encode(sealed).decode(),
                }
            public_jwk = dict(load_signing_key(kid, algorithm, private).public_jwk)
        store.update_entity(replace(entity, attrs=attrs))
    except FedbrokerError as exc:
        raise click.ClickException(exc.message) from None
    if public_jwk is None:
        click.echo(f"sign-in through {name} configured for client {client_id}")
        return
    # The JWKS alone on stdout (for a file or the provider's registration), the words on stderr.
    click.echo(
        f"sign-in through {name} configured for client {client_id} with private_key_jwt "
        f"({algorithm.value}); register this JWKS at the provider, or its URL "
        f"<broker>/sso/oidc/{name}/jwks.json",
        err=True,
    )
    click.echo(json.dumps({"keys": [public_jwk]}, indent=2))


# SAML sign-in commands live in their own module (fedbroker.cli.sso_saml).
from fedbroker.cli.sso_saml import configure_saml, saml_keys_command  # noqa: E402

sso.add_command(configure_saml)
sso.add_command(saml_keys_command)
