"""``--prune``: deleting what the file does not name, with what blocks each deletion.

A pruned user's group memberships, inline and attached policies go with it; a pruned role's
or group's inline and attached policies; a pruned policy's non-default versions. Nothing
else needs removing: a pruned group's members are users the file names (whose own diff
leaves the group, since under --prune they can only list groups of the file) or pruned
users; a pruned policy's attachments and boundary uses likewise belong to named entities
(which cannot refer to it) or pruned ones.

A user holding credentials is never deleted by accident: only when the file releases it by
name under ``prune.users_with_credentials``, and only if access keys are all it holds.
"""

from __future__ import annotations

from fedbroker.directory.model import Account, Entity, Kind
from fedbroker.directory.store import Store
from fedbroker.iam.declarative.changes import NOUN, Call, Change, Verb
from fedbroker.iam.declarative.state import DesiredState
from fedbroker.iam.operations.common import PARAM

# Deletion order: what depends on a thing goes before it.
ORDER = (Kind.USER, Kind.ROLE, Kind.GROUP, Kind.POLICY)


def unnamed(desired: DesiredState, current: dict[str, Entity], kind: Kind) -> list[Entity]:
    """The entities of ``kind`` (``current``, by lower-cased name) the file does not name."""
    named: dict[Kind, set[str]] = {
        Kind.POLICY: {policy.name.lower() for policy in desired.policies},
        Kind.GROUP: {group.name.lower() for group in desired.groups},
        Kind.USER: {user.name.lower() for user in desired.users},
        Kind.ROLE: {role.name.lower() for role in desired.roles},
    }
    keep = named[kind]
    return [entity for key, entity in current.items() if key not in keep]


def tear_down(
    store: Store, account: Account, desired: DesiredState, entity: Entity
) -> tuple[list[Change], list[str]]:
    """The changes that delete ``entity``, or the problems that forbid it."""
    kind, name = entity.kind, entity.name
    changes: list[Change] = []

    def add(detail: str | None, call: Call) -> None:
        changes.append(Change(Verb.DELETE, kind, name, detail, (call,)))

    if kind is Kind.POLICY:
        arn = {"PolicyArn": entity.arn}
        for version in store.list_versions(entity):
            if not version.is_default:
                form = {**arn, "VersionId": version.version_id}
                add(f"version {version.version_id}", Call("DeletePolicyVersion", form))
        add(None, Call("DeletePolicy", arn))
        return changes, []
    noun, owner = NOUN[kind], {PARAM[kind]: name}
    keys = []
    if kind is Kind.USER:
        keys = store.list_access_keys(account.id, entity)
        problem = _credentials_problem(entity, len(keys), desired)
        if problem is not None:
            return [], [problem]
        for group in store.groups_of(entity):
            form = {"GroupName": group.name, "UserName": name}
            add(f"group {group.name}", Call("RemoveUserFromGroup", form))
    for inline in store.list_inline(entity):
        form = {**owner, "PolicyName": inline.name}
        add(f"inline policy {inline.name}", Call(f"Delete{noun}Policy", form))
    for policy in store.attached(entity):
        form = {**owner, "PolicyArn": policy.arn}
        add(f"policy {policy.name}", Call(f"Detach{noun}Policy", form))
    for key in keys:
        form = {**owner, "AccessKeyId": key.access_key_id}
        add(f"access key {key.access_key_id}", Call("DeleteAccessKey", form))
    add(None, Call(f"Delete{noun}", owner))
    return changes, []


def _credentials_problem(user: Entity, keys: int, desired: DesiredState) -> str | None:
    held = []
    if keys:
        held.append(f"{keys} access key{'s' if keys > 1 else ''}")
    if user.attrs.get("login_profile"):
        held.append("a console password")
    if user.attrs.get("mfa_devices"):
        held.append("MFA devices")
    if not held:
        return None
    if user.name.lower() not in desired.prunable_users_with_credentials:
        return (
            f"--prune: user `{user.name}` is not in the file but has {' and '.join(held)}; "
            "add it to `users`, or list it under `prune.users_with_credentials` to delete it "
            "together with its access keys"
        )
    if len(held) > 1 or not keys:
        return (
            f"--prune: user `{user.name}` has {' and '.join(held)}; fedbroker apply deletes "
            "access keys but not console passwords or MFA devices: remove those first"
        )
    return None
