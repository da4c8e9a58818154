"""Settings: defaults, then a TOML file, then ``FEDBROKER_*`` environment, then overrides.

The only module that reads the environment. Validation reports every problem at once.
Secrets are never inline: the master key comes from a file or ``FEDBROKER_MASTER_KEY``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from fedbroker.errors import FedbrokerError


class ConfigError(FedbrokerError):
    code = "InvalidConfiguration"
    status = 500


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str | None = None  # default: SQLite file in the data directory
    master_key_file: Path | None = None  # default: <data_dir>/master.key (development only)
    dev_mode: bool = True
    region: str = "us-east-1"
    workers: int = 2
    max_body_bytes: int = 1_048_576
    # The broker as a SAML service provider (federation/saml_sp.py): the Audience and the
    # Recipient/Destination that AssumeRoleWithSAML requires. AWS's values by default.
    saml_entity_id: str = "urn:amazon:webservices"
    saml_acs_url: str = "https://signin.aws.amazon.com/saml"
    # The URL relying parties reach the broker at: the `iss` of the tokens it signs, and where
    # /.well-known/openid-configuration is served. Default: http://<host>:<port>.
    issuer_url: str | None = None
    # Broker web sessions of the browser sign-in (issue 5), in seconds: ended after this long
    # without a request, and after this long in any case.
    sso_idle_timeout: int = 900
    sso_session_lifetime: int = 28800
    # Lifetime of a broker CLI session (`fedbroker login`, issue 6), in seconds: 8 hours.
    cli_session_lifetime: int = 28800

    @property
    def effective_issuer_url(self) -> str:
        return (self.issuer_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'fedbroker.db').resolve()}"

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def audit_log(self) -> Path:
        return self.data_dir / "audit" / "events.jsonl"


_ENV_PREFIX = "FEDBROKER_"


def master_key_from_env() -> str | None:
    """The base64 master key from ``FEDBROKER_MASTER_KEY``, if set."""
    return os.environ.get(f"{_ENV_PREFIX}MASTER_KEY") or None


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from every source, in order; raise :class:`ConfigError` listing problems."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    if config_file is not None:
        try:
            with open(config_file, "rb") as handle:
                values.update(tomllib.load(handle).get("broker", {}))
        except OSError as exc:
            problems.append(f"cannot read `{config_file}`: {exc.strerror}")
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"`{config_file}` is not valid TOML: {exc}")
    known = {f.name: f for f in fields(Settings)}
    for name in known:
        raw = env.get(f"{_ENV_PREFIX}{name.upper()}")
        if raw is not None:
            values[name] = raw
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    settings = Settings()
    for name, value in values.items():
        if name not in known:
            problems.append(f"unknown setting `{name}`")
            continue
        try:
            settings = replace(settings, **{name: _coerce(name, value)})
        except ValueError as exc:
            problems.append(f"setting `{name}`: {exc}")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return settings


def _coerce(name: str, value: Any) -> Any:
    if name in ("data_dir", "master_key_file"):
        return Path(value) if value not in ("", None) else None
    if name in (
        "port",
        "workers",
        "max_body_bytes",
        "sso_idle_timeout",
        "sso_session_lifetime",
        "cli_session_lifetime",
    ):
        number = int(value)
        if number <= 0:
            raise ValueError("must be a positive integer")
        return number
    if name == "dev_mode":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("must be true or false")
        return text in ("true", "1", "yes")
    if name == "saml_acs_url":
        text = str(value).strip()
        if not text.startswith(("https://", "http://")) or " " in text:
            raise ValueError("must be an http(s) URL")
        return text
    if name == "saml_entity_id" and not str(value).strip():
        raise ValueError("must not be empty")
    return str(value)


# --- the CLI credential helper's side (issue 6): where the AWS tools and the helper keep files


@dataclass(frozen=True, slots=True)
class ClientEnvironment:
    aws_config_file: Path  # AWS_CONFIG_FILE, else ~/.aws/config (as botocore)
    state_dir: Path  # FEDBROKER_CLI_DIR, else ~/.fedbroker: sessions (file fallback), cache
    profile: str | None  # AWS_PROFILE
    variables: dict[str, str]  # the whole environment, for `fedbroker exec`'s child


def client_environment(environ: Mapping[str, str] | None = None) -> ClientEnvironment:
    env = dict(os.environ if environ is None else environ)
    home = Path(env.get("HOME") or Path.home())
    config = env.get("AWS_CONFIG_FILE")
    state = env.get(f"{_ENV_PREFIX}CLI_DIR")
    return ClientEnvironment(
        aws_config_file=Path(config).expanduser() if config else home / ".aws" / "config",
        state_dir=Path(state).expanduser() if state else home / ".fedbroker",
        profile=env.get("AWS_PROFILE") or None,
        variables=env,
    )
