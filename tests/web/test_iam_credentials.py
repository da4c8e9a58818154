"""Console passwords, the account password policy and virtual MFA devices, driven by
unmodified boto3 (and once by the AWS CLI) against `fedbroker serve` on SQLite and PostgreSQL.

The server reads the real clock. MFA codes are made with pyotp from one instant taken in the
test: the pair ``(now - 30 s, now)`` is accepted whether or not the server's clock has moved
on to the next 30-second step meanwhile, so no test depends on where a step boundary falls.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from botocore.exceptions import ClientError

from tests.web.conftest import REPO, Broker

STEP = 30
GOOD = "Correct-Horse-7"
OTHER = "Battery-Staple-8"
HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"


def code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def status(error: pytest.ExceptionInfo[ClientError]) -> int:
    return int(error.value.response["ResponseMetadata"]["HTTPStatusCode"])


def message(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Message"])


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def user_with_key(iam: Any, broker: Broker, name: str, *policies: str) -> Any:
    iam.create_user(UserName=name)
    for index, policy in enumerate(policies):
        iam.put_user_policy(UserName=name, PolicyName=f"p{index}", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return broker.client("iam", key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture
def password_policy(iam: Any) -> Iterator[Callable[..., None]]:
    """Sets the account password policy; the account has none again after the test."""

    def set_policy(**settings: Any) -> None:
        iam.update_account_password_policy(**settings)

    yield set_policy
    with contextlib.suppress(ClientError):  # the test may have deleted it already
        iam.delete_account_password_policy()


class App:
    """An authenticator app holding one device's seed."""

    def __init__(self, seed: bytes) -> None:
        self.totp = pyotp.TOTP(seed.decode())

    def pair(self, offset: int = 0) -> dict[str, str]:
        """Two consecutive codes, the later one for ``offset`` steps from now."""
        now = time.time() + offset * STEP
        return {
            "AuthenticationCode1": self.totp.at(now - STEP),
            "AuthenticationCode2": self.totp.at(now),
        }


def new_device(iam: Any, name: str, **kwargs: Any) -> tuple[str, App]:
    shape = iam.create_virtual_mfa_device(VirtualMFADeviceName=name, **kwargs)["VirtualMFADevice"]
    return shape["SerialNumber"], App(shape["Base32StringSeed"])


def device_listing(iam: Any, serial: str, status: str = "Any") -> dict[str, Any] | None:
    pages = iam.get_paginator("list_virtual_mfa_devices").paginate(AssignmentStatus=status)
    found = [d for page in pages for d in page["VirtualMFADevices"] if d["SerialNumber"] == serial]
    return found[0] if found else None


# --- login profiles ---------------------------------------------------------------------------


def test_login_profile_lifecycle(iam: Any, unique: str) -> None:
    name = f"console-{unique}"
    iam.create_user(UserName=name)
    with pytest.raises(ClientError) as info:
        iam.get_login_profile(UserName=name)
    assert code(info) == "NoSuchEntity" and status(info) == 404
    created = iam.create_login_profile(UserName=name, Password=GOOD, PasswordResetRequired=True)
    profile = created["LoginProfile"]
    assert profile["UserName"] == name and profile["PasswordResetRequired"] is True
    got = iam.get_login_profile(UserName=name)["LoginProfile"]
    assert got["CreateDate"] == profile["CreateDate"] and got["PasswordResetRequired"]
    with pytest.raises(ClientError) as info:
        iam.create_login_profile(UserName=name, Password=OTHER)
    assert code(info) == "EntityAlreadyExists" and status(info) == 409
    iam.update_login_profile(UserName=name, PasswordResetRequired=False)
    assert not iam.get_login_profile(UserName=name)["LoginProfile"]["PasswordResetRequired"]
    iam.update_login_profile(UserName=name, Password=OTHER)
    with pytest.raises(ClientError) as info:
        iam.delete_user(UserName=name)
    assert code(info) == "DeleteConflict"
    iam.delete_login_profile(UserName=name)
    for call in (iam.get_login_profile, iam.delete_login_profile):
        with pytest.raises(ClientError) as info:
            call(UserName=name)
        assert code(info) == "NoSuchEntity"
    with pytest.raises(ClientError) as info:
        iam.update_login_profile(UserName=name, Password=GOOD)
    assert code(info) == "NoSuchEntity"
    with pytest.raises(ClientError) as info:
        iam.create_login_profile(UserName=f"missing-{unique}", Password=GOOD)
    assert code(info) == "NoSuchEntity"
    iam.delete_user(UserName=name)


