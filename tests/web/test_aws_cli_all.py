"""Every IAM operation the broker implements, and the signed STS ones, driven through the
unmodified AWS CLI (v1, in its own venv, run as a subprocess with ``--endpoint-url``).

One test per family, each a realistic sequence (create, read and list, update, tag, delete)
with unique names and one deliberate failure whose error code the CLI must print. The AWS CLI
costs about a second a call, so this module runs against ONE broker of its own, on SQLite (the
boto3 tests in ``test_iam_*.py`` and ``test_sts.py`` cover PostgreSQL too), and keeps the
calls few.

Each test's CLI calls carry their own ``exec-env`` in the User-Agent (``AWS_EXECUTION_ENV``):
the test reads back from the broker's audit log exactly which operations the CLI drove and
which failed, and compares them with its family's list. The last test checks that the
families together cover every registered IAM operation, so an operation added without a CLI
test fails this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.support.saml_metadata import idp_metadata
from tests.web.conftest import REPO, Broker, start_broker

AWS = os.environ.get("FEDBROKER_TEST_AWS_CLI", str(REPO / ".venv-awscli/bin/aws"))
STEP = 30  # TOTP step, seconds

Creds = dict[str, Any]  # AccessKeyId, SecretAccessKey and maybe SessionToken, as STS/IAM print


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], resource: str = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def trusting(principal: dict[str, str], **extra: Any) -> str:
    return doc({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra})


def arguments(args: tuple[str, ...], options: dict[str, Any]) -> list[str]:
    """``user_name="a", tags=["K=v"], set_as_default=True`` -> ``--user-name a --tags K=v
    --set-as-default`` (False -> ``--no-...``), after the positional ``args``."""
    out = list(args)
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False:
            out.append("--no-" + flag[2:])
        elif isinstance(value, list | tuple):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out


def shown(done: subprocess.CompletedProcess[str]) -> str:
    """The command line of a finished call, without the executable and endpoint."""
    return "aws " + " ".join(done.args[5:])


class Cli:
    """``aws --endpoint-url BROKER SERVICE COMMAND ...`` as the admin profile, or with the
    credentials given; every call of one test marked with one User-Agent tag."""

    def __init__(self, broker: Broker, config: Path) -> None:
        self.broker = broker
        self.tag = f"fedbroker-cli-test-{uuid.uuid4().hex[:12]}"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(broker.credentials_file),
            "AWS_PROFILE": "admin",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EXECUTION_ENV": self.tag,
        }

    def attempt(
        self, service: str, *args: str, creds: Creds | None = None, **options: Any
    ) -> subprocess.CompletedProcess[str]:
        """Runs one command, whatever its outcome."""
        env = dict(self.env)
        if creds is not None:  # environment credentials instead of the admin profile
            del env["AWS_PROFILE"]
            env["AWS_ACCESS_KEY_ID"] = creds["AccessKeyId"]
            env["AWS_SECRET_ACCESS_KEY"] = creds["SecretAccessKey"]
            if creds.get("SessionToken"):
                env["AWS_SESSION_TOKEN"] = creds["SessionToken"]
        command = [AWS, "--endpoint-url", self.broker.url, "--output", "json", service]
        return subprocess.run(
            [*command, *arguments(args, options)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def call(self, service: str, *args: str, creds: Creds | None = None, **options: Any) -> Any:
        """A call that must succeed; its JSON output (None when it prints nothing)."""
        done = self.attempt(service, *args, creds=creds, **options)
        assert done.returncode == 0, f"{shown(done)}:\n{done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else None

    def iam(self, *args: str, creds: Creds | None = None, **options: Any) -> Any:
        return self.call("iam", *args, creds=creds, **options)

    def sts(self, *args: str, creds: Creds | None = None, **options: Any) -> Any:
        return self.call("sts", *args, creds=creds, **options)

    def fails(
        self, code: str, service: str, *args: str, creds: Creds | None = None, **options: Any
    ) -> str:
        """A call that must fail with the service error ``code``; its stderr."""
        done = self.attempt(service, *args, creds=creds, **options)
        assert done.returncode != 0, f"{shown(done)} succeeded:\n{done.stdout}"
        assert f"An error occurred ({code}) when calling the " in done.stderr, done.stderr
        return done.stderr

    def assert_drove(self, operations: frozenset[str], failures: dict[str, str]) -> None:
        """The broker saw this test's CLI calls succeed at exactly ``operations``, and fail
        exactly at the deliberate ``failures`` (operation -> error code)."""
        events = [e for e in self.broker.audit_events() if self.tag in e.get("userAgent", "")]
        assert events, "no audit event carries this test's User-Agent"
        assert all(e["userAgent"].startswith("aws-cli/1.") for e in events)
        succeeded = {e["eventName"] for e in events if "errorCode" not in e}
        failed = {(e["eventName"], e["errorCode"]) for e in events if "errorCode" in e}
        assert sorted(succeeded) == sorted(operations)
        assert failed == set(failures.items())


@pytest.fixture(scope="module")
def cli_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker on SQLite for the whole module (PostgreSQL is covered by the boto3 tests)."""
    if not Path(AWS).exists():
        pytest.fail(f"the AWS CLI is not installed at {AWS}; scripts/test.sh installs it")
    yield from start_broker(tmp_path_factory.mktemp("cli-broker"), "sqlite", None)


