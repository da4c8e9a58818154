"""Virtual MFA devices: CreateVirtualMFADevice, EnableMFADevice, ResyncMFADevice,
DeactivateMFADevice, DeleteVirtualMFADevice, ListMFADevices, ListVirtualMFADevices,
GetMFADevice and the device tags (IAM API Reference; "Assign a virtual MFA device").

TOTP per RFC 6238 (SHA-1, 6 digits, 30 s), as authenticator apps and AWS use. The seed is
shown once, at creation, and stored sealed under the master key (see
:mod:`fedbroker.credentials.mfa`). Enabling and resyncing take two consecutive codes; every
accepted code moves the device's last used time step forward, so no code is accepted twice.
Seeds, QR codes and codes never reach the audit log (the audit layer hides
``Base32StringSeed``, ``QRCodePNG`` and ``AuthenticationCode1``/``2``; errors never echo them).
"""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import datetime
from typing import Any

from fedbroker.credentials import totp
from fedbroker.credentials.mfa import (
    ENABLE_WINDOW,
    RESYNC_WINDOW,
    SERIAL,
    DeviceState,
    device_by_serial,
    enabled_devices,
    open_seed,
    seal_seed,
    window,
)
from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import (
    DeleteConflictError,
    EntityAlreadyExistsError,
    InvalidAuthenticationCodeError,
    LimitExceededError,
    NoSuchEntityError,
    ValidationError,
)
from fedbroker.iam.api import page_result, paginate
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.common import (
    arn_for,
    caller_or_named_user,
    entity_dict,
    named,
    new_entity,
    request_tag_context,
    tags_list,
    user_resource_or_self,
)
from fedbroker.iam.operations.tagging import merged_tags
from fedbroker.iam.params import NAME, Params
from fedbroker.iam.registry import operation

SERIAL_PATTERN = re.compile(r"[\w+=/:,.@-]+")
MAX_SERIAL = 256
MAX_DEVICES_PER_USER = 8  # "IAM and AWS STS quotas": MFA devices in use per user
ISSUER = "fedbroker"
STATUSES = ("Assigned", "Unassigned", "Any")
INVALID_CODES = "the authentication codes are not valid for MFA device `{}`"


# --- parameters and look-ups -------------------------------------------------------------------


def _serial(params: Params) -> str:
    return params.req("SerialNumber", min_len=9, max_len=MAX_SERIAL, pattern=SERIAL_PATTERN)


def _codes(params: Params) -> tuple[str, str]:
    """``AuthenticationCode1`` and ``2``: six digits each. Errors never show the codes."""
    codes = []
    for name in ("AuthenticationCode1", "AuthenticationCode2"):
        value = params.form.get(name)
        if value is None:
            raise ValidationError(
                f"1 validation error detected: value null at `{name}` failed to satisfy "
                "constraint: member must not be null"
            )
        if not totp.is_code(value):
            raise ValidationError(
                f"1 validation error detected: value at `{name}` failed to satisfy "
                "constraint: member must be six digits"
            )
        codes.append(value)
    return codes[0], codes[1]


def _device(ctx: CallContext, serial: str) -> Entity:
    try:
        device = device_by_serial(ctx.store, serial)
    except NoSuchEntityError:
        device = None
    if device is None or device.account_id != ctx.account_id:
        raise NoSuchEntityError(f"MFA device with serial number `{serial}` cannot be found")
    return device


def _device_resource(ctx: CallContext, params: Params) -> str:
    serial = params.form.get("SerialNumber", "")
    return serial if SERIAL.fullmatch(serial) else ctx.arn(f"mfa/{serial}")


def _new_device_resource(ctx: CallContext, params: Params) -> str:
    path = params.form.get("Path", "/") or "/"
    return ctx.arn(f"mfa{path}{params.form.get('VirtualMFADeviceName', '')}")


def _enabled_for(user: Entity, device: Entity, state: DeviceState) -> bool:
    listed = any(d["serial"] == device.arn for d in enabled_devices(user))
    return state.user_id == user.id or listed


def _with_devices(user: Entity, devices: list[dict[str, object]]) -> Entity:
    attrs = {k: v for k, v in user.attrs.items() if k != "mfa_devices"}
    if devices:
        attrs["mfa_devices"] = devices
    return replace(user, attrs=attrs)


# --- create and delete -----------------------------------------------------------------------


def _create_context(ctx: CallContext, params: Params) -> dict[str, object]:
    return request_tag_context(params)