def test_default_policy_applies_without_a_custom_one(iam: Any, unique: str) -> None:
    name = f"default-{unique}"
    iam.create_user(UserName=name)
    with pytest.raises(ClientError) as info:
        iam.get_account_password_policy()
    assert code(info) == "NoSuchEntity"
    weak = f"weak{unique}"
    with pytest.raises(ClientError) as info:
        iam.create_login_profile(UserName=name, Password=weak)
    assert code(info) == "PasswordPolicyViolation" and status(info) == 400
    assert "at least 3 of" in message(info) and weak not in message(info)
    with pytest.raises(ClientError) as info:
        iam.get_login_profile(UserName=name)
    assert code(info) == "NoSuchEntity"  # nothing was created
    iam.create_login_profile(UserName=name, Password=GOOD)


# --- the account password policy --------------------------------------------------------------


def test_password_policy_settings(iam: Any, password_policy: Callable[..., None]) -> None:
    password_policy(MinimumPasswordLength=14, RequireSymbols=True, MaxPasswordAge=90)
    got = iam.get_account_password_policy()["PasswordPolicy"]
    assert got == {
        "MinimumPasswordLength": 14,
        "RequireSymbols": True,
        "RequireNumbers": False,
        "RequireUppercaseCharacters": False,
        "RequireLowercaseCharacters": False,
        "AllowUsersToChangePassword": False,
        "ExpirePasswords": True,
        "MaxPasswordAge": 90,
        "HardExpiry": False,
    }
    # An update replaces the whole policy: what is left out takes its default.
    password_policy(RequireNumbers=True, PasswordReusePrevention=5, HardExpiry=True)
    got = iam.get_account_password_policy()["PasswordPolicy"]
    assert got["MinimumPasswordLength"] == 6 and not got["RequireSymbols"]
    assert got["PasswordReusePrevention"] == 5 and got["HardExpiry"] is True
    assert got["ExpirePasswords"] is False and "MaxPasswordAge" not in got
    for bad in (
        {"MinimumPasswordLength": 129},
        {"MaxPasswordAge": 1096},
        {"PasswordReusePrevention": 25},
    ):
        with pytest.raises(ClientError) as info:
            iam.update_account_password_policy(**bad)
        assert code(info) == "ValidationError"
    assert iam.get_account_password_policy()["PasswordPolicy"] == got  # unchanged
    iam.delete_account_password_policy()
    for call in (iam.get_account_password_policy, iam.delete_account_password_policy):
        with pytest.raises(ClientError) as info:
            call()
        assert code(info) == "NoSuchEntity"


def test_passwords_meet_the_policy_and_are_not_reused(
    iam: Any, unique: str, password_policy: Callable[..., None]
) -> None:
    password_policy(
        MinimumPasswordLength=12,
        RequireSymbols=True,
        RequireNumbers=True,
        RequireUppercaseCharacters=True,
        RequireLowercaseCharacters=True,
        PasswordReusePrevention=2,
    )
    name = f"policy-{unique}"
    iam.create_user(UserName=name)
    with pytest.raises(ClientError) as info:
        iam.create_login_profile(UserName=name, Password="short")
    assert code(info) == "PasswordPolicyViolation"
    text = message(info)
    for rule in ("at least 12 characters", "uppercase", "number", "symbols"):
        assert rule in text
    assert "short" not in text and "lowercase" not in text
    first, second = f"First-{unique}-1", f"Second-{unique}-2"
    iam.create_login_profile(UserName=name, Password=first)
    with pytest.raises(ClientError) as info:
        iam.update_login_profile(UserName=name, Password=first)
    assert code(info) == "PasswordPolicyViolation" and "last 2 passwords" in message(info)
    iam.update_login_profile(UserName=name, Password=second)
    with pytest.raises(ClientError) as info:
        iam.update_login_profile(UserName=name, Password=first)
    assert code(info) == "PasswordPolicyViolation"
    iam.update_login_profile(UserName=name, Password=f"Third-{unique}-3")
    iam.update_login_profile(UserName=name, Password=first)  # three back: allowed again


