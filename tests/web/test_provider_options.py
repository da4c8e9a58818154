"""fedbroker's provider options set with unmodified IAM clients: the AWS CLI tags an OIDC
provider `fedbroker:expose_claims`, and boto3's AssumeRoleWithWebIdentity (tokens from npm
`oauth2-mock-server` on 127.0.0.1) then sees the token's other claims as condition keys;
untagged, it no longer does. Bad option tags are refused and change nothing."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.node_peers import MockOidc, mock_oidc
from tests.web.conftest import Broker
from tests.web.test_sts_web_identity import (
    AUDIENCE,
    AWS,
    SUBJECT,
    anonymous_sts,
    code,
    make_role,
    trust,
)

WORKFLOW = "octo/app/.github/workflows/deploy.yml@refs/heads/main"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockOidc]:
    with mock_oidc(tmp_path_factory.mktemp("options-peer")) as peer:
        yield peer


def aws_cli(broker: Broker, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not Path(AWS).exists():
        pytest.fail(f"the AWS CLI is not installed at {AWS}; scripts/test.sh installs it")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {broker.admin_key_id}\n"
        f"aws_secret_access_key = {broker.admin_secret}\n"
    )
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-east-1\noutput = json\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
    }
    return subprocess.run(
        [AWS, "--endpoint-url", broker.url, "iam", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_expose_claims_set_and_cleared_with_iam_tags(
    broker: Broker, iam: Any, issuer: MockOidc, unique: str, tmp_path: Path
) -> None:
    provider = iam.create_open_id_connect_provider(Url=issuer.url, ClientIDList=[AUDIENCE])[
        "OpenIDConnectProviderArn"
    ]
    try:
        condition = {f"{issuer.name}:job_workflow_ref": WORKFLOW}
        role = make_role(iam, f"opt-{unique}", trust(provider, issuer.name, StringEquals=condition))
        token = issuer.token(sub=SUBJECT, job_workflow_ref=WORKFLOW, aud=AUDIENCE)
        sts = anonymous_sts(broker)

        def exchange() -> dict[str, Any]:
            return dict(
                sts.assume_role_with_web_identity(
                    RoleArn=role, RoleSessionName="wf", WebIdentityToken=token
                )
            )

        with pytest.raises(ClientError) as refused:
            exchange()  # the option is off: the condition key is absent
        assert code(refused) == "AccessDenied"

        tagged = aws_cli(
            broker,
            tmp_path,
            "tag-open-id-connect-provider",
            "--open-id-connect-provider-arn",
            provider,
            "--tags",
            "Key=fedbroker:expose_claims,Value=true",
        )
        assert tagged.returncode == 0, tagged.stderr
        assert exchange()["Credentials"]["AccessKeyId"].startswith("ASIA")
        listed = aws_cli(
            broker,
            tmp_path,
            "list-open-id-connect-provider-tags",
            "--open-id-connect-provider-arn",
            provider,
        )
        assert json.loads(listed.stdout)["Tags"] == [
            {"Key": "fedbroker:expose_claims", "Value": "true"}
        ]

        for key, value in (("fedbroker:expose_claims", "yes"), ("fedbroker:allow_sha1", "true")):
            with pytest.raises(ClientError) as bad:
                iam.tag_open_id_connect_provider(
                    OpenIDConnectProviderArn=provider, Tags=[{"Key": key, "Value": value}]
                )
            assert code(bad) == "InvalidInput"
        exchange()  # the refused tags changed nothing

        iam.untag_open_id_connect_provider(
            OpenIDConnectProviderArn=provider, TagKeys=["fedbroker:expose_claims"]
        )
        with pytest.raises(ClientError) as refused:
            exchange()
        assert code(refused) == "AccessDenied"
    finally:
        iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=provider)
