"""The broker's endpoints for the CLI helper (issue 6), in process with an injected clock.

A directory made by `fedbroker init` + `fedbroker apply`; the broker built by `create_app` with
a FixedClock and an in-memory audit sink, driven by Flask's test client. The browser side of
a sign-in is a broker web session holding a SignedIn identity (what `/sso` keeps after a real
sign-in; the real sign-in through the OIDC peer is in test_cli_helper.py). Expiry is checked by
moving the clock, not by waiting.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from flask.testing import FlaskClient

from fedbroker.audit.events import MemoryAuditSink
from fedbroker.cli.main import main
from fedbroker.clock import FixedClock
from fedbroker.config import load_settings
from fedbroker.directory.model import Kind
from fedbroker.sso.identity import SignedIn
from fedbroker.web.app import create_app
from fedbroker.web.sso_sessions import SessionTable

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
PROVIDER = "idp.example.test"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
LOOPBACK = "http://127.0.0.1:53682/callback"


def trust(subject: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{{account}}:oidc-provider/{PROVIDER}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{PROVIDER}:sub": subject}},
            }
        ],
    }


@dataclass
class Broker:
    client: FlaskClient
    clock: FixedClock
    audit: MemoryAuditSink
    services: Any
    alice: SignedIn

    def browser_session(self, who: SignedIn | None = None) -> str:
        """A signed-in broker web session in the test client's cookie jar; its CSRF token."""
        table = SessionTable(self.services)
        sid, session = table.create(self.clock.now())
        session.signed_in = (who or self.alice).to_json()
        table.save(sid, session, self.clock.now())
        self.client.set_cookie("fedbroker_sso", sid, path="/sso")
        return session.csrf

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e.to_record() for e in self.audit.events if e.event_name == name]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    data = tmp_path / "data"
    runner = CliRunner()
    done = runner.invoke(main, ["init", "--data-dir", str(data)])
    assert done.exit_code == 0, done.output
    settings = load_settings(overrides={"data_dir": str(data)})
    from fedbroker.directory.sql import SqlStore

    store = SqlStore(settings.effective_database_url)
    [account] = store.list_accounts()
    store.close()
    text = json.dumps(trust("alice")).replace("{account}", account.id)
    document = {
        "version": 1,
        "providers": {"oidc": [{"url": f"https://{PROVIDER}", "client_ids": ["cli-test"]}]},
        "roles": [
            {"name": "cli-dev", "max_session_duration": 3600, "trust": json.loads(text)},
            {
                "name": "cli-bob",
                "trust": json.loads(json.dumps(trust("bob")).replace("{account}", account.id)),
            },
        ],
    }
    directory = tmp_path / "directory.yaml"
    directory.write_text(yaml.safe_dump(document))
    done = runner.invoke(main, ["apply", str(directory), "--data-dir", str(data)])
    assert done.exit_code == 0, done.output
    clock = FixedClock(T0)
    audit = MemoryAuditSink()
    app = create_app(settings, clock=clock, audit=audit, test_config={"TESTING": True})
    services = app.extensions["fedbroker.services"]
    provider = services.store.get_entity(account.id, Kind.OIDC_PROVIDER, PROVIDER)
    alice = SignedIn(
        kind="oidc",
        account_id=account.id,
        provider_name=PROVIDER,
        provider_arn=provider.arn,
        subject="alice",
        session_name="alice@example.test",
        trust_context={
            f"{PROVIDER}:sub": "alice",
            f"{PROVIDER}:aud": "cli-test",
            "aws:FederatedProvider": provider.arn,
        },
        authenticated_at=T0,
        display={"email": "alice@example.test"},
    )
    with app.test_client() as client:
        yield Broker(client, clock, audit, services, alice)
    services.store.close()


def pkce() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(b"v" * 40).rstrip(b"=").decode()
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_query(challenge: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": "fedbroker-cli",
        "redirect_uri": LOOPBACK,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "the-state",
        "host": "laptop-7",
        **extra,
    }
    return "/sso/cli/authorize?" + urllib.parse.urlencode(params)