def test_change_password_by_the_user_itself(
    iam: Any, broker: Broker, unique: str, password_policy: Callable[..., None]
) -> None:
    name = f"self-{unique}"
    client = user_with_key(iam, broker, name)
    iam.create_login_profile(UserName=name, Password=GOOD, PasswordResetRequired=True)
    password_policy(AllowUsersToChangePassword=False, PasswordReusePrevention=1)
    with pytest.raises(ClientError) as info:
        client.change_password(OldPassword=GOOD, NewPassword=OTHER)
    assert code(info) == "AccessDenied"
    with pytest.raises(ClientError) as info:
        client.get_account_password_policy()
    assert code(info) == "AccessDenied"
    # AllowUsersToChangePassword grants both to every IAM user for itself.
    password_policy(AllowUsersToChangePassword=True, PasswordReusePrevention=1)
    assert client.get_account_password_policy()["PasswordPolicy"]["AllowUsersToChangePassword"]
    with pytest.raises(ClientError) as info:
        client.change_password(OldPassword=OTHER, NewPassword=f"New-{unique}-1")
    assert code(info) == "AccessDenied" and "old password" in message(info)
    with pytest.raises(ClientError) as info:
        client.change_password(OldPassword=GOOD, NewPassword=GOOD)
    assert code(info) == "PasswordPolicyViolation"
    assert iam.get_login_profile(UserName=name)["LoginProfile"]["PasswordResetRequired"]
    client.change_password(OldPassword=GOOD, NewPassword=OTHER)
    assert not iam.get_login_profile(UserName=name)["LoginProfile"]["PasswordResetRequired"]
    with pytest.raises(ClientError) as info:  # GOOD is no longer the password
        client.change_password(OldPassword=GOOD, NewPassword=f"New-{unique}-2")
    assert code(info) == "AccessDenied"
    # An explicit deny wins over the policy's grant.
    deny = doc({"Effect": "Deny", "Action": "iam:ChangePassword", "Resource": "*"})
    iam.put_user_policy(UserName=name, PolicyName="deny", PolicyDocument=deny)
    with pytest.raises(ClientError) as info:
        client.change_password(OldPassword=OTHER, NewPassword=f"New-{unique}-3")
    assert code(info) == "AccessDenied" and "explicit deny" in message(info)
    # The administrator (an IAM user too) has no login profile.
    with pytest.raises(ClientError) as info:
        iam.change_password(OldPassword=GOOD, NewPassword=OTHER)
    assert code(info) == "NoSuchEntity"


def test_change_password_with_an_iam_policy(
    iam: Any, broker: Broker, unique: str, password_policy: Callable[..., None]
) -> None:
    password_policy(AllowUsersToChangePassword=False)
    own = {
        "Effect": "Allow",
        "Action": "iam:ChangePassword",
        "Resource": "arn:aws:iam::*:user/${aws:username}",
    }
    name = f"allowed-{unique}"
    client = user_with_key(iam, broker, name, doc(own))
    with pytest.raises(ClientError) as info:  # no login profile yet
        client.change_password(OldPassword=GOOD, NewPassword=OTHER)
    assert code(info) == "NoSuchEntity"
    iam.create_login_profile(UserName=name, Password=GOOD)
    client.change_password(OldPassword=GOOD, NewPassword=OTHER)
    client.change_password(OldPassword=OTHER, NewPassword=GOOD)
    # The same policy does not reach another user's password.
    other = user_with_key(iam, broker, f"other-{unique}")
    iam.create_login_profile(UserName=f"other-{unique}", Password=GOOD)
    with pytest.raises(ClientError) as info:
        other.change_password(OldPassword=GOOD, NewPassword=OTHER)
    assert code(info) == "AccessDenied"


# --- virtual MFA devices ----------------------------------------------------------------------