@pytest.fixture
def cli(cli_broker: Broker, tmp_path: Path) -> Cli:
    config = tmp_path / "config"
    config.write_text(
        "[default]\nregion = us-east-1\noutput = json\n"
        "[profile admin]\nregion = us-east-1\noutput = json\n"
    )
    return Cli(cli_broker, config)


# --- users, tags, login profiles, the account password policy ---------------------------------

USERS = frozenset(
    {
        "CreateUser",
        "GetUser",
        "UpdateUser",
        "ListUsers",
        "TagUser",
        "UntagUser",
        "ListUserTags",
        "UpdateAccountPasswordPolicy",
        "GetAccountPasswordPolicy",
        "CreateLoginProfile",
        "UpdateLoginProfile",
        "GetLoginProfile",
        "CreateAccessKey",
        "ChangePassword",
        "DeleteLoginProfile",
        "DeleteAccessKey",
        "DeleteAccountPasswordPolicy",
        "DeleteUser",
    }
)


def test_users_tags_login_profiles_and_password_policy(cli: Cli, unique: str) -> None:
    name, renamed, path = f"cli-user-{unique}", f"cli-renamed-{unique}", f"/cli-{unique}/"
    created = cli.iam("create-user", user_name=name, path=path, tags=["Key=team,Value=red"])
    user = created["User"]
    assert user["UserName"] == name and user["Path"] == path
    assert user["Arn"].endswith(f":user{path}{name}") and user["UserId"].startswith("AIDA")
    got = cli.iam("get-user", user_name=name)["User"]
    assert got["UserId"] == user["UserId"] and got["Tags"] == [{"Key": "team", "Value": "red"}]
    cli.iam("update-user", user_name=name, new_user_name=renamed, new_path=path + "x/")
    listed = cli.iam("list-users", path_prefix=path)["Users"]
    assert [(u["UserName"], u["Path"], u["UserId"]) for u in listed] == [
        (renamed, path + "x/", user["UserId"])
    ]
    cli.iam("tag-user", user_name=renamed, tags=["Key=env,Value=prod", "Key=o,Value=ops"])
    cli.iam("untag-user", user_name=renamed, tag_keys=["team", "o"])
    tags = cli.iam("list-user-tags", user_name=renamed)["Tags"]
    assert tags == [{"Key": "env", "Value": "prod"}]

    cli.iam(
        "update-account-password-policy",
        minimum_password_length=12,
        require_numbers=True,
        require_symbols=True,
        allow_users_to_change_password=True,
        password_reuse_prevention=2,
        max_password_age=90,
    )
    assert cli.iam("get-account-password-policy")["PasswordPolicy"] == {
        "MinimumPasswordLength": 12,
        "RequireSymbols": True,
        "RequireNumbers": True,
        "RequireUppercaseCharacters": False,
        "RequireLowercaseCharacters": False,
        "AllowUsersToChangePassword": True,
        "ExpirePasswords": True,
        "MaxPasswordAge": 90,
        "PasswordReusePrevention": 2,
        "HardExpiry": False,
    }
    weak = f"weak{unique[:4]}"  # 8 characters
    refused = cli.fails(
        "PasswordPolicyViolation", "iam", "create-login-profile", user_name=renamed, password=weak
    )
    assert "at least 12 characters" in refused and weak not in refused
    first, second, third = (f"Pass-{unique}-{n}!" for n in "123")
    profile = cli.iam(
        "create-login-profile", user_name=renamed, password=first, password_reset_required=False
    )["LoginProfile"]
    assert profile["UserName"] == renamed and profile["PasswordResetRequired"] is False
    cli.iam(
        "update-login-profile", user_name=renamed, password=second, password_reset_required=True
    )
    got_profile = cli.iam("get-login-profile", user_name=renamed)["LoginProfile"]
    assert got_profile["PasswordResetRequired"] is True
    assert got_profile["CreateDate"] == profile["CreateDate"]
    # The user changes its own password (the policy allows it), from the one the update set.
    key = cli.iam("create-access-key", user_name=renamed)["AccessKey"]
    cli.iam("change-password", old_password=second, new_password=third, creds=key)
    cli.iam("delete-login-profile", user_name=renamed)
    cli.iam("delete-access-key", user_name=renamed, access_key_id=key["AccessKeyId"])
    cli.iam("delete-account-password-policy")
    cli.iam("delete-user", user_name=renamed)
    cli.assert_drove(USERS, {"CreateLoginProfile": "PasswordPolicyViolation"})
    text = cli.broker.audit_log.read_text()
    assert all(secret not in text for secret in (weak, first, second, third))