def loopback_code(broker: Broker, challenge: str) -> str:
    csrf = broker.browser_session()
    page = broker.client.get(authorize_query(challenge))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "laptop-7" in text and "alice@example.test" in text
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', text))
    form["decision"] = "allow"
    assert form["csrf"] == csrf
    answer = broker.client.post("/sso/cli/authorize", data=form)
    assert answer.status_code == 302
    location = urllib.parse.urlsplit(answer.headers["Location"])
    assert f"http://{location.netloc}{location.path}" == LOOPBACK
    query = dict(urllib.parse.parse_qsl(location.query))
    assert query["state"] == "the-state"
    return query["code"]


def token(broker: Broker, **form: str) -> Any:
    return broker.client.post("/sso/cli/token", data={"client_id": "fedbroker-cli", **form})


def signed_in_handle(broker: Broker) -> str:
    verifier, challenge = pkce()
    code = loopback_code(broker, challenge)
    answer = token(
        broker,
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        redirect_uri=LOOPBACK,
    )
    assert answer.status_code == 200, answer.get_json()
    return str(answer.get_json()["access_token"])


def bearer(handle: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {handle}"}


# --- loopback authorization ------------------------------------------------------------------


def test_loopback_code_with_pkce_gives_a_cli_session(broker: Broker) -> None:
    verifier, challenge = pkce()
    code = loopback_code(broker, challenge)
    answer = token(
        broker,
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        redirect_uri=LOOPBACK,
    )
    assert answer.status_code == 200
    body = answer.get_json()
    assert answer.headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "Bearer" and body["expires_in"] == 8 * 3600
    assert body["subject"] == "alice" and body["provider"] == PROVIDER
    assert body["host"] == "laptop-7"
    # The code is single-use.
    again = token(
        broker,
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        redirect_uri=LOOPBACK,
    )
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    [created] = [e for e in broker.events("CreateToken") if e.get("errorCode") is None]
    assert created["userIdentity"]["userName"] == "alice"
    everything = json.dumps([e.to_record() for e in broker.audit.events])
    assert body["access_token"] not in everything and code not in everything


def test_wrong_verifier_or_redirect_uri_is_refused(broker: Broker) -> None:
    verifier, challenge = pkce()
    code = loopback_code(broker, challenge)
    wrong = token(
        broker,
        grant_type="authorization_code",
        code=code,
        code_verifier="w" * 43,
        redirect_uri=LOOPBACK,
    )
    assert wrong.status_code == 400
    assert wrong.get_json()["error"] == "invalid_grant"
    code = loopback_code(broker, challenge)
    other = token(
        broker,
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        redirect_uri="http://127.0.0.1:1/callback",
    )
    assert other.get_json()["error"] == "invalid_grant"
    assert broker.events("CreateToken")[-1]["errorCode"] == "invalid_grant"


def test_expired_code_is_refused(broker: Broker) -> None:
    verifier, challenge = pkce()
    code = loopback_code(broker, challenge)
    broker.clock.advance(timedelta(minutes=3))
    late = token(
        broker,
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        redirect_uri=LOOPBACK,
    )
    assert late.get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://evil.example/callback",
        "https://127.0.0.1:8000/callback",
        "http://localhost:8000/callback",
        "http://127.0.0.1/callback",
        "http://user@127.0.0.1:8000/callback",
    ],
)
def test_a_redirect_uri_off_the_loopback_is_never_redirected_to(
    broker: Broker, redirect_uri: str
) -> None:
    broker.browser_session()
    _, challenge = pkce()
    page = broker.client.get(authorize_query(challenge, redirect_uri=redirect_uri))
    assert page.status_code == 400
    assert "Location" not in page.headers
    assert "redirect_uri" in page.get_data(as_text=True)


def test_authorize_needs_pkce_s256(broker: Broker) -> None:
    broker.browser_session()
    _, challenge = pkce()
    plain = broker.client.get(authorize_query(challenge, code_challenge_method="plain"))
    assert plain.status_code == 400
    short = broker.client.get(authorize_query("abc"))
    assert short.status_code == 400


