"""The CLI credential helper (issue 6): sign in once, then every AWS tool just works.

- ``fedbroker configure --url URL``: writes one profile per offered role into the AWS config;
- ``fedbroker login``: a broker CLI session, through the browser (loopback) or a device code;
- ``fedbroker credential-process --profile NAME``: ``credential_process``'s JSON (Version 1);
- ``fedbroker exec --profile NAME -- CMD...``; ``fedbroker serve-credentials --profile NAME``;
- ``fedbroker logout``, ``fedbroker whoami``.

Messages go to stderr; stdout carries only what a command produces (credential JSON, the
export lines), so ``credential_process`` never gets anything else. The helper runs without the
server stack: it imports only the standard library, click and keyring.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from typing import Any

import click

from fedbroker.cli.aws_profiles import (
    PROCESS,
    HelperProfile,
    ProfileError,
    Wanted,
    profile_name,
    profile_url,
    read_profile,
    write_profiles,
)
from fedbroker.cli.broker_client import BrokerClient, BrokerError
from fedbroker.cli.client_state import CredentialCache, SessionStore, StoredSession
from fedbroker.config import ClientEnvironment, client_environment

DEFAULT_TEMPLATE = "{role_name}-{account}"


def _warn(text: str) -> None:
    click.echo(text, err=True)


def _now() -> datetime:
    from fedbroker.clock import SystemClock

    return SystemClock().now()


class NeedLogin(click.ClickException):
    """No usable CLI session: the one thing to do is ``fedbroker login``."""

    exit_code = 2

    def __init__(self, url: str, profile: str | None, why: str) -> None:
        hint = f"fedbroker login --profile {profile}" if profile else f"fedbroker login --url {url}"
        super().__init__(f"{why}; run `{hint}` to sign in again")


def _fail(error: BrokerError) -> click.ClickException:
    return click.ClickException(error.description)


# --- session resolution ---------------------------------------------------------------------


def _target(
    env: ClientEnvironment, url: str | None, profile: str | None
) -> tuple[str, str | None, bool, str | None]:
    """The broker URL, provider, device-code preference and profile a command works on."""
    if url:
        return url.rstrip("/"), None, False, profile
    name = profile or env.profile or "default"
    try:
        found_url, provider, device = profile_url(env.aws_config_file, name)
    except ProfileError as error:
        raise click.ClickException(str(error)) from None
    return found_url, provider, device, name


def _login(
    env: ClientEnvironment,
    url: str,
    provider: str | None,
    device_code: bool,
    open_browser: bool,
) -> StoredSession:
    from fedbroker.cli.login_flow import device_login, loopback_login

    client = BrokerClient(url)
    try:
        answer = (
            device_login(client) if device_code else loopback_login(client, provider, open_browser)
        )
    except BrokerError as error:
        raise click.ClickException(f"sign-in failed: {error.description}") from None
    try:
        session = StoredSession(
            url=url,
            handle=str(answer["access_token"]),
            session_id=str(answer["session_id"]),
            expiration=str(answer["expiration"]),
            provider=str(answer["provider"]),
            subject=str(answer["subject"]),
            session_name=str(answer["session_name"]),
        )
    except KeyError as error:
        raise click.ClickException(f"the broker's answer lacks {error}") from None
    store = SessionStore(env.state_dir)
    store.save(session)
    CredentialCache(env.state_dir).clear(url)
    _warn(
        f"Signed in as {session.session_name} through {session.provider}; "
        f"the session lasts until {session.expiration} (kept in {store.where()})."
    )
    return session


def _session(env: ClientEnvironment, url: str, profile: str | None) -> StoredSession:
    session = SessionStore(env.state_dir).load(url)
    if session is None:
        raise NeedLogin(url, profile, f"not signed in to {url}")
    if session.expires_at() <= _now():
        SessionStore(env.state_dir).delete(url)
        raise NeedLogin(url, profile, f"the fedbroker session for {url} has expired")
    return session


# --- credentials -----------------------------------------------------------------------------


def role_credentials(env: ClientEnvironment, profile: HelperProfile) -> dict[str, Any]:
    """``credential_process`` JSON for ``profile``: cached while > 5 minutes remain."""
    cache = CredentialCache(env.state_dir)
    hit = cache.get(profile.url, profile.role_arn, profile.duration, _now())
    if hit is not None:
        return hit
    session = _session(env, profile.url, profile.name)
    client = BrokerClient(profile.url)
    duration = profile.duration
    try:
        try:
            answer = client.credentials(session.handle, profile.role_arn, duration)
        except BrokerError as error:
            limit = error.extra.get("max_session_duration")
            if (
                error.error != "invalid_request"
                or not isinstance(limit, int)
                or duration is None
                or duration <= limit
            ):
                raise
            _warn(
                f"warning: fedbroker_duration {duration} of profile `{profile.name}` is beyond "
                f"the role's maximum session duration; using {limit} seconds"
            )
            duration = limit
            answer = client.credentials(session.handle, profile.role_arn, duration)
    except BrokerError as error:
        if error.error == "invalid_token" or error.status == 401:
            SessionStore(env.state_dir).delete(profile.url)
            cache.clear(profile.url)
            raise NeedLogin(
                profile.url, profile.name, "the fedbroker session has expired or was revoked"
            ) from None
        raise _fail(error) from None
    credentials = {
        "Version": 1,
        "AccessKeyId": answer["AccessKeyId"],
        "SecretAccessKey": answer["SecretAccessKey"],
        "SessionToken": answer["SessionToken"],
        "Expiration": answer["Expiration"],
    }
    cache.put(profile.url, profile.role_arn, profile.duration, credentials)
    return credentials


def _profile(env: ClientEnvironment, name: str | None) -> HelperProfile:
    chosen = name or env.profile or "default"
    try:
        return read_profile(env.aws_config_file, chosen)
    except ProfileError as error:
        raise click.ClickException(str(error)) from None


# --- commands --------------------------------------------------------------------------------

_profile_option = click.option(
    "--profile", "profile_name_", metavar="NAME", help="AWS profile (default: AWS_PROFILE)."
)
_url_option = click.option("--url", help="The broker's URL (instead of a profile's).")


@click.command("credential-process")
@_profile_option
def credential_process(profile_name_: str | None) -> None:
    """Print credentials for botocore's ``credential_process`` (JSON, Version 1)."""
    env = client_environment()
    credentials = role_credentials(env, _profile(env, profile_name_))
    click.echo(json.dumps(credentials))


