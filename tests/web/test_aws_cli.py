"""The unmodified AWS CLI (v1, in its own venv, run as a subprocess) against the broker."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.saml_metadata import idp_metadata
from tests.web.conftest import REPO, Broker

AWS = os.environ.get("FEDBROKER_TEST_AWS_CLI", str(REPO / ".venv-awscli/bin/aws"))


@pytest.fixture
def aws(broker: Broker, tmp_path: Path) -> Any:
    if not Path(AWS).exists():
        pytest.fail(f"the AWS CLI is not installed at {AWS}; scripts/test.sh installs it")
    config = tmp_path / "config"
    config.write_text("[profile admin]\nregion = us-east-1\noutput = json\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(broker.credentials_file),
        "AWS_PROFILE": "admin",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [AWS, "--endpoint-url", broker.url, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    return run


def test_aws_cli_manages_users_policies_and_roles(aws: Any, tmp_path: Path, unique: str) -> None:
    name = f"cli-{unique}"
    created = json.loads(aws("iam", "create-user", "--user-name", name).stdout)
    assert created["User"]["UserName"] == name
    listed = json.loads(aws("iam", "list-users").stdout)
    assert name in [u["UserName"] for u in listed["Users"]]
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
                ],
            }
        )
    )
    aws(
        "iam",
        "put-user-policy",
        "--user-name",
        name,
        "--policy-name",
        "read",
        "--policy-document",
        f"file://{policy_file}",
    )
    got = json.loads(
        aws("iam", "get-user-policy", "--user-name", name, "--policy-name", "read").stdout
    )
    assert got["PolicyDocument"]["Statement"][0]["Action"] == "s3:GetObject"
    trust = tmp_path / "trust.json"
    trust.write_text(
        json.dumps(
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
        )
    )
    role = json.loads(
        aws(
            "iam",
            "create-role",
            "--role-name",
            name,
            "--assume-role-policy-document",
            f"file://{trust}",
        ).stdout
    )
    assert role["Role"]["Arn"].endswith(f":role/{name}")
    missing = aws("iam", "get-user", "--user-name", f"missing-{unique}", ok=False)
    assert missing.returncode != 0
    assert "NoSuchEntity" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}')
    rejected = aws(
        "iam",
        "put-user-policy",
        "--user-name",
        name,
        "--policy-name",
        "bad",
        "--policy-document",
        f"file://{bad}",
        ok=False,
    )
    assert "MalformedPolicyDocument" in rejected.stderr
    assert "missing required element" in rejected.stderr


def test_aws_cli_manages_identity_providers(aws: Any, tmp_path: Path, unique: str) -> None:
    created = json.loads(
        aws(
            "iam",
            "create-open-id-connect-provider",
            "--url",
            f"https://cli-{unique}.example.com",
            "--client-id-list",
            "sts.amazonaws.com",
            "--thumbprint-list",
            "9e99a48a9960b14926bb7f3b02e22da2b0ab7280",
            "--tags",
            "Key=team,Value=ci",
        ).stdout
    )
    arn = created["OpenIDConnectProviderArn"]
    assert arn.endswith(f":oidc-provider/cli-{unique}.example.com")
    got = json.loads(
        aws("iam", "get-open-id-connect-provider", "--open-id-connect-provider-arn", arn).stdout
    )
    assert got["Url"] == f"cli-{unique}.example.com"
    assert got["ClientIDList"] == ["sts.amazonaws.com"]
    refused = aws(
        "iam",
        "create-open-id-connect-provider",
        "--url",
        f"http://cli-{unique}.example.com",
        ok=False,
    )
    assert refused.returncode != 0 and "InvalidInput" in refused.stderr
    metadata = tmp_path / "idp.xml"
    metadata.write_text(idp_metadata())
    saml = json.loads(
        aws(
            "iam",
            "create-saml-provider",
            "--name",
            f"cli-{unique}",
            "--saml-metadata-document",
            f"file://{metadata}",
        ).stdout
    )
    assert saml["SAMLProviderArn"].endswith(f":saml-provider/cli-{unique}")
    aws("iam", "delete-saml-provider", "--saml-provider-arn", saml["SAMLProviderArn"])
    aws("iam", "delete-open-id-connect-provider", "--open-id-connect-provider-arn", arn)