# --- groups and membership --------------------------------------------------------------------

GROUPS = frozenset(
    {
        "CreateUser",
        "CreateGroup",
        "AddUserToGroup",
        "GetGroup",
        "ListGroupsForUser",
        "UpdateGroup",
        "ListGroups",
        "RemoveUserFromGroup",
        "DeleteGroup",
        "DeleteUser",
    }
)


def test_groups_and_membership(cli: Cli, unique: str) -> None:
    user, group, renamed = f"cli-member-{unique}", f"cli-group-{unique}", f"cli-team-{unique}"
    path = f"/cli-{unique}/"
    cli.iam("create-user", user_name=user)
    created = cli.iam("create-group", group_name=group, path=path)["Group"]
    assert created["Arn"].endswith(f":group{path}{group}")
    assert created["GroupId"].startswith("AGPA")
    cli.iam("add-user-to-group", group_name=group, user_name=user)
    got = cli.iam("get-group", group_name=group)
    assert got["Group"]["GroupId"] == created["GroupId"]
    assert [u["UserName"] for u in got["Users"]] == [user]
    joined = cli.iam("list-groups-for-user", user_name=user)["Groups"]
    assert [g["GroupName"] for g in joined] == [group]
    cli.iam("update-group", group_name=group, new_group_name=renamed, new_path=path + "x/")
    listed = cli.iam("list-groups", path_prefix=path)["Groups"]
    assert [(g["GroupName"], g["Path"], g["GroupId"]) for g in listed] == [
        (renamed, path + "x/", created["GroupId"])
    ]
    cli.fails("DeleteConflict", "iam", "delete-group", group_name=renamed)  # it has a member
    cli.iam("remove-user-from-group", group_name=renamed, user_name=user)
    cli.iam("delete-group", group_name=renamed)
    cli.iam("delete-user", user_name=user)
    cli.assert_drove(GROUPS, {"DeleteGroup": "DeleteConflict"})


# --- access keys ------------------------------------------------------------------------------

ACCESS_KEYS = frozenset(
    {
        "CreateUser",
        "CreateAccessKey",
        "GetCallerIdentity",
        "GetAccessKeyLastUsed",
        "UpdateAccessKey",
        "ListAccessKeys",
        "DeleteAccessKey",
        "DeleteUser",
    }
)


def test_access_keys(cli: Cli, unique: str) -> None:
    user = f"cli-keys-{unique}"
    cli.iam("create-user", user_name=user)
    first = cli.iam("create-access-key", user_name=user)["AccessKey"]
    assert first["UserName"] == user and first["Status"] == "Active"
    assert first["AccessKeyId"].startswith("AKIA") and len(first["SecretAccessKey"]) == 40
    second = cli.iam("create-access-key", user_name=user)["AccessKey"]
    cli.fails("LimitExceeded", "iam", "create-access-key", user_name=user)  # two at most
    assert cli.sts("get-caller-identity", creds=first)["Arn"].endswith(f":user/{user}")
    used = cli.iam("get-access-key-last-used", access_key_id=first["AccessKeyId"])
    assert used["UserName"] == user
    assert used["AccessKeyLastUsed"]["ServiceName"] == "sts"
    assert used["AccessKeyLastUsed"]["Region"] == "us-east-1"
    assert "LastUsedDate" in used["AccessKeyLastUsed"]
    cli.iam(
        "update-access-key", user_name=user, access_key_id=second["AccessKeyId"], status="Inactive"
    )
    listed = cli.iam("list-access-keys", user_name=user)["AccessKeyMetadata"]
    assert {k["AccessKeyId"]: k["Status"] for k in listed} == {
        first["AccessKeyId"]: "Active",
        second["AccessKeyId"]: "Inactive",
    }
    assert all("SecretAccessKey" not in k for k in listed)
    for key in (first, second):
        cli.iam("delete-access-key", user_name=user, access_key_id=key["AccessKeyId"])
    cli.iam("delete-user", user_name=user)
    cli.assert_drove(ACCESS_KEYS, {"CreateAccessKey": "LimitExceeded"})


# --- inline and managed policies: versions, attachments, boundaries ---------------------------

POLICIES = frozenset(
    {
        "CreateUser",
        "CreateGroup",
        "CreatePolicy",
        "CreatePolicyVersion",
        "GetPolicyVersion",
        "ListPolicyVersions",
        "SetDefaultPolicyVersion",
        "ListPolicies",
        "AttachUserPolicy",
        "AttachGroupPolicy",
        "ListAttachedUserPolicies",
        "ListAttachedGroupPolicies",
        "PutUserPermissionsBoundary",
        "GetPolicy",
        "PutUserPolicy",
        "GetUserPolicy",
        "ListUserPolicies",
        "PutGroupPolicy",
        "GetGroupPolicy",
        "ListGroupPolicies",
        "DeleteUserPermissionsBoundary",
        "DetachUserPolicy",
        "DetachGroupPolicy",
        "DeleteUserPolicy",
        "DeleteGroupPolicy",
        "DeletePolicyVersion",
        "DeletePolicy",
        "DeleteGroup",
        "DeleteUser",
    }
)