@click.command("login")
@_profile_option
@_url_option
@click.option("--device-code", is_flag=True, help="Sign in on another device (RFC 8628).")
@click.option("--no-browser", is_flag=True, help="Print the sign-in URL; do not open it.")
def login(profile_name_: str | None, url: str | None, device_code: bool, no_browser: bool) -> None:
    """Sign in through the broker; keeps a CLI session for the profiles of that broker."""
    env = client_environment()
    target, provider, device, _ = _target(env, url, profile_name_)
    _login(env, target, provider, device_code or device, not no_browser)


@click.command("logout")
@_profile_option
@_url_option
def logout(profile_name_: str | None, url: str | None) -> None:
    """Revoke the CLI session at the broker and forget it and its cached credentials."""
    env = client_environment()
    target, _, _, _ = _target(env, url, profile_name_)
    store = SessionStore(env.state_dir)
    session = store.load(target)
    dropped = CredentialCache(env.state_dir).clear(target)
    if session is None:
        _warn(f"not signed in to {target}; {dropped} cached credential(s) removed")
        return
    try:
        BrokerClient(target).revoke(session.handle)
    except BrokerError as error:
        store.delete(target)
        raise click.ClickException(
            f"the session was forgotten here but could not be revoked at the broker: "
            f"{error.description}"
        ) from None
    store.delete(target)
    _warn(f"signed out of {target}: session {session.session_id} revoked")


@click.command("whoami")
@_profile_option
@_url_option
def whoami(profile_name_: str | None, url: str | None) -> None:
    """Show the signed-in identity and when its CLI session expires."""
    env = client_environment()
    target, _, _, profile = _target(env, url, profile_name_)
    session = _session(env, target, profile)
    try:
        answer = BrokerClient(target).whoami(session.handle)
    except BrokerError as error:
        if error.status == 401:
            SessionStore(env.state_dir).delete(target)
            raise NeedLogin(
                target, profile, "the fedbroker session has expired or was revoked"
            ) from None
        raise _fail(error) from None
    display = answer.get("display") or {}
    click.echo(f"broker:     {target}")
    click.echo(f"identity:   {display.get('email') or answer.get('subject')}")
    click.echo(f"subject:    {answer.get('subject')}")
    click.echo(f"provider:   {answer.get('provider')}")
    click.echo(f"account:    {answer.get('account_id')}")
    click.echo(f"session:    {answer.get('session_id')}")
    click.echo(f"expires:    {answer.get('expiration')}")