def test_virtual_mfa_device_lifecycle(iam: Any, unique: str) -> None:
    name = f"mfa-{unique}"
    iam.create_user(UserName=name)
    created = iam.create_virtual_mfa_device(
        VirtualMFADeviceName=name, Path="/eng/", Tags=[{"Key": "team", "Value": "red"}]
    )["VirtualMFADevice"]
    serial = created["SerialNumber"]
    assert serial.startswith("arn:aws:iam::") and serial.endswith(f":mfa/eng/{name}")
    seed = created["Base32StringSeed"]
    assert len(seed) == 32 and seed.decode().isalnum() and seed.isupper()
    assert created["QRCodePNG"].startswith(b"\x89PNG\r\n\x1a\n")
    assert created["Tags"] == [{"Key": "team", "Value": "red"}]
    with pytest.raises(ClientError) as info:
        iam.create_virtual_mfa_device(VirtualMFADeviceName=name.upper())
    assert code(info) == "EntityAlreadyExists"
    listed = device_listing(iam, serial, "Unassigned")
    assert listed == {"SerialNumber": serial}
    assert device_listing(iam, serial, "Assigned") is None
    app = App(seed)
    enabling = app.pair()
    iam.enable_mfa_device(UserName=name, SerialNumber=serial, **enabling)
    devices = iam.list_mfa_devices(UserName=name)["MFADevices"]
    assert [(d["UserName"], d["SerialNumber"]) for d in devices] == [(name, serial)]
    assigned = device_listing(iam, serial, "Assigned")
    assert assigned is not None and assigned["User"]["UserName"] == name
    assert assigned["EnableDate"] == devices[0]["EnableDate"]
    assert device_listing(iam, serial, "Unassigned") is None
    got = iam.get_mfa_device(SerialNumber=serial)
    assert got["UserName"] == name and got["EnableDate"] == devices[0]["EnableDate"]
    with pytest.raises(ClientError) as info:
        iam.enable_mfa_device(UserName=name, SerialNumber=serial, **app.pair(1))
    assert code(info) == "EntityAlreadyExists"
    for call, kwargs in (
        (iam.delete_user, {"UserName": name}),
        (iam.delete_virtual_mfa_device, {"SerialNumber": serial}),
    ):
        with pytest.raises(ClientError) as info:
            call(**kwargs)
        assert code(info) == "DeleteConflict"
    # Resync with the two codes after the enabling pair; replaying them is refused.
    resync = app.pair(2)
    iam.resync_mfa_device(UserName=name, SerialNumber=serial, **resync)
    with pytest.raises(ClientError) as info:
        iam.resync_mfa_device(UserName=name, SerialNumber=serial, **resync)
    assert code(info) == "InvalidAuthenticationCode" and status(info) == 403
    iam.tag_mfa_device(SerialNumber=serial, Tags=[{"Key": "env", "Value": "prod"}])
    iam.untag_mfa_device(SerialNumber=serial, TagKeys=["team"])
    assert iam.list_mfa_device_tags(SerialNumber=serial)["Tags"] == [
        {"Key": "env", "Value": "prod"}
    ]
    iam.deactivate_mfa_device(UserName=name, SerialNumber=serial)
    assert iam.list_mfa_devices(UserName=name)["MFADevices"] == []
    assert device_listing(iam, serial, "Unassigned") == {"SerialNumber": serial}
    with pytest.raises(ClientError) as info:
        iam.deactivate_mfa_device(UserName=name, SerialNumber=serial)
    assert code(info) == "NoSuchEntity"
    # Codes once used stay used on the same device.
    for used in (enabling, resync):
        with pytest.raises(ClientError) as info:
            iam.enable_mfa_device(UserName=name, SerialNumber=serial, **used)
        assert code(info) == "InvalidAuthenticationCode"
    with pytest.raises(ClientError) as info:
        iam.enable_mfa_device(UserName=name, SerialNumber=serial, **enabling)
    assert code(info) == "InvalidAuthenticationCode"
    iam.delete_virtual_mfa_device(SerialNumber=serial)
    assert device_listing(iam, serial) is None
    with pytest.raises(ClientError) as info:
        iam.delete_virtual_mfa_device(SerialNumber=serial)
    assert code(info) == "NoSuchEntity"
    iam.delete_user(UserName=name)


