"""The CLI helper's files: AWS config profiles, the stored session, the credential cache."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend

from fedbroker.cli.aws_profiles import (
    PROCESS,
    ProfileError,
    Wanted,
    profile_name,
    read_profile,
    write_profiles,
)
from fedbroker.cli.client_state import CredentialCache, SessionStore, StoredSession
from fedbroker.config import client_environment

URL = "http://127.0.0.1:9"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def wanted(name: str, role: str, provider: str = "idp.test") -> Wanted:
    return Wanted(
        name,
        {
            "credential_process": PROCESS.format(name=name),
            "fedbroker_url": URL,
            "fedbroker_role_arn": f"arn:aws:iam::123456789012:role/{role}",
            "fedbroker_provider": provider,
        },
    )


def test_profiles_are_added_updated_and_pruned_and_others_kept(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        "# my settings\n[default]\nregion = eu-west-1\n\n"
        "[profile mine]\ncredential_process = /bin/other\n"
    )
    first = write_profiles(config, URL, "idp.test", [wanted("dev", "dev"), wanted("ops", "ops")])
    assert first.added == ("dev", "ops") and not first.pruned
    # The user adds a key to a helper profile; it survives the next run.
    config.write_text(
        config.read_text().replace(
            "fedbroker_provider = idp.test\n", "fedbroker_provider = idp.test\noutput = json\n", 1
        )
    )
    second = write_profiles(config, URL, "idp.test", [wanted("dev", "dev2")])
    assert second.updated == ("dev",) and second.pruned == ("ops",) and not second.added
    text = config.read_text()
    assert text.startswith("# my settings\n[default]\nregion = eu-west-1\n")
    assert "[profile mine]\ncredential_process = /bin/other" in text
    assert "[profile ops]" not in text
    profile = read_profile(config, "dev")
    assert profile.role_arn.endswith(":role/dev2") and profile.url == URL
    assert "output = json" in text
    # Another provider's profiles of the same broker are not pruned by this one's run.
    write_profiles(config, URL, "other.test", [wanted("x", "x", "other.test")])
    assert read_profile(config, "dev").provider == "idp.test"


def test_profile_errors_are_clear(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[profile plain]\nregion = us-east-1\n")
    with pytest.raises(ProfileError, match="`nope` is not in"):
        read_profile(config, "nope")
    with pytest.raises(ProfileError, match="no fedbroker_url"):
        read_profile(config, "plain")
    config.write_text(
        "[profile bad]\nfedbroker_url = u\nfedbroker_role_arn = r\nfedbroker_duration = 1h\n"
    )
    with pytest.raises(ProfileError, match="fedbroker_duration"):
        read_profile(config, "bad")


def test_profile_names_follow_the_template() -> None:
    fields = {"role_name": "Dev", "account_id": "1", "account": "acme prod", "provider": "p"}
    assert profile_name("{role_name}-{account}", fields) == "Dev-acme-prod"
    with pytest.raises(ProfileError, match="invalid"):
        profile_name("{nope}", fields)


def test_session_falls_back_to_a_user_only_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # keyring's own "no keyring here" backend, as on a server without a Secret Service.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    import keyring.core

    keyring.core.init_backend()
    store = SessionStore(tmp_path)
    session = StoredSession(URL, "secret-handle", "cli-1", "2026-05-01T20:00:00Z", "p", "s", "n")
    store.save(session)
    [path] = (tmp_path / "sessions").iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert store.load(URL) == session
    os.chmod(path, 0o644)  # someone loosened it: not trusted any more
    assert store.load(URL) is None
    store.delete(URL)
    assert not path.exists()


def test_cache_is_used_while_more_than_five_minutes_remain(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path)
    creds = {"Version": 1, "AccessKeyId": "ASIA", "Expiration": "2026-05-01T12:06:00Z"}
    cache.put(URL, "arn:role", None, creds)
    [path] = (tmp_path / "cache").iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cache.get(URL, "arn:role", None, NOW) == creds
    assert cache.get(URL, "arn:role", 3600, NOW) is None  # another duration, another entry
    assert cache.get(URL, "arn:role", None, NOW + timedelta(minutes=1, seconds=1)) is None
    assert cache.clear("http://other") == 0 and cache.clear(URL) == 1
    assert cache.get(URL, "arn:role", None, NOW) is None
    assert json.loads(json.dumps(creds)) == creds


def test_client_environment_honours_aws_config_file(tmp_path: Path) -> None:
    env = client_environment({"HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "c")})
    assert env.aws_config_file == tmp_path / "c"
    assert env.state_dir == tmp_path / ".fedbroker"
    default = client_environment({"HOME": str(tmp_path), "FEDBROKER_CLI_DIR": "/x"})
    assert default.aws_config_file == tmp_path / ".aws" / "config"
    assert default.state_dir == Path("/x")


class DictKeyring(KeyringBackend):
    """Stands in for an OS keyring (Secret Service, Keychain), which cannot run here."""

    priority = 1  # type: ignore[assignment]

    def __init__(self, broken: bool = False) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}
        self.broken = broken

    def set_password(self, service: str, username: str, password: str) -> None:
        if self.broken:
            raise keyring.errors.PasswordSetError("locked")
        self.secrets[(service, username)] = password

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def delete_password(self, service: str, username: str) -> None:
        self.secrets.pop((service, username), None)


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)


def test_session_goes_to_the_os_keyring_when_there_is_one(
    tmp_path: Path, restore_keyring: None
) -> None:
    ring = DictKeyring()
    keyring.set_keyring(ring)
    store = SessionStore(tmp_path)
    session = StoredSession(URL, "secret-handle", "cli-1", "2026-05-01T20:00:00Z", "p", "s", "n")
    store.save(session)
    assert store.where() == "the OS keyring"
    assert not (tmp_path / "sessions").exists() or not list((tmp_path / "sessions").iterdir())
    assert json.loads(ring.secrets[("fedbroker-cli", URL)])["handle"] == "secret-handle"
    assert store.load(URL) == session
    store.delete(URL)
    assert ring.secrets == {}


def test_a_keyring_that_refuses_falls_back_to_the_file(
    tmp_path: Path, restore_keyring: None
) -> None:
    keyring.set_keyring(DictKeyring(broken=True))
    store = SessionStore(tmp_path)
    session = StoredSession(URL, "secret-handle", "cli-1", "2026-05-01T20:00:00Z", "p", "s", "n")
    store.save(session)
    assert len(list((tmp_path / "sessions").iterdir())) == 1
    assert store.load(URL) == session


def helper_run(tmp_path: Path, *args: str) -> Any:
    from click.testing import CliRunner

    from fedbroker.cli.main import main

    env = {
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "FEDBROKER_CLI_DIR": str(tmp_path / "state"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "AWS_PROFILE": "",
    }
    return CliRunner().invoke(main, list(args), env=env)


def test_credential_process_refusals_print_nothing_on_stdout(tmp_path: Path) -> None:
    missing = helper_run(tmp_path, "credential-process", "--profile", "nope")
    assert missing.exit_code == 1 and missing.stdout == ""
    assert "profile `nope` is not in" in missing.stderr
    (tmp_path / "config").write_text(
        "[profile dev]\ncredential_process = fedbroker credential-process --profile dev\n"
        "fedbroker_url = http://127.0.0.1:9\nfedbroker_role_arn = arn:aws:iam::1:role/r\n"
    )
    unsigned = helper_run(tmp_path, "credential-process", "--profile", "dev")
    assert unsigned.exit_code == 2 and unsigned.stdout == ""
    assert "run `fedbroker login --profile dev`" in unsigned.stderr
    SessionStore(tmp_path / "state").save(
        StoredSession("http://127.0.0.1:9", "h", "cli-1", "2000-01-01T00:00:00Z", "p", "s", "n")
    )
    expired = helper_run(tmp_path, "credential-process", "--profile", "dev")
    assert expired.exit_code == 2 and expired.stdout == ""
    assert "has expired; run `fedbroker login --profile dev`" in expired.stderr
    SessionStore(tmp_path / "state").save(
        StoredSession("http://127.0.0.1:9", "h", "cli-1", "2999-01-01T00:00:00Z", "p", "s", "n")
    )
    down = helper_run(tmp_path, "credential-process", "--profile", "dev")
    assert down.exit_code == 1 and down.stdout == ""
    assert "could not be reached" in down.stderr and "h" not in down.stderr.split()