@click.command("configure")
@click.option("--url", required=True, help="The broker's URL.")
@click.option(
    "--name-template",
    default=DEFAULT_TEMPLATE,
    show_default=True,
    help="Profile names: {role_name}, {account} (alias or id), {account_id}, {provider}.",
)
@click.option("--duration", type=click.IntRange(900, 43200), help="fedbroker_duration to set.")
@click.option("--region", help="region to set in each profile (default: the broker's).")
@click.option("--device-code", is_flag=True, help="Sign in with a device code; remember it.")
@click.option("--no-browser", is_flag=True, help="Print the sign-in URL; do not open it.")
def configure(
    url: str,
    name_template: str,
    duration: int | None,
    region: str | None,
    device_code: bool,
    no_browser: bool,
) -> None:
    """Write a profile per role you may assume into the AWS config (adds new, prunes stale)."""
    env = client_environment()
    url = url.rstrip("/")
    client = BrokerClient(url)
    session = SessionStore(env.state_dir).load(url)
    answer: dict[str, Any] | None = None
    if session is not None and session.expires_at() > _now():
        try:
            answer = client.roles(session.handle)
        except BrokerError as error:
            if error.status != 401:
                raise _fail(error) from None
    if answer is None:
        session = _login(env, url, None, device_code, not no_browser)
        try:
            answer = client.roles(session.handle)
        except BrokerError as error:
            raise _fail(error) from None
    provider = str(answer.get("provider", ""))
    wanted: list[Wanted] = []
    for role in answer.get("roles", []):
        account_id = str(role["account_id"])
        fields = {
            "role_name": str(role["name"]),
            "account_id": account_id,
            "account": str(role.get("account_alias") or account_id),
            "provider": provider,
        }
        try:
            name = profile_name(name_template, fields)
        except ProfileError as error:
            raise click.ClickException(str(error)) from None
        values = {
            "credential_process": PROCESS.format(name=name),
            "fedbroker_url": url,
            "fedbroker_role_arn": str(role["arn"]),
            "fedbroker_provider": provider,
        }
        if duration is not None:
            values["fedbroker_duration"] = str(duration)
        if device_code:
            values["fedbroker_device_code"] = "true"
        chosen_region = region or answer.get("region")
        if chosen_region:
            values["region"] = str(chosen_region)
        if any(w.name == name for w in wanted):
            raise click.ClickException(
                f"two roles give the profile name `{name}`; use a --name-template with "
                "{account_id}"
            )
        wanted.append(Wanted(name, values))
    written = write_profiles(env.aws_config_file, url, provider, wanted)
    for name in written.added:
        click.echo(f"added    {name}")
    for name in written.updated:
        click.echo(f"updated  {name}")
    for name in written.pruned:
        click.echo(f"removed  {name} (no longer offered)")
    if not wanted:
        _warn("no role is offered to you through this broker")
    _warn(f"profiles written to {env.aws_config_file}")


@click.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@_profile_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(profile_name_: str | None, command: tuple[str, ...]) -> None:
    """Run COMMAND with the profile's credentials in its environment."""
    env = client_environment()
    credentials = role_credentials(env, _profile(env, profile_name_))
    child = dict(env.variables)
    child.update(
        {
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
            "AWS_CREDENTIAL_EXPIRATION": credentials["Expiration"],
        }
    )
    # The profile would point botocore back at credential_process: the environment wins.
    child.pop("AWS_PROFILE", None)
    child.pop("AWS_DEFAULT_PROFILE", None)
    try:
        done = subprocess.run(list(command), env=child, check=False)
    except OSError as error:
        raise click.ClickException(f"cannot run `{command[0]}`: {error.strerror}") from None
    sys.exit(done.returncode)


@click.command("serve-credentials")
@_profile_option
def serve_credentials(profile_name_: str | None) -> None:
    """Serve the profile's credentials to botocore's container provider, refreshing them."""
    from fedbroker.cli.credential_server import serve

    env = client_environment()
    profile = _profile(env, profile_name_)
    role_credentials(env, profile)  # fail now, not at the first request, if not signed in
    serve(lambda: role_credentials(env, profile))