@operation("CreateVirtualMFADevice", _new_device_resource, extra_context=_create_context)
def create_virtual_mfa_device(ctx: CallContext, params: Params) -> dict[str, Any]:
    name = params.req("VirtualMFADeviceName", max_len=226, pattern=NAME)
    path = params.path() or "/"
    tags = params.tags()
    serial = ctx.arn(f"mfa{path}{name}")
    if len(serial) > MAX_SERIAL:
        raise ValidationError(
            f"the serial number of the device (its ARN) would exceed {MAX_SERIAL} characters"
        )
    seed = totp.new_seed()
    state = DeviceState(seal_seed(ctx.services.master_key, serial, seed))
    device = new_entity(ctx, Kind.MFA_DEVICE, name, path, {**state.to_attrs(), "tags": tags})
    account = ctx.caller.account
    uri = totp.provisioning_uri(seed, f"{name}@{account.alias or account.id}", ISSUER)
    ctx.response_elements = {"virtualMFADevice": {"serialNumber": device.arn}}
    shape: dict[str, Any] = {
        "SerialNumber": device.arn,
        # Blobs: base64 on the wire; boto3 hands out the bytes.
        "Base32StringSeed": base64.b64encode(seed.encode()).decode(),
        "QRCodePNG": base64.b64encode(totp.qr_png(uri)).decode(),
    }
    if tags:
        shape["Tags"] = tags_list(tags)
    return {"VirtualMFADevice": shape}


@operation("DeleteVirtualMFADevice", _device_resource)
def delete_virtual_mfa_device(ctx: CallContext, params: Params) -> dict[str, Any]:
    device = _device(ctx, _serial(params))
    if DeviceState.of(device).user_id is not None:
        raise DeleteConflictError(
            f"cannot delete MFA device `{device.arn}`: it is enabled for a user; deactivate "
            "it first"
        )
    ctx.store.delete_entity(device)
    return {}


# --- enable, resync, deactivate ----------------------------------------------------------------


