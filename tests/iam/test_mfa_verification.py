"""Virtual MFA devices through the IAM operations and ``verify_mfa_code`` (the check STS and
the console sign-in make), on a fixed clock: codes come from pyotp at chosen instants."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pyotp
import pytest

from fedbroker.clock import FixedClock
from fedbroker.credentials.mfa import DeviceState, verify_mfa_code
from fedbroker.directory.model import Account, Kind
from fedbroker.directory.store import Store
from fedbroker.errors import FedbrokerError, InvalidAuthenticationCodeError
from fedbroker.iam.api import RequestMeta, execute
from fedbroker.iam.context import Caller, Services

STEP = timedelta(seconds=30)


def iam(services: Services, account: Account, action: str, **form: Any) -> dict[str, Any]:
    caller = Caller(account, None, "AKIAEXAMPLEROOTKEY00")
    meta = RequestMeta("req", "192.0.2.1", "test", True)
    return execute(services, caller, meta, action, {k: str(v) for k, v in form.items()})


def error_code(services: Services, account: Account, action: str, **form: Any) -> str:
    with pytest.raises(FedbrokerError) as caught:
        iam(services, account, action, **form)
    return caught.value.code


class Device:
    """A virtual MFA device as its owner's authenticator app sees it."""

    def __init__(self, services: Services, account: Account, name: str) -> None:
        made = iam(services, account, "CreateVirtualMFADevice", VirtualMFADeviceName=name)
        shape = made["VirtualMFADevice"]
        self.serial: str = shape["SerialNumber"]
        self.totp = pyotp.TOTP(base64.b64decode(shape["Base32StringSeed"]).decode())

    def code(self, at: datetime) -> str:
        return self.totp.at(at)


@pytest.fixture
def clock(services: Services) -> FixedClock:
    assert isinstance(services.clock, FixedClock)
    return services.clock


def enabled_device(services: Services, account: Account, clock: FixedClock, user: str) -> Device:
    iam(services, account, "CreateUser", UserName=user)
    device = Device(services, account, user)
    now = clock.now()
    iam(
        services,
        account,
        "EnableMFADevice",
        UserName=user,
        SerialNumber=device.serial,
        AuthenticationCode1=device.code(now - STEP),
        AuthenticationCode2=device.code(now),
    )
    return device


def verify(services: Services, device: str | Any, code: str, clock: FixedClock, **kw: Any) -> Any:
    store, key = services.store, services.master_key
    return verify_mfa_code(store, key, device, code, clock.now(), **kw)


def refusal(services: Services, device: str | Any, code: str, clock: FixedClock, **kw: Any) -> str:
    with pytest.raises(InvalidAuthenticationCodeError) as caught:
        verify(services, device, code, clock, **kw)
    assert caught.value.message == "the authentication code is not valid for this MFA device"
    assert caught.value.status == 403
    return caught.value.detail


def test_a_code_is_good_once(
    store: Store, account: Account, services: Services, clock: FixedClock
) -> None:
    device = enabled_device(services, account, clock, "amy")
    enabled_step = int(clock.now().timestamp()) // 30
    # Both enabling codes are spent already.
    assert "already used" in refusal(services, device.serial, device.code(clock.now()), clock)
    clock.advance(STEP)
    accepted = verify(services, device.serial, device.code(clock.now()), clock)
    assert accepted.step == enabled_step + 1 and accepted.serial_number == device.serial
    assert "already used" in refusal(services, device.serial, device.code(clock.now()), clock)
    stored = DeviceState.of(store.get_entity(account.id, Kind.MFA_DEVICE, "amy"))
    assert stored.last_step == enabled_step + 1


def test_clock_drift_of_one_step_either_side(
    account: Account, services: Services, clock: FixedClock
) -> None:
    device = enabled_device(services, account, clock, "bob")
    clock.advance(10 * STEP)
    now = clock.now()
    assert "window" in refusal(services, device.serial, device.code(now + 2 * STEP), clock)
    assert "window" in refusal(services, device.serial, device.code(now - 2 * STEP), clock)
    verify(services, device.serial, device.code(now - STEP), clock)
    verify(services, device.serial, device.code(now + STEP), clock)
    # After accepting the step ahead, the current step's code is older: refused.
    assert "already used" in refusal(services, device.serial, device.code(now), clock)