def test_not_signed_in_goes_to_sign_in_and_comes_back(broker: Broker) -> None:
    _, challenge = pkce()
    first = broker.client.get(authorize_query(challenge))
    assert first.status_code == 302
    assert urllib.parse.urlsplit(first.headers["Location"]).path == "/sso"
    cookie = broker.client.get_cookie("fedbroker_cli_resume", path="/sso")
    assert cookie is not None and cookie.value.startswith("/sso/cli/authorize?")


def test_consent_form_needs_its_csrf_token(broker: Broker) -> None:
    broker.browser_session()
    _, challenge = pkce()
    page = broker.client.get(authorize_query(challenge)).get_data(as_text=True)
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page))
    form["csrf"] = "forged"
    form["decision"] = "allow"
    answer = broker.client.post("/sso/cli/authorize", data=form)
    assert answer.status_code == 403 and "Location" not in answer.headers


def test_denied_consent_redirects_with_access_denied(broker: Broker) -> None:
    broker.browser_session()
    _, challenge = pkce()
    page = broker.client.get(authorize_query(challenge)).get_data(as_text=True)
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page))
    form["decision"] = "deny"
    answer = broker.client.post("/sso/cli/authorize", data=form)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.headers["Location"]).query))
    assert query == {
        "error": "access_denied",
        "error_description": "the user denied the sign-in",
        "state": "the-state",
    }


# --- device authorization (RFC 8628) ---------------------------------------------------------


def start_device(broker: Broker) -> dict[str, Any]:
    answer = broker.client.post(
        "/sso/cli/device_authorization", data={"client_id": "fedbroker-cli", "host": "build-vm"}
    )
    assert answer.status_code == 200
    body: dict[str, Any] = answer.get_json()
    return body


def test_device_flow_pending_slow_down_approve(broker: Broker) -> None:
    start = start_device(broker)
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", start["user_code"])
    assert start["verification_uri"].endswith("/sso/cli/device")
    assert start["interval"] == 5 and start["expires_in"] == 600
    poll = {"grant_type": DEVICE, "device_code": start["device_code"]}
    assert token(broker, **poll).get_json()["error"] == "authorization_pending"
    broker.clock.advance(timedelta(seconds=2))
    slow = token(broker, **poll).get_json()
    assert slow["error"] == "slow_down" and slow["interval"] == 10

    csrf = broker.browser_session()
    typed = start["user_code"].lower().replace("-", " ")
    page = broker.client.get("/sso/cli/device?" + urllib.parse.urlencode({"user_code": typed}))
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "build-vm" in text and start["user_code"] in text
    forged = broker.client.post(
        "/sso/cli/device",
        data={"user_code": start["user_code"], "decision": "approve", "csrf": "x"},
    )
    assert forged.status_code == 403
    broker.clock.advance(timedelta(seconds=10))
    assert token(broker, **poll).get_json()["error"] == "authorization_pending"
    done = broker.client.post(
        "/sso/cli/device",
        data={"user_code": start["user_code"], "decision": "approve", "csrf": csrf},
    )
    assert done.status_code == 200 and "Device signed in" in done.get_data(as_text=True)
    broker.clock.advance(timedelta(seconds=10))
    answer = token(broker, **poll)
    assert answer.status_code == 200
    handle = answer.get_json()["access_token"]
    assert broker.client.get("/sso/cli/whoami", headers=bearer(handle)).status_code == 200
    assert token(broker, **poll).get_json()["error"] == "invalid_grant"
    assert broker.events("ApproveDeviceAuthorization")[-1].get("errorCode") is None


def test_device_flow_denied_and_expired(broker: Broker) -> None:
    denied = start_device(broker)
    csrf = broker.browser_session()
    broker.client.post(
        "/sso/cli/device",
        data={"user_code": denied["user_code"], "decision": "deny", "csrf": csrf},
    )
    poll = {"grant_type": DEVICE, "device_code": denied["device_code"]}
    assert token(broker, **poll).get_json()["error"] == "access_denied"

    late = start_device(broker)
    broker.clock.advance(timedelta(minutes=11))
    poll = {"grant_type": DEVICE, "device_code": late["device_code"]}
    assert token(broker, **poll).get_json()["error"] == "expired_token"
    page = broker.client.get(
        "/sso/cli/device?" + urllib.parse.urlencode({"user_code": late["user_code"]})
    )
    assert page.status_code == 400 and "unknown or has expired" in page.get_data(as_text=True)
    unknown = token(broker, grant_type=DEVICE, device_code="x" * 43)
    assert unknown.get_json()["error"] == "invalid_grant"


