"""Browser sign-in through SAML (issue 5), with a real IdP in a real browser.

pysaml2's IdP (tests/support/saml_idp.py) runs on 127.0.0.1; it is registered with boto3's IAM
client (its metadata), the broker's SP keys are made with ``fedbroker sso configure-saml``,
and the IdP is given the broker's SP metadata (``GET /sso/saml/NAME/metadata``). Debian's
chromium, driven by Playwright, signs in SP-initiated (AuthnRequest by HTTP-Redirect, the
IdP's login form, its auto-submitting POST back to the ACS) and IdP-initiated, with signed and
with encrypted assertions, to the broker's session page; the credentials read off that page
are used with boto3. Bad responses posted to the ACS (made from genuine ones by
tests/support/saml_attacks.py) show the error page and issue nothing.
"""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Request

from tests.support.saml_attacks import KeyPair, attacks, new_keypair, write_keypair
from tests.support.saml_idp import IdpProcess, saml_response_from_form
from tests.web.conftest import FEDBROKER, Broker, free_port
from tests.web.test_sso_oidc import caller_arn, read_credentials

ATTRIBUTES = "https://aws.amazon.com/SAML/Attributes/"
MAIL = "urn:oid:0.9.2342.19200300.100.1.3"


@dataclass
class SamlPeer:
    idp: IdpProcess
    keys: KeyPair
    account: str
    name: str  # SP-initiated only (the default)
    arn: str
    open_name: str  # IdP-initiated allowed
    open_arn: str
    directory: Path

    def acs(self, broker: Broker, name: str) -> str:
        return f"{broker.url}/sso/saml/{name}/acs"

    def entity(self, broker: Broker, name: str) -> str:
        return f"{broker.url}/sso/saml/{name}/metadata"


def _configure(broker: Broker, name: str, *flags: str) -> str:
    done = subprocess.run(
        [FEDBROKER, "sso", "configure-saml", *broker.store_args, "--provider", name, *flags],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


@pytest.fixture(scope="module")
def saml_peer(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlPeer]:
    directory = tmp_path_factory.mktemp(f"saml-idp-{broker.backend}")
    keys = new_keypair("pysaml2 idp for browser sign-in")
    write_keypair(directory, keys)
    idp = IdpProcess(directory, free_port())
    try:
        iam = broker.client("iam")
        account = broker.client("sts").get_caller_identity()["Account"]
        names = (f"corp-{broker.backend}", f"corp-open-{broker.backend}")
        arns = [
            iam.create_saml_provider(Name=n, SAMLMetadataDocument=idp.metadata())["SAMLProviderArn"]
            for n in names
        ]
        out = _configure(broker, names[0])
        assert "idp-initiated=off" in out and "require-encryption=off" in out
        assert f"/sso/saml/{names[0]}/metadata" in out  # under the setting issuer_url
        out = _configure(broker, names[1], "--idp-initiated")
        assert "idp-initiated=on" in out
        for name in names:
            idp.load_sp_metadata(_fetch(f"{broker.url}/sso/saml/{name}/metadata"))
        yield SamlPeer(idp, keys, account, names[0], arns[0], names[1], arns[1], directory)
    finally:
        idp.stop()


def _trust(peer: SamlPeer, broker: Broker, arn: str, name: str, subject: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": arn},
                    "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
                    "Condition": {
                        "StringEquals": {
                            "SAML:aud": peer.acs(broker, name),
                            "SAML:sub": subject,
                        }
                    },
                }
            ],
        }
    )


def make_role(broker: Broker, peer: SamlPeer, role: str, subject: str, *, open_: bool) -> str:
    arn, name = (peer.open_arn, peer.open_name) if open_ else (peer.arn, peer.name)
    created = broker.client("iam").create_role(
        RoleName=role,
        AssumeRolePolicyDocument=_trust(peer, broker, arn, name, subject),
        Description=f"{role} role",
    )
    return str(created["Role"]["Arn"])