def test_inline_and_managed_policies(cli: Cli, unique: str) -> None:
    user, group, name = f"cli-pu-{unique}", f"cli-pg-{unique}", f"cli-policy-{unique}"
    path = f"/cli-{unique}/"
    cli.iam("create-user", user_name=user)
    cli.iam("create-group", group_name=group)
    read, write = allow("s3:GetObject"), allow(["s3:GetObject", "s3:PutObject"])
    policy = cli.iam(
        "create-policy",
        policy_name=name,
        path=path,
        description="read objects",
        policy_document=doc(read),
    )["Policy"]
    arn = policy["Arn"]
    assert arn.endswith(f":policy{path}{name}") and policy["DefaultVersionId"] == "v1"
    no_resource = doc({"Effect": "Allow", "Action": "s3:GetObject"})
    refused = cli.fails(
        "MalformedPolicyDocument",
        "iam",
        "create-policy-version",
        policy_arn=arn,
        policy_document=no_resource,
    )
    assert "Resource" in refused
    version = cli.iam(
        "create-policy-version", policy_arn=arn, policy_document=doc(write), set_as_default=True
    )["PolicyVersion"]
    assert version["VersionId"] == "v2" and version["IsDefaultVersion"] is True
    # The CLI decodes the URL-encoded document IAM returns.
    v1 = cli.iam("get-policy-version", policy_arn=arn, version_id="v1")["PolicyVersion"]
    assert v1["Document"]["Statement"] == [read] and v1["IsDefaultVersion"] is False
    versions = cli.iam("list-policy-versions", policy_arn=arn)["Versions"]
    assert [(v["VersionId"], v["IsDefaultVersion"]) for v in versions] == [
        ("v2", True),
        ("v1", False),
    ]
    cli.iam("set-default-policy-version", policy_arn=arn, version_id="v1")
    listed = cli.iam("list-policies", scope="Local", path_prefix=path)["Policies"]
    assert [(p["PolicyName"], p["DefaultVersionId"]) for p in listed] == [(name, "v1")]

    cli.iam("attach-user-policy", user_name=user, policy_arn=arn)
    cli.iam("attach-group-policy", group_name=group, policy_arn=arn)
    attached = [{"PolicyName": name, "PolicyArn": arn}]
    on_user = cli.iam("list-attached-user-policies", user_name=user)["AttachedPolicies"]
    on_group = cli.iam("list-attached-group-policies", group_name=group)["AttachedPolicies"]
    assert on_user == attached and on_group == attached
    cli.iam("put-user-permissions-boundary", user_name=user, permissions_boundary=arn)
    got = cli.iam("get-policy", policy_arn=arn)["Policy"]
    assert got["DefaultVersionId"] == "v1" and got["Description"] == "read objects"
    assert got["AttachmentCount"] == 2 and got["PermissionsBoundaryUsageCount"] == 1

    queue = allow("sqs:SendMessage", "arn:aws:sqs:*:*:jobs")
    cli.iam("put-user-policy", user_name=user, policy_name="q", policy_document=doc(queue))
    inline = cli.iam("get-user-policy", user_name=user, policy_name="q")
    assert inline["UserName"] == user and inline["PolicyDocument"]["Statement"] == [queue]
    assert cli.iam("list-user-policies", user_name=user)["PolicyNames"] == ["q"]
    cli.iam("put-group-policy", group_name=group, policy_name="g", policy_document=doc(read))
    inline = cli.iam("get-group-policy", group_name=group, policy_name="g")
    assert inline["GroupName"] == group and inline["PolicyDocument"]["Statement"] == [read]
    assert cli.iam("list-group-policies", group_name=group)["PolicyNames"] == ["g"]

    cli.iam("delete-user-permissions-boundary", user_name=user)
    cli.iam("detach-user-policy", user_name=user, policy_arn=arn)
    cli.iam("detach-group-policy", group_name=group, policy_arn=arn)
    cli.iam("delete-user-policy", user_name=user, policy_name="q")
    cli.iam("delete-group-policy", group_name=group, policy_name="g")
    cli.iam("delete-policy-version", policy_arn=arn, version_id="v2")
    cli.iam("delete-policy", policy_arn=arn)
    cli.iam("delete-group", group_name=group)
    cli.iam("delete-user", user_name=user)
    cli.assert_drove(POLICIES, {"CreatePolicyVersion": "MalformedPolicyDocument"})


# --- roles and trust --------------------------------------------------------------------------

