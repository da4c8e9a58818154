"""Browser sign-in through OpenID Connect (issue 5, first slice), in a real browser.

npm `oidc-provider` (tests/peers/oidc-provider.mjs) runs on 127.0.0.1 with a static client and
PKCE required; it is registered with boto3's IAM client plus `fedbroker sso configure-oidc`;
Debian's chromium, driven by Playwright, signs in through its development login and consent
pages to the broker's session page, and the credentials read off that page are used with
boto3. Bad input (a wrong `state`, a replayed callback, a form without its CSRF token) shows
the error page and issues nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from playwright.sync_api import Page

from tests.support.node_peers import node_peer
from tests.web.conftest import FEDBROKER, REPO, Broker

CLIENT_ID = "fedbroker-sso"
CLIENT_SECRET = "a client secret for the tests only"
ACTION = "sts:AssumeRoleWithWebIdentity"


@dataclass
class OidcPeer:
    url: str
    arn: str

    @property
    def name(self) -> str:
        return self.url.split("://", 1)[1]


@pytest.fixture(scope="session")
def oidc_peer(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcPeer]:
    """The provider, registered in the broker and configured for browser sign-in."""
    tmp = tmp_path_factory.mktemp("oidc-provider")
    redirect = f"{broker.url}/sso/oidc/callback"
    with node_peer(
        "oidc-provider.mjs",
        "/.well-known/openid-configuration",
        tmp,
        CLIENT_ID,
        CLIENT_SECRET,
        redirect,
    ) as peer:
        arn = broker.client("iam").create_open_id_connect_provider(
            Url=peer.url, ClientIDList=[CLIENT_ID]
        )["OpenIDConnectProviderArn"]
        secret_file = tmp / "client-secret"
        secret_file.write_text(CLIENT_SECRET + "\n")
        done = subprocess.run(
            [
                FEDBROKER,
                "sso",
                "configure-oidc",
                *broker.store_args,
                "--provider-url",
                peer.url,
                "--client-id",
                CLIENT_ID,
                "--client-secret-file",
                str(secret_file),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert CLIENT_SECRET not in done.stdout + done.stderr
        yield OidcPeer(peer.url, str(arn))


Shots = Callable[[Page, str], None]


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Shots:
    """Saves full-page screenshots: into a temporary directory, or into the directory named by
    ``FEDBROKER_SCREENSHOTS`` (relative to the repository; ``docs`` for the README's)."""
    named = os.environ.get("FEDBROKER_SCREENSHOTS")
    directory = REPO / named if named else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)

    def save(page: Page, name: str) -> None:
        page.screenshot(path=str(directory / name), full_page=True)

    return save


def trust(peer: OidcPeer, subject: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": peer.arn},
                    "Action": ACTION,
                    "Condition": {
                        "StringEquals": {
                            f"{peer.name}:aud": CLIENT_ID,
                            f"{peer.name}:sub": subject,
                        }
                    },
                }
            ],
        }
    )


def make_role(broker: Broker, peer: OidcPeer, name: str, subject: str) -> str:
    iam = broker.client("iam")
    role = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=trust(peer, subject), Description=f"{name} role"
    )
    return str(role["Role"]["Arn"])


def sign_in(page: Page, broker: Broker, peer: OidcPeer, login: str) -> None:
    """Start page → provider's login → consent; stops wherever the broker answers."""
    page.goto(f"{broker.url}/sso")
    page.get_by_role("link", name=peer.name).click()
    provider_login(page, broker, login)


def provider_login(page: Page, broker: Broker, login: str) -> None:
    """The provider's development login and consent pages, back to the broker."""
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]").click()  # consent: "Continue"
    page.wait_for_url(f"{broker.url}/sso/**")
    page.wait_for_selector("main h1")