def test_refused_codes_change_nothing(iam: Any, unique: str) -> None:
    name = f"codes-{unique}"
    iam.create_user(UserName=name)
    serial, app = new_device(iam, name)
    now = time.time()
    other = pyotp.TOTP(pyotp.random_base32())
    refused = [
        ("wrong device", other.at(now - STEP), other.at(now)),
        ("reversed", app.totp.at(now), app.totp.at(now - STEP)),
        ("not consecutive", app.totp.at(now - 2 * STEP), app.totp.at(now)),
        ("one code twice", app.totp.at(now), app.totp.at(now)),
        ("an hour ahead", app.totp.at(now + 3600), app.totp.at(now + 3600 + STEP)),
    ]
    for why, first, second in refused:
        with pytest.raises(ClientError) as info:
            iam.enable_mfa_device(
                UserName=name,
                SerialNumber=serial,
                AuthenticationCode1=first,
                AuthenticationCode2=second,
            )
        assert code(info) == "InvalidAuthenticationCode", why
        assert first not in message(info) and second not in message(info)
        assert iam.list_mfa_devices(UserName=name)["MFADevices"] == [], why
        assert device_listing(iam, serial, "Unassigned") == {"SerialNumber": serial}, why
    with pytest.raises(ClientError) as info:
        iam.enable_mfa_device(
            UserName=name,
            SerialNumber=serial,
            AuthenticationCode1="12345x",
            AuthenticationCode2="123456",
        )
    assert code(info) == "ValidationError" and "12345x" not in message(info)
    missing = serial.replace(name, f"missing-{unique}")
    with pytest.raises(ClientError) as info:
        iam.enable_mfa_device(UserName=name, SerialNumber=missing, **app.pair())
    assert code(info) == "NoSuchEntity"
    with pytest.raises(ClientError) as info:
        iam.resync_mfa_device(UserName=name, SerialNumber=serial, **app.pair())
    assert code(info) == "NoSuchEntity"  # not enabled for the user
    iam.enable_mfa_device(UserName=name, SerialNumber=serial, **app.pair())
    assert len(iam.list_mfa_devices(UserName=name)["MFADevices"]) == 1


def test_users_manage_their_own_mfa(iam: Any, broker: Broker, unique: str) -> None:
    name = f"selfmfa-{unique}"
    own = doc(
        {
            "Effect": "Allow",
            "Action": ["iam:CreateVirtualMFADevice", "iam:DeleteVirtualMFADevice"],
            "Resource": "arn:aws:iam::*:mfa/${aws:username}",
        },
        {
            "Effect": "Allow",
            "Action": [
                "iam:EnableMFADevice",
                "iam:ListMFADevices",
                "iam:DeactivateMFADevice",
                "iam:ResyncMFADevice",
            ],
            "Resource": "arn:aws:iam::*:user/${aws:username}",
        },
    )
    client = user_with_key(iam, broker, name, own)
    serial, app = new_device(client, name)
    with pytest.raises(ClientError) as info:
        client.create_virtual_mfa_device(VirtualMFADeviceName=f"someone-{unique}")
    assert code(info) == "AccessDenied"
    client.enable_mfa_device(UserName=name, SerialNumber=serial, **app.pair())
    assert [d["SerialNumber"] for d in client.list_mfa_devices()["MFADevices"]] == [serial]
    with pytest.raises(ClientError) as info:
        client.list_mfa_devices(UserName="admin")
    assert code(info) == "AccessDenied"
    client.deactivate_mfa_device(SerialNumber=serial)  # UserName defaults to the caller
    client.delete_virtual_mfa_device(SerialNumber=serial)


# --- secrets stay out of the audit log and the server log -------------------------------------