ROLES = frozenset(
    {
        "CreateRole",
        "UpdateRole",
        "UpdateAssumeRolePolicy",
        "CreatePolicy",
        "PutRolePermissionsBoundary",
        "GetRole",
        "ListRoles",
        "TagRole",
        "UntagRole",
        "ListRoleTags",
        "AttachRolePolicy",
        "ListAttachedRolePolicies",
        "PutRolePolicy",
        "GetRolePolicy",
        "ListRolePolicies",
        "DeleteRolePermissionsBoundary",
        "DetachRolePolicy",
        "DeleteRolePolicy",
        "DeleteRole",
        "DeletePolicy",
    }
)


# A broker defect the CLI (and boto3 alike) hits; marked, not hidden: remove once fixed.
UPDATE_ROLE_UNPARSED = (
    "UpdateRole answers <UpdateRoleResponse> without the empty <UpdateRoleResult/> element "
    "(src/fedbroker/web/xml.py response() drops the Result element of an empty result): "
    "botocore's query parser needs it (UpdateRole's output shape has resultWrapper "
    "UpdateRoleResult) and the AWS CLI exits 255 with KeyError 'UpdateRoleResult', although "
    "the broker applied the update"
)


def test_roles_and_trust(cli: Cli, unique: str) -> None:
    role, path = f"cli-role-{unique}", f"/cli-{unique}/"
    no_principal = doc({"Effect": "Allow", "Action": "sts:AssumeRole"})
    refused = cli.fails(
        "MalformedPolicyDocument",
        "iam",
        "create-role",
        role_name=role,
        assume_role_policy_document=no_principal,
    )
    assert "Principal" in refused
    created = cli.iam(
        "create-role",
        role_name=role,
        path=path,
        assume_role_policy_document=trusting({"Service": "ec2.amazonaws.com"}),
        description="first",
        max_session_duration=7200,
        tags=["Key=team,Value=red"],
    )["Role"]
    assert created["Arn"].endswith(f":role{path}{role}") and created["RoleId"].startswith("AROA")
    trust = created["AssumeRolePolicyDocument"]  # decoded by the CLI
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    update = cli.attempt(
        "iam", "update-role", role_name=role, description="second", max_session_duration=3600
    )
    update_role_unparsed = update.returncode == 255 and "'UpdateRoleResult'" in update.stderr
    assert update.returncode == 0 or update_role_unparsed, update.stderr
    lambda_trust = trusting({"Service": "lambda.amazonaws.com"})
    cli.iam("update-assume-role-policy", role_name=role, policy_document=lambda_trust)
    boundary = cli.iam(
        "create-policy", policy_name=f"cli-rb-{unique}", policy_document=doc(allow("s3:*"))
    )["Policy"]["Arn"]
    cli.iam("put-role-permissions-boundary", role_name=role, permissions_boundary=boundary)
    got = cli.iam("get-role", role_name=role)["Role"]
    assert got["Description"] == "second" and got["MaxSessionDuration"] == 3600
    assert got["AssumeRolePolicyDocument"] == json.loads(lambda_trust)
    assert got["PermissionsBoundary"] == {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
        "PermissionsBoundaryArn": boundary,
    }
    assert got["Tags"] == [{"Key": "team", "Value": "red"}]
    listed = cli.iam("list-roles", path_prefix=path)["Roles"]
    assert [(r["RoleName"], r["RoleId"]) for r in listed] == [(role, created["RoleId"])]
    cli.iam("tag-role", role_name=role, tags=["Key=env,Value=prod"])
    cli.iam("untag-role", role_name=role, tag_keys=["team"])
    assert cli.iam("list-role-tags", role_name=role)["Tags"] == [{"Key": "env", "Value": "prod"}]

    cli.iam("attach-role-policy", role_name=role, policy_arn=boundary)
    attached = cli.iam("list-attached-role-policies", role_name=role)["AttachedPolicies"]
    assert attached == [{"PolicyName": f"cli-rb-{unique}", "PolicyArn": boundary}]
    logs = allow("logs:PutLogEvents")
    cli.iam("put-role-policy", role_name=role, policy_name="logs", policy_document=doc(logs))
    inline = cli.iam("get-role-policy", role_name=role, policy_name="logs")
    assert inline["RoleName"] == role and inline["PolicyDocument"]["Statement"] == [logs]
    assert cli.iam("list-role-policies", role_name=role)["PolicyNames"] == ["logs"]

    cli.iam("delete-role-permissions-boundary", role_name=role)
    cli.iam("detach-role-policy", role_name=role, policy_arn=boundary)
    cli.iam("delete-role-policy", role_name=role, policy_name="logs")
    cli.iam("delete-role", role_name=role)
    cli.iam("delete-policy", policy_arn=boundary)
    cli.assert_drove(ROLES, {"CreateRole": "MalformedPolicyDocument"})
    if update_role_unparsed:  # the update itself was applied: get-role showed it above
        pytest.xfail(UPDATE_ROLE_UNPARSED)


# --- OIDC and SAML identity providers ---------------------------------------------------------