def test_token_endpoint_refusals_are_rfc_6749_json(broker: Broker) -> None:
    bad = token(broker, grant_type="password", username="a", password="b")
    assert bad.status_code == 400 and bad.get_json()["error"] == "unsupported_grant_type"
    client = broker.client.post("/sso/cli/token", data={"client_id": "other"})
    assert client.status_code == 401 and client.get_json()["error"] == "invalid_client"


# --- the CLI session: exchange, roles, whoami, expiry, revocation ----------------------------


def test_exchange_issues_role_credentials_and_audits_it(broker: Broker) -> None:
    handle = signed_in_handle(broker)
    roles = broker.client.get("/sso/cli/roles", headers=bearer(handle)).get_json()
    assert [r["name"] for r in roles["roles"]] == ["cli-dev"]
    assert roles["roles"][0]["max_session_duration"] == 3600
    arn = roles["roles"][0]["arn"]
    answer = broker.client.post(
        "/sso/cli/credentials",
        data={"role_arn": arn, "duration_seconds": "900"},
        headers=bearer(handle),
    )
    assert answer.status_code == 200, answer.get_json()
    creds = answer.get_json()
    assert creds["Version"] == 1 and creds["AccessKeyId"].startswith("ASIA")
    assert creds["Expiration"] == "2026-05-01T09:15:00Z"
    assert creds["AssumedRoleArn"].endswith(":assumed-role/cli-dev/alice@example.test")
    [event] = [e for e in broker.events("AssumeRoleWithWebIdentity") if e.get("errorCode") is None]
    assert event["additionalEventData"] == {"via": "cli-session"}
    assert creds["SecretAccessKey"] not in json.dumps(event)
    assert handle not in json.dumps([e.to_record() for e in broker.audit.events])


def test_exchange_refusals(broker: Broker) -> None:
    handle = signed_in_handle(broker)
    arn = broker.client.get("/sso/cli/roles", headers=bearer(handle)).get_json()["roles"][0]["arn"]
    too_long = broker.client.post(
        "/sso/cli/credentials",
        data={"role_arn": arn, "duration_seconds": "7200"},
        headers=bearer(handle),
    )
    assert too_long.status_code == 400
    assert too_long.get_json()["error"] == "invalid_request"
    assert too_long.get_json()["max_session_duration"] == 3600
    other = arn.replace("cli-dev", "cli-bob")
    denied = broker.client.post(
        "/sso/cli/credentials", data={"role_arn": other}, headers=bearer(handle)
    )
    assert denied.status_code == 403 and denied.get_json()["error"] == "access_denied"
    assert "AccessKeyId" not in denied.get_json()
    refused = broker.events("AssumeRoleWithWebIdentity")
    assert [e.get("errorCode") for e in refused] == ["ValidationError", "AccessDenied"]
    none = broker.client.post("/sso/cli/credentials", data={"role_arn": arn})
    assert none.status_code == 401
    assert none.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_cli_session_expires_after_its_lifetime(broker: Broker) -> None:
    handle = signed_in_handle(broker)
    broker.clock.advance(timedelta(hours=8) - timedelta(seconds=1))
    assert broker.client.get("/sso/cli/whoami", headers=bearer(handle)).status_code == 200
    broker.clock.advance(timedelta(seconds=1))
    answer = broker.client.get("/sso/cli/whoami", headers=bearer(handle))
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "invalid_token"
    assert "fedbroker login" in answer.get_json()["error_description"]