def test_passwords_seeds_and_codes_never_reach_audit_or_log(
    iam: Any, broker: Broker, unique: str, password_policy: Callable[..., None]
) -> None:
    name = f"secrets-{unique}"
    first, second = f"Pass-{unique}-Word1!", f"Pass-{unique}-Word2!"
    weak = f"weak{unique}"
    client = user_with_key(iam, broker, name)
    password_policy(AllowUsersToChangePassword=True, MinimumPasswordLength=20)
    with pytest.raises(ClientError):
        iam.create_login_profile(UserName=name, Password=weak)
    iam.create_login_profile(UserName=name, Password=first)
    with pytest.raises(ClientError):
        client.change_password(OldPassword=second, NewPassword=first)
    client.change_password(OldPassword=first, NewPassword=second)
    iam.update_login_profile(UserName=name, Password=first)
    created = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
    serial, seed = created["SerialNumber"], created["Base32StringSeed"]
    app = App(seed)
    wrong = pyotp.TOTP(pyotp.random_base32())
    wrong_codes = {
        "AuthenticationCode1": wrong.at(time.time() - STEP),
        "AuthenticationCode2": wrong.at(time.time()),
    }
    with pytest.raises(ClientError):
        iam.enable_mfa_device(UserName=name, SerialNumber=serial, **wrong_codes)
    codes = app.pair()
    iam.enable_mfa_device(UserName=name, SerialNumber=serial, **codes)

    secrets = [first, second, weak, seed.decode(), created["QRCodePNG"][:64].hex()]
    secrets += [base64_of(seed), base64_of(created["QRCodePNG"])[:40]]
    serve_log = broker.data_dir.parent / "serve.log"
    for text in (broker.audit_log.read_text(), serve_log.read_text()):
        for secret in secrets:
            assert secret not in text
        for value in [*codes.values(), *wrong_codes.values()]:
            assert f'"{value}"' not in text
    events = [e for e in broker.audit_events() if name in json.dumps(e["requestParameters"])]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_name.setdefault(event["eventName"], []).append(event)
    assert {e["requestParameters"]["Password"] for e in by_name["CreateLoginProfile"]} == {HIDDEN}
    assert by_name["CreateLoginProfile"][0]["errorCode"] == "PasswordPolicyViolation"
    for event in by_name["EnableMFADevice"]:
        assert event["requestParameters"]["AuthenticationCode1"] == HIDDEN
        assert event["requestParameters"]["AuthenticationCode2"] == HIDDEN
    assert [e.get("errorCode") for e in by_name["EnableMFADevice"]] == [
        "InvalidAuthenticationCode",
        None,
    ]
    device_events = [
        e
        for e in broker.audit_events()
        if e["eventName"] == "CreateVirtualMFADevice"
        and e["requestParameters"].get("VirtualMFADeviceName") == name
    ]
    assert device_events[0]["responseElements"] == {"virtualMFADevice": {"serialNumber": serial}}
    changes = [
        e
        for e in broker.audit_events()
        if e["eventName"] == "ChangePassword" and e["userIdentity"].get("userName") == name
    ]
    assert len(changes) == 2
    for event in changes:
        assert event["requestParameters"] == {"OldPassword": HIDDEN, "NewPassword": HIDDEN}


def base64_of(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- the AWS CLI ------------------------------------------------------------------------------

AWS = os.environ.get("FEDBROKER_TEST_AWS_CLI", str(REPO / ".venv-awscli/bin/aws"))


def test_aws_cli_writes_the_seed_to_a_file(broker: Broker, tmp_path: Path, unique: str) -> None:
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
    outfile = tmp_path / "seed.txt"
    done = subprocess.run(
        [
            AWS,
            "--endpoint-url",
            broker.url,
            "iam",
            "create-virtual-mfa-device",
            "--virtual-mfa-device-name",
            f"cli-{unique}",
            "--outfile",
            str(outfile),
            "--bootstrap-method",
            "Base32StringSeed",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    serial = json.loads(done.stdout)["VirtualMFADevice"]["SerialNumber"]
    assert serial.endswith(f":mfa/cli-{unique}")
    seed = outfile.read_text()
    assert len(seed) == 32 and seed not in done.stdout
    pyotp.TOTP(seed).now()  # a usable base32 seed
    iam = broker.client("iam")
    app = App(seed.encode())
    iam.create_user(UserName=f"cli-{unique}")
    iam.enable_mfa_device(UserName=f"cli-{unique}", SerialNumber=serial, **app.pair())