PROVIDERS = frozenset(
    {
        "CreateOpenIDConnectProvider",
        "AddClientIDToOpenIDConnectProvider",
        "RemoveClientIDFromOpenIDConnectProvider",
        "UpdateOpenIDConnectProviderThumbprint",
        "GetOpenIDConnectProvider",
        "ListOpenIDConnectProviders",
        "TagOpenIDConnectProvider",
        "UntagOpenIDConnectProvider",
        "ListOpenIDConnectProviderTags",
        "DeleteOpenIDConnectProvider",
        "CreateSAMLProvider",
        "UpdateSAMLProvider",
        "GetSAMLProvider",
        "ListSAMLProviders",
        "TagSAMLProvider",
        "UntagSAMLProvider",
        "ListSAMLProviderTags",
        "DeleteSAMLProvider",
    }
)


def test_oidc_and_saml_providers(cli: Cli, tmp_path: Path, unique: str) -> None:
    host = f"cli-{unique}.example.com"
    thumb_a, thumb_b = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280", "a" * 40
    cli.fails("InvalidInput", "iam", "create-open-id-connect-provider", url=f"http://{host}")
    oidc = cli.iam(
        "create-open-id-connect-provider",
        url=f"https://{host}",
        client_id_list=["sts.amazonaws.com"],
        thumbprint_list=[thumb_a],
        tags=["Key=team,Value=ci"],
    )["OpenIDConnectProviderArn"]
    assert oidc.endswith(f":oidc-provider/{host}")
    by_arn = {"open_id_connect_provider_arn": oidc}
    cli.iam("add-client-id-to-open-id-connect-provider", **by_arn, client_id="web-app")
    cli.iam(
        "remove-client-id-from-open-id-connect-provider", **by_arn, client_id="sts.amazonaws.com"
    )
    cli.iam("update-open-id-connect-provider-thumbprint", **by_arn, thumbprint_list=[thumb_b])
    got = cli.iam("get-open-id-connect-provider", **by_arn)
    assert got["Url"] == host and got["ClientIDList"] == ["web-app"]
    assert got["ThumbprintList"] == [thumb_b] and got["Tags"] == [{"Key": "team", "Value": "ci"}]
    listed = cli.iam("list-open-id-connect-providers")["OpenIDConnectProviderList"]
    assert {"Arn": oidc} in listed
    cli.iam("tag-open-id-connect-provider", **by_arn, tags=["Key=env,Value=prod"])
    cli.iam("untag-open-id-connect-provider", **by_arn, tag_keys=["team"])
    tags = cli.iam("list-open-id-connect-provider-tags", **by_arn)["Tags"]
    assert tags == [{"Key": "env", "Value": "prod"}]
    cli.iam("delete-open-id-connect-provider", **by_arn)

    first, second = tmp_path / "idp.xml", tmp_path / "idp-2.xml"
    first.write_text(idp_metadata())
    second.write_text(
        idp_metadata(entity_id=f"https://{host}/saml", valid_until="2100-01-01T00:00:00Z")
    )
    saml = cli.iam(
        "create-saml-provider",
        name=f"cli-{unique}",
        saml_metadata_document=f"file://{first}",
        tags=["Key=team,Value=ci"],
    )["SAMLProviderArn"]
    assert saml.endswith(f":saml-provider/cli-{unique}")
    provider = {"saml_provider_arn": saml}
    updated = cli.iam("update-saml-provider", **provider, saml_metadata_document=f"file://{second}")
    assert updated["SAMLProviderArn"] == saml
    got = cli.iam("get-saml-provider", **provider)
    assert got["SAMLMetadataDocument"] == second.read_text()
    assert got["ValidUntil"].startswith("2100-01-01")
    listed = cli.iam("list-saml-providers")["SAMLProviderList"]
    assert [p["ValidUntil"][:10] for p in listed if p["Arn"] == saml] == ["2100-01-01"]
    cli.iam("tag-saml-provider", **provider, tags=["Key=env,Value=prod"])
    cli.iam("untag-saml-provider", **provider, tag_keys=["team"])
    tags = cli.iam("list-saml-provider-tags", **provider)["Tags"]
    assert tags == [{"Key": "env", "Value": "prod"}]
    cli.iam("delete-saml-provider", **provider)
    cli.assert_drove(PROVIDERS, {"CreateOpenIDConnectProvider": "InvalidInput"})


# --- virtual MFA devices ----------------------------------------------------------------------

MFA = frozenset(
    {
        "CreateUser",
        "CreateVirtualMFADevice",
        "EnableMFADevice",
        "ListMFADevices",
        "ListVirtualMFADevices",
        "GetMFADevice",
        "ResyncMFADevice",
        "TagMFADevice",
        "UntagMFADevice",
        "ListMFADeviceTags",
        "DeactivateMFADevice",
        "DeleteVirtualMFADevice",
        "DeleteUser",
    }
)