def read_credentials(page: Page) -> dict[str, str]:
    text = page.locator("#bash-exports").inner_text()
    found = dict(re.findall(r"export (\w+)=(\S+)", text))
    return {
        "aws_access_key_id": found["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": found["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": found["AWS_SESSION_TOKEN"],
    }


def caller_arn(broker: Broker, credentials: dict[str, str]) -> str:
    sts = boto3.client(
        "sts",
        endpoint_url=broker.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
        **credentials,
    )
    return str(sts.get_caller_identity()["Arn"])


def exchanges(broker: Broker, session_name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in broker.audit_events()
        if e["eventName"] == "AssumeRoleWithWebIdentity"
        and e["requestParameters"].get("RoleSessionName") == session_name
        and e.get("errorCode") is None
    ]


def test_one_role_goes_straight_to_the_session_page(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str, shots: Shots
) -> None:
    login = f"alice-{unique}"
    role_arn = make_role(broker, oidc_peer, f"sso-one-{unique}", login)
    sign_in(page, broker, oidc_peer, login)
    assert page.locator("h1").inner_text() == "Your session", page.content()

    session_name = f"{login}@example.test"
    principal = page.locator("#principal-arn").inner_text()
    assert (
        principal
        == role_arn.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/")
        + f"/{session_name}"
    )
    assert "aws_session_token = " in page.locator("#credentials-file").inner_text()
    assert "AWS" not in page.url and "Token" not in page.url
    if broker.backend == "sqlite":
        shots(page, "sso-session.png")

    assert caller_arn(broker, read_credentials(page)) == principal
    [event] = exchanges(broker, session_name)
    assert event["additionalEventData"] == {"via": "broker-session"}
    assert "WebIdentityToken" not in event["requestParameters"]


def test_several_roles_offer_a_picker_whose_form_needs_its_csrf_token(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str
) -> None:
    login = f"bob-{unique}"
    make_role(broker, oidc_peer, f"sso-a-{unique}", login)
    second = make_role(broker, oidc_peer, f"sso-b-{unique}", login)
    sign_in(page, broker, oidc_peer, login)
    assert page.get_by_role("heading", name="Choose a role").is_visible()

    # The same browser session, the form without its token: refused, nothing issued.
    answer = page.request.post(f"{broker.url}/sso/role", form={"role": second}, max_redirects=0)
    assert answer.status == 403
    assert "Request id" in answer.text()
    assert "AWS_SECRET_ACCESS_KEY" not in answer.text()
    forged = page.request.post(
        f"{broker.url}/sso/role", form={"role": second, "csrf": "forged"}, max_redirects=0
    )
    assert forged.status == 403
    session_name = f"{login}@example.test"
    assert exchanges(broker, session_name) == []

    page.locator(f"input[value='{second}']").check()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#principal-arn")
    principal = page.locator("#principal-arn").inner_text()
    assert principal.endswith(f":assumed-role/sso-b-{unique}/{session_name}")
    assert caller_arn(broker, read_credentials(page)) == principal


def test_no_trusting_role_says_so(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str
) -> None:
    sign_in(page, broker, oidc_peer, f"nobody-{unique}")
    assert page.get_by_role("heading", name="No role trusts this identity").is_visible()
    assert page.locator("#bash-exports").count() == 0


def test_wrong_state_is_refused_and_issues_nothing(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str
) -> None:
    login = f"carol-{unique}"
    make_role(broker, oidc_peer, f"sso-state-{unique}", login)

    # The broker's redirect (state S, set in its server-side session) with the state changed
    # on the way to the provider: the provider returns a genuine code with the wrong state.
    start = page.request.get(f"{broker.url}/sso/oidc/{oidc_peer.name}", max_redirects=0)
    assert start.status == 302
    parts = urllib.parse.urlsplit(start.headers["location"])
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert query["code_challenge_method"] == "S256" and query["nonce"]
    query["state"] = "not-the-state-the-broker-sent"
    page.goto(parts._replace(query=urllib.parse.urlencode(query)).geturl())
    provider_login(page, broker, login)
    page.wait_for_selector("main h1")
    assert page.get_by_role("heading", name="Sign-in failed").is_visible()
    assert page.locator("#request-id").inner_text()
    assert page.locator("#bash-exports").count() == 0
    assert exchanges(broker, f"{login}@example.test") == []


def test_replayed_callback_is_refused_and_issues_nothing_more(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str
) -> None:
    login = f"dave-{unique}"
    make_role(broker, oidc_peer, f"sso-replay-{unique}", login)
    seen: list[str] = []

    page.on(
        "request",
        lambda request: seen.append(request.url) if "/sso/oidc/callback" in request.url else None,
    )
    sign_in(page, broker, oidc_peer, login)
    page.wait_for_selector("#principal-arn")
    session_name = f"{login}@example.test"
    assert len(exchanges(broker, session_name)) == 1

    page.goto(seen[0])
    assert page.get_by_role("heading", name="Sign-in failed").is_visible()
    assert page.locator("#bash-exports").count() == 0
    assert len(exchanges(broker, session_name)) == 1


def test_the_client_secret_is_sealed_in_the_directory(broker: Broker, oidc_peer: OidcPeer) -> None:
    from fedbroker.directory.model import Kind
    from fedbroker.directory.sql import SqlStore

    url = broker.database_url or f"sqlite:///{broker.data_dir / 'fedbroker.db'}"
    store = SqlStore(url)
    try:
        [account] = store.list_accounts()
        entity = store.get_entity(account.id, Kind.OIDC_PROVIDER, oidc_peer.name)
    finally:
        store.close()
    assert entity.attrs["rp_client_id"] == CLIENT_ID
    assert CLIENT_SECRET not in json.dumps(entity.attrs)
    assert "rp_client_secret_sealed" in entity.attrs


def test_the_secret_is_not_in_the_broker_log(broker: Broker, oidc_peer: OidcPeer) -> None:
    log = Path(broker.data_dir).parent / "serve.log"
    assert CLIENT_SECRET not in log.read_text(errors="replace")
