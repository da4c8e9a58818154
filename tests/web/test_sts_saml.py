"""AssumeRoleWithSAML through boto3 and the AWS CLI, with responses from a real IdP (pysaml2,
tests/support/saml_idp.py) registered through the IAM API, and attacks made from them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.saml_attacks import KeyPair, attacks, new_keypair, write_keypair
from tests.support.saml_idp import IdpProcess
from tests.web.conftest import FEDBROKER, REPO, Broker, free_port

AWS_CLI = os.environ.get("FEDBROKER_TEST_AWS_CLI", str(REPO / ".venv-awscli/bin/aws"))
ATTRIBUTES = "https://aws.amazon.com/SAML/Attributes/"
ACS = "https://signin.aws.amazon.com/saml"
EPPN = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6"
READ_IAM = {"Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"}


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def unsigned_sts(url: str) -> Any:
    return boto3.client(
        "sts",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, signature_version=UNSIGNED),
    )


@dataclass
class Saml:
    idp: IdpProcess
    keys: KeyPair
    other_keys: KeyPair
    account: str
    provider_arn: str
    provider_name: str
    role_arn: str
    role_name: str

    def attributes(self, session: str, *pairs: str, **extra: list[str]) -> dict[str, list[str]]:
        return {
            f"{ATTRIBUTES}Role": list(pairs) or [f"{self.role_arn},{self.provider_arn}"],
            f"{ATTRIBUTES}RoleSessionName": [session],
            **{f"{ATTRIBUTES}{k}": v for k, v in extra.items()},
        }


@pytest.fixture(scope="module")
def saml(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Saml]:
    directory = tmp_path_factory.mktemp(f"idp-{broker.backend}")
    keys = new_keypair("pysaml2 idp")
    write_keypair(directory, keys)
    idp = IdpProcess(directory, free_port())
    try:
        iam = broker.client("iam")
        account = broker.client("sts").get_caller_identity()["Account"]
        name = f"pysaml2-{broker.backend}"
        provider_arn = iam.create_saml_provider(Name=name, SAMLMetadataDocument=idp.metadata())[
            "SAMLProviderArn"
        ]
        role_name = f"saml-reader-{broker.backend}"
        trust = {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession", "sts:SetSourceIdentity"],
            "Condition": {"StringEquals": {"SAML:aud": ACS}},
        }
        role_arn = iam.create_role(
            RoleName=role_name, AssumeRolePolicyDocument=doc(trust), MaxSessionDuration=7200
        )["Role"]["Arn"]
        iam.put_role_policy(RoleName=role_name, PolicyName="read", PolicyDocument=doc(READ_IAM))
        found = Saml(
            idp, keys, new_keypair("attacker"), account, provider_arn, name, role_arn, role_name
        )
        idp.add_users(
            {
                "alice": {
                    "name_id": "alice-0001",
                    "attributes": {
                        **found.attributes(
                            "alice",
                            SessionDuration=["1800"],
                            SourceIdentity=["alice"],
                            TransitiveTagKeys=["team"],
                        ),
                        f"{ATTRIBUTES}PrincipalTag:team": ["blue"],
                        EPPN: ["alice@example.test"],
                    },
                },
                # the pair in the other order, as some IdPs send it
                "bob": {
                    "name_id": "bob-0002",
                    "attributes": found.attributes("bob", f"{provider_arn},{role_arn}"),
                },
                "mallory": {
                    "name_id": "mallory-0003",
                    "attributes": found.attributes(
                        "mallory", f"{role_arn},{provider_arn.replace(name, 'other-idp')}"
                    ),
                },
                "norole": {
                    "name_id": "norole-0004",
                    "attributes": {f"{ATTRIBUTES}RoleSessionName": ["norole"]},
                },
                "nosession": {
                    "name_id": "nosession-0005",
                    "attributes": {f"{ATTRIBUTES}Role": [f"{role_arn},{provider_arn}"]},
                },
            }
        )
        yield found
    finally:
        idp.stop()


def assume(url: str, saml: Saml, assertion: str, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = unsigned_sts(url).assume_role_with_saml(
        RoleArn=kwargs.pop("role_arn", saml.role_arn),
        PrincipalArn=kwargs.pop("provider_arn", saml.provider_arn),
        SAMLAssertion=assertion,
        **kwargs,
    )
    return result


def session_client(broker: Broker, creds: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=broker.url,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=Config(retries={"max_attempts": 1}),
    )


def saml_events(broker: Broker) -> list[dict[str, Any]]:
    return [e for e in broker.audit_events() if e["eventName"] == "AssumeRoleWithSAML"]


def test_an_idp_initiated_login_becomes_role_credentials(broker: Broker, saml: Saml) -> None:
    assertion = saml.idp.login("alice")
    result = assume(broker.url, saml, assertion)
    creds = result["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    lifetime = creds["Expiration"].timestamp() - time.time()
    assert 1700 < lifetime <= 1800  # the assertion's SessionDuration caps the default hour
    user = result["AssumedRoleUser"]
    assert user["Arn"] == f"arn:aws:sts::{saml.account}:assumed-role/{saml.role_name}/alice"
    qualifier = base64.b64encode(
        hashlib.sha1(f"{saml.idp.entity_id}{saml.account}/{saml.provider_name}".encode()).digest()
    ).decode()
    assert result["Subject"] == "alice-0001"
    assert result["SubjectType"] == "persistent"
    assert result["Issuer"] == saml.idp.entity_id
    assert result["Audience"] == ACS
    assert result["NameQualifier"] == qualifier
    assert result["SourceIdentity"] == "alice"
    assert 1 <= result["PackedPolicySize"] <= 100

    me = session_client(broker, creds, "sts").get_caller_identity()
    assert me["Arn"] == user["Arn"] and me["UserId"] == user["AssumedRoleId"]
    role_iam = session_client(broker, creds, "iam")
    assert role_iam.get_role(RoleName=saml.role_name)["Role"]["Arn"] == saml.role_arn
    with pytest.raises(ClientError) as info:
        role_iam.create_user(UserName=f"nope-{broker.backend}")
    assert code(info) == "AccessDenied"

    event = saml_events(broker)[-1]
    assert "errorCode" not in event
    assert event["userIdentity"] == {
        "type": "SAMLUser",
        "principalId": f"{qualifier}:alice-0001",
        "userName": "alice-0001",
        "identityProvider": qualifier,
    }
    assert event["requestParameters"]["SAMLAssertion"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert event["responseElements"]["subject"] == "alice-0001"
    assert assertion[:64] not in broker.audit_log.read_text()
    assert creds["SecretAccessKey"] not in broker.audit_log.read_text()


def test_either_order_of_the_role_pair_and_duration_limits(broker: Broker, saml: Saml) -> None:
    result = assume(broker.url, saml, saml.idp.login("bob"), DurationSeconds=7200)
    assert result["AssumedRoleUser"]["Arn"].endswith("/bob")
    assert 7100 < result["Credentials"]["Expiration"].timestamp() - time.time() <= 7200
    with pytest.raises(ClientError) as info:
        assume(broker.url, saml, saml.idp.login("bob"), DurationSeconds=7201)
    assert code(info) == "ValidationError"
    assert "7200" in info.value.response["Error"]["Message"]


def test_trust_conditions_see_the_saml_keys(broker: Broker, saml: Saml) -> None:
    iam = broker.client("iam")
    qualifier = base64.b64encode(
        hashlib.sha1(f"{saml.idp.entity_id}{saml.account}/{saml.provider_name}".encode()).digest()
    ).decode()
    conditions = {
        "saml:sub": "alice-0001",
        "saml:sub_type": "persistent",
        "saml:iss": saml.idp.entity_id,
        "saml:doc": f"{saml.account}/{saml.provider_name}",
        "saml:namequalifier": qualifier,
        "saml:edupersonprincipalname": "alice@example.test",
        "sts:RoleSessionName": "alice",
        "aws:RequestTag/team": "blue",
    }
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": saml.provider_arn},
        "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession", "sts:SetSourceIdentity"],
        "Condition": {"StringEquals": conditions},
    }
    name = f"saml-strict-{broker.backend}"
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=doc(statement))["Role"]["Arn"]
    pair = f"{arn},{saml.provider_arn}"
    users = {
        f"strict-{who}": {
            "name_id": f"{who}-0001",
            "attributes": {
                **saml.attributes("alice", pair),
                f"{ATTRIBUTES}PrincipalTag:team": ["blue"],
                EPPN: ["alice@example.test"],
            },
        }
        for who in ("alice", "eve")
    }
    saml.idp.add_users(users)
    result = assume(broker.url, saml, saml.idp.login("strict-alice"), role_arn=arn)
    assert result["AssumedRoleUser"]["Arn"].endswith(f"{name}/alice")
    with pytest.raises(ClientError) as info:  # saml:sub is eve-0001
        assume(broker.url, saml, saml.idp.login("strict-eve"), role_arn=arn)
    assert code(info) == "AccessDenied"
    event = saml_events(broker)[-1]
    assert event["errorCode"] == "AccessDenied"
    assert "sts:AssumeRoleWithSAML" in event["errorMessage"]


def _refusals(saml: Saml) -> dict[str, tuple[str, dict[str, Any], str]]:
    """name: (base64 response, extra request arguments, expected code)."""
    genuine = base64.b64decode(saml.idp.login("alice"))
    cases = {
        name: (base64.b64encode(xml).decode(), {}, expected)
        for name, (xml, expected) in attacks(genuine, saml.keys, saml.other_keys).items()
    }
    cases["sha1-by-pysaml2"] = (saml.idp.login("alice", alg="sha1"), {}, "InvalidIdentityToken")
    cases["role-pair-of-another-provider"] = (saml.idp.login("mallory"), {}, "IDPRejectedClaim")
    cases["no-role-attribute"] = (saml.idp.login("norole"), {}, "IDPRejectedClaim")
    cases["no-role-session-name"] = (saml.idp.login("nosession"), {}, "IDPRejectedClaim")
    cases["another-provider-arn"] = (
        saml.idp.login("alice"),
        {"provider_arn": saml.provider_arn.replace(saml.provider_name, "missing-idp")},
        "InvalidIdentityToken",
    )
    cases["a-role-not-in-the-assertion"] = (
        saml.idp.login("alice"),
        {"role_arn": saml.role_arn.replace(saml.role_name, "other-role")},
        "IDPRejectedClaim",
    )
    cases["malformed-session-policy"] = (
        saml.idp.login("alice"),
        {"Policy": '{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe"}]}'},
        "MalformedPolicyDocument",
    )
    return cases


def test_bad_responses_are_refused_nothing_issued_and_audited(broker: Broker, saml: Saml) -> None:
    cases = _refusals(saml)
    before = len(saml_events(broker))
    outcomes = {}
    for name, (assertion, extra, _) in cases.items():
        try:
            assume(broker.url, saml, assertion, **extra)
            outcomes[name] = "issued"
        except ClientError as error:
            outcomes[name] = str(error.response["Error"]["Code"])
    assert outcomes == {name: expected for name, (_, _, expected) in cases.items()}
    events = saml_events(broker)[before:]
    assert len(events) == len(cases)
    assert all(e.get("errorCode") and e["responseElements"] is None for e in events)
    assert all(e["userIdentity"]["type"] == "SAMLUser" for e in events)
    # the precise reason is in the audit record, the outward message is fixed
    messages = {e["errorMessage"] for e in events if e["errorCode"] == "InvalidIdentityToken"}
    assert any("must contain 1 assertion" in m for m in messages)
    assert any("Deprecated signature algorithm" in m for m in messages)


def test_a_replayed_response_is_refused_by_every_replica(broker: Broker, saml: Saml) -> None:
    second = _start_replica(broker)
    try:
        assertion = saml.idp.login("alice")
        assume(broker.url, saml, assertion)
        for url in (broker.url, second[0]):
            with pytest.raises(ClientError) as info:
                assume(url, saml, assertion)
            assert code(info) == "InvalidIdentityToken"
        # and the other way round: first use on the second replica
        other = saml.idp.login("alice")
        assume(second[0], saml, other)
        with pytest.raises(ClientError) as info:
            assume(broker.url, saml, other)
        assert code(info) == "InvalidIdentityToken"
        replays = [e for e in saml_events(broker) if "already used" in e.get("errorMessage", "")]
        assert replays
    finally:
        second[1].terminate()
        second[1].wait(timeout=30)


def _start_replica(broker: Broker) -> tuple[str, subprocess.Popen[bytes]]:
    """A second `fedbroker serve` on the same directory (same data dir and database)."""
    port = free_port()
    process = subprocess.Popen(
        [FEDBROKER, "serve", *broker.store_args, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            unsigned_sts(url).assume_role_with_saml(
                RoleArn="arn:aws:iam::000000000000:role/x",
                PrincipalArn="arn:aws:iam::000000000000:saml-provider/x",
                SAMLAssertion="AAAA",
            )
        except ClientError:
            return url, process
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the second replica did not start") from None
            time.sleep(0.1)


def test_aws_cli_assume_role_with_saml(broker: Broker, saml: Saml, tmp_path: Path) -> None:
    if not Path(AWS_CLI).exists():
        pytest.fail(f"the AWS CLI is not installed at {AWS_CLI}; scripts/test.sh installs it")
    saml.idp.add_users({"carol": {"name_id": "carol-0006", "attributes": saml.attributes("carol")}})
    (tmp_path / "config").write_text("[default]\nregion = us-east-1\noutput = json\n")
    done = subprocess.run(
        [
            AWS_CLI,
            "--endpoint-url",
            broker.url,
            "sts",
            "assume-role-with-saml",
            "--role-arn",
            saml.role_arn,
            "--principal-arn",
            saml.provider_arn,
            "--saml-assertion",
            saml.idp.login("carol"),
        ],
        env={
            "PATH": os.environ.get("PATH", ""),
            "AWS_CONFIG_FILE": str(tmp_path / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["AssumedRoleUser"]["Arn"].endswith(f"{saml.role_name}/carol")
    assert result["Subject"] == "carol-0006"
