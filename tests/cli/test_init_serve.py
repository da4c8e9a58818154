"""`fedbroker init` and the start-up checks of `fedbroker serve`."""

from __future__ import annotations

import configparser
import os
import stat
from pathlib import Path

from click.testing import CliRunner

from fedbroker.cli.main import main


def test_init_creates_account_root_and_admin_profile(tmp_path: Path) -> None:
    data, creds = tmp_path / "data", tmp_path / "aws" / "credentials"
    creds.parent.mkdir()
    creds.write_text("[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = s\n")
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "init",
            "--data-dir",
            str(data),
            "--account-alias",
            "acme",
            "--bootstrap-admin",
            "ops",
            "--credentials-file",
            str(creds),
            "--profile",
            "ops",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "created account" in result.output and "(acme)" in result.output
    assert "root password (shown once" in result.output
    assert "MFA" in result.output
    assert stat.S_IMODE(os.stat(creds).st_mode) == 0o600
    parser = configparser.RawConfigParser()
    parser.read(creds)
    assert parser.get("other", "aws_access_key_id") == "AKIAOTHER"  # kept
    assert parser.get("ops", "aws_access_key_id").startswith("AKIA")
    assert len(parser.get("ops", "aws_secret_access_key")) == 40
    secret = parser.get("ops", "aws_secret_access_key")
    assert secret not in result.output
    assert secret.encode() not in (data / "fedbroker.db").read_bytes()  # sealed at rest
    again = runner.invoke(main, ["init", "--data-dir", str(data)])
    assert again.exit_code == 1 and "already has an account" in again.output


def test_init_reads_root_password_from_file(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("a long root password\n")
    result = CliRunner().invoke(
        main, ["init", "--data-dir", str(tmp_path / "d"), "--root-password-file", str(password)]
    )
    assert result.exit_code == 0
    assert "a long root password" not in result.output
    short = tmp_path / "short"
    short.write_text("abc")
    result = CliRunner().invoke(
        main, ["init", "--data-dir", str(tmp_path / "e"), "--root-password-file", str(short)]
    )
    assert result.exit_code == 1 and "at least 8 characters" in result.output


def test_admin_needs_a_credentials_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["init", "--data-dir", str(tmp_path), "--bootstrap-admin", "ops"]
    )
    assert result.exit_code == 2 and "--credentials-file" in result.output


def test_serve_refuses_a_development_key_outside_development_mode(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--data-dir", str(tmp_path)]).exit_code == 0
    config = tmp_path / "prod.toml"
    config.write_text("[broker]\ndev_mode = false\n")
    result = runner.invoke(main, ["serve", "--data-dir", str(tmp_path), "--config", str(config)])
    assert result.exit_code == 1
    assert "development master key" in result.output
