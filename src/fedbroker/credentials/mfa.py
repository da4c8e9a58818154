"""Virtual MFA devices: their stored state, and checking a code from one.

A device is a :data:`~fedbroker.directory.model.Kind.MFA_DEVICE` entity named by its ARN
(``arn:aws:iam::<account>:mfa/<path><name>``, IAM's ``SerialNumber``). Its attributes:

- ``seed``: the TOTP seed sealed under the master key with the device ARN as associated
  data, base64; copied onto another device it does not open;
- ``user_id`` and ``enabled``: the user it is enabled for and since when (absent when
  unassigned); the user keeps ``attrs["mfa_devices"] = [{"serial", "enabled"}]``;
- ``last_step``: the latest time step a code was accepted for. A code is good once: only
  steps after it are accepted, across EnableMFADevice, ResyncMFADevice and every sign-in;
- ``drift``: steps between the device's clock and ours, measured by the last resync.

:func:`verify_mfa_code` is what STS (``SerialNumber`` + ``TokenCode``) and the console
sign-in call; every refusal is the same :class:`InvalidAuthenticationCodeError` outward.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from datetime import datetime

from fedbroker.credentials import totp
from fedbroker.credentials.sealing import MasterKey, SealError
from fedbroker.directory.model import Entity, Kind
from fedbroker.directory.store import Store
from fedbroker.errors import InvalidAuthenticationCodeError, NoSuchEntityError

SERIAL = re.compile(r"arn:aws:iam::(\d{12}):mfa(/|/[\x21-\x7e]*/)([\w+=,.@-]+)")
# Steps either side of the expected one that a single code may come from (clock drift).
SIGN_IN_WINDOW = 1
# How far back the first of two consecutive codes may be when a device is enabled: the user
# reads one code, waits for the next, types both.
ENABLE_WINDOW = 2
# How far a resync looks either way for two consecutive codes (an hour of drift).
RESYNC_WINDOW = 120
INVALID_CODE = "the authentication code is not valid for this MFA device"
_STATE_KEYS = ("seed", "user_id", "enabled", "last_step", "drift")


@dataclass(frozen=True, slots=True)
class DeviceState:
    sealed_seed: bytes
    user_id: str | None = None
    enabled: datetime | None = None
    last_step: int | None = None
    drift: int = 0

    @classmethod
    def of(cls, device: Entity) -> DeviceState:
        attrs = device.attrs
        enabled = attrs.get("enabled")
        last = attrs.get("last_step")
        drift = attrs.get("drift")
        return cls(
            base64.b64decode(str(attrs["seed"])),
            str(attrs["user_id"]) if attrs.get("user_id") else None,
            datetime.fromisoformat(enabled) if isinstance(enabled, str) else None,
            last if isinstance(last, int) else None,
            drift if isinstance(drift, int) else 0,
        )

    def to_attrs(self) -> dict[str, object]:
        attrs: dict[str, object] = {"seed": base64.b64encode(self.sealed_seed).decode()}
        if self.user_id is not None and self.enabled is not None:
            attrs["user_id"] = self.user_id
            attrs["enabled"] = self.enabled.isoformat()
        if self.last_step is not None:
            attrs["last_step"] = self.last_step
        if self.drift:
            attrs["drift"] = self.drift
        return attrs

    def applied_to(self, device: Entity) -> Entity:
        """``device`` with this state in its attributes (its tags kept)."""
        kept = {k: v for k, v in device.attrs.items() if k not in _STATE_KEYS}
        return replace(device, attrs={**kept, **self.to_attrs()})

    def after(self, steps: range) -> range:
        """``steps`` without those at or before the last accepted one (replays)."""
        if self.last_step is None:
            return steps
        return range(max(steps.start, self.last_step + 1), steps.stop)


def seed_context(serial_number: str) -> bytes:
    """Associated data binding a sealed seed to its device."""
    return b"fedbroker/mfa-seed/" + serial_number.encode()


def seal_seed(master_key: MasterKey, serial_number: str, seed: str) -> bytes:
    return master_key.seal(seed.encode(), seed_context(serial_number))


def open_seed(master_key: MasterKey, device: Entity) -> str:
    """The device's seed in clear; raises :class:`SealError` if it does not open."""
    return master_key.open(DeviceState.of(device).sealed_seed, seed_context(device.arn)).decode()