def add_user(peer: SamlPeer, login: str, *, roles: list[str] | None = None, **extra: Any) -> None:
    attributes: dict[str, list[str]] = {
        f"{ATTRIBUTES}RoleSessionName": [login],
        f"{ATTRIBUTES}PrincipalTag:team": ["blue"],
        MAIL: [f"{login}@example.test"],
    }
    if roles is not None:
        attributes[f"{ATTRIBUTES}Role"] = roles
    peer.idp.add_users({login: {"name_id": f"{login}-id", "attributes": attributes, **extra}})


def assumed(role_arn: str, session: str) -> str:
    return role_arn.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/") + f"/{session}"


def watch_acs(page: Page) -> list[str]:
    """The SAMLResponse of every POST the browser makes to an ACS."""
    seen: list[str] = []

    def on_request(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/acs"):
            form = urllib.parse.parse_qs(request.post_data or "")
            seen.extend(form.get("SAMLResponse", []))

    page.on("request", on_request)
    return seen


def sp_initiated(page: Page, broker: Broker, peer: SamlPeer, login: str) -> None:
    """Start page → the provider's link → the IdP's login form → back to the broker."""
    page.goto(f"{broker.url}/sso")
    page.get_by_role("link", name=peer.name, exact=True).click()
    page.wait_for_selector("#user")
    page.locator("#user").fill(login)
    page.locator("#login").click()
    page.wait_for_url(f"{broker.url}/sso/**")
    page.wait_for_selector("main h1")


# --- sign-in that works -------------------------------------------------------------------


@pytest.mark.parametrize("encrypted", [False, True], ids=["signed", "encrypted"])
def test_sp_initiated_sign_in_ends_on_the_session_page(
    broker: Broker, saml_peer: SamlPeer, page: Page, unique: str, encrypted: bool
) -> None:
    login = f"carol-{unique}"
    role_arn = make_role(broker, saml_peer, f"saml-one-{unique}", f"{login}-id", open_=False)
    add_user(saml_peer, login, roles=[f"{role_arn},{saml_peer.arn}"], encrypt=encrypted)
    posted = watch_acs(page)
    sp_initiated(page, broker, saml_peer, login)
    assert page.locator("h1").inner_text() == "Your session", page.content()
    principal = page.locator("#principal-arn").inner_text()
    assert principal == assumed(role_arn, login)
    assert caller_arn(broker, read_credentials(page)) == principal

    [response] = posted
    document = base64.b64decode(response)
    assert (b"EncryptedAssertion" in document) is encrypted
    assert b"InResponseTo=" in document


@pytest.mark.parametrize("encrypted", [False, True], ids=["signed", "encrypted"])
def test_idp_initiated_sign_in_where_the_provider_allows_it(
    broker: Broker, saml_peer: SamlPeer, page: Page, unique: str, encrypted: bool
) -> None:
    login = f"dana-{unique}"
    role_arn = make_role(broker, saml_peer, f"saml-idp-{unique}", f"{login}-id", open_=True)
    add_user(saml_peer, login)  # no Role attribute: every trusting role is offered
    posted = watch_acs(page)
    query = urllib.parse.urlencode(
        {
            "user": login,
            "sp": saml_peer.entity(broker, saml_peer.open_name),
            **({"encrypt": "1"} if encrypted else {}),
        }
    )
    page.goto(f"{saml_peer.idp.url}/sso/idp-initiated?{query}")
    page.wait_for_url(f"{broker.url}/sso/**")
    page.wait_for_selector("main h1")
    assert page.locator("h1").inner_text() == "Your session", page.content()
    principal = page.locator("#principal-arn").inner_text()
    assert principal == assumed(role_arn, login)
    assert caller_arn(broker, read_credentials(page)) == principal
    [response] = posted
    document = base64.b64decode(response)
    assert (b"EncryptedAssertion" in document) is encrypted
    assert b"InResponseTo=" not in document


def test_the_role_attribute_narrows_the_roles_on_offer(
    broker: Broker, saml_peer: SamlPeer, page: Page, unique: str
) -> None:
    login = f"erik-{unique}"
    first = make_role(broker, saml_peer, f"saml-a-{unique}", f"{login}-id", open_=False)
    second = make_role(broker, saml_peer, f"saml-b-{unique}", f"{login}-id", open_=False)
    add_user(saml_peer, login)  # both roles trust erik: the picker
    sp_initiated(page, broker, saml_peer, login)
    text = page.content()
    assert first in text and second in text, text
    # With a Role attribute naming only the second, it is the only one (straight through).
    add_user(saml_peer, login, roles=[f"{saml_peer.arn},{second}"])
    page.context.clear_cookies()
    sp_initiated(page, broker, saml_peer, login)
    assert page.locator("#principal-arn").inner_text() == assumed(second, login)


def test_the_sp_metadata_is_signed_and_names_both_keys(broker: Broker, saml_peer: SamlPeer) -> None:
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    document = _fetch(saml_peer.entity(broker, saml_peer.name))
    assert f'entityID="{saml_peer.entity(broker, saml_peer.name)}"' in document
    assert 'use="signing"' in document and 'use="encryption"' in document
    assert saml_peer.acs(broker, saml_peer.name) in document
    cert = re.search(r'use="signing".*?<ds:X509Certificate>([^<]+)<', document, re.S)
    assert cert is not None
    pem = OneLogin_Saml2_Utils.format_cert(cert.group(1))
    assert OneLogin_Saml2_Utils.validate_metadata_sign(document, pem)
    done = subprocess.run(
        [FEDBROKER, "sso", "saml-keys", *broker.store_args, "--provider", saml_peer.name],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [line for line in done.stdout.splitlines() if "sha256:" in line]
    assert [line.split()[1] for line in lines] == ["signing", "encryption"]
    assert "PRIVATE KEY" not in done.stdout + done.stderr


# --- bad input through the ACS ------------------------------------------------------------


class Browserless:
    """A cookie-keeping HTTP client for posts the browser would make (one broker session)."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, url: str) -> str:
        with self.opener.open(url, timeout=10) as answer:
            return str(answer.read().decode())

    def post(self, url: str, form: dict[str, str]) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode()
        try:
            with self.opener.open(url, data=data, timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            body = error.read().decode()
            error.close()
            return error.code, body


def sp_initiated_response(
    broker: Broker, peer: SamlPeer, login: str, client: Browserless | None = None
) -> tuple[Browserless, str]:
    """A genuine SP-initiated response for ``login``, started in ``client``'s broker session
    (the IdP's login form posted without a browser)."""
    client = client or Browserless()
    login_page = client.get(f"{broker.url}/sso/saml/{peer.name}")  # follows to the IdP
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', login_page))
    fields = {k: html.unescape(v) for k, v in fields.items()}
    fields["user"] = login
    _, form = client.post(f"{peer.idp.url}/sso/login", fields)
    return client, saml_response_from_form(form)


def issued(broker: Broker) -> int:
    return sum(
        1 for e in broker.audit_events() if "credentials" in (e.get("responseElements") or {})
    )


def assert_refused(broker: Broker, status: int, body: str, before: int, reason: str) -> None:
    assert status in (400, 403), body
    assert "request id" in body.lower() or "Request ID" in body, body
    assert "ASIA" not in body and "AWS_SESSION_TOKEN" not in body
    assert issued(broker) == before
    event = [
        e
        for e in broker.audit_events()
        if e["eventName"] == "AssumeRoleWithSAML"
        and (e.get("additionalEventData") or {}).get("via") == "broker-sign-in"
    ][-1]
    assert event.get("errorCode"), event
    assert reason in event["errorMessage"], event["errorMessage"]
    assert event["requestID"] in body or event.get("requestId", "") in body


ATTACK_REASONS = {
    "tampered-subject": "Signature validation failed",
    "unsigned": "not signed",
    "expired": "",
    "wrong-audience": "audience",
    "wrong-recipient": "Recipient",
    "wrapped-second-assertion": "",
    "wrapped-moved-into-evil-assertion": "",
    "wrapped-moved-into-extensions": "",
    "sha1-signed": "Deprecated signature algorithm",
}


@pytest.mark.parametrize("attack", sorted(ATTACK_REASONS))
def test_attacks_on_the_acs_show_the_error_page_and_issue_nothing(
    broker: Broker, saml_peer: SamlPeer, unique: str, attack: str
) -> None:
    login = f"mallory-{unique}"
    make_role(broker, saml_peer, f"saml-x-{unique}", f"{login}-id", open_=False)
    add_user(saml_peer, login)
    client, genuine = sp_initiated_response(broker, saml_peer, login)
    variants = attacks(base64.b64decode(genuine), saml_peer.keys, new_keypair("attacker"))
    forged, _ = variants[attack]
    before = issued(broker)
    status, body = client.post(
        saml_peer.acs(broker, saml_peer.name),
        {"SAMLResponse": base64.b64encode(forged).decode()},
    )
    assert_refused(broker, status, body, before, ATTACK_REASONS[attack])
    assert "could not be validated" in body


def test_a_replayed_response_is_refused(broker: Broker, saml_peer: SamlPeer, unique: str) -> None:
    login = f"rita-{unique}"
    make_role(broker, saml_peer, f"saml-r-{unique}", f"{login}-id", open_=True)
    add_user(saml_peer, login)
    client = Browserless()
    query = urllib.parse.urlencode(
        {"user": login, "sp": saml_peer.entity(broker, saml_peer.open_name)}
    )
    response = saml_response_from_form(client.get(f"{saml_peer.idp.url}/sso/idp-initiated?{query}"))
    acs = saml_peer.acs(broker, saml_peer.open_name)
    status, body = client.post(acs, {"SAMLResponse": response})
    assert status == 200 and "ASIA" in body, body
    before = issued(broker)
    status, body = Browserless().post(acs, {"SAMLResponse": response})
    assert_refused(broker, status, body, before, "already used")


def test_a_response_to_a_login_another_browser_started_is_refused(
    broker: Broker, saml_peer: SamlPeer, unique: str
) -> None:
    login = f"sam-{unique}"
    make_role(broker, saml_peer, f"saml-s-{unique}", f"{login}-id", open_=False)
    add_user(saml_peer, login)
    _, response = sp_initiated_response(broker, saml_peer, login)
    before = issued(broker)
    other = Browserless()
    other.get(f"{broker.url}/sso/saml/{saml_peer.name}")  # a login of its own, another id
    status, body = other.post(saml_peer.acs(broker, saml_peer.name), {"SAMLResponse": response})
    assert_refused(broker, status, body, before, "names no SAML login this browser started")
    assert "not started here" in body


def test_a_pending_login_answers_only_once(
    broker: Broker, saml_peer: SamlPeer, unique: str
) -> None:
    login = f"tom-{unique}"
    make_role(broker, saml_peer, f"saml-t-{unique}", f"{login}-id", open_=False)
    add_user(saml_peer, login)
    client, response = sp_initiated_response(broker, saml_peer, login)
    status, body = client.post(saml_peer.acs(broker, saml_peer.name), {"SAMLResponse": response})
    assert status == 200 and "ASIA" in body, body
    before = issued(broker)
    # A second response to the same (now used) request, from a fresh IdP login.
    status, body = client.post(saml_peer.acs(broker, saml_peer.name), {"SAMLResponse": response})
    assert_refused(broker, status, body, before, "names no SAML login")


def test_idp_initiated_sign_in_is_refused_where_the_provider_does_not_allow_it(
    broker: Broker, saml_peer: SamlPeer, unique: str
) -> None:
    login = f"uma-{unique}"
    make_role(broker, saml_peer, f"saml-u-{unique}", f"{login}-id", open_=False)
    add_user(saml_peer, login)
    client = Browserless()
    query = urllib.parse.urlencode({"user": login, "sp": saml_peer.entity(broker, saml_peer.name)})
    response = saml_response_from_form(client.get(f"{saml_peer.idp.url}/sso/idp-initiated?{query}"))
    before = issued(broker)
    status, body = client.post(saml_peer.acs(broker, saml_peer.name), {"SAMLResponse": response})
    assert_refused(broker, status, body, before, "does not allow IdP-initiated sign-in")
    assert "must start here" in body


def test_sha1_is_refused_without_the_providers_opt_in(
    broker: Broker, saml_peer: SamlPeer, unique: str
) -> None:
    login = f"vic-{unique}"
    make_role(broker, saml_peer, f"saml-v-{unique}", f"{login}-id", open_=True)
    add_user(saml_peer, login)
    client = Browserless()
    acs = saml_peer.acs(broker, saml_peer.open_name)

    def response() -> str:
        query = urllib.parse.urlencode(
            {"user": login, "sp": saml_peer.entity(broker, saml_peer.open_name), "alg": "sha1"}
        )
        return saml_response_from_form(client.get(f"{saml_peer.idp.url}/sso/idp-initiated?{query}"))

    before = issued(broker)
    status, body = client.post(acs, {"SAMLResponse": response()})
    assert_refused(broker, status, body, before, "Deprecated signature algorithm")
    _configure(broker, saml_peer.open_name, "--allow-sha1")
    try:
        status, body = client.post(acs, {"SAMLResponse": response()})
        assert status == 200 and "ASIA" in body, body
    finally:
        _configure(broker, saml_peer.open_name, "--no-allow-sha1")


def test_encryption_required_refuses_a_plain_assertion(
    broker: Broker, saml_peer: SamlPeer, unique: str
) -> None:
    login = f"wes-{unique}"
    make_role(broker, saml_peer, f"saml-w-{unique}", f"{login}-id", open_=True)
    add_user(saml_peer, login)
    client = Browserless()
    acs = saml_peer.acs(broker, saml_peer.open_name)
    _configure(broker, saml_peer.open_name, "--require-encryption")
    try:
        sp = saml_peer.entity(broker, saml_peer.open_name)
        query = urllib.parse.urlencode({"user": login, "sp": sp})
        plain = saml_response_from_form(
            client.get(f"{saml_peer.idp.url}/sso/idp-initiated?{query}")
        )
        before = issued(broker)
        status, body = client.post(acs, {"SAMLResponse": plain})
        assert_refused(broker, status, body, before, "not encrypted")
        encrypted = saml_response_from_form(
            client.get(f"{saml_peer.idp.url}/sso/idp-initiated?{query}&encrypt=1")
        )
        status, body = client.post(acs, {"SAMLResponse": encrypted})
        assert status == 200 and "ASIA" in body, body
    finally:
        _configure(broker, saml_peer.open_name, "--allow-unencrypted")


def test_a_response_posted_without_the_broker_cookie_is_posted_again_from_the_broker(
    broker: Broker, saml_peer: SamlPeer, unique: str
) -> None:
    """A cross-site POST from the IdP does not carry the SameSite=Lax cookie: the broker
    answers with its own auto-submitting form (same-site), which does, once."""
    login = f"xena-{unique}"
    make_role(broker, saml_peer, f"saml-xs-{unique}", f"{login}-id", open_=False)
    add_user(saml_peer, login)
    client, response = sp_initiated_response(broker, saml_peer, login)
    acs = saml_peer.acs(broker, saml_peer.name)
    before = issued(broker)
    status, body = Browserless().post(acs, {"SAMLResponse": response})  # no cookie
    assert status == 200 and 'name="resubmitted" value="1"' in body
    assert issued(broker) == before
    fields = {k: html.unescape(v) for k, v in re.findall(r'name="(\w+)" value="([^"]*)"', body)}
    status, body = client.post(acs, fields)  # the same form, with the browser's cookie
    assert status == 200 and "ASIA" in body, body


def test_attributes_become_tags_and_source_identity_through_the_providers_mapping(
    broker: Broker, saml_peer: SamlPeer, unique: str
) -> None:
    """``--tag-attribute`` / ``--source-identity-attribute``: the role below trusts only a
    session that carries them, so it is offered only when the mapping applied."""
    name = f"corp-map-{unique}"
    arn = broker.client("iam").create_saml_provider(
        Name=name, SAMLMetadataDocument=saml_peer.idp.metadata()
    )["SAMLProviderArn"]
    ou = "urn:oid:2.5.4.11"
    _configure(
        broker,
        name,
        "--idp-initiated",
        "--tag-attribute",
        f"{ou}=Department",
        "--source-identity-attribute",
        MAIL,
    )
    saml_peer.idp.load_sp_metadata(_fetch(saml_peer.entity(broker, name)))
    login = f"yara-{unique}"
    trust = {
        "Effect": "Allow",
        "Principal": {"Federated": arn},
        "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession", "sts:SetSourceIdentity"],
        "Condition": {
            "StringEquals": {
                "aws:RequestTag/Department": "eng",
                "sts:SourceIdentity": f"{login}@example.test",
            }
        },
    }
    role_arn = broker.client("iam").create_role(
        RoleName=f"saml-map-{unique}",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]}),
    )["Role"]["Arn"]
    add_user(saml_peer, login)
    users = json.loads((saml_peer.directory / "users.json").read_text())
    users[login]["attributes"][ou] = ["eng"]
    saml_peer.idp.add_users({login: users[login]})
    client = Browserless()
    query = urllib.parse.urlencode({"user": login, "sp": saml_peer.entity(broker, name)})
    response = saml_response_from_form(client.get(f"{saml_peer.idp.url}/sso/idp-initiated?{query}"))
    status, body = client.post(f"{broker.url}/sso/saml/{name}/acs", {"SAMLResponse": response})
    assert status == 200, body
    assert assumed(role_arn, login) in body
    assert f"{login}@example.test" in body  # the source identity, on the session page