def new_device(cli: Cli, tmp_path: Path, name: str, **options: Any) -> tuple[str, pyotp.TOTP]:
    """A virtual MFA device whose seed the CLI writes to a file; its serial and an app."""
    seed_file = tmp_path / f"{name}.seed"
    created = cli.iam(
        "create-virtual-mfa-device",
        virtual_mfa_device_name=name,
        outfile=seed_file,
        bootstrap_method="Base32StringSeed",
        **options,
    )["VirtualMFADevice"]
    seed = seed_file.read_text()
    assert len(seed) == 32 and seed not in json.dumps(created)
    return created["SerialNumber"], pyotp.TOTP(seed)


def codes(app: pyotp.TOTP, offset: int = 0) -> dict[str, str]:
    """Two consecutive codes, the later one for ``offset`` steps from now: accepted wherever
    the server's clock is within the current step (see test_iam_credentials.py)."""
    now = time.time() + offset * STEP
    return {"authentication_code1": app.at(now - STEP), "authentication_code2": app.at(now)}


def test_virtual_mfa_devices(cli: Cli, tmp_path: Path, unique: str) -> None:
    user = f"cli-mfa-{unique}"
    cli.iam("create-user", user_name=user)
    serial, app = new_device(cli, tmp_path, user, path="/cli/", tags=["Key=team,Value=red"])
    assert serial.endswith(f":mfa/cli/{user}")
    device = {"user_name": user, "serial_number": serial}
    wrong = pyotp.TOTP(pyotp.random_base32())
    cli.fails("InvalidAuthenticationCode", "iam", "enable-mfa-device", **device, **codes(wrong))
    cli.iam("enable-mfa-device", **device, **codes(app))
    mine = cli.iam("list-mfa-devices", user_name=user)["MFADevices"]
    assert [(d["UserName"], d["SerialNumber"]) for d in mine] == [(user, serial)]
    assigned = cli.iam("list-virtual-mfa-devices", assignment_status="Assigned")
    [listed] = [d for d in assigned["VirtualMFADevices"] if d["SerialNumber"] == serial]
    assert listed["User"]["UserName"] == user and listed["EnableDate"] == mine[0]["EnableDate"]
    assert "Base32StringSeed" not in listed and "QRCodePNG" not in listed
    got = cli.iam("get-mfa-device", serial_number=serial)
    assert got["UserName"] == user and got["EnableDate"] == mine[0]["EnableDate"]
    cli.iam("resync-mfa-device", **device, **codes(app, 2))
    cli.iam("tag-mfa-device", serial_number=serial, tags=["Key=env,Value=prod"])
    cli.iam("untag-mfa-device", serial_number=serial, tag_keys=["team"])
    tags = cli.iam("list-mfa-device-tags", serial_number=serial)["Tags"]
    assert tags == [{"Key": "env", "Value": "prod"}]
    cli.iam("deactivate-mfa-device", **device)
    cli.iam("delete-virtual-mfa-device", serial_number=serial)
    cli.iam("delete-user", user_name=user)
    cli.assert_drove(MFA, {"EnableMFADevice": "InvalidAuthenticationCode"})


# --- the policy simulator and the account views -----------------------------------------------

SIMULATION = frozenset(
    {
        "CreateUser",
        "PutUserPolicy",
        "SimulatePrincipalPolicy",
        "GetContextKeysForPrincipalPolicy",
        "SimulateCustomPolicy",
        "GetContextKeysForCustomPolicy",
        "GetAccountSummary",
        "GetAccountAuthorizationDetails",
    }
)


def test_simulation_and_account_views(cli: Cli, unique: str) -> None:
    user = f"cli-sim-{unique}"
    arn = cli.iam("create-user", user_name=user)["User"]["Arn"]
    office = {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}
    policy = doc(
        allow("s3:GetObject", Condition=office),
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"},
    )
    cli.iam("put-user-policy", user_name=user, policy_name="s3", policy_document=policy)
    results = cli.iam(
        "simulate-principal-policy",
        policy_source_arn=arn,
        action_names=["s3:GetObject", "s3:DeleteObject", "s3:PutObject"],
        context_entries="ContextKeyName=aws:SourceIp,ContextKeyValues=203.0.113.7,ContextKeyType=ip",
    )["EvaluationResults"]
    assert {r["EvalActionName"]: r["EvalDecision"] for r in results} == {
        "s3:GetObject": "allowed",
        "s3:DeleteObject": "explicitDeny",
        "s3:PutObject": "implicitDeny",
    }
    keys = cli.iam("get-context-keys-for-principal-policy", policy_source_arn=arn)
    assert keys["ContextKeyNames"] == ["aws:SourceIp"]
    missing = arn.replace(user, f"missing-{unique}")
    cli.fails(
        "NoSuchEntity",
        "iam",
        "simulate-principal-policy",
        policy_source_arn=missing,
        action_names=["s3:GetObject"],
    )
    region = {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}
    custom = doc(allow("sqs:*", Condition=region))
    simulated = cli.iam(
        "simulate-custom-policy",
        policy_input_list=[custom],
        action_names=["sqs:SendMessage"],
        context_entries="ContextKeyName=aws:RequestedRegion,ContextKeyValues=us-east-1,ContextKeyType=string",
    )["EvaluationResults"]
    assert [r["EvalDecision"] for r in simulated] == ["implicitDeny"]
    custom_keys = cli.iam("get-context-keys-for-custom-policy", policy_input_list=[custom])
    assert custom_keys["ContextKeyNames"] == ["aws:RequestedRegion"]
    summary = cli.iam("get-account-summary")["SummaryMap"]
    assert summary["Users"] >= 2 and summary["AccessKeysPerUserQuota"] == 2
    details = cli.iam("get-account-authorization-details", filter=["User"])
    [mine] = [u for u in details["UserDetailList"] if u["UserName"] == user]
    assert mine["Arn"] == arn
    assert [(p["PolicyName"], p["PolicyDocument"]) for p in mine["UserPolicyList"]] == [
        ("s3", json.loads(policy))
    ]
    assert details["GroupDetailList"] == [] and details["RoleDetailList"] == []
    cli.assert_drove(SIMULATION, {"SimulatePrincipalPolicy": "NoSuchEntity"})


