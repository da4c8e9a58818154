"""The root user: no access keys until one is created on purpose; unrestricted; audited."""

from __future__ import annotations

import configparser
import json
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.web.conftest import FEDBROKER, Broker


def test_root_key_is_created_on_purpose_and_every_root_action_is_audited(
    broker: Broker, tmp_path: Path, unique: str
) -> None:
    iam = broker.client("iam")
    # No root key exists after `fedbroker init`.
    assert iam.list_access_keys()["AccessKeyMetadata"][0]["UserName"] == "admin"
    creds = tmp_path / "root-credentials"
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password")
    refused = subprocess.run(
        [
            FEDBROKER,
            "root",
            "create-access-key",
            *broker.store_args,
            "--root-password-file",
            str(wrong),
            "--credentials-file",
            str(creds),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 1 and "wrong root password" in refused.stderr
    assert not creds.exists()
    done = subprocess.run(
        [
            FEDBROKER,
            "root",
            "create-access-key",
            *broker.store_args,
            "--root-password-file",
            str(broker.root_password_file),
            "--credentials-file",
            str(creds),
            "--profile",
            "root",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "root access key AKIA" in done.stdout
    parser = configparser.RawConfigParser()
    parser.read(creds)
    key_id = parser.get("root", "aws_access_key_id")
    secret = parser.get("root", "aws_secret_access_key")
    root = broker.client("iam", key_id, secret)
    # Root is not restricted by identity policies and may act on anything in the account.
    root.create_user(UserName=f"made-by-root-{unique}")
    me = root.get_user()["User"]
    assert me["Arn"].endswith(":root")
    assert [k["AccessKeyId"] for k in root.list_access_keys()["AccessKeyMetadata"]] == [key_id]
    root.delete_access_key(AccessKeyId=key_id)
    with pytest.raises(ClientError) as info:
        root.get_user()
    assert info.value.response["Error"]["Code"] == "InvalidClientTokenId"
    events = [json.loads(line) for line in broker.audit_log.read_text().splitlines()]
    root_events = [e for e in events if e["userIdentity"]["type"] == "Root"]
    names = [e["eventName"] for e in root_events]
    assert names.count("CreateAccessKey") >= 2  # the refused attempt and the real one
    assert "CreateUser" in names and "DeleteAccessKey" in names
    refused_event = next(e for e in root_events if e.get("errorCode") == "AccessDenied")
    assert refused_event["userIdentity"]["invokedBy"] == "fedbroker root"
    assert secret not in broker.audit_log.read_text()