@operation("EnableMFADevice", arn_for(Kind.USER))
def enable_mfa_device(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = named(ctx, params, Kind.USER)
    device = _device(ctx, _serial(params))
    first, second = _codes(params)
    state = DeviceState.of(device)
    if state.user_id is not None:
        raise EntityAlreadyExistsError(f"MFA device `{device.arn}` is already in use")
    devices = enabled_devices(user)
    if len(devices) >= MAX_DEVICES_PER_USER:
        raise LimitExceededError(
            f"cannot exceed quota for MFA devices per user: {MAX_DEVICES_PER_USER}"
        )
    # The first code from up to two steps back, the second one step later; never a step
    # already used (a replay) and never the same code twice.
    steps = state.after(window(totp.step_at(ctx.now), ENABLE_WINDOW, 0))
    seed = open_seed(ctx.services.master_key, device)
    accepted = None if first == second else totp.find_consecutive(seed, first, second, steps)
    if accepted is None:
        raise InvalidAuthenticationCodeError(INVALID_CODES.format(device.arn))
    enabled = DeviceState(state.sealed_seed, user.id, ctx.now, accepted, 0)
    ctx.store.update_entity(enabled.applied_to(device))
    entry: dict[str, object] = {"serial": device.arn, "enabled": ctx.now.isoformat()}
    ctx.store.update_entity(_with_devices(user, [*devices, entry]))
    return {}


@operation("ResyncMFADevice", arn_for(Kind.USER))
def resync_mfa_device(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = named(ctx, params, Kind.USER)
    device = _device(ctx, _serial(params))
    first, second = _codes(params)
    state = DeviceState.of(device)
    if state.user_id != user.id:
        raise NoSuchEntityError(f"MFA device `{device.arn}` is not enabled for user `{user.name}`")
    now_step = totp.step_at(ctx.now)
    steps = state.after(window(now_step, RESYNC_WINDOW, RESYNC_WINDOW))
    seed = open_seed(ctx.services.master_key, device)
    accepted = None if first == second else totp.find_consecutive(seed, first, second, steps)
    if accepted is None:
        raise InvalidAuthenticationCodeError(INVALID_CODES.format(device.arn))
    synced = replace(state, last_step=accepted, drift=accepted - now_step)
    ctx.store.update_entity(synced.applied_to(device))
    return {}


@operation("DeactivateMFADevice", user_resource_or_self)
def deactivate_mfa_device(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = caller_or_named_user(ctx, params)
    device = _device(ctx, _serial(params))
    state = DeviceState.of(device)
    if user is None or not _enabled_for(user, device, state):
        owner = f"user `{user.name}`" if user is not None else "the root user"
        raise NoSuchEntityError(f"MFA device `{device.arn}` is not enabled for {owner}")
    # The last used step stays: a code used before deactivation is not good again.
    ctx.store.update_entity(replace(state, user_id=None, enabled=None, drift=0).applied_to(device))
    kept = [d for d in enabled_devices(user) if d["serial"] != device.arn]
    ctx.store.update_entity(_with_devices(user, kept))
    return {}


# --- reading ---------------------------------------------------------------------------------


@operation("ListMFADevices", user_resource_or_self, read_only=True)
def list_mfa_devices(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = caller_or_named_user(ctx, params)
    devices = sorted(enabled_devices(user), key=lambda d: str(d["serial"])) if user else []
    page, marker = paginate(devices, params, key=lambda d: str(d["serial"]))
    assert user is not None or not page
    listed = [
        {
            "UserName": user.name if user else "",
            "SerialNumber": d["serial"],
            "EnableDate": datetime.fromisoformat(str(d["enabled"])),
        }
        for d in page
    ]
    return page_result("MFADevices", listed, marker)


@operation("GetMFADevice", _device_resource, read_only=True)
def get_mfa_device(ctx: CallContext, params: Params) -> dict[str, Any]:
    device = _device(ctx, _serial(params))
    state = DeviceState.of(device)
    user = named(ctx, params, Kind.USER) if "UserName" in params.form else None
    if state.user_id is None or state.enabled is None or (user and state.user_id != user.id):
        raise NoSuchEntityError(f"MFA device `{device.arn}` is not enabled for this user")
    owner = user or ctx.store.get_entity_by_id(state.user_id)
    return {"UserName": owner.name, "SerialNumber": device.arn, "EnableDate": state.enabled}


def _virtual_shape(ctx: CallContext, device: Entity) -> dict[str, Any]:
    state = DeviceState.of(device)
    shape: dict[str, Any] = {"SerialNumber": device.arn}
    if state.user_id is not None:
        try:
            user = ctx.store.get_entity_by_id(state.user_id)
        except NoSuchEntityError:
            return shape
        user_shape = entity_dict(user)
        user_shape.pop("Tags", None)
        shape["User"] = user_shape
        shape["EnableDate"] = state.enabled
    return shape


@operation("ListVirtualMFADevices", lambda ctx, params: "*", read_only=True)
def list_virtual_mfa_devices(ctx: CallContext, params: Params) -> dict[str, Any]:
    status = params.form.get("AssignmentStatus", "Any")
    if status not in STATUSES:
        raise ValidationError(
            f"1 validation error detected: value `{status[:64]}` at `AssignmentStatus` failed "
            "to satisfy constraint: member must satisfy enum value set: [Assigned, Unassigned, "
            "Any]"
        )
    devices = [
        d
        for d in ctx.store.list_entities(ctx.account_id, Kind.MFA_DEVICE)
        if status == "Any" or (DeviceState.of(d).user_id is not None) == (status == "Assigned")
    ]
    page, marker = paginate(devices, params, key=lambda d: d.name.lower())
    return page_result("VirtualMFADevices", [_virtual_shape(ctx, d) for d in page], marker)


# --- tags ------------------------------------------------------------------------------------


def _device_tag_context(ctx: CallContext, params: Params) -> dict[str, object]:
    context = request_tag_context(params)
    try:
        device = _device(ctx, params.form.get("SerialNumber", ""))
    except NoSuchEntityError:
        return context
    context.update({f"aws:ResourceTag/{k}": v for k, v in device.tags.items()})
    return context


@operation("TagMFADevice", _device_resource, extra_context=_device_tag_context)
def tag_mfa_device(ctx: CallContext, params: Params) -> dict[str, Any]:
    device = _device(ctx, _serial(params))
    merged = merged_tags(device, params.tags())
    ctx.store.update_entity(replace(device, attrs={**device.attrs, "tags": merged}))
    return {}


@operation("UntagMFADevice", _device_resource, extra_context=_device_tag_context)
def untag_mfa_device(ctx: CallContext, params: Params) -> dict[str, Any]:
    device = _device(ctx, _serial(params))
    remove = {k.lower() for k in params.members("TagKeys")}
    kept = {k: v for k, v in device.tags.items() if k.lower() not in remove}
    ctx.store.update_entity(replace(device, attrs={**device.attrs, "tags": kept}))
    return {}


@operation("ListMFADeviceTags", _device_resource, read_only=True)
def list_mfa_device_tags(ctx: CallContext, params: Params) -> dict[str, Any]:
    device = _device(ctx, _serial(params))
    return {"Tags": tags_list(device.tags), "IsTruncated": False}