def _keys(broker: Broker, name: str, *flags: str) -> list[tuple[str, str]]:
    done = subprocess.run(
        [FEDBROKER, "sso", "saml-keys", *broker.store_args, "--provider", name, *flags],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines() if "sha256:" in line]
    return [(line[0], line[1]) for line in lines]


def _encryption_cert(document: str) -> str:
    found = re.search(r'use="encryption".*?X509Certificate>([^<]+)<', document, re.S)
    assert found is not None
    body = found.group(1).strip()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def test_a_decryption_key_rotation_loses_no_sign_in(
    broker: Broker, saml_peer: SamlPeer, unique: str
) -> None:
    name = f"corp-rot-{unique}"
    arn = broker.client("iam").create_saml_provider(
        Name=name, SAMLMetadataDocument=saml_peer.idp.metadata()
    )["SAMLProviderArn"]
    _configure(broker, name, "--idp-initiated")
    before = _fetch(saml_peer.entity(broker, name))
    saml_peer.idp.load_sp_metadata(before)
    first = _keys(broker, name)
    assert [use for _, use in first] == ["signing", "encryption"]
    old = first[1][0]
    listed = _keys(broker, name, "--rotate-encryption")
    assert [use for _, use in listed] == ["signing", "encryption", "encryption"]
    new = listed[1][0]
    assert listed[2][0] == old and new != old
    after = _fetch(saml_peer.entity(broker, name))
    old_cert, new_cert = _encryption_cert(before), _encryption_cert(after)
    assert old_cert != new_cert and after.count('use="encryption"') == 1  # the new one only

    login = f"zoe-{unique}"
    broker.client("iam").create_role(
        RoleName=f"saml-rot-{unique}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": arn},
                        "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
                    }
                ],
            }
        ),
    )
    add_user(saml_peer, login)

    def sign_in(cert: str) -> tuple[int, str]:
        (saml_peer.directory / f"rot-{unique}.crt").write_text(cert)
        query = urllib.parse.urlencode(
            {"user": login, "sp": saml_peer.entity(broker, name), "encrypt_to": f"rot-{unique}.crt"}
        )
        client = Browserless()
        response = saml_response_from_form(
            client.get(f"{saml_peer.idp.url}/sso/idp-initiated?{query}")
        )
        return client.post(f"{broker.url}/sso/saml/{name}/acs", {"SAMLResponse": response})

    for cert in (old_cert, new_cert):  # both decrypt during the rotation
        status, body = sign_in(cert)
        assert status == 200 and "ASIA" in body, body
    assert [k for k, _ in _keys(broker, name, "--remove-key", old)][1:] == [new]
    before_count = issued(broker)
    status, body = sign_in(old_cert)
    assert_refused(broker, status, body, before_count, "cannot be read")
    status, body = sign_in(new_cert)
    assert status == 200 and "ASIA" in body, body


