"""Writing the directory in the directory-file format, so that applying it changes nothing.

Defaults are left out (path ``/``, no tags, a one-hour session, ...), managed policies are
named by name (unique in an account), documents are written as mappings, SAML metadata
inline. Credentials (access keys, passwords) and non-default policy versions are not part of
the format.
"""

from __future__ import annotations

import json
from typing import Any

from fedbroker.directory.model import Account, Entity, Kind
from fedbroker.directory.store import Store
from fedbroker.iam.declarative import providers
from fedbroker.iam.declarative.state import FORMAT_VERSION

_DEFAULT_SESSION = 3600


def export(store: Store, account: Account) -> dict[str, Any]:
    """``account``'s users, groups, roles, customer managed policies and identity providers
    as file data."""
    policies = store.list_entities(account.id, Kind.POLICY)
    names = {policy.arn: policy.name for policy in policies}
    sections: dict[str, list[dict[str, Any]]] = {
        "policies": [_policy(store, policy) for policy in policies],
        "groups": [
            _owner(store, group, names, _base(group))
            for group in store.list_entities(account.id, Kind.GROUP)
        ],
        "users": [_user(store, user, names) for user in store.list_entities(account.id, Kind.USER)],
        "roles": [_role(store, role, names) for role in store.list_entities(account.id, Kind.ROLE)],
    }
    data: dict[str, Any] = {"version": FORMAT_VERSION}
    data.update({key: items for key, items in sections.items() if items})
    provider_section = providers.export(store, account)
    if provider_section is not None:
        data["providers"] = provider_section
    return data


def _document(text: str) -> object:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


def _base(entity: Entity) -> dict[str, Any]:
    out: dict[str, Any] = {"name": entity.name}
    if entity.path != "/":
        out["path"] = entity.path
    return out


def _policy(store: Store, policy: Entity) -> dict[str, Any]:
    out = _base(policy)
    if policy.attrs.get("description"):
        out["description"] = policy.attrs["description"]
    default = next((v for v in store.list_versions(policy) if v.is_default), None)
    out["document"] = _document(default.document) if default is not None else {}
    if policy.tags:
        out["tags"] = policy.tags
    return out


def _owner(
    store: Store, owner: Entity, names: dict[str, str], out: dict[str, Any]
) -> dict[str, Any]:
    """Attached managed policies, inline policies, permissions boundary and tags."""
    attached = [names.get(policy.arn, policy.arn) for policy in store.attached(owner)]
    if attached:
        out["policies"] = attached
    inline = {policy.name: _document(policy.document) for policy in store.list_inline(owner)}
    if inline:
        out["inline"] = inline
    boundary = owner.attrs.get("permissions_boundary")
    if isinstance(boundary, str):
        out["permissions_boundary"] = names.get(boundary, boundary)
    if owner.tags:
        out["tags"] = owner.tags
    return out


def _user(store: Store, user: Entity, names: dict[str, str]) -> dict[str, Any]:
    out = _base(user)
    groups = [group.name for group in store.groups_of(user)]
    if groups:
        out["groups"] = groups
    return _owner(store, user, names, out)


def _role(store: Store, role: Entity, names: dict[str, str]) -> dict[str, Any]:
    out = _base(role)
    if role.attrs.get("description"):
        out["description"] = role.attrs["description"]
    duration = role.attrs.get("max_session_duration", _DEFAULT_SESSION)
    if duration != _DEFAULT_SESSION:
        out["max_session_duration"] = duration
    out["trust"] = _document(str(role.attrs.get("trust_policy", "")))
    return _owner(store, role, names, out)
