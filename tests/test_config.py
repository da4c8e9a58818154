"""Settings: defaults, TOML file, environment, overrides; every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedbroker.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_embedded_development_setup() -> None:
    settings = load_settings(environ={})
    assert settings.host == "127.0.0.1" and settings.port == 8080 and settings.dev_mode
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_master_key_file == Path("data/master.key")


def test_example_file_loads() -> None:
    settings = load_settings(REPO / "config/fedbroker.example.toml", environ={})
    assert settings.workers == 2 and settings.max_body_bytes == 1048576


def test_precedence_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "f.toml"
    config.write_text('[broker]\nport = 9000\nhost = "0.0.0.0"\nregion = "eu-west-1"\n')
    settings = load_settings(
        config, {"port": 9100}, environ={"FEDBROKER_PORT": "9050", "FEDBROKER_HOST": "127.0.0.2"}
    )
    assert (settings.port, settings.host, settings.region) == (9100, "127.0.0.2", "eu-west-1")


def test_every_problem_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "f.toml"
    config.write_text('[broker]\nport = -1\nbogus = 1\ndev_mode = "maybe"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={})
    message = info.value.message
    assert "`port`" in message and "unknown setting `bogus`" in message
    assert "`dev_mode`" in message
    with pytest.raises(ConfigError, match="not valid TOML"):
        bad = tmp_path / "bad.toml"
        bad.write_text("[broker\n")
        load_settings(bad, environ={})


def test_saml_names_default_to_aws_and_are_checked() -> None:
    settings = load_settings(environ={})
    assert settings.saml_entity_id == "urn:amazon:webservices"
    assert settings.saml_acs_url == "https://signin.aws.amazon.com/saml"
    custom = load_settings(
        environ={
            "FEDBROKER_SAML_ENTITY_ID": "urn:example:broker",
            "FEDBROKER_SAML_ACS_URL": "https://broker.example/saml",
        }
    )
    assert (custom.saml_entity_id, custom.saml_acs_url) == (
        "urn:example:broker",
        "https://broker.example/saml",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"FEDBROKER_SAML_ACS_URL": "signin", "FEDBROKER_SAML_ENTITY_ID": " "})
    assert "saml_acs_url" in info.value.message and "saml_entity_id" in info.value.message


def test_broker_session_timeouts_come_from_the_file_or_the_environment(tmp_path: Path) -> None:
    defaults = load_settings(environ={})
    assert (defaults.sso_idle_timeout, defaults.sso_session_lifetime) == (900, 28800)
    example = load_settings(REPO / "config/fedbroker.example.toml", environ={})
    assert (example.sso_idle_timeout, example.sso_session_lifetime) == (900, 28800)
    config = tmp_path / "f.toml"
    config.write_text("[broker]\nsso_idle_timeout = 300\n")
    settings = load_settings(config, environ={"FEDBROKER_SSO_SESSION_LIFETIME": "3600"})
    assert (settings.sso_idle_timeout, settings.sso_session_lifetime) == (300, 3600)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"FEDBROKER_SSO_IDLE_TIMEOUT": "0"})
    assert "sso_idle_timeout" in info.value.message


def test_cli_session_lifetime_is_eight_hours_unless_set() -> None:
    assert load_settings(environ={}).cli_session_lifetime == 28800
    env = {"FEDBROKER_CLI_SESSION_LIFETIME": "600"}
    assert load_settings(environ=env).cli_session_lifetime == 600
    with pytest.raises(ConfigError, match="cli_session_lifetime"):
        load_settings(environ={"FEDBROKER_CLI_SESSION_LIFETIME": "-1"})