# --- single logout (SP-initiated) -----------------------------------------------------------


def _sign_in_for_logout(
    broker: Broker, peer: SamlPeer, page: Page, unique: str, login: str, **extra: Any
) -> str:
    role_arn = make_role(broker, peer, f"saml-slo-{unique}", f"{login}-id", open_=False)
    add_user(peer, login, roles=[f"{role_arn},{peer.arn}"], **extra)
    sp_initiated(page, broker, peer, login)
    assert page.locator("h1").inner_text() == "Your session", page.content()
    [cookie] = [c for c in page.context.cookies() if c["name"] == "fedbroker_sso"]
    return str(cookie["value"])


def _old_cookie_works(broker: Broker, sid: str) -> bool:
    request = urllib.request.Request(
        f"{broker.url}/sso/roles", headers={"Cookie": f"fedbroker_sso={sid}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return bool(answer.status == 200)
    except urllib.error.HTTPError:
        return False


def test_sign_out_ends_the_session_then_signs_out_at_the_idp(
    broker: Broker, saml_peer: SamlPeer, page: Page, unique: str
) -> None:
    login = f"olga-{unique}"
    sid = _sign_in_for_logout(broker, saml_peer, page, unique, login)
    assert _old_cookie_works(broker, sid)
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("#idp-signed-out")
    assert page.get_by_role("heading", name="Signed out").is_visible()
    assert saml_peer.name in page.locator("#idp-signed-out").inner_text()
    to_idp = [u for u in visited if u.startswith(f"{saml_peer.idp.url}/slo?")]
    back = [u for u in visited if u.startswith(f"{broker.url}/sso/saml/{saml_peer.name}/sls?")]
    assert len(to_idp) == 1 and len(back) == 1
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(to_idp[0]).query)
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    assert "Signature" in query  # checked by pysaml2 against the SP metadata's certificate
    [logout] = [e for e in saml_peer.idp.logouts() if e["name_id"] == f"{login}-id"]
    assert logout["format"] == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert logout["session_index"] and logout["session_index"][0]
    assert logout["issuer"] == saml_peer.entity(broker, saml_peer.name)
    assert [c for c in page.context.cookies() if c["name"] == "fedbroker_sso"] == []
    assert not _old_cookie_works(broker, sid)

    # The same LogoutResponse again (the pending logout was used once): refused.
    page.goto(back[0])
    assert page.get_by_role("heading", name="Sign-out not confirmed").is_visible()


def test_a_logout_response_to_another_request_is_refused(
    broker: Broker, saml_peer: SamlPeer, page: Page, unique: str
) -> None:
    login = f"pete-{unique}"
    sid = _sign_in_for_logout(
        broker, saml_peer, page, unique, login, logout_in_response_to=f"_not-mine-{unique}"
    )
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("main h1")
    assert page.get_by_role("heading", name="Sign-out not confirmed").is_visible()
    assert "broker session has ended" in page.locator("#message").inner_text()
    assert page.locator("#request-id").inner_text()
    assert not _old_cookie_works(broker, sid)  # the broker session is gone either way


def test_the_sp_metadata_advertises_single_logout(broker: Broker, saml_peer: SamlPeer) -> None:
    document = _fetch(f"{broker.url}/sso/saml/{saml_peer.name}/metadata")
    assert (
        '<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        f'Location="{broker.url}/sso/saml/{saml_peer.name}/sls"'
    ) in document
