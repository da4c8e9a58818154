"""What applying a directory file would change: a diff of the desired state against the store.

Each :class:`Change` is one line of output (``+ user alice``, ``~ role ci: trust policy``,
``- group old``) and the IAM calls that make it, so executing a plan is running IAM
operations and the audit trail names the equivalent IAM action of every write. Pruning is in
:mod:`fedbroker.iam.declarative.prune`.

The calls are ordered so that the directory never grants more than either the old or the new
state would while a plan runs: policies, groups, users and roles are created or updated first,
then relations are removed (detach, delete inline policy, leave group), then added, and only
then is anything pruned, dependents before what they depend on.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedbroker.directory.model import Account, Entity, Kind
from fedbroker.directory.store import Store
from fedbroker.iam.declarative import providers
from fedbroker.iam.declarative import prune as pruning
from fedbroker.iam.declarative.changes import (
    NOUN,
    Call,
    Change,
    Verb,
    policy_name,
    tag_calls,
    tag_form,
)
from fedbroker.iam.declarative.state import (
    DesiredGroup,
    DesiredPolicy,
    DesiredRole,
    DesiredState,
    DesiredUser,
    DirectoryFileError,
    Document,
    Ref,
)
from fedbroker.iam.operations.common import PARAM
from fedbroker.iam.operations.policies import MAX_VERSIONS

__all__ = ["Call", "Change", "Verb", "plan"]

# Phases, in the order their changes run. Identity providers are pruned last: the roles
# that trust them go first.
_ENTITIES, _REMOVE_RELATIONS, _ADD_RELATIONS = 0, 1, 2
_PRUNE = {kind: 3 + index for index, kind in enumerate(pruning.ORDER)}
_PRUNE_PROVIDERS = max(_PRUNE.values()) + 1
_DEFAULT_SESSION = 3600


def plan(
    store: Store, account: Account, desired: DesiredState, *, prune: bool = False
) -> list[Change]:
    """The changes that make ``account``'s directory match ``desired`` (none when it does).

    Entities the file names are authoritative for everything the format describes (an
    omitted field means its default: no tags, no policies, ...). Entities it does not name are
    left alone, unless ``prune``: then they are deleted, with what blocks their deletion,
    except users holding credentials the file has not released (see docs/directory-file.md).

    Raises :class:`DirectoryFileError` listing every problem (a reference to nothing, a change
    IAM does not allow, a protected deletion); nothing may be applied then.
    """
    return _Planner(store, account, desired, prune).run()


class _Planner:
    def __init__(self, store: Store, account: Account, desired: DesiredState, prune: bool) -> None:
        self.store = store
        self.account = account
        self.desired = desired
        self.prune = prune
        self.problems: list[str] = []
        self.phases: list[list[Change]] = [[] for _ in range(_PRUNE_PROVIDERS + 1)]
        self.current = {
            kind: {e.name.lower(): e for e in store.list_entities(account.id, kind)}
            for kind in pruning.ORDER  # the kinds the format describes
        }
        self.file_policies = {
            p.name.lower(): f"arn:aws:iam::{account.id}:policy{p.path}{p.name}"
            for p in desired.policies
        }
        self.file_groups = {g.name.lower(): g.name for g in desired.groups}

    def run(self) -> list[Change]:
        # Providers first: the roles created next may trust them.
        found = providers.plan(self.store, self.account, self.desired, self.prune)
        self.phases[_ENTITIES].extend(found.entities)
        self.phases[_REMOVE_RELATIONS].extend(found.remove)
        self.phases[_ADD_RELATIONS].extend(found.add)
        self.phases[_PRUNE_PROVIDERS].extend(found.prune)
        self.problems.extend(found.problems)
        for policy in self.desired.policies:
            self.policy(policy)
        for group in self.desired.groups:
            self.group(group)
        for user in self.desired.users:
            self.user(user)
        for role in self.desired.roles:
            self.role(role)
        if self.prune:
            for kind in pruning.ORDER:
                for entity in pruning.unnamed(self.desired, self.current[kind], kind):
                    changes, problems = pruning.tear_down(
                        self.store, self.account, self.desired, entity
                    )
                    self.phases[_PRUNE[kind]].extend(changes)
                    self.problems.extend(problems)
        if self.problems:
            raise DirectoryFileError(self.problems)
        return [change for phase in self.phases for change in phase]

    def add(
        self, phase: int, verb: Verb, kind: Kind, name: str, detail: str | None, *calls: Call
    ) -> None:
        if calls:
            self.phases[phase].append(Change(verb, kind, name, detail, calls))

    # --- references ------------------------------------------------------------------------

    def policy_arn(self, ref: Ref) -> str | None:
        """The ARN a policy reference will name once the plan has run (None: a problem)."""
        prefix = f"arn:aws:iam::{self.account.id}:policy/"
        if ref.text.startswith("arn:") and not ref.text.startswith(prefix):
            self.problems.append(
                f"{ref.where}: `{ref.text}` is not a customer managed policy of account "
                f"{self.account.id}"
            )
            return None
        name = policy_name(ref.text)
        arn = self.file_policies.get(name.lower())
        if arn is None:
            existing = self.current[Kind.POLICY].get(name.lower())
            if existing is None:
                self.problems.append(
                    f"{ref.where}: policy `{name}` is neither in the file nor in the directory"
                )
                return None
            if self.prune:
                self.problems.append(
                    f"{ref.where}: policy `{name}` is not in the file, so --prune would delete "
                    "it; add it to `policies`"
                )
                return None
            arn = existing.arn
        if ref.text.startswith("arn:") and ref.text != arn:
            self.problems.append(f"{ref.where}: `{ref.text}` does not match the policy `{arn}`")
            return None
        return arn

    def group_name(self, ref: Ref) -> str | None:
        name = self.file_groups.get(ref.text.lower())
        if name is not None:
            return name
        existing = self.current[Kind.GROUP].get(ref.text.lower())
        if existing is None:
            self.problems.append(
                f"{ref.where}: group `{ref.text}` is neither in the file nor in the directory"
            )
            return None
        if self.prune:
            self.problems.append(
                f"{ref.where}: group `{ref.text}` is not in the file, so --prune would delete "
                "it; add it to `groups`"
            )
            return None
        return existing.name

    def immutable(self, where: str, current: Entity, field: str, old: str, new: str) -> None:
        noun = current.kind.resource_type
        self.problems.append(
            f"{where}.{field}: the {field} of {noun} `{current.name}` is `{old}` and IAM cannot "
            f"change it to `{new}`; delete the {noun} first (or keep the {field})"
        )

    # --- entities --------------------------------------------------------------------------

    def policy(self, desired: DesiredPolicy) -> None:
        current = self.current[Kind.POLICY].get(desired.name.lower())
        if current is None:
            form = {
                "PolicyName": desired.name,
                "Path": desired.path,
                "PolicyDocument": desired.document.text,
                **tag_form(desired.tags),
            }
            if desired.description:
                form["Description"] = desired.description
            self.add(
                _ENTITIES, Verb.CREATE, Kind.POLICY, desired.name, None, Call("CreatePolicy", form)
            )
            return
        where, name = desired.where, current.name
        if current.name != desired.name:
            self.immutable(where, current, "name", current.name, desired.name)
        if current.path != desired.path:
            self.immutable(where, current, "path", current.path, desired.path)
        old_description = str(current.attrs.get("description") or "")
        if old_description != desired.description:
            self.immutable(where, current, "description", old_description, desired.description)
        arn = {"PolicyArn": current.arn}
        versions = self.store.list_versions(current)
        default = next((v for v in versions if v.is_default), None)
        if not versions:
            # A policy without versions (CreatePolicy is atomic now, but a directory written
            # by an older release may hold one): write v1, as its creator would have.
            form = {**arn, "PolicyDocument": desired.document.text}
            call = Call("CreatePolicyVersion", form, local=True)
            self.add(_ENTITIES, Verb.UPDATE, Kind.POLICY, name, "document (version v1)", call)
        elif default is None or not desired.document.same_as(default.document):
            calls: list[Call] = []
            detail = f"document (new default version v{current.attrs.get('next_version', 2)}"
            if len(versions) >= MAX_VERSIONS:
                oldest = min(
                    (v for v in versions if not v.is_default), key=lambda v: int(v.version_id[1:])
                )
                calls.append(Call("DeletePolicyVersion", {**arn, "VersionId": oldest.version_id}))
                detail += f", deletes {oldest.version_id}"
            form = {**arn, "PolicyDocument": desired.document.text, "SetAsDefault": "true"}
            calls.append(Call("CreatePolicyVersion", form))
            self.add(_ENTITIES, Verb.UPDATE, Kind.POLICY, name, detail + ")", *calls)
        retag = tag_calls("Policy", arn, current.tags, desired.tags)
        local = (Call(c.action, c.form, local=True) for c in retag)
        self.add(_ENTITIES, Verb.UPDATE, Kind.POLICY, name, "tags", *local)

    def group(self, desired: DesiredGroup) -> None:
        current = self.current[Kind.GROUP].get(desired.name.lower())
        if current is None:
            form = {"GroupName": desired.name, "Path": desired.path}
            self.add(
                _ENTITIES, Verb.CREATE, Kind.GROUP, desired.name, None, Call("CreateGroup", form)
            )
        else:
            self.rename_or_move(current, desired.name, desired.path)
        self.relations(Kind.GROUP, desired.name, current, desired.policies, desired.inline)

    def user(self, desired: DesiredUser) -> None:
        current = self.current[Kind.USER].get(desired.name.lower())
        boundary = self.boundary(desired.permissions_boundary)
        if current is None:
            form = {"UserName": desired.name, "Path": desired.path, **tag_form(desired.tags)}
            if boundary:
                form["PermissionsBoundary"] = boundary
            self.add(
                _ENTITIES, Verb.CREATE, Kind.USER, desired.name, None, Call("CreateUser", form)
            )
        else:
            self.rename_or_move(current, desired.name, desired.path)
            self.attributes(current, desired.name, boundary, desired.tags)
        wanted = [n for ref in desired.groups if (n := self.group_name(ref)) is not None]
        held = {g.name.lower(): g.name for g in self.store.groups_of(current)} if current else {}
        for key, group in held.items():
            if key not in {n.lower() for n in wanted}:
                form = {"GroupName": group, "UserName": desired.name}
                call = Call("RemoveUserFromGroup", form)
                self.add(
                    _REMOVE_RELATIONS, Verb.DELETE, Kind.USER, desired.name, f"group {group}", call
                )
        for group in wanted:
            if group.lower() not in held:
                call = Call("AddUserToGroup", {"GroupName": group, "UserName": desired.name})
                self.add(
                    _ADD_RELATIONS, Verb.CREATE, Kind.USER, desired.name, f"group {group}", call
                )
        self.relations(Kind.USER, desired.name, current, desired.policies, desired.inline)

    def role(self, desired: DesiredRole) -> None:
        current = self.current[Kind.ROLE].get(desired.name.lower())
        boundary = self.boundary(desired.permissions_boundary)
        name = desired.name
        if current is None:
            form = {
                "RoleName": name,
                "Path": desired.path,
                "AssumeRolePolicyDocument": desired.trust.text,
                "MaxSessionDuration": str(desired.max_session_duration),
                **tag_form(desired.tags),
            }
            if desired.description:
                form["Description"] = desired.description
            if boundary:
                form["PermissionsBoundary"] = boundary
            self.add(_ENTITIES, Verb.CREATE, Kind.ROLE, name, None, Call("CreateRole", form))
        else:
            if current.name != name:
                self.immutable(desired.where, current, "name", current.name, name)
            if current.path != desired.path:
                self.immutable(desired.where, current, "path", current.path, desired.path)
            name = current.name
            if not desired.trust.same_as(str(current.attrs.get("trust_policy", ""))):
                form = {"RoleName": name, "PolicyDocument": desired.trust.text}
                call = Call("UpdateAssumeRolePolicy", form)
                self.add(_ENTITIES, Verb.UPDATE, Kind.ROLE, name, "trust policy", call)
            duration = current.attrs.get("max_session_duration", _DEFAULT_SESSION)
            if duration != desired.max_session_duration:
                new = desired.max_session_duration
                form = {"RoleName": name, "MaxSessionDuration": str(new)}
                detail = f"max session duration {duration} → {new}"
                self.add(_ENTITIES, Verb.UPDATE, Kind.ROLE, name, detail, Call("UpdateRole", form))
            if str(current.attrs.get("description") or "") != desired.description:
                form = {"RoleName": name, "Description": desired.description}
                call = Call("UpdateRole", form)
                self.add(_ENTITIES, Verb.UPDATE, Kind.ROLE, name, "description", call)
            self.attributes(current, name, boundary, desired.tags)
        self.relations(Kind.ROLE, name, current, desired.policies, desired.inline)

    def boundary(self, ref: Ref | None) -> str | None:
        return self.policy_arn(ref) if ref is not None else None

    def rename_or_move(self, current: Entity, name: str, path: str) -> None:
        noun = NOUN[current.kind]
        form = {PARAM[current.kind]: current.name}
        details = []
        if current.name != name:
            form[f"New{noun}Name"] = name
            details.append(f"name {current.name} → {name}")
        if current.path != path:
            form["NewPath"] = path
            details.append(f"path {current.path} → {path}")
        if details:
            call = Call(f"Update{noun}", form)
            self.add(_ENTITIES, Verb.UPDATE, current.kind, name, ", ".join(details), call)

    def attributes(
        self, current: Entity, name: str, boundary: str | None, tags: Mapping[str, str]
    ) -> None:
        """Permissions boundary and tags of an existing user or role."""
        noun, target = NOUN[current.kind], {PARAM[current.kind]: name}
        if current.attrs.get("permissions_boundary") != boundary:
            action = (
                f"Put{noun}PermissionsBoundary" if boundary else f"Delete{noun}PermissionsBoundary"
            )
            form = {**target, "PermissionsBoundary": boundary} if boundary else target
            call = Call(action, form)
            self.add(_ENTITIES, Verb.UPDATE, current.kind, name, "permissions boundary", call)
        retag = tag_calls(noun, target, current.tags, tags)
        self.add(_ENTITIES, Verb.UPDATE, current.kind, name, "tags", *retag)

    def relations(
        self,
        kind: Kind,
        name: str,
        current: Entity | None,
        refs: tuple[Ref, ...],
        inline: Mapping[str, Document],
    ) -> None:
        """Attached managed policies and inline policies of a user, group or role."""
        noun, owner = NOUN[kind], {PARAM[kind]: name}
        wanted = [arn for ref in refs if (arn := self.policy_arn(ref)) is not None]
        attached = [p.arn for p in self.store.attached(current)] if current else []
        for arn in attached:
            if arn not in wanted:
                call = Call(f"Detach{noun}Policy", {**owner, "PolicyArn": arn})
                detail = f"policy {policy_name(arn)}"
                self.add(_REMOVE_RELATIONS, Verb.DELETE, kind, name, detail, call)
        for arn in wanted:
            if arn not in attached:
                call = Call(f"Attach{noun}Policy", {**owner, "PolicyArn": arn})
                detail = f"policy {policy_name(arn)}"
                self.add(_ADD_RELATIONS, Verb.CREATE, kind, name, detail, call)
        held = {p.name.lower(): p for p in self.store.list_inline(current)} if current else {}
        wanted_inline = {key.lower() for key in inline}
        for key, policy in held.items():
            if key not in wanted_inline:
                call = Call(f"Delete{noun}Policy", {**owner, "PolicyName": policy.name})
                detail = f"inline policy {policy.name}"
                self.add(_REMOVE_RELATIONS, Verb.DELETE, kind, name, detail, call)
        puts: list[tuple[int, Change]] = []
        for inline_name, document in inline.items():
            old = held.get(inline_name.lower())
            if old is not None and old.name == inline_name and document.same_as(old.document):
                continue
            form = {**owner, "PolicyName": inline_name, "PolicyDocument": document.text}
            verb = Verb.CREATE if old is None else Verb.UPDATE
            change = Change(
                verb, kind, name, f"inline policy {inline_name}", (Call(f"Put{noun}Policy", form),)
            )
            # Shrinking documents first keeps every step under the owner's total size limit.
            growth = len(document.text) - (len(old.document) if old is not None else 0)
            puts.append((growth, change))
        self.phases[_ADD_RELATIONS].extend(change for _, change in sorted(puts, key=lambda p: p[0]))
