"""AssumeRoleWithWebIdentity end to end: tokens minted by npm `oauth2-mock-server` on
127.0.0.1, exchanged by unmodified boto3, botocore's web-identity provider chain and the AWS
CLI against `fedbroker serve` on SQLite and PostgreSQL; the credentials then used with boto3.

Every refused exchange is checked to have issued nothing and to have been audited.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import botocore
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fedbroker.directory.model import Kind
from fedbroker.directory.sql import SqlStore
from tests.support.node_peers import MockOidc, free_port, mock_oidc
from tests.support.tokens import JwtKey, hmac_signed, unsigned
from tests.web.conftest import REPO, Broker

AUDIENCE = "sts.amazonaws.com"
SUBJECT = "repo:octo/app:ref:refs/heads/main"
ACTION = "sts:AssumeRoleWithWebIdentity"
AWS = os.environ.get("FEDBROKER_TEST_AWS_CLI", str(REPO / ".venv-awscli/bin/aws"))


@pytest.fixture(scope="session")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockOidc]:
    with mock_oidc(tmp_path_factory.mktemp("peers")) as peer:
        yield peer


@pytest.fixture
def provider(iam: Any, oidc: MockOidc) -> str:
    """The mock's issuer registered as an OIDC provider of the broker's account."""
    try:
        return str(
            iam.create_open_id_connect_provider(Url=oidc.url, ClientIDList=[AUDIENCE])[
                "OpenIDConnectProviderArn"
            ]
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "EntityAlreadyExists":
            raise
    account = iam.get_user()["User"]["Arn"].split(":")[4]
    return f"arn:aws:iam::{account}:oidc-provider/{oidc.name}"


def anonymous_sts(broker: Broker) -> Any:
    return boto3.client(
        "sts",
        endpoint_url=broker.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, signature_version=botocore.UNSIGNED),
    )


def session(broker: Broker, creds: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=broker.url,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=Config(retries={"max_attempts": 1}),
    )


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def trust(provider_arn: str, name: str, *extra_actions: str, **conditions: Any) -> str:
    condition = {
        "StringEquals": {f"{name}:aud": AUDIENCE},
        "StringLike": {f"{name}:sub": "repo:octo/app:*"},
    }
    for operator, pairs in conditions.items():
        condition.setdefault(operator, {}).update(pairs)
    return doc(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": [ACTION, *extra_actions],
            "Condition": condition,
        }
    )


READ_IAM = doc({"Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"})


def make_role(iam: Any, name: str, trust_policy: str, policy: str = READ_IAM) -> str:
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy)["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=policy)
    return str(arn)


def code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def exchanges(broker: Broker, session_name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in broker.audit_events()
        if e["eventName"] == "AssumeRoleWithWebIdentity"
        and e["requestParameters"].get("RoleSessionName") == session_name
    ]


# --- the exchange and the use of its credentials --------------------------------------------


def test_exchange_a_token_and_use_the_credentials(
    broker: Broker, iam: Any, oidc: MockOidc, provider: str, unique: str
) -> None:
    role = f"wi-reader-{unique}"
    role_arn = make_role(iam, role, trust(provider, oidc.name))
    token = oidc.token(sub=SUBJECT, amr=["pwd"])
    answer = anonymous_sts(broker).assume_role_with_web_identity(
        RoleArn=role_arn,
        RoleSessionName=f"ci-{unique}",
        WebIdentityToken=token,
        ProviderId="ignored.example.com",
        DurationSeconds=900,
    )
    creds = answer["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["SecretAccessKey"]) == 40
    account = role_arn.split(":")[4]
    assumed = f"arn:aws:sts::{account}:assumed-role/{role}/ci-{unique}"
    assert answer["AssumedRoleUser"]["Arn"] == assumed
    assert answer["SubjectFromWebIdentityToken"] == SUBJECT
    assert answer["Provider"] == provider and answer["Audience"] == AUDIENCE
    assert 1 <= answer["PackedPolicySize"] <= 100
    me = session(broker, creds, "sts").get_caller_identity()
    assert me["Arn"] == assumed and me["UserId"].endswith(f":ci-{unique}")
    role_iam = session(broker, creds, "iam")
    assert role_iam.get_role(RoleName=role)["Role"]["Arn"] == role_arn
    with pytest.raises(ClientError) as info:
        role_iam.create_user(UserName=f"nope-{unique}")
    assert code(info) == "AccessDenied"

    text = broker.audit_log.read_text()
    assert token not in text and creds["SecretAccessKey"] not in text
    (event,) = exchanges(broker, f"ci-{unique}")
    identity = event["userIdentity"]
    assert identity["type"] == "WebIdentityUser" and identity["userName"] == SUBJECT
    assert identity["identityProvider"] == provider
    assert identity["principalId"] == f"{provider}:{AUDIENCE}:{SUBJECT}"
    assert event["requestParameters"]["WebIdentityToken"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert event["responseElements"]["credentials"]["accessKeyId"] == creds["AccessKeyId"]
    used = next(
        e
        for e in reversed(broker.audit_events())
        if e["eventName"] == "GetRole" and e["userIdentity"].get("arn") == assumed
    )
    federation = used["userIdentity"]["sessionContext"]["webIdFederationData"]
    assert federation == {"federatedProvider": provider, "attributes": {"sub": SUBJECT}}


def test_duration_and_session_policies(
    broker: Broker, iam: Any, oidc: MockOidc, provider: str, unique: str
) -> None:
    role = f"wi-long-{unique}"
    role_arn = make_role(iam, role, trust(provider, oidc.name))
    sts = anonymous_sts(broker)
    with pytest.raises(ClientError) as info:
        sts.assume_role_with_web_identity(
            RoleArn=role_arn,
            RoleSessionName="s1",
            WebIdentityToken=oidc.token(sub=SUBJECT),
            DurationSeconds=3601,
        )
    assert code(info) == "ValidationError" and "3600" in info.value.response["Error"]["Message"]
    only_get_role = doc({"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"})
    creds = sts.assume_role_with_web_identity(
        RoleArn=role_arn,
        RoleSessionName="s1",
        WebIdentityToken=oidc.token(sub=SUBJECT),
        Policy=only_get_role,
    )["Credentials"]
    capped = session(broker, creds, "iam")
    capped.get_role(RoleName=role)
    with pytest.raises(ClientError):
        capped.list_roles()


def test_session_tags_and_source_identity_from_the_token(
    broker: Broker, iam: Any, oidc: MockOidc, provider: str, unique: str
) -> None:
    abac = doc(
        {
            "Effect": "Allow",
            "Action": "iam:GetRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalTag/team": "red"}},
        }
    )
    tags_claim = {
        "principal_tags": {"team": ["red"], "cost": ["42"]},
        "transitive_tag_keys": ["team"],
    }
    token = oidc.token(
        sub=SUBJECT,
        **{
            "https://aws.amazon.com/tags": tags_claim,
            "https://aws.amazon.com/source_identity": "alice",
        },
    )
    sts = anonymous_sts(broker)
    # A trust policy without sts:TagSession refuses a token that carries tags.
    plain = make_role(iam, f"wi-plain-{unique}", trust(provider, oidc.name), abac)
    with pytest.raises(ClientError) as info:
        sts.assume_role_with_web_identity(
            RoleArn=plain, RoleSessionName="tagged", WebIdentityToken=token
        )
    assert code(info) == "AccessDenied"
    role = f"wi-abac-{unique}"
    arn = make_role(
        iam,
        role,
        trust(
            provider,
            oidc.name,
            "sts:TagSession",
            "sts:SetSourceIdentity",
            StringEquals={"aws:RequestTag/team": "red", "sts:SourceIdentity": "alice"},
        ),
        abac,
    )
    answer = sts.assume_role_with_web_identity(
        RoleArn=arn, RoleSessionName="tagged", WebIdentityToken=token
    )
    assert answer["SourceIdentity"] == "alice"
    session(broker, answer["Credentials"], "iam").get_role(RoleName=role)
    blue = oidc.token(
        sub=SUBJECT, **{"https://aws.amazon.com/tags": {"principal_tags": {"team": ["blue"]}}}
    )
    with pytest.raises(ClientError) as info:
        sts.assume_role_with_web_identity(
            RoleArn=arn, RoleSessionName="tagged", WebIdentityToken=blue
        )
    assert code(info) == "AccessDenied"  # the trust policy wants team=red
    used = next(
        e
        for e in reversed(broker.audit_events())
        if e["eventName"] == "GetRole" and e["requestParameters"].get("RoleName") == role
    )
    assert used["userIdentity"]["sessionContext"]["sourceIdentity"] == "alice"


def test_claims_become_condition_keys_when_the_provider_opts_in(
    broker: Broker, iam: Any, oidc: MockOidc, provider: str, unique: str
) -> None:
    workflow = "octo/app/.github/workflows/deploy.yml@refs/heads/main"
    arn = make_role(
        iam,
        f"wi-workflow-{unique}",
        trust(provider, oidc.name, StringEquals={f"{oidc.name}:job_workflow_ref": workflow}),
    )
    token = oidc.token(sub=SUBJECT, job_workflow_ref=workflow, aud=AUDIENCE, oaud="forged")
    sts = anonymous_sts(broker)
    with pytest.raises(ClientError) as info:
        sts.assume_role_with_web_identity(RoleArn=arn, RoleSessionName="wf", WebIdentityToken=token)
    assert code(info) == "AccessDenied"  # not exposed: the condition key is absent
    account = arn.split(":")[4]
    url = broker.database_url or f"sqlite:///{broker.data_dir / 'fedbroker.db'}"
    store = SqlStore(url)
    try:
        entity = store.get_entity(account, Kind.OIDC_PROVIDER, oidc.name)
        store.update_entity(replace(entity, attrs={**entity.attrs, "expose_claims": True}))
        try:
            answer = sts.assume_role_with_web_identity(
                RoleArn=arn, RoleSessionName="wf", WebIdentityToken=token
            )
            assert answer["Audience"] == AUDIENCE
            other = oidc.token(sub=SUBJECT, job_workflow_ref=workflow.replace("main", "evil"))
            with pytest.raises(ClientError) as info:
                sts.assume_role_with_web_identity(
                    RoleArn=arn, RoleSessionName="wf", WebIdentityToken=other
                )
            assert code(info) == "AccessDenied"
        finally:
            store.update_entity(entity)
    finally:
        store.close()


# --- refused exchanges ------------------------------------------------------------------------


def test_refused_tokens_issue_nothing_and_are_audited(
    broker: Broker, iam: Any, oidc: MockOidc, provider: str, unique: str
) -> None:
    role_arn = make_role(iam, f"wi-guarded-{unique}", trust(provider, oidc.name))
    account = role_arn.split(":")[4]
    with urllib.request.urlopen(oidc.url + "/jwks", timeout=5) as response:
        published = json.load(response)["keys"][0]
    stranger = JwtKey.rsa(published["kid"])
    now_claims = {"iss": oidc.url, "aud": AUDIENCE, "sub": SUBJECT}
    cases = {
        "wrong-aud": (oidc.token(aud="someone-else", sub=SUBJECT), "InvalidIdentityToken"),
        "sub-mismatch": (oidc.token(sub="repo:evil/app:ref:main"), "AccessDenied"),
        "expired": (
            oidc.token(sub=SUBJECT, exp=1_700_000_000, iat=1_699_999_000, nbf=None),
            "ExpiredTokenException",
        ),
        "unknown-iss": (oidc.token(sub=SUBJECT, iss="http://127.0.0.1:1"), "InvalidIdentityToken"),
        "no-sub": (oidc.token(), "InvalidIdentityToken"),
        "future-nbf": (oidc.token(sub=SUBJECT, nbf=4_000_000_000), "InvalidIdentityToken"),
        "alg-none": (
            unsigned({**now_claims, "exp": 4_000_000_000}, signature="AAAA"),
            "InvalidIdentityToken",
        ),
        "hs256-public-key": (
            hmac_signed(
                {**now_claims, "exp": 4_000_000_000},
                published["n"].encode(),
                kid=published["kid"],
            ),
            "InvalidIdentityToken",
        ),
        "forged-signature": (
            stranger.sign({**now_claims, "exp": 4_000_000_000}),
            "InvalidIdentityToken",
        ),
        "oversize": (
            oidc.token(sub=SUBJECT, padding="x" * 13_000),
            "InvalidIdentityToken",
        ),
        "garbage": ("not.a.token", "InvalidIdentityToken"),
    }
    assert 16_384 < len(cases["oversize"][0]) <= 20_000  # over the verifier's cap, not AWS's
    sts = anonymous_sts(broker)
    for label, (token, expected) in cases.items():
        session_name = f"bad-{label}"[:64]
        before = len(exchanges(broker, session_name))
        with pytest.raises(ClientError) as info:
            sts.assume_role_with_web_identity(
                RoleArn=role_arn, RoleSessionName=session_name, WebIdentityToken=token
            )
        assert code(info) == expected, label
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403)
        assert "Credentials" not in info.value.response
        events = exchanges(broker, session_name)
        assert len(events) == before + 1, label
        assert events[-1]["errorCode"] == expected and events[-1]["responseElements"] is None
        assert token not in broker.audit_log.read_text()
    # A role that does not exist reads as access denied to a genuine token.
    with pytest.raises(ClientError) as info:
        sts.assume_role_with_web_identity(
            RoleArn=f"arn:aws:iam::{account}:role/missing-{unique}",
            RoleSessionName="missing",
            WebIdentityToken=oidc.token(sub=SUBJECT),
        )
    assert code(info) == "AccessDenied"


def test_unreachable_provider_is_a_communication_error(
    broker: Broker, iam: Any, unique: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    provider = iam.create_open_id_connect_provider(Url=url, ClientIDList=[AUDIENCE])[
        "OpenIDConnectProviderArn"
    ]
    name = url.split("://", 1)[1]
    try:
        role_arn = make_role(iam, f"wi-down-{unique}", trust(provider, name))
        token = JwtKey.rsa("k").sign(
            {"iss": url, "aud": AUDIENCE, "sub": SUBJECT, "exp": 4_000_000_000}
        )
        # botocore retries this code by itself: two attempts, both audited, nothing issued.
        sts = boto3.client(
            "sts",
            endpoint_url=broker.url,
            region_name="us-east-1",
            config=Config(
                retries={"total_max_attempts": 2, "mode": "standard"},
                signature_version=botocore.UNSIGNED,
            ),
        )
        with pytest.raises(ClientError) as info:
            sts.assume_role_with_web_identity(
                RoleArn=role_arn, RoleSessionName=f"down-{unique}", WebIdentityToken=token
            )
        assert code(info) == "IDPCommunicationError"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 1
        events = exchanges(broker, f"down-{unique}")
        assert [e["errorCode"] for e in events] == ["IDPCommunicationError"] * 2
    finally:
        iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=provider)


# --- other clients -----------------------------------------------------------------------------


def test_botocore_web_identity_provider_chain(
    broker: Broker,
    iam: Any,
    oidc: MockOidc,
    provider: str,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    role = f"wi-chain-{unique}"
    role_arn = make_role(iam, role, trust(provider, oidc.name))
    token_file = tmp_path / "token"
    token_file.write_text(oidc.token(sub=SUBJECT))
    config = tmp_path / "config"
    config.write_text(
        "[profile ci]\n"
        "region = us-east-1\n"
        f"role_arn = {role_arn}\n"
        f"web_identity_token_file = {token_file}\n"
        "role_session_name = from-botocore\n"
    )
    (tmp_path / "credentials").write_text("")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", broker.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", broker.url)
    chain = boto3.Session(profile_name="ci")
    assert chain.get_credentials().method == "assume-role-with-web-identity"
    me = chain.client("sts", config=Config(retries={"max_attempts": 1})).get_caller_identity()
    assert me["Arn"].endswith(f":assumed-role/{role}/from-botocore")
    role_iam = chain.client("iam", config=Config(retries={"max_attempts": 1}))
    assert role_iam.get_role(RoleName=role)["Role"]["Arn"] == role_arn


def test_aws_cli_assume_role_with_web_identity(
    broker: Broker, iam: Any, oidc: MockOidc, provider: str, unique: str, tmp_path: Path
) -> None:
    if not Path(AWS).exists():
        pytest.fail(f"the AWS CLI is not installed at {AWS}; scripts/test.sh installs it")
    role = f"wi-cli-{unique}"
    role_arn = make_role(iam, role, trust(provider, oidc.name))
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-east-1\noutput = json\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
    }
    done = subprocess.run(
        [
            AWS,
            "--endpoint-url",
            broker.url,
            "sts",
            "assume-role-with-web-identity",
            "--role-arn",
            role_arn,
            "--role-session-name",
            "from-cli",
            "--web-identity-token",
            oidc.token(sub=SUBJECT),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["AssumedRoleUser"]["Arn"].endswith(f":assumed-role/{role}/from-cli")
    assert answer["SubjectFromWebIdentityToken"] == SUBJECT
    assert answer["Credentials"]["AccessKeyId"].startswith("ASIA")