def device_by_serial(store: Store, serial_number: str) -> Entity:
    """The virtual MFA device with this serial number (its ARN); raises NoSuchEntity."""
    match = SERIAL.fullmatch(serial_number)
    if match is not None:
        account_id, _, name = match.groups()
        try:
            device = store.get_entity(account_id, Kind.MFA_DEVICE, name)
        except NoSuchEntityError:
            pass
        else:
            if device.arn == serial_number:
                return device
    raise NoSuchEntityError(f"no virtual MFA device with serial number `{serial_number}`")


def window(center: int, before: int, after: int) -> range:
    return range(center - before, center + after + 1)


@dataclass(frozen=True, slots=True)
class MfaVerified:
    serial_number: str
    user_id: str
    step: int


def verify_mfa_code(
    store: Store,
    master_key: MasterKey,
    device: str | Entity,
    code: str,
    now: datetime,
    *,
    user: Entity | None = None,
) -> MfaVerified:
    """Accept ``code`` once from an enabled virtual MFA device (RFC 6238 section 5.2).

    ``device`` is a serial number (the device ARN) or a user, meaning any device enabled for
    that user; with ``user`` given too, the device must be enabled for that user. A code is
    accepted from the expected step (our clock plus the device's measured drift) or one step
    either side, and only from a step after the last one accepted, which is then recorded.
    Raises :class:`InvalidAuthenticationCodeError` for every refusal, with the reason in
    ``detail``.
    """
    if isinstance(device, Entity) and device.kind is Kind.USER:
        owner: Entity | None = device
        serials = enabled_serials(device)
    else:
        owner = user
        serials = [device.arn if isinstance(device, Entity) else device]
    if not totp.is_code(code):
        raise InvalidAuthenticationCodeError(INVALID_CODE, "the code is not six digits")
    if not serials:
        raise InvalidAuthenticationCodeError(INVALID_CODE, "the user has no MFA device")
    reasons = []
    for serial in serials:
        try:
            return _accept(store, master_key, serial, code, now, owner)
        except InvalidAuthenticationCodeError as refused:
            reasons.append(refused.detail or refused.message)
    raise InvalidAuthenticationCodeError(INVALID_CODE, "; ".join(reasons))


def _accept(
    store: Store,
    master_key: MasterKey,
    serial: str,
    code: str,
    now: datetime,
    owner: Entity | None,
) -> MfaVerified:
    try:
        device = device_by_serial(store, serial)
    except NoSuchEntityError:
        raise InvalidAuthenticationCodeError(INVALID_CODE, f"no device `{serial}`") from None
    state = DeviceState.of(device)
    if state.user_id is None:
        raise InvalidAuthenticationCodeError(INVALID_CODE, f"device `{serial}` is not enabled")
    if owner is not None and state.user_id != owner.id:
        raise InvalidAuthenticationCodeError(
            INVALID_CODE, f"device `{serial}` is not enabled for user `{owner.name}`"
        )
    try:
        seed = open_seed(master_key, device)
    except SealError as exc:
        raise InvalidAuthenticationCodeError(
            INVALID_CODE, f"device `{serial}`: {exc.message}"
        ) from None
    expected = totp.step_at(now) + state.drift
    steps = state.after(window(expected, SIGN_IN_WINDOW, SIGN_IN_WINDOW))
    step = totp.find_step(seed, code, steps)
    if step is None:
        replayed = totp.find_step(seed, code, window(expected, SIGN_IN_WINDOW, SIGN_IN_WINDOW))
        reason = "already used" if replayed is not None else "wrong or out of its time window"
        raise InvalidAuthenticationCodeError(INVALID_CODE, f"device `{serial}`: code {reason}")
    store.update_entity(replace(state, last_step=step).applied_to(device))
    return MfaVerified(serial, state.user_id, step)


def enabled_devices(user: Entity) -> list[dict[str, object]]:
    """The user's ``attrs["mfa_devices"]``: ``{"serial", "enabled"}`` per enabled device."""
    raw = user.attrs.get("mfa_devices")
    if not isinstance(raw, list):
        return []
    return [d for d in raw if isinstance(d, dict) and "serial" in d]


def enabled_serials(user: Entity) -> list[str]:
    """Serial numbers of the MFA devices enabled for ``user``."""
    return [str(d["serial"]) for d in enabled_devices(user)]