# --- STS for signed callers -------------------------------------------------------------------

STS = frozenset({"GetCallerIdentity", "GetAccessKeyInfo", "AssumeRole", "GetSessionToken"})
STS_FAMILY = STS | {
    "CreateRole",
    "CreateUser",
    "CreateAccessKey",
    "CreateVirtualMFADevice",
    "EnableMFADevice",
}


def test_sts(cli: Cli, tmp_path: Path, unique: str) -> None:
    admin = cli.sts("get-caller-identity")
    account = admin["Account"]
    assert admin["Arn"] == f"arn:aws:iam::{account}:user/admin"
    info = cli.sts("get-access-key-info", access_key_id=cli.broker.admin_key_id)
    assert info == {"Account": account}

    role = f"cli-assumed-{unique}"
    external = {"StringEquals": {"sts:ExternalId": f"ext-{unique}"}}
    trust = trusting({"AWS": account}, Condition=external)
    arn = cli.iam("create-role", role_name=role, assume_role_policy_document=trust)["Role"]["Arn"]
    assume = {"role_arn": arn, "role_session_name": "cli-job"}
    refused = cli.fails("AccessDenied", "sts", "assume-role", **assume)  # no ExternalId
    assert "trust policy" in refused
    assumed = cli.sts("assume-role", **assume, external_id=f"ext-{unique}", duration_seconds=900)
    session_arn = f"arn:aws:sts::{account}:assumed-role/{role}/cli-job"
    assert assumed["AssumedRoleUser"]["Arn"] == session_arn
    creds = assumed["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and creds["SessionToken"]
    me = cli.sts("get-caller-identity", creds=creds)
    assert me["Arn"] == session_arn
    assert me["UserId"] == assumed["AssumedRoleUser"]["AssumedRoleId"]

    # GetSessionToken with an MFA code, by an IAM user with its own key.
    user = f"cli-sts-{unique}"
    cli.iam("create-user", user_name=user)
    key = cli.iam("create-access-key", user_name=user)["AccessKey"]
    serial, app = new_device(cli, tmp_path, user)
    cli.iam("enable-mfa-device", user_name=user, serial_number=serial, **codes(app))
    session = cli.sts(
        "get-session-token",
        serial_number=serial,
        token_code=app.at(time.time() + STEP),  # the step after the enabling pair's
        duration_seconds=900,
        creds=key,
    )["Credentials"]
    assert session["AccessKeyId"].startswith("ASIA") and session["SessionToken"]
    assert cli.sts("get-caller-identity", creds=session)["Arn"].endswith(f":user/{user}")
    cli.assert_drove(STS_FAMILY, {"AssumeRole": "AccessDenied"})


# --- every operation is covered ---------------------------------------------------------------

FAMILIES = {
    "users": USERS,
    "groups": GROUPS,
    "access keys": ACCESS_KEYS,
    "policies": POLICIES,
    "roles": ROLES,
    "providers": PROVIDERS,
    "mfa": MFA,
    "simulation": SIMULATION,
    "sts": STS_FAMILY,
}


def test_every_iam_operation_and_the_signed_sts_ones_are_driven_by_the_cli() -> None:
    import fedbroker.iam.operations  # noqa: F401 - registers the IAM operations
    import fedbroker.sts.api as sts_api
    from fedbroker.iam.registry import OPERATIONS

    sts_api.load_operations()
    driven = frozenset().union(*FAMILIES.values())
    assert sorted(set(OPERATIONS) - driven) == [], "IAM operations no AWS CLI test drives"
    assert sorted(driven - set(OPERATIONS) - STS) == [], "not IAM operations of the broker"
    signed_sts = {name for name, op in sts_api.OPERATIONS.items() if op.signed}
    assert signed_sts >= STS