def test_lifetime_is_configurable(broker: Broker) -> None:
    from flask import current_app

    with broker.client.application.app_context():
        current_app.config["CLI_SESSION_LIFETIME"] = timedelta(minutes=30)
    verifier, challenge = pkce()
    code = loopback_code(broker, challenge)
    body = token(
        broker,
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        redirect_uri=LOOPBACK,
    ).get_json()
    assert body["expires_in"] == 1800


def test_revoked_session_gets_nothing_more(broker: Broker) -> None:
    handle = signed_in_handle(broker)
    arn = broker.client.get("/sso/cli/roles", headers=bearer(handle)).get_json()["roles"][0]["arn"]
    assert broker.client.post("/sso/cli/revoke", data={"token": handle}).status_code == 200
    after = broker.client.post(
        "/sso/cli/credentials", data={"role_arn": arn}, headers=bearer(handle)
    )
    assert after.status_code == 401
    [logout] = broker.events("Logout")
    assert logout["userIdentity"]["userName"] == "alice"


def test_a_changed_trust_policy_stops_the_next_exchange(broker: Broker) -> None:
    from dataclasses import replace

    handle = signed_in_handle(broker)
    arn = broker.client.get("/sso/cli/roles", headers=bearer(handle)).get_json()["roles"][0]["arn"]
    store = broker.services.store
    role = store.get_entity(broker.alice.account_id, Kind.ROLE, "cli-dev")
    trust_text = json.dumps(trust("carol")).replace("{account}", broker.alice.account_id)
    store.update_entity(replace(role, attrs={**role.attrs, "trust_policy": trust_text}))
    answer = broker.client.post(
        "/sso/cli/credentials", data={"role_arn": arn}, headers=bearer(handle)
    )
    assert answer.status_code == 403


def test_an_administrator_revokes_by_session_id_or_by_person(broker: Broker) -> None:
    from fedbroker.sso import cli_sessions

    services = broker.services
    first = signed_in_handle(broker)
    second = signed_in_handle(broker)
    session_id = broker.client.get("/sso/cli/whoami", headers=bearer(first)).get_json()[
        "session_id"
    ]
    later = T0 + timedelta(hours=9)
    cli_sessions.revoke_session_id(
        services.store, services.master_key, session_id, later, broker.clock.now()
    )
    assert broker.client.get("/sso/cli/whoami", headers=bearer(first)).status_code == 401
    assert broker.client.get("/sso/cli/whoami", headers=bearer(second)).status_code == 200
    broker.clock.advance(timedelta(seconds=1))
    cli_sessions.revoke_subject(
        services.store,
        services.master_key,
        broker.alice.account_id,
        PROVIDER,
        "alice",
        broker.clock.now(),
        later,
        broker.clock.now(),
    )
    assert broker.client.get("/sso/cli/whoami", headers=bearer(second)).status_code == 401
    # A session made after the revocation works.
    broker.clock.advance(timedelta(seconds=1))
    third = signed_in_handle(broker)
    assert broker.client.get("/sso/cli/whoami", headers=bearer(third)).status_code == 200


def test_the_cli_polls_as_the_broker_asks(
    broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    """`fedbroker login --device-code`'s polling against this broker over HTTP: the clock
    moves only when the CLI sleeps; one early poll gets slow_down and the CLI waits longer."""
    import threading

    from werkzeug.serving import make_server

    from fedbroker.cli.broker_client import BrokerClient
    from fedbroker.cli.login_flow import device_login

    server = make_server("127.0.0.1", 0, broker.client.application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            broker.clock.advance(timedelta(seconds=1))  # too early: slow_down
            return
        if len(slept) == 3:
            code = re.search(r"\b([A-Z]{4}-[A-Z]{4})\b", capsys.readouterr().err)
            assert code is not None
            csrf = broker.browser_session()
            broker.client.post(
                "/sso/cli/device",
                data={"user_code": code.group(1), "decision": "approve", "csrf": csrf},
            )
        broker.clock.advance(timedelta(seconds=seconds))

    try:
        answer = device_login(BrokerClient(f"http://127.0.0.1:{server.port}"), sleep=sleep)
    finally:
        server.shutdown()
        thread.join()
    assert slept == [5, 5, 10]
    assert answer["subject"] == "alice" and answer["access_token"]