def test_device_user_and_code_checks(
    store: Store, account: Account, services: Services, clock: FixedClock
) -> None:
    device = enabled_device(services, account, clock, "cid")
    enabled_device(services, account, clock, "dan")
    spare = Device(services, account, "spare")
    cid = store.get_entity(account.id, Kind.USER, "cid")
    dan = store.get_entity(account.id, Kind.USER, "dan")
    clock.advance(STEP)
    code = device.code(clock.now())
    assert "not six digits" in refusal(services, device.serial, "12345x", clock)
    assert "not enabled for user `dan`" in refusal(services, device.serial, code, clock, user=dan)
    assert "is not enabled" in refusal(services, spare.serial, spare.code(clock.now()), clock)
    missing = f"arn:aws:iam::{account.id}:mfa/nothing"
    assert "no device" in refusal(services, missing, code, clock)
    assert "no device" in refusal(services, "not-an-arn", code, clock)
    other_path = f"arn:aws:iam::{account.id}:mfa/eng/cid"  # right name, wrong path
    assert "no device" in refusal(services, other_path, code, clock)
    wrong = "000000" if code != "000000" else "111111"
    assert "wrong" in refusal(services, cid, wrong, clock)
    # A user stands for its devices; the code is then spent.
    assert verify(services, cid, code, clock).user_id == cid.id
    assert "already used" in refusal(services, device.serial, code, clock, user=cid)
    iam(services, account, "CreateUser", UserName="nodevice")
    nodevice = store.get_entity(account.id, Kind.USER, "nodevice")
    assert "no MFA device" in refusal(services, nodevice, code, clock)


def test_a_sealed_seed_only_opens_on_its_own_device(
    store: Store, account: Account, services: Services, clock: FixedClock
) -> None:
    first = enabled_device(services, account, clock, "eve")
    second = enabled_device(services, account, clock, "fay")
    one = store.get_entity(account.id, Kind.MFA_DEVICE, "eve")
    two = store.get_entity(account.id, Kind.MFA_DEVICE, "fay")
    assert first.totp.secret not in str(one.attrs)  # stored sealed, never in clear
    store.update_entity(replace(two, attrs={**two.attrs, "seed": one.attrs["seed"]}))
    clock.advance(STEP)
    detail = refusal(services, second.serial, first.code(clock.now()), clock)
    assert "failed authentication" in detail


def test_enable_takes_two_consecutive_fresh_codes_and_changes_nothing_otherwise(
    store: Store, account: Account, services: Services, clock: FixedClock
) -> None:
    iam(services, account, "CreateUser", UserName="gus")
    device = Device(services, account, "gus")
    now = clock.now()
    before = store.get_entity(account.id, Kind.MFA_DEVICE, "gus")
    attempts = [
        (device.code(now), device.code(now - STEP)),  # reversed
        (device.code(now - 2 * STEP), device.code(now)),  # not consecutive
        (device.code(now), device.code(now)),  # the same code twice
        (device.code(now - 4 * STEP), device.code(now - 3 * STEP)),  # too old
        (device.code(now + STEP), device.code(now + 2 * STEP)),  # too far ahead
    ]
    for first, second in attempts:
        code = error_code(
            services,
            account,
            "EnableMFADevice",
            UserName="gus",
            SerialNumber=device.serial,
            AuthenticationCode1=first,
            AuthenticationCode2=second,
        )
        assert code == "InvalidAuthenticationCode"
        assert store.get_entity(account.id, Kind.MFA_DEVICE, "gus") == before
        assert "mfa_devices" not in store.get_entity(account.id, Kind.USER, "gus").attrs
    iam(
        services,
        account,
        "EnableMFADevice",
        UserName="gus",
        SerialNumber=device.serial,
        AuthenticationCode1=device.code(now - 2 * STEP),
        AuthenticationCode2=device.code(now - STEP),
    )
    assert (
        iam(services, account, "ListMFADevices", UserName="gus")["MFADevices"][0]["SerialNumber"]
        == device.serial
    )


def test_resync_measures_drift_and_later_codes_follow_it(
    store: Store, account: Account, services: Services, clock: FixedClock
) -> None:
    device = enabled_device(services, account, clock, "hal")
    clock.advance(timedelta(minutes=10))
    ahead = clock.now() + timedelta(minutes=5)  # the phone's clock runs five minutes fast
    assert "window" in refusal(services, device.serial, device.code(ahead), clock)
    form = {"UserName": "hal", "SerialNumber": device.serial}
    iam(
        services,
        account,
        "ResyncMFADevice",
        **form,
        AuthenticationCode1=device.code(ahead),
        AuthenticationCode2=device.code(ahead + STEP),
    )
    state = DeviceState.of(store.get_entity(account.id, Kind.MFA_DEVICE, "hal"))
    assert state.drift == 11
    replay = error_code(
        services,
        account,
        "ResyncMFADevice",
        **form,
        AuthenticationCode1=device.code(ahead),
        AuthenticationCode2=device.code(ahead + STEP),
    )
    assert replay == "InvalidAuthenticationCode"
    clock.advance(2 * STEP)
    verify(services, device.serial, device.code(clock.now() + timedelta(minutes=5)), clock)
    # Deactivated: its codes are refused; enabled again, the used steps stay used.
    iam(services, account, "DeactivateMFADevice", **form)
    assert DeviceState.of(store.get_entity(account.id, Kind.MFA_DEVICE, "hal")).last_step
    assert "is not enabled" in refusal(services, device.serial, device.code(clock.now()), clock)
    assert iam(services, account, "ListMFADevices", UserName="hal")["MFADevices"] == []
