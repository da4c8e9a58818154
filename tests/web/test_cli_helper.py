"""The CLI credential helper end to end, with unmodified real clients (issue 6).

A real broker (`fedbroker serve`), the npm `oidc-provider` peer and headless Chromium (browser
fixtures in conftest.py); `fedbroker configure/login/...` run as subprocesses with a
temporary HOME, AWS_CONFIG_FILE and state directory. The AWS CLI v1 (its own venv, as a
subprocess) and boto3 read the profiles the helper wrote and get credentials through
`credential_process` and through the container-credentials endpoint of `serve-credentials`.
Refresh is shown by ageing the cached credentials (not by waiting); revocation at the broker
stops the next refresh.
"""

from __future__ import annotations

import configparser
import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import boto3
import pytest
from botocore.config import Config
from playwright.sync_api import Browser, Page

from tests.web.conftest import FEDBROKER, REPO, Broker
from tests.web.test_sso_oidc import OidcPeer, make_role, provider_login, provider_peer

AWS = os.environ.get("FEDBROKER_TEST_AWS_CLI", str(REPO / ".venv-awscli/bin/aws"))
BIN = str(Path(FEDBROKER).parent)


@dataclass
class Helper:
    """A developer's machine: HOME, AWS config, the helper's state, the environment."""

    home: Path
    broker: Broker
    env: dict[str, str]

    @property
    def config(self) -> Path:
        return self.home / ".aws" / "config"

    @property
    def state(self) -> Path:
        return self.home / "state"

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [FEDBROKER, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    def start(self, *args: str) -> Running:
        process = subprocess.Popen(
            [FEDBROKER, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return Running(process)

    def aws(self, *args: str) -> subprocess.CompletedProcess[str]:
        if not Path(AWS).exists():
            pytest.fail(f"the AWS CLI is not installed at {AWS}; scripts/test.sh installs it")
        return subprocess.run(
            [AWS, "--endpoint-url", self.broker.url, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def profiles(self) -> dict[str, dict[str, str]]:
        parser = configparser.RawConfigParser()
        parser.read(self.config)
        return {
            s.removeprefix("profile "): dict(parser.items(s))
            for s in parser.sections()
            if s.startswith("profile ")
        }


class Running:
    """A helper command in the background, its output read line by line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        for stream in (process.stdout, process.stderr):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def line(self, starting: str, timeout: float = 30) -> str:
        while True:
            line = self.lines.get(timeout=timeout)
            self.seen.append(line)
            if line.strip().startswith(starting):
                return line.strip()

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="session")
def oidc_peer(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcPeer]:
    """An OIDC provider (npm oidc-provider) registered and configured for sign-in."""
    with provider_peer(broker, tmp_path_factory.mktemp("cli-oidc-provider")) as peer:
        yield peer


@pytest.fixture
def helper(broker: Broker, tmp_path: Path) -> Helper:
    home = tmp_path / "home"
    home.mkdir()
    (home / "credentials").write_text("")
    env = {
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "FEDBROKER_CLI_DIR": str(home / "state"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "BROWSER": "true",  # `webbrowser` runs `true URL`; the test drives Chromium itself
        # No OS keyring here: keyring's own "fail" backend, so the session goes to a file.
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    return Helper(home, broker, env)


def browser_login(page: Page, running: Running, broker: Broker, peer: OidcPeer, login: str) -> None:
    """The part of `fedbroker login` that happens in the browser: sign in, allow the CLI."""
    url = running.line(f"{broker.url}/sso/cli/authorize?")
    page.goto(url)
    page.get_by_role("link", name=peer.name).click()
    provider_login(page, broker, login)
    assert page.get_by_role("heading", name="Allow the fedbroker CLI?").is_visible()
    assert page.locator("#requesting-host").inner_text()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url("http://127.0.0.1:*/callback?*")
    assert "Signed in" in page.content()


def configured(
    helper: Helper, page: Page, peer: OidcPeer, login: str, *extra: str
) -> dict[str, dict[str, str]]:
    running = helper.start("configure", "--url", helper.broker.url, "--no-browser", *extra)
    try:
        browser_login(page, running, helper.broker, peer, login)
        assert running.finish() == 0, running.seen
    finally:
        running.stop()
    return helper.profiles()


def caller(arn: str, session_name: str) -> str:
    return arn.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/") + f"/{session_name}"


def test_from_sign_in_to_the_aws_cli_and_boto3(
    helper: Helper, oidc_peer: OidcPeer, page: Page, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = f"dev-{unique}"
    dev = make_role(helper.broker, oidc_peer, f"cli-dev-{unique}", login)
    ops = make_role(helper.broker, oidc_peer, f"cli-ops-{unique}", login)
    helper.config.parent.mkdir(parents=True)
    helper.config.write_text("[profile mine]\nregion = eu-west-1\n")

    profiles = configured(helper, page, oidc_peer, login)
    assert profiles["mine"] == {"region": "eu-west-1"}
    by_role = {p["fedbroker_role_arn"]: (name, p) for name, p in profiles.items() if name != "mine"}
    assert set(by_role) == {dev, ops}
    name, dev_profile = by_role[dev]
    assert dev_profile == {
        "credential_process": f"fedbroker credential-process --profile {name}",
        "fedbroker_url": helper.broker.url,
        "fedbroker_role_arn": dev,
        "fedbroker_provider": oidc_peer.name,
        "region": "us-east-1",
    }
    [session_file] = (helper.state / "sessions").iterdir()
    assert oct(session_file.stat().st_mode & 0o777) == "0o600"

    # The unmodified AWS CLI, through credential_process.
    session_name = f"{login}@example.test"
    done = helper.aws("sts", "get-caller-identity", "--profile", name)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"] == caller(dev, session_name)

    # boto3 in this process reads the same profile.
    for key, value in helper.env.items():
        monkeypatch.setenv(key, value)
    sts = boto3.Session(profile_name=by_role[ops][0]).client(
        "sts", endpoint_url=helper.broker.url, config=Config(retries={"max_attempts": 1})
    )
    assert sts.get_caller_identity()["Arn"] == caller(ops, session_name)

    # The second call is served from the cache (no new exchange at the broker) ...
    first = json.loads(helper.run("credential-process", "--profile", name).stdout)
    again = json.loads(helper.run("credential-process", "--profile", name).stdout)
    assert first == again and first["Version"] == 1
    # ... until less than 5 minutes remain: then it refreshes without interaction.
    [cache] = [
        p
        for p in (helper.state / "cache").iterdir()
        if json.loads(p.read_text())["credentials"]["AccessKeyId"] == first["AccessKeyId"]
    ]
    aged = json.loads(cache.read_text())
    soon = datetime.now(UTC) + timedelta(minutes=4)
    aged["credentials"]["Expiration"] = soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    cache.write_text(json.dumps(aged))
    fresh = json.loads(helper.run("credential-process", "--profile", name).stdout)
    assert fresh["AccessKeyId"] != first["AccessKeyId"]

    # whoami, then the role is pruned once it is no longer offered.
    who = helper.run("whoami", "--profile", name).stdout
    assert f"subject:    {login}" in who and "expires:" in who
    helper.broker.client("iam").delete_role(RoleName=f"cli-ops-{unique}")
    rerun = helper.run("configure", "--url", helper.broker.url, "--no-browser")
    assert f"removed  {by_role[ops][0]}" in rerun.stdout
    assert set(helper.profiles()) == {"mine", name}


def test_durations_are_clamped_and_revocation_stops_the_next_refresh(
    helper: Helper, oidc_peer: OidcPeer, page: Page, unique: str
) -> None:
    login = f"clamp-{unique}"
    role = make_role(helper.broker, oidc_peer, f"cli-clamp-{unique}", login)
    profiles = configured(helper, page, oidc_peer, login, "--duration", "7200")
    [(name, profile)] = list(profiles.items())
    assert profile["fedbroker_duration"] == "7200" and profile["fedbroker_role_arn"] == role

    done = helper.run("credential-process", "--profile", name)
    assert "beyond the role's maximum session duration; using 3600 seconds" in done.stderr
    creds = json.loads(done.stdout)
    expires = datetime.fromisoformat(creds["Expiration"].replace("Z", "+00:00"))
    assert timedelta(minutes=55) < expires - datetime.now(UTC) <= timedelta(hours=1)

    # An administrator revokes this person's CLI sessions at the broker; once the cached
    # credentials are gone (or near their end), the next refresh fails.
    revoked = subprocess.run(
        [
            FEDBROKER,
            "sessions",
            "revoke-cli",
            *helper.broker.store_args,
            "--subject",
            login,
            "--provider",
            oidc_peer.name,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert revoked.returncode == 0, revoked.stderr
    for path in (helper.state / "cache").iterdir():
        path.unlink()
    refused = helper.run("credential-process", "--profile", name, ok=False)
    assert refused.returncode != 0
    assert refused.stdout == ""
    assert f"fedbroker login --profile {name}" in refused.stderr
    assert "expired or was revoked" in refused.stderr
    aws = helper.aws("sts", "get-caller-identity", "--profile", name)
    assert aws.returncode != 0 and "fedbroker login" in aws.stderr


def test_serve_credentials_feeds_botocores_container_provider(
    helper: Helper, oidc_peer: OidcPeer, page: Page, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = f"svc-{unique}"
    role = make_role(helper.broker, oidc_peer, f"cli-svc-{unique}", login)
    [name] = configured(helper, page, oidc_peer, login)
    server = helper.start("serve-credentials", "--profile", name)
    try:
        uri = server.line("export AWS_CONTAINER_CREDENTIALS_FULL_URI=").split("=", 1)[1]
        token = server.line("export AWS_CONTAINER_AUTHORIZATION_TOKEN=").split("=", 1)[1]
        empty = helper.home / "empty"
        empty.write_text("")
        for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", token)
        session = boto3.Session(region_name="us-east-1")
        assert session.get_credentials().method == "container-role"
        sts = session.client("sts", endpoint_url=helper.broker.url)
        assert sts.get_caller_identity()["Arn"] == caller(role, f"{login}@example.test")

        # Without the token, the endpoint gives nothing.
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(uri, timeout=10)
        assert refused.value.code == 401
        refused.value.close()
    finally:
        server.stop()

    # exec: the same credentials in a child's environment.
    done = helper.run(
        "exec",
        "--profile",
        name,
        "--",
        AWS,
        "--endpoint-url",
        helper.broker.url,
        "sts",
        "get-caller-identity",
    )
    assert json.loads(done.stdout)["Arn"] == caller(role, f"{login}@example.test")

    # logout revokes at the broker and clears the cache: the next call needs a login.
    out = helper.run("logout", "--profile", name)
    assert "revoked" in out.stderr
    assert not list((helper.state / "sessions").iterdir())
    assert not list((helper.state / "cache").iterdir())
    after = helper.run("credential-process", "--profile", name, ok=False)
    assert after.returncode != 0 and after.stdout == "" and "fedbroker login" in after.stderr


@pytest.fixture
def second_page(browser: Browser) -> Iterator[Page]:
    """Another browser (context): the phone or laptop that approves a device code."""
    context = browser.new_context()
    other = context.new_page()
    other.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith("http://127.0.0.1") else route.abort()
        ),
    )
    yield other
    context.close()


def test_device_code_login_approved_from_another_browser(
    helper: Helper, oidc_peer: OidcPeer, second_page: Page, unique: str
) -> None:
    login = f"ssh-{unique}"
    role = make_role(helper.broker, oidc_peer, f"cli-ssh-{unique}", login)
    helper.config.parent.mkdir(parents=True)
    helper.config.write_text(
        f"[profile box]\ncredential_process = fedbroker credential-process --profile box\n"
        f"fedbroker_url = {helper.broker.url}\nfedbroker_role_arn = {role}\n"
        f"fedbroker_provider = {oidc_peer.name}\nfedbroker_device_code = true\n"
    )
    running = helper.start("login", "--profile", "box")
    try:
        running.line("To sign in, open")
        code = running.line("")  # the code, on a line of its own
        while "-" not in code or " " in code:
            code = running.line("")
        complete = running.line("or open ").removeprefix("or open ")
        second_page.goto(complete)
        second_page.get_by_role("link", name=oidc_peer.name).click()
        provider_login(second_page, helper.broker, login)
        assert second_page.locator("#user-code").inner_text() == code
        assert second_page.locator("#requesting-host").inner_text()
        second_page.get_by_role("button", name="Approve").click()
        second_page.wait_for_selector("main h1")
        assert second_page.get_by_role("heading", name="Device signed in").is_visible()
        assert running.finish(timeout=60) == 0, running.seen
    finally:
        running.stop()
    done = helper.aws("sts", "get-caller-identity", "--profile", "box")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"] == caller(role, f"{login}@example.test")
    events: list[dict[str, Any]] = helper.broker.audit_events()
    approvals = [
        e
        for e in events
        if e["eventName"] == "ApproveDeviceAuthorization"
        and e["userIdentity"].get("userName") == login
    ]
    assert len(approvals) == 1 and "errorCode" not in approvals[0]
