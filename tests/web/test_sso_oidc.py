"""Browser sign-in through OpenID Connect (issue 5), in a real browser.

npm `oidc-provider` (tests/peers/oidc-provider.mjs) runs on 127.0.0.1 with a static client and
PKCE required; it is registered with boto3's IAM client plus `fedbroker sso configure-oidc`;
Debian's chromium, driven by Playwright, signs in through its development login and consent
pages to the broker's pages (start, role picker, "no role", session; switch role, sign-out), and
the credentials read off the session page are used with boto3.

Bad input (each shows the error page with a request id, issues nothing, and is audited): a wrong
`state`, a replayed callback, a replayed code, a wrong `nonce`, an ID token from another issuer
(returned by a deliberately malicious provider, tests/support/rogue_oidc.py, since a real one
never does that), forms without or with a wrong CSRF token.

Screenshots go to a temporary directory, or to `FEDBROKER_SCREENSHOTS` (e.g. `docs`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from playwright.sync_api import Browser, Page

from tests.support.browser import local_page
from tests.support.node_peers import free_port, node_peer
from tests.support.rogue_oidc import RogueProvider, rogue_provider
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


def configure_sign_in(broker: Broker, url: str, tmp: Path, *extra: str) -> str:
    """Registers the provider at ``url`` (IAM) and configures sign-in through it (CLI)."""
    arn = broker.client("iam").create_open_id_connect_provider(Url=url, ClientIDList=[CLIENT_ID])[
        "OpenIDConnectProviderArn"
    ]
    secret_file = tmp / "client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    done = subprocess.run(
        [
            FEDBROKER,
            "sso",
            "configure-oidc",
            *broker.store_args,
            "--provider-url",
            url,
            "--client-id",
            CLIENT_ID,
            "--client-secret-file",
            str(secret_file),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert CLIENT_SECRET not in done.stdout + done.stderr
    return str(arn)


@contextmanager
def provider_peer(
    broker: Broker, tmp: Path, *extra: str, mode: tuple[str, ...] = ()
) -> Iterator[OidcPeer]:
    redirect = f"{broker.url}/sso/oidc/callback"
    with node_peer(
        "oidc-provider.mjs",
        "/.well-known/openid-configuration",
        tmp,
        CLIENT_ID,
        CLIENT_SECRET,
        redirect,
        *mode,
    ) as peer:
        yield OidcPeer(peer.url, configure_sign_in(broker, peer.url, tmp, *extra))


@pytest.fixture(scope="session")
def oidc_peer(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcPeer]:
    """The provider, registered in the broker and configured for browser sign-in."""
    with provider_peer(broker, tmp_path_factory.mktemp("oidc-provider")) as peer:
        yield peer


@pytest.fixture(scope="session")
def mapped_peer(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcPeer]:
    """A second provider whose claims become the source identity and a session tag."""
    tmp = tmp_path_factory.mktemp("oidc-provider-mapped")
    extra = ("--source-identity-claim", "email", "--tag-claim", "groups=Groups")
    with provider_peer(broker, tmp, *extra) as peer:
        yield peer


@pytest.fixture(scope="session")
def userinfo_peer(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcPeer]:
    """A provider that puts `email` only in its userinfo answer (not in the ID token), with
    the broker reading userinfo and mapping `email` to the source identity."""
    tmp = tmp_path_factory.mktemp("oidc-provider-userinfo")
    extra = ("--userinfo", "--source-identity-claim", "email")
    with provider_peer(broker, tmp, *extra, mode=("conform",)) as peer:
        yield peer


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


@contextmanager
def new_page(browser: Browser, **options: Any) -> Iterator[Page]:
    """A page of its own browser context (``options``: viewport, JavaScript, ...)."""
    yield from local_page(browser, **options)


def trust(peer: OidcPeer | RogueProvider, subject: str, arn: str | None = None) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": arn or getattr(peer, "arn", "")},
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


def make_role(
    broker: Broker,
    peer: OidcPeer,
    name: str,
    subject: str,
    policy: str | None = None,
    **extra: Any,
) -> str:
    iam = broker.client("iam")
    role = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=policy or trust(peer, subject),
        Description=f"{name} role",
        **extra,
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


def exchanges(broker: Broker, session_name: str, *, failed: bool = False) -> list[dict[str, Any]]:
    return [
        e
        for e in broker.audit_events()
        if e["eventName"] == "AssumeRoleWithWebIdentity"
        and e["requestParameters"].get("RoleSessionName") == session_name
        and (e.get("errorCode") is not None) == failed
    ]


def sign_in_events(broker: Broker, request_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in broker.audit_events()
        if e["eventName"] == "ConsoleLogin" and e["requestID"] == request_id
    ]


def refused_sign_in(page: Page, broker: Broker) -> dict[str, Any]:
    """The error page is shown, with no credentials; its request id names one audited
    failed sign-in, whose record is returned."""
    assert page.get_by_role("heading", name="Sign-in failed").is_visible(), page.content()
    assert page.locator("#bash-exports").count() == 0
    request_id = page.locator("#request-id").inner_text()
    [event] = sign_in_events(broker, request_id)
    assert event["responseElements"] == {"ConsoleLogin": "Failure"}
    assert event["errorCode"] == "SignInFailed"
    return event


def start_redirect(page: Page, broker: Broker, provider_name: str) -> tuple[str, dict[str, str]]:
    """The broker's redirect to the provider (its state kept in this browser's session)."""
    start = page.request.get(f"{broker.url}/sso/oidc/{provider_name}", max_redirects=0)
    assert start.status == 302
    parts = urllib.parse.urlsplit(start.headers["location"])
    return parts._replace(query="").geturl(), dict(urllib.parse.parse_qsl(parts.query))


def with_query(base: str, query: dict[str, str]) -> str:
    return base + "?" + urllib.parse.urlencode(query)


# --- the pages ----------------------------------------------------------------------------------


def test_one_role_goes_straight_to_the_session_page(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str, shots: Shots
) -> None:
    login = f"alice-{unique}"
    role_arn = make_role(broker, oidc_peer, f"sso-one-{unique}", login)
    page.goto(f"{broker.url}/sso")
    assert page.get_by_role("link", name=oidc_peer.name).is_visible()
    if broker.backend == "sqlite":
        shots(page, "sso-start.png")
    sign_in(page, broker, oidc_peer, login)
    assert page.locator("h1").inner_text() == "Your session", page.content()

    session_name = f"{login}@example.test"
    principal = page.locator("#principal-arn").inner_text()
    assert (
        principal
        == role_arn.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/")
        + f"/{session_name}"
    )
    assert page.locator("#provider").inner_text() == oidc_peer.name
    assert page.locator("#source-identity").inner_text() == "none"
    assert "left)" in page.locator("#countdown").inner_text()  # the live countdown runs
    assert "aws_session_token = " in page.locator("#credentials-file").inner_text()
    credentials = read_credentials(page)
    powershell = page.locator("#powershell-exports").inner_text()
    assert f'$Env:AWS_SECRET_ACCESS_KEY="{credentials["aws_secret_access_key"]}"' in powershell
    profile = page.locator("#credential-process").inner_text().splitlines()
    name = f"sso-one-{unique}"
    assert profile[:5] == [
        f"[profile {name}]",
        f"credential_process = fedbroker credential-process --profile {name}",
        f"fedbroker_url = {broker.url}",
        f"fedbroker_role_arn = {role_arn}",
        f"fedbroker_provider = {oidc_peer.name}",
    ]
    assert not any(line.startswith("fedbroker_duration") for line in profile)
    assert page.locator("button.copy").first.is_visible()  # shown by the page's script
    assert "AWS" not in page.url and "Token" not in page.url
    if broker.backend == "sqlite":
        shots(page, "sso-session.png")

    assert caller_arn(broker, credentials) == principal
    [signed_in] = [
        e
        for e in broker.audit_events()
        if e["eventName"] == "ConsoleLogin" and e["userIdentity"].get("userName") == login
    ]
    assert signed_in["responseElements"] == {"ConsoleLogin": "Success"}
    assert signed_in["userIdentity"]["type"] == "WebIdentityUser"
    [event] = exchanges(broker, session_name)
    assert event["additionalEventData"] == {"via": "broker-session"}
    assert "WebIdentityToken" not in event["requestParameters"]
    expiry = page.locator("#expiration").get_attribute("datetime")
    assert event["responseElements"]["credentials"]["expiration"].startswith(expiry[:-1])
    cookies = page.context.cookies()
    [cookie] = [c for c in cookies if c["name"] == "fedbroker_sso"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert credentials["aws_secret_access_key"] not in json.dumps(cookies)


def test_the_session_page_works_without_javascript_and_on_a_phone(
    broker: Broker, oidc_peer: OidcPeer, browser: Browser, unique: str
) -> None:
    login = f"phoebe-{unique}"
    make_role(broker, oidc_peer, f"sso-phone-{unique}", login)
    phone = {"viewport": {"width": 390, "height": 844}, "java_script_enabled": False}
    with new_page(browser, **phone) as page:
        sign_in(page, broker, oidc_peer, login)
        assert page.locator("h1").inner_text() == "Your session"
        # Without JavaScript: no copy buttons, no countdown, the expiry and credentials still
        # there; nothing wider than the screen but the scrollable snippets.
        assert not page.locator("button.copy").first.is_visible()
        assert page.locator("#countdown").inner_text() == ""
        assert page.locator("#expiration").inner_text().endswith("Z")
        assert read_credentials(page)["aws_access_key_id"].startswith("ASIA")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_several_roles_offer_a_picker_grouped_by_account(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str, shots: Shots
) -> None:
    login = f"bob-{unique}"
    first = make_role(broker, oidc_peer, f"sso-a-{unique}", login)
    second = make_role(broker, oidc_peer, f"sso-b-{unique}", login, MaxSessionDuration=7200)
    account = first.split(":")[4]
    sign_in(page, broker, oidc_peer, login)
    assert page.get_by_role("heading", name="Choose a role").is_visible()
    group = page.get_by_role("group", name=re.compile(f"Account {account}"))
    assert group.is_visible()
    second_label = group.locator("label", has=page.locator(f"input[value='{second}']"))
    assert f"sso-b-{unique} role" in second_label.inner_text()  # the description
    assert "Maximum session duration: 2 h (7200 seconds)" in second_label.inner_text()
    assert page.get_by_label("Session duration in seconds (optional)").is_visible()
    if broker.backend == "sqlite":
        shots(page, "sso-picker.png")

    # The same browser session, the form without its token or with a wrong one: refused,
    # nothing issued, the refusal audited.
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
    refusals = exchanges(broker, session_name, failed=True)
    assert [e["errorCode"] for e in refusals] == ["InvalidCsrfToken", "InvalidCsrfToken"]

    # Keyboard only: the radio group is one stop; arrows choose; then the duration, then submit.
    page.locator(f"input[value='{first}']").focus()
    page.keyboard.press("ArrowDown")
    assert page.locator(f"input[value='{second}']").is_checked()
    page.keyboard.press("Tab")
    page.keyboard.type("1800")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#principal-arn")
    principal = page.locator("#principal-arn").inner_text()
    assert principal.endswith(f":assumed-role/sso-b-{unique}/{session_name}")
    assert "fedbroker_duration = 1800" in page.locator("#credential-process").inner_text()
    assert caller_arn(broker, read_credentials(page)) == principal
    [event] = exchanges(broker, session_name)
    assert event["requestParameters"]["DurationSeconds"] == "1800"


def test_a_duration_past_the_roles_maximum_names_the_limit_and_issues_nothing(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str
) -> None:
    login = f"dora-{unique}"
    first = make_role(broker, oidc_peer, f"sso-d1-{unique}", login)
    make_role(broker, oidc_peer, f"sso-d2-{unique}", login)
    sign_in(page, broker, oidc_peer, login)
    page.locator(f"input[value='{first}']").check()
    page.get_by_label("Session duration in seconds (optional)").fill("5000")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#problem")
    problem = page.locator("#problem").inner_text()
    assert "exceeds the MaxSessionDuration set for this role (3600 seconds)" in problem
    assert page.locator(f"input[value='{first}']").is_checked()  # the choice is kept

    # Below the minimum (the browser's own check stops it; the broker's, without the browser).
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    short = page.request.post(
        f"{broker.url}/sso/role", form={"csrf": csrf, "role": first, "duration": "600"}
    )
    assert short.status == 400
    assert "greater than or equal to 900" in short.text()
    not_a_number = page.request.post(
        f"{broker.url}/sso/role", form={"csrf": csrf, "role": first, "duration": "1h"}
    )
    assert not_a_number.status == 400
    assert "whole number of seconds" in not_a_number.text()
    session_name = f"{login}@example.test"
    assert exchanges(broker, session_name) == []
    assert len(exchanges(broker, session_name, failed=True)) == 2  # 5000 and 600


def test_switch_role_needs_no_new_sign_in_and_sign_out_ends_the_session(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str
) -> None:
    login = f"sam-{unique}"
    first = make_role(broker, oidc_peer, f"sso-s1-{unique}", login)
    make_role(broker, oidc_peer, f"sso-s2-{unique}", login)
    sign_in(page, broker, oidc_peer, login)
    page.locator(f"input[value='{first}']").check()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#principal-arn")
    provider_calls: list[str] = []
    page.on(
        "request",
        lambda request: (
            provider_calls.append(request.url) if oidc_peer.url in request.url else None
        ),
    )
    page.get_by_role("link", name="Switch role").click()
    page.wait_for_selector("main h1")
    assert page.get_by_role("heading", name="Choose a role").is_visible()
    page.locator(f"input[value='{first.replace('s1-', 's2-')}']").check()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#principal-arn")
    assert f"/sso-s2-{unique}/" in page.locator("#principal-arn").inner_text()
    assert provider_calls == []  # no new sign-in at the provider
    assert len(exchanges(broker, f"{login}@example.test")) == 2

    # Sign-out needs the form's token too.
    refused = page.request.post(f"{broker.url}/sso/signout", form={}, max_redirects=0)
    assert refused.status == 403
    assert page.request.get(f"{broker.url}/sso/roles").status == 200  # still signed in

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("main h1")
    assert page.get_by_role("heading", name="Signed out").is_visible()
    assert [c for c in page.context.cookies() if c["name"] == "fedbroker_sso"] == []
    page.goto(f"{broker.url}/sso/roles")
    assert page.get_by_role("heading", name="Sign-in failed").is_visible()
    assert page.locator("#principal-arn").count() == 0


def test_no_trusting_role_names_the_failed_conditions_and_nothing_else(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str
) -> None:
    login = f"nobody-{unique}"
    expected = f"somebody-else-{unique}"
    make_role(broker, oidc_peer, f"sso-none-{unique}", expected)
    unrelated = broker.client("iam").create_role(
        RoleName=f"sso-unrelated-{unique}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["RoleName"]
    sign_in(page, broker, oidc_peer, login)
    assert page.get_by_role("heading", name="No role trusts this identity").is_visible()
    assert page.locator("#bash-exports").count() == 0
    section = page.get_by_role("region", name=re.compile(f"sso-none-{unique}"))
    row = section.get_by_role("row", name=re.compile(f"{re.escape(oidc_peer.name)}:sub"))
    assert row.inner_text().split("\t") == ["StringEquals", f"{oidc_peer.name}:sub", login]
    content = page.content()
    assert expected not in content  # the value the policy wants is never shown
    assert unrelated not in content  # nor a role that does not name this provider
    assert "alice-" not in content and "bob-" not in content  # nor other people's conditions


# --- claims to source identity and session tags --------------------------------------------------


def test_mapped_claims_become_the_source_identity_and_a_session_tag(
    broker: Broker, mapped_peer: OidcPeer, page: Page, unique: str
) -> None:
    login = f"tagged-{unique}"
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": mapped_peer.arn},
                    "Action": [ACTION, "sts:TagSession", "sts:SetSourceIdentity"],
                    "Condition": {
                        "StringEquals": {f"{mapped_peer.name}:sub": login},
                        "StringLike": {"aws:RequestTag/Groups": "*developers*"},
                    },
                }
            ],
        }
    )
    make_role(broker, mapped_peer, f"sso-tagged-{unique}", login, policy)
    sign_in(page, broker, mapped_peer, login)
    assert page.locator("h1").inner_text() == "Your session", page.content()
    email = f"{login}@example.test"
    assert page.locator("#source-identity").inner_text() == email
    assert caller_arn(broker, read_credentials(page)).endswith(f"/{email}")
    [event] = exchanges(broker, email)
    assert event["userIdentity"]["type"] == "WebIdentityUser"


def test_userinfo_claims_feed_the_mapping_but_not_the_trust_context(
    broker: Broker, userinfo_peer: OidcPeer, page: Page, unique: str
) -> None:
    login = f"uma-{unique}"
    email = f"{login}@example.test"
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": userinfo_peer.arn},
                    "Action": [ACTION, "sts:SetSourceIdentity"],
                    "Condition": {
                        "StringEquals": {
                            f"{userinfo_peer.name}:sub": login,
                            "sts:SourceIdentity": email,
                        }
                    },
                }
            ],
        }
    )
    make_role(broker, userinfo_peer, f"sso-userinfo-{unique}", login, policy)
    sign_in(page, broker, userinfo_peer, login)
    assert page.locator("h1").inner_text() == "Your session", page.content()
    # The ID token has no `email` (the provider conforms): it came from userinfo.
    assert page.locator("#source-identity").inner_text() == email
    assert page.locator("#principal-arn").inner_text().endswith(f"/{email}")
    [event] = exchanges(broker, email)
    assert event["additionalEventData"] == {"via": "broker-session"}

    # The control: without userinfo the same sign-in has no email, so no source identity, and
    # the role (which wants it) is not offered.
    secret_file = broker.data_dir.parent / "userinfo-client-secret"
    secret_file.write_text(CLIENT_SECRET)
    done = subprocess.run(
        [
            FEDBROKER,
            "sso",
            "configure-oidc",
            *broker.store_args,
            "--provider-url",
            userinfo_peer.url,
            "--client-id",
            CLIENT_ID,
            "--client-secret-file",
            str(secret_file),
            "--no-userinfo",
            "--source-identity-claim",
            "email",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    page.context.clear_cookies()
    sign_in(page, broker, userinfo_peer, login)
    assert page.get_by_role("heading", name="No role trusts this identity").is_visible()


# --- bad input ------------------------------------------------------------------------------------


def test_wrong_state_is_refused_and_issues_nothing(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str
) -> None:
    login = f"carol-{unique}"
    make_role(broker, oidc_peer, f"sso-state-{unique}", login)

    # The broker's redirect (state S, set in its server-side session) with the state changed
    # on the way to the provider: the provider returns a genuine code with the wrong state.
    endpoint, query = start_redirect(page, broker, oidc_peer.name)
    assert query["code_challenge_method"] == "S256" and query["nonce"]
    query["state"] = "not-the-state-the-broker-sent"
    page.goto(with_query(endpoint, query))
    provider_login(page, broker, login)
    event = refused_sign_in(page, broker)
    assert "unknown state" in event["errorMessage"]
    assert exchanges(broker, f"{login}@example.test") == []


def test_wrong_nonce_is_refused_and_issues_nothing(
    broker: Broker, oidc_peer: OidcPeer, page: Page, unique: str
) -> None:
    login = f"nina-{unique}"
    make_role(broker, oidc_peer, f"sso-nonce-{unique}", login)
    endpoint, query = start_redirect(page, broker, oidc_peer.name)
    query["nonce"] = "a-nonce-the-broker-did-not-send"
    page.goto(with_query(endpoint, query))
    provider_login(page, broker, login)
    event = refused_sign_in(page, broker)
    assert "nonce" in event["errorMessage"]
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
    refused_sign_in(page, broker)
    assert len(exchanges(broker, session_name)) == 1

    # The code again, under the state of a new login of the same browser: the provider
    # refuses to redeem it twice.
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(seen[0]).query))["code"]
    _, query = start_redirect(page, broker, oidc_peer.name)
    page.goto(
        with_query(f"{broker.url}/sso/oidc/callback", {"code": code, "state": query["state"]})
    )
    event = refused_sign_in(page, broker)
    assert "invalid_grant" in event["errorMessage"]
    assert len(exchanges(broker, session_name)) == 1


def test_an_id_token_from_another_issuer_is_refused(
    broker: Broker, page: Page, unique: str, tmp_path: Path
) -> None:
    with rogue_provider() as rogue, rogue_provider() as other:
        rogue_arn = configure_sign_in(broker, rogue.url, tmp_path)
        other_arn = str(
            broker.client("iam").create_open_id_connect_provider(
                Url=other.url, ClientIDList=[CLIENT_ID]
            )["OpenIDConnectProviderArn"]
        )
        login = f"mallory-{unique}"
        iam = broker.client("iam")
        for peer, arn in ((rogue, rogue_arn), (other, other_arn)):
            iam.create_role(
                RoleName=f"sso-rogue-{peer.name.split(':')[1]}-{unique}",
                AssumeRolePolicyDocument=trust(peer, login, arn),
            )

        # A genuine token of `other` (a registered issuer that a role trusts), handed over by
        # the provider this login was started with.
        rogue.mint = lambda request: other.token(other, {**request, "login_hint": login})
        page.goto(f"{broker.url}/sso/oidc/{rogue.name}")
        page.wait_for_selector("main h1")
        event = refused_sign_in(page, broker)
        assert f"ID token from `{other.name}`" in event["errorMessage"]
        assert exchanges(broker, login) == []

        # The control: the same provider, answering with its own token, signs the person in.
        rogue.mint = lambda request: rogue.token(rogue, {**request, "login_hint": login})
        page.goto(f"{broker.url}/sso/oidc/{rogue.name}")
        page.wait_for_selector("#principal-arn")
        assert len(exchanges(broker, login)) == 1


# --- private_key_jwt client authentication ---------------------------------------------------


@contextmanager
def private_key_jwt_peer(
    broker: Broker, tmp: Path, algorithm: str, *, wrong_key: bool = False
) -> Iterator[tuple[OidcPeer, dict[str, Any]]]:
    """A provider whose client authenticates with private_key_jwt: registered (IAM) at a port
    chosen beforehand, configured with `configure-oidc --private-key-jwt` (which prints the
    JWKS), then started with that JWKS as the client's keys, or with another key of the same
    kid (``wrong_key``). Yields the peer and the JWKS the CLI printed."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    arn = broker.client("iam").create_open_id_connect_provider(Url=url, ClientIDList=[CLIENT_ID])[
        "OpenIDConnectProviderArn"
    ]
    command = [
        FEDBROKER,
        "sso",
        "configure-oidc",
        *broker.store_args,
        "--provider-url",
        url,
        "--client-id",
        CLIENT_ID,
        "--private-key-jwt",
        "--key-algorithm",
        algorithm,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    [jwk] = printed["keys"]
    assert jwk["alg"] == algorithm and "d" not in jwk and "p" not in jwk
    assert "private_key_jwt" in done.stderr
    registered = printed
    if wrong_key:
        from joserfc.jwk import ECKey, RSAKey

        params = {"kid": jwk["kid"], "alg": algorithm, "use": "sig"}
        other = (
            ECKey.generate_key("P-256", params)
            if algorithm == "ES256"
            else RSAKey.generate_key(2048, params)
        )
        registered = {"keys": [other.as_dict(private=False)]}
        assert registered != printed
    jwks_file = tmp / "client-jwks.json"
    jwks_file.write_text(json.dumps(registered))
    redirect = f"{broker.url}/sso/oidc/callback"
    with node_peer(
        "oidc-provider.mjs",
        "/.well-known/openid-configuration",
        tmp,
        CLIENT_ID,
        "no-secret-for-a-private-key-jwt-client",
        redirect,
        port=port,
        env={"OIDC_CLIENT_JWKS": str(jwks_file)},
    ) as peer:
        assert peer.url == url
        yield OidcPeer(url, str(arn)), printed


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_private_key_jwt_signs_in_through_to_the_session_page(
    broker: Broker, page: Page, unique: str, tmp_path: Path, algorithm: str
) -> None:
    with private_key_jwt_peer(broker, tmp_path, algorithm) as (peer, printed):
        login = f"pkj-{algorithm.lower()}-{unique}"
        make_role(broker, peer, f"sso-pkj-{algorithm.lower()}-{unique}", login)
        sign_in(page, broker, peer, login)
        assert page.locator("h1").inner_text() == "Your session", page.content()
        assert page.locator("#provider").inner_text() == peer.name
        session_name = f"{login}@example.test"
        assert caller_arn(broker, read_credentials(page)).endswith(f"/{session_name}")
        assert len(exchanges(broker, session_name)) == 1

        # The public key at its stable URL is the one the CLI printed.
        served = page.request.get(f"{broker.url}/sso/oidc/{peer.name}/jwks.json")
        assert served.status == 200
        assert served.headers["content-type"] == "application/jwk-set+json"
        assert served.json() == printed

        # Sealed in the directory: no private parameter in the clear, no client secret.
        from fedbroker.directory.model import Kind
        from fedbroker.directory.sql import SqlStore

        url = broker.database_url or f"sqlite:///{broker.data_dir / 'fedbroker.db'}"
        store = SqlStore(url)
        try:
            [account] = store.list_accounts()
            attrs = store.get_entity(account.id, Kind.OIDC_PROVIDER, peer.name).attrs
        finally:
            store.close()
        assert set(attrs["rp_key"]) == {"kid", "alg", "sealed"}
        assert "rp_client_secret_sealed" not in attrs

        # Re-running the command (e.g. for a new claim mapping) keeps the key.
        again = subprocess.run(
            [
                FEDBROKER,
                "sso",
                "configure-oidc",
                *broker.store_args,
                "--provider-url",
                peer.url,
                "--client-id",
                CLIENT_ID,
                "--private-key-jwt",
                "--key-algorithm",
                algorithm,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout) == printed


def test_private_key_jwt_with_another_key_at_the_provider_is_refused(
    broker: Broker, page: Page, unique: str, tmp_path: Path
) -> None:
    with private_key_jwt_peer(broker, tmp_path, "ES256", wrong_key=True) as (peer, _):
        login = f"pkj-wrong-{unique}"
        make_role(broker, peer, f"sso-pkj-wrong-{unique}", login)
        sign_in(page, broker, peer, login)
        event = refused_sign_in(page, broker)
        assert "invalid_client" in event["errorMessage"]
        assert exchanges(broker, f"{login}@example.test") == []


def test_a_client_secret_provider_serves_no_jwks(broker: Broker, oidc_peer: OidcPeer) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{broker.url}/sso/oidc/{oidc_peer.name}/jwks.json", timeout=10)
    assert refused.value.code == 404
    refused.value.close()


def test_configure_oidc_wants_exactly_one_client_authentication(
    broker: Broker, oidc_peer: OidcPeer, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(CLIENT_SECRET)
    base = [FEDBROKER, "sso", "configure-oidc", *broker.store_args]
    base += ["--provider-url", oidc_peer.url, "--client-id", CLIENT_ID]
    for extra in ([], ["--client-secret-file", str(secret_file), "--private-key-jwt"]):
        done = subprocess.run(base + extra, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2
        assert "exactly one of --client-secret-file and --private-key-jwt" in done.stderr


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


def test_no_secret_is_in_the_broker_log(broker: Broker, oidc_peer: OidcPeer) -> None:
    log = Path(broker.data_dir).parent / "serve.log"
    text = log.read_text(errors="replace")
    assert CLIENT_SECRET not in text
    assert "aws_secret_access_key" not in text.lower() and "SessionToken" not in text


def test_sso_slash_provider_starts_that_providers_login(
    broker: Broker, oidc_peer: OidcPeer, browser: Browser
) -> None:
    """`/sso/<provider>` (bookmarks, IdP dashboards) goes straight to that provider's login;
    an unknown name is the error page."""
    with new_page(browser) as page:
        start = page.request.get(f"{broker.url}/sso/{oidc_peer.name}", max_redirects=0)
        assert start.status == 302
        assert start.headers["location"] == f"/sso/oidc/{oidc_peer.name}"
        # ... which redirects on to the provider, with state, nonce and PKCE.
        _, query = start_redirect(page, broker, oidc_peer.name)
        assert query["code_challenge_method"] == "S256" and query["state"]
        unknown = page.request.get(f"{broker.url}/sso/no-such-provider", max_redirects=0)
        assert unknown.status == 404
        assert "no identity provider of that name" in unknown.text()
