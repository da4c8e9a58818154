"""Storage conformance: what every Store backend must do, checked through the protocol only.

Modelled on Dex's ``storage/conformance``: each test takes the ``store`` fixture, which is
parametrized over every backend (SQLite and PostgreSQL), so a backend that passes this module
can stand in for any other. Concurrency is in ``test_store_concurrency.py``, schema migrations
(SQL-specific) in ``test_migrations.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from fedbroker.directory import ids
from fedbroker.directory.model import (
    AccessKey,
    Account,
    Entity,
    KeyAlgorithm,
    KeyPurpose,
    KeyState,
    KeyStatus,
    Kind,
)
from fedbroker.directory.store import Store
from fedbroker.errors import EntityAlreadyExistsError, NoSuchEntityError
from tests.directory.builders import (
    T0,
    OpenStore,
    at,
    is_utc,
    new_account,
    new_entity,
    new_key,
    policy_document,
    ring_key,
    version,
)

ALL_KINDS = list(Kind)
OWNER_KINDS = [Kind.USER, Kind.GROUP, Kind.ROLE]


@pytest.fixture
def account(store: Store) -> Account:
    return new_account(store, alias="example")


def names(entities: list[Entity]) -> list[str]:
    return [e.name for e in entities]


# --- accounts ---------------------------------------------------------------------------------


def test_account_round_trips(store: Store) -> None:
    created = new_account(store, alias="acme", created=at(5))
    found = store.get_account(created.id)
    assert found == created
    assert is_utc(found.created)
    assert found.root_arn == f"arn:aws:iam::{created.id}:root"


def test_missing_account_is_no_such_entity(store: Store) -> None:
    with pytest.raises(NoSuchEntityError):
        store.get_account("123456789012")


def test_account_id_is_unique(store: Store) -> None:
    first = new_account(store, alias="one")
    with pytest.raises(EntityAlreadyExistsError):
        new_account(store, alias="two", account_id=first.id)
    assert store.list_accounts() == [first]


def test_account_alias_is_unique_but_may_be_absent(store: Store) -> None:
    new_account(store, alias="acme")
    with pytest.raises(EntityAlreadyExistsError):
        new_account(store, alias="acme")
    new_account(store, alias=None)
    new_account(store, alias=None)
    assert len(store.list_accounts()) == 3


def test_accounts_are_listed_oldest_first(store: Store) -> None:
    later = new_account(store, alias="later", created=at(10))
    earlier = new_account(store, alias="earlier", created=at(1))
    assert store.list_accounts() == [earlier, later]


def test_account_settings_alias_and_root_credentials_update(store: Store) -> None:
    from dataclasses import replace

    account = new_account(store, alias="first")
    version = store.directory_version()
    policy = {"MinimumPasswordLength": 14, "RequireSymbols": True}
    changed = replace(
        account, alias="second", root_password_hash="scrypt$x", settings={"password_policy": policy}
    )
    store.update_account(changed)
    assert store.get_account(account.id) == changed
    assert store.directory_version() == version + 1
    other = new_account(store, alias="other")
    with pytest.raises(EntityAlreadyExistsError):
        store.update_account(replace(other, alias="second"))
    with pytest.raises(NoSuchEntityError):
        store.update_account(replace(account, id="999999999999"))
    assert store.get_account(other.id).alias == "other"


def test_long_entity_names_fit(store: Store, account: Account) -> None:
    url = "idp.example.com/" + "x" * 240  # OIDC provider URLs run to 255 characters
    provider = new_entity(store, account, Kind.OIDC_PROVIDER, url)
    assert store.get_entity(account.id, Kind.OIDC_PROVIDER, url.upper()) == provider


# --- entities ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.resource_type)
def test_entity_round_trips(store: Store, account: Account, kind: Kind) -> None:
    attrs: dict[str, object] = {
        "tags": {"team": "payments", "cost-center": "42", "ünïcode": "✓"},
        "description": "line one\nline two",
        "max_session_duration": 3600,
        "permissions_boundary": None,
        "mfa_devices": [{"serial": "arn:aws:iam::123456789012:mfa/alice", "enabled": True}],
    }
    entity = new_entity(store, account, kind, "Thing", path="/eng/", attrs=attrs, created=at(3))
    by_name = store.get_entity(account.id, kind, "Thing")
    assert by_name == entity
    assert store.get_entity_by_id(entity.id) == entity
    assert by_name.attrs == attrs
    assert by_name.tags == attrs["tags"]
    assert is_utc(by_name.created)
    assert by_name.arn == f"arn:aws:iam::{account.id}:{kind.resource_type}/eng/Thing"


def test_names_are_found_without_regard_to_case(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "Alice")
    assert store.get_entity(account.id, Kind.USER, "ALICE") == alice
    assert store.get_entity(account.id, Kind.USER, "alice").name == "Alice"


def test_missing_entities_are_no_such_entity(store: Store, account: Account) -> None:
    new_entity(store, account, Kind.GROUP, "alice")
    with pytest.raises(NoSuchEntityError):
        store.get_entity(account.id, Kind.USER, "alice")
    with pytest.raises(NoSuchEntityError):
        store.get_entity_by_id(ids.new_unique_id(Kind.USER.id_prefix))


def test_names_are_unique_without_regard_to_case(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "alice")
    version_before = store.directory_version()
    with pytest.raises(EntityAlreadyExistsError):
        new_entity(store, account, Kind.USER, "ALICE")
    assert store.list_entities(account.id, Kind.USER) == [alice]
    assert store.directory_version() == version_before


def test_entity_ids_are_unique(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "alice")
    with pytest.raises(EntityAlreadyExistsError):
        store.create_entity(dataclasses.replace(alice, name="bob"))


def test_one_name_may_be_used_by_each_kind(store: Store, account: Account) -> None:
    made = {kind: new_entity(store, account, kind, "Admins") for kind in ALL_KINDS}
    for kind, entity in made.items():
        assert store.get_entity(account.id, kind, "admins") == entity


def test_names_are_unique_per_account(store: Store, account: Account) -> None:
    other = new_account(store, alias="other")
    mine = new_entity(store, account, Kind.USER, "alice")
    theirs = new_entity(store, other, Kind.USER, "alice")
    assert store.get_entity(account.id, Kind.USER, "alice") == mine
    assert store.get_entity(other.id, Kind.USER, "alice") == theirs


def test_entity_in_missing_account_is_no_such_entity(store: Store) -> None:
    ghost = Account("999999999999", None, "x@example.com", "x", T0)
    with pytest.raises(NoSuchEntityError):
        new_entity(store, ghost, Kind.USER, "alice")


def test_entities_are_listed_by_name_per_account_and_kind(store: Store, account: Account) -> None:
    other = new_account(store, alias="other")
    for name in ("carol", "Bob", "alice", "dave"):
        new_entity(store, account, Kind.USER, name)
    new_entity(store, account, Kind.GROUP, "admins")
    new_entity(store, other, Kind.USER, "eve")
    assert names(store.list_entities(account.id, Kind.USER)) == ["alice", "Bob", "carol", "dave"]
    assert names(store.list_entities(account.id, Kind.GROUP)) == ["admins"]
    assert names(store.list_entities(other.id, Kind.USER)) == ["eve"]
    assert store.list_entities(account.id, Kind.ROLE) == []


def test_entities_are_filtered_by_path_prefix(store: Store, account: Account) -> None:
    for name, path in [
        ("root", "/"),
        ("eng", "/eng/"),
        ("team", "/eng/team/"),
        ("engineering", "/engineering/"),
        ("sales", "/sales/"),
    ]:
        new_entity(store, account, Kind.ROLE, name, path=path)
    assert names(store.list_entities(account.id, Kind.ROLE, "/")) == [
        "eng",
        "engineering",
        "root",
        "sales",
        "team",
    ]
    assert names(store.list_entities(account.id, Kind.ROLE, "/eng/")) == ["eng", "team"]
    assert names(store.list_entities(account.id, Kind.ROLE, "/eng")) == [
        "eng",
        "engineering",
        "team",
    ]
    assert names(store.list_entities(account.id, Kind.ROLE, "/eng/team/")) == ["team"]
    assert store.list_entities(account.id, Kind.ROLE, "/nowhere/") == []


def test_update_changes_path_and_attributes(store: Store, account: Account) -> None:
    role = new_entity(store, account, Kind.ROLE, "deploy", attrs={"description": "old"})
    changed = dataclasses.replace(role, path="/ci/", attrs={"description": "new", "tags": {}})
    store.update_entity(changed)
    assert store.get_entity(account.id, Kind.ROLE, "deploy") == changed
    assert store.get_entity_by_id(role.id) == changed


def test_rename(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "alice")
    renamed = dataclasses.replace(alice, name="alicia")
    store.update_entity(renamed)
    assert store.get_entity(account.id, Kind.USER, "alicia") == renamed
    assert store.get_entity_by_id(alice.id) == renamed
    with pytest.raises(NoSuchEntityError):
        store.get_entity(account.id, Kind.USER, "alice")
    new_entity(store, account, Kind.USER, "alice")  # the old name is free again


def test_rename_may_change_only_case(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "alice")
    store.update_entity(dataclasses.replace(alice, name="Alice"))
    assert store.get_entity(account.id, Kind.USER, "alice").name == "Alice"


def test_rename_onto_a_taken_name_changes_nothing(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "alice")
    new_entity(store, account, Kind.USER, "bob")
    new_entity(store, account, Kind.GROUP, "carol")
    version_before = store.directory_version()
    with pytest.raises(EntityAlreadyExistsError):
        store.update_entity(dataclasses.replace(alice, name="BOB"))
    assert store.get_entity_by_id(alice.id) == alice
    assert store.directory_version() == version_before
    store.update_entity(dataclasses.replace(alice, name="carol"))  # a group's name: allowed


def test_update_of_missing_entity_is_no_such_entity(store: Store, account: Account) -> None:
    ghost = Entity(Kind.USER, account.id, "ghost", ids.new_unique_id("AIDA"), "/", T0)
    with pytest.raises(NoSuchEntityError):
        store.update_entity(ghost)
    with pytest.raises(NoSuchEntityError):
        store.get_entity(account.id, Kind.USER, "ghost")


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.resource_type)
def test_delete(store: Store, account: Account, kind: Kind) -> None:
    entity = new_entity(store, account, kind, "temp")
    keep = new_entity(store, account, kind, "keep")
    store.delete_entity(entity)
    with pytest.raises(NoSuchEntityError):
        store.get_entity(account.id, kind, "temp")
    with pytest.raises(NoSuchEntityError):
        store.get_entity_by_id(entity.id)
    assert store.list_entities(account.id, kind) == [keep]
    with pytest.raises(NoSuchEntityError):
        store.delete_entity(entity)
    again = new_entity(store, account, kind, "TEMP")  # the name is free again
    assert store.get_entity(account.id, kind, "temp") == again


def test_deleting_a_user_removes_everything_hanging_off_it(store: Store, account: Account) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    other = new_entity(store, account, Kind.USER, "bob")
    group = new_entity(store, account, Kind.GROUP, "devs")
    policy = new_entity(store, account, Kind.POLICY, "read")
    store.add_member(group, user)
    store.add_member(group, other)
    store.attach(user, policy)
    store.attach(other, policy)
    store.put_inline(user, "own", policy_document())
    key = new_key(store, account, user)
    other_key = new_key(store, account, other)

    store.delete_entity(user)

    assert store.members_of(group) == [other]
    assert store.attached_to(policy) == [other]
    assert store.list_inline(user) == []
    assert store.groups_of(user) == []
    assert store.attached(user) == []
    with pytest.raises(NoSuchEntityError):
        store.get_access_key(key.access_key_id)
    assert store.list_access_keys(account.id, user) == []
    assert store.list_access_keys(account.id, other) == [other_key]


def test_deleting_a_group_removes_its_memberships_and_attachments(
    store: Store, account: Account
) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    group = new_entity(store, account, Kind.GROUP, "devs")
    other_group = new_entity(store, account, Kind.GROUP, "ops")
    policy = new_entity(store, account, Kind.POLICY, "read")
    store.add_member(group, user)
    store.add_member(other_group, user)
    store.attach(group, policy)
    store.put_inline(group, "inline", policy_document())

    store.delete_entity(group)

    assert store.groups_of(user) == [other_group]
    assert store.attached_to(policy) == []
    assert store.list_inline(group) == []
    assert store.get_entity(account.id, Kind.USER, "alice") == user


def test_deleting_a_policy_detaches_it_and_drops_its_versions(
    store: Store, account: Account
) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    role = new_entity(store, account, Kind.ROLE, "deploy")
    policy = new_entity(store, account, Kind.POLICY, "read")
    kept = new_entity(store, account, Kind.POLICY, "write")
    for owner in (user, role):
        store.attach(owner, policy)
        store.attach(owner, kept)
    store.add_version(policy, version(policy, 1, default=True))
    store.add_version(kept, version(kept, 1, default=True))

    store.delete_entity(policy)

    assert store.attached(user) == [kept]
    assert store.attached(role) == [kept]
    assert store.list_versions(policy) == []
    assert [v.version_id for v in store.list_versions(kept)] == ["v1"]


@pytest.mark.parametrize("kind", OWNER_KINDS, ids=lambda k: k.resource_type)
def test_renaming_keeps_relations(store: Store, account: Account, kind: Kind) -> None:
    owner = new_entity(store, account, kind, "before")
    policy = new_entity(store, account, Kind.POLICY, "read")
    store.attach(owner, policy)
    store.put_inline(owner, "Inline", policy_document())
    user = new_entity(store, account, Kind.USER, "member")
    group = new_entity(store, account, Kind.GROUP, "team")
    if kind is Kind.USER:
        store.add_member(group, owner)
        key = new_key(store, account, owner)
    if kind is Kind.GROUP:
        store.add_member(owner, user)

    store.update_entity(dataclasses.replace(owner, name="after", path="/moved/"))
    renamed = store.get_entity(account.id, kind, "after")

    assert store.attached(renamed) == [policy]
    assert [o.name for o in store.attached_to(policy)] == ["after"]
    [inline] = store.list_inline(renamed)
    assert (inline.owner_kind, inline.owner_name, inline.name) == (kind, "after", "Inline")
    assert store.get_inline(renamed, "inline").document == policy_document()
    if kind is Kind.USER:
        assert store.groups_of(renamed) == [group]
        assert names(store.members_of(group)) == ["after"]
        assert store.list_access_keys(account.id, renamed) == [key]
    if kind is Kind.GROUP:
        assert store.members_of(renamed) == [user]
        assert names(store.groups_of(user)) == ["after"]


def test_renaming_a_policy_keeps_attachments_and_versions(store: Store, account: Account) -> None:
    policy = new_entity(store, account, Kind.POLICY, "read")
    user = new_entity(store, account, Kind.USER, "alice")
    store.attach(user, policy)
    store.add_version(policy, version(policy, 1, default=True))
    store.update_entity(dataclasses.replace(policy, name="read-only"))
    renamed = store.get_entity(account.id, Kind.POLICY, "read-only")
    assert store.attached(user) == [renamed]
    assert store.attached_to(renamed) == [user]
    [v1] = store.list_versions(renamed)
    assert (v1.version_id, v1.is_default, v1.policy_arn) == ("v1", True, renamed.arn)


# --- group membership -------------------------------------------------------------------------


def test_membership(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "alice")
    bob = new_entity(store, account, Kind.USER, "Bob")
    devs = new_entity(store, account, Kind.GROUP, "devs")
    admins = new_entity(store, account, Kind.GROUP, "Admins")
    store.add_member(devs, bob)
    store.add_member(devs, alice)
    store.add_member(admins, alice)
    assert store.members_of(devs) == [alice, bob]
    assert store.members_of(admins) == [alice]
    assert store.groups_of(alice) == [admins, devs]
    assert store.groups_of(bob) == [devs]

    store.remove_member(devs, alice)
    assert store.members_of(devs) == [bob]
    assert store.groups_of(alice) == [admins]


def test_adding_a_member_twice_is_one_membership(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "alice")
    devs = new_entity(store, account, Kind.GROUP, "devs")
    store.add_member(devs, alice)
    store.add_member(devs, alice)
    assert store.members_of(devs) == [alice]
    store.remove_member(devs, alice)
    assert store.members_of(devs) == []


def test_removing_a_non_member_is_no_such_entity(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "alice")
    bob = new_entity(store, account, Kind.USER, "bob")
    devs = new_entity(store, account, Kind.GROUP, "devs")
    store.add_member(devs, bob)
    with pytest.raises(NoSuchEntityError):
        store.remove_member(devs, alice)
    assert store.members_of(devs) == [bob]


def test_membership_of_a_deleted_entity_is_no_such_entity(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "alice")
    devs = new_entity(store, account, Kind.GROUP, "devs")
    store.delete_entity(alice)
    with pytest.raises(NoSuchEntityError):
        store.add_member(devs, alice)
    assert store.members_of(devs) == []


# --- managed policy attachments ---------------------------------------------------------------


def test_attachments(store: Store, account: Account) -> None:
    read = new_entity(store, account, Kind.POLICY, "read")
    write = new_entity(store, account, Kind.POLICY, "Write")
    owners = [new_entity(store, account, kind, f"{kind.resource_type}-x") for kind in OWNER_KINDS]
    for owner in owners:
        store.attach(owner, read)
    store.attach(owners[0], write)

    assert store.attached(owners[0]) == [read, write]
    assert store.attached(owners[1]) == [read]
    assert names(store.attached_to(read)) == ["group-x", "role-x", "user-x"]
    assert store.attached_to(write) == [owners[0]]

    store.detach(owners[0], read)
    assert store.attached(owners[0]) == [write]
    assert names(store.attached_to(read)) == ["group-x", "role-x"]


def test_attaching_twice_is_one_attachment(store: Store, account: Account) -> None:
    role = new_entity(store, account, Kind.ROLE, "deploy")
    policy = new_entity(store, account, Kind.POLICY, "read")
    store.attach(role, policy)
    store.attach(role, policy)
    assert store.attached(role) == [policy]
    store.detach(role, policy)
    assert store.attached(role) == []


def test_detaching_what_is_not_attached_is_no_such_entity(store: Store, account: Account) -> None:
    role = new_entity(store, account, Kind.ROLE, "deploy")
    policy = new_entity(store, account, Kind.POLICY, "read")
    with pytest.raises(NoSuchEntityError):
        store.detach(role, policy)


def test_attaching_a_deleted_policy_is_no_such_entity(store: Store, account: Account) -> None:
    role = new_entity(store, account, Kind.ROLE, "deploy")
    policy = new_entity(store, account, Kind.POLICY, "read")
    store.delete_entity(policy)
    with pytest.raises(NoSuchEntityError):
        store.attach(role, policy)
    assert store.attached(role) == []


# --- inline policies --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", OWNER_KINDS, ids=lambda k: k.resource_type)
def test_inline_policies(store: Store, account: Account, kind: Kind) -> None:
    owner = new_entity(store, account, kind, "owner")
    store.put_inline(owner, "Zeta", policy_document("arn:aws:s3:::z"))
    store.put_inline(owner, "alpha", policy_document("arn:aws:s3:::a"))

    alpha = store.get_inline(owner, "alpha")
    assert (alpha.owner_kind, alpha.owner_name, alpha.name) == (kind, "owner", "alpha")
    assert alpha.document == policy_document("arn:aws:s3:::a")
    assert [p.name for p in store.list_inline(owner)] == ["alpha", "Zeta"]

    store.delete_inline(owner, "ZETA")
    assert store.list_inline(owner) == [alpha]
    with pytest.raises(NoSuchEntityError):
        store.get_inline(owner, "Zeta")


def test_putting_an_inline_policy_again_overwrites_it(store: Store, account: Account) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    store.put_inline(user, "Access", policy_document("arn:aws:s3:::old"))
    store.put_inline(user, "ACCESS", policy_document("arn:aws:s3:::new"))
    [only] = store.list_inline(user)
    assert only.name == "ACCESS"
    assert only.document == policy_document("arn:aws:s3:::new")
    assert store.get_inline(user, "access") == only


def test_inline_policies_belong_to_one_owner(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "alice")
    bob = new_entity(store, account, Kind.USER, "bob")
    same_name_group = new_entity(store, account, Kind.GROUP, "alice")
    store.put_inline(alice, "p", policy_document("arn:aws:s3:::alice"))
    store.put_inline(bob, "p", policy_document("arn:aws:s3:::bob"))
    assert store.get_inline(alice, "p").document == policy_document("arn:aws:s3:::alice")
    assert store.get_inline(bob, "p").document == policy_document("arn:aws:s3:::bob")
    assert store.list_inline(same_name_group) == []
    store.delete_inline(bob, "p")
    assert [p.name for p in store.list_inline(alice)] == ["p"]


def test_missing_inline_policy_is_no_such_entity(store: Store, account: Account) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    with pytest.raises(NoSuchEntityError):
        store.get_inline(user, "none")
    with pytest.raises(NoSuchEntityError):
        store.delete_inline(user, "none")


def test_inline_policy_of_a_deleted_owner_is_no_such_entity(store: Store, account: Account) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    store.delete_entity(user)
    with pytest.raises(NoSuchEntityError):
        store.put_inline(user, "p", policy_document())
    assert store.list_inline(user) == []


def test_documents_round_trip_exactly(store: Store, account: Account) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    document = '{\n  "Version": "2012-10-17",\t"Statement": [], "Sid": "ünï✓ \\u00e9 \'q\'"\n}'
    store.put_inline(user, "p", document)
    assert store.get_inline(user, "p").document == document


# --- managed policy versions ------------------------------------------------------------------


def test_versions_newest_first_with_one_default(store: Store, account: Account) -> None:
    policy = new_entity(store, account, Kind.POLICY, "read")
    v1 = version(policy, 1, default=True, created=at(1))
    v2 = version(policy, 2, created=at(2))
    store.add_version(policy, v1)
    store.add_version(policy, v2)
    assert store.list_versions(policy) == [v2, v1]

    v3 = version(policy, 3, default=True, created=at(3))
    store.add_version(policy, v3)
    listed = store.list_versions(policy)
    assert [v.version_id for v in listed] == ["v3", "v2", "v1"]
    assert [v.is_default for v in listed] == [True, False, False]
    assert all(is_utc(v.created) for v in listed)
    assert listed[0] == v3


def test_versions_sort_by_number(store: Store, account: Account) -> None:
    policy = new_entity(store, account, Kind.POLICY, "read")
    for number in (1, 2, 9, 10, 11):
        store.add_version(policy, version(policy, number, default=number == 1))
    assert [v.version_id for v in store.list_versions(policy)] == [
        "v11",
        "v10",
        "v9",
        "v2",
        "v1",
    ]


def test_set_default_version(store: Store, account: Account) -> None:
    policy = new_entity(store, account, Kind.POLICY, "read")
    for number in (1, 2, 3):
        store.add_version(policy, version(policy, number, default=number == 3))
    store.set_default_version(policy, "v1")
    assert [v.is_default for v in store.list_versions(policy)] == [False, False, True]

    version_before = store.directory_version()
    with pytest.raises(NoSuchEntityError):
        store.set_default_version(policy, "v7")
    assert [v.is_default for v in store.list_versions(policy)] == [False, False, True]
    assert store.directory_version() == version_before


def test_delete_version(store: Store, account: Account) -> None:
    policy = new_entity(store, account, Kind.POLICY, "read")
    for number in (1, 2, 3):
        store.add_version(policy, version(policy, number, default=number == 1))
    store.delete_version(policy, "v2")
    assert [v.version_id for v in store.list_versions(policy)] == ["v3", "v1"]
    with pytest.raises(NoSuchEntityError):
        store.delete_version(policy, "v2")
    with pytest.raises(NoSuchEntityError):
        store.set_default_version(policy, "v2")


def test_version_ids_are_unique_per_policy(store: Store, account: Account) -> None:
    read = new_entity(store, account, Kind.POLICY, "read")
    write = new_entity(store, account, Kind.POLICY, "write")
    store.add_version(read, version(read, 1, default=True))
    store.add_version(write, version(write, 1, default=True))
    with pytest.raises(EntityAlreadyExistsError):
        store.add_version(read, version(read, 1))
    store.add_version(write, version(write, 2, default=True))
    assert [v.is_default for v in store.list_versions(read)] == [True]
    assert [v.is_default for v in store.list_versions(write)] == [True, False]
    store.set_default_version(read, "v1")
    assert [v.is_default for v in store.list_versions(write)] == [True, False]


def test_version_of_a_deleted_policy_is_no_such_entity(store: Store, account: Account) -> None:
    policy = new_entity(store, account, Kind.POLICY, "read")
    store.delete_entity(policy)
    with pytest.raises(NoSuchEntityError):
        store.add_version(policy, version(policy, 1, default=True))


# --- access keys ------------------------------------------------------------------------------


def test_access_key_round_trips(store: Store, account: Account) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    secret = bytes(range(256)) * 2  # every byte value, NUL and high bytes included
    key = new_key(store, account, user, sealed_secret=secret, created=at(7))
    found = store.get_access_key(key.access_key_id)
    assert found == key
    assert found.sealed_secret == secret
    assert type(found.sealed_secret) is bytes
    assert is_utc(found.created)
    assert (found.last_used, found.last_used_service, found.last_used_region) == (None, None, None)


def test_access_keys_are_listed_per_user_oldest_first(store: Store, account: Account) -> None:
    alice = new_entity(store, account, Kind.USER, "alice")
    bob = new_entity(store, account, Kind.USER, "bob")
    newer = new_key(store, account, alice, created=at(5))
    older = new_key(store, account, alice, created=at(1))
    bobs = new_key(store, account, bob, created=at(3))
    assert store.list_access_keys(account.id, alice) == [older, newer]
    assert store.list_access_keys(account.id, bob) == [bobs]


def test_root_keys_are_listed_with_no_user(store: Store, account: Account) -> None:
    other = new_account(store, alias="other")
    alice = new_entity(store, account, Kind.USER, "alice")
    root_key = new_key(store, account, None)
    new_key(store, other, None)
    new_key(store, account, alice)
    assert store.list_access_keys(account.id, None) == [root_key]
    assert store.get_access_key(root_key.access_key_id).user_id is None


def test_access_key_status(store: Store, account: Account) -> None:
    key = new_key(store, account, None)
    store.set_access_key_status(key.access_key_id, KeyStatus.INACTIVE)
    assert store.get_access_key(key.access_key_id).status is KeyStatus.INACTIVE
    store.set_access_key_status(key.access_key_id, KeyStatus.ACTIVE)
    assert store.get_access_key(key.access_key_id) == key


def test_delete_access_key(store: Store, account: Account) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    gone = new_key(store, account, user, created=at(1))
    kept = new_key(store, account, user, created=at(2))
    store.delete_access_key(gone.access_key_id)
    with pytest.raises(NoSuchEntityError):
        store.get_access_key(gone.access_key_id)
    assert store.list_access_keys(account.id, user) == [kept]


def test_missing_access_key_is_no_such_entity(store: Store) -> None:
    missing = ids.new_access_key_id()
    with pytest.raises(NoSuchEntityError):
        store.get_access_key(missing)
    with pytest.raises(NoSuchEntityError):
        store.set_access_key_status(missing, KeyStatus.INACTIVE)
    with pytest.raises(NoSuchEntityError):
        store.delete_access_key(missing)


def test_access_key_ids_are_unique(store: Store, account: Account) -> None:
    key = new_key(store, account, None)
    with pytest.raises(EntityAlreadyExistsError):
        store.create_access_key(dataclasses.replace(key, sealed_secret=b"other"))
    assert store.get_access_key(key.access_key_id) == key


def test_access_key_of_a_deleted_user_is_no_such_entity(store: Store, account: Account) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    store.delete_entity(user)
    with pytest.raises(NoSuchEntityError):
        new_key(store, account, user)


def test_record_key_use(store: Store, account: Account) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    key = new_key(store, account, user)
    version_before = store.directory_version()

    store.record_key_use(key.access_key_id, at(30), "iam", "us-east-1")
    used = store.get_access_key(key.access_key_id)
    assert used == dataclasses.replace(
        key, last_used=at(30), last_used_service="iam", last_used_region="us-east-1"
    )
    assert is_utc(used.last_used)

    store.record_key_use(key.access_key_id, at(90), "sts", "eu-west-1")
    used = store.get_access_key(key.access_key_id)
    assert (used.last_used, used.last_used_service, used.last_used_region) == (
        at(90),
        "sts",
        "eu-west-1",
    )
    assert store.directory_version() == version_before


# --- the key ring -----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm), ids=lambda a: a.value)
def test_ring_key_round_trips(store: Store, algorithm: KeyAlgorithm) -> None:
    record = ring_key(algorithm, created=at(3))
    store.add_key(record)
    [found] = store.list_keys()
    assert found == record
    assert found.sealed_private == record.sealed_private  # bytes exactly, NUL and 0xff included
    assert found.purpose is algorithm.purpose
    assert is_utc(found.created)
    assert (found.retiring_since, found.retired_at) == (None, None)


def test_ring_keys_are_listed_oldest_first_and_by_purpose(store: Store) -> None:
    second = ring_key(KeyAlgorithm.ES256, created=at(2))
    first = ring_key(KeyAlgorithm.A256GCM, created=at(1))
    third = ring_key(KeyAlgorithm.A256GCM, created=at(3))
    fourth = ring_key(KeyAlgorithm.RS256, created=at(4))
    for record in (third, fourth, first, second):
        store.add_key(record)
    assert store.list_keys() == [first, second, third, fourth]
    assert store.list_keys(KeyPurpose.SEAL) == [first, third]
    assert store.list_keys(KeyPurpose.SIGN) == [second, fourth]


def test_ring_keys_sort_by_instant_across_zones(store: Store) -> None:
    # 13:00+02:00 is 11:00 UTC, before 12:00 UTC
    earlier = ring_key(created=datetime(2024, 5, 1, 13, tzinfo=timezone(timedelta(hours=2))))
    later = ring_key(created=datetime(2024, 5, 1, 12, tzinfo=UTC))
    store.add_key(later)
    store.add_key(earlier)
    assert store.list_keys() == [earlier, later]


def test_ring_key_ids_are_unique(store: Store) -> None:
    record = ring_key()
    store.add_key(record)
    with pytest.raises(EntityAlreadyExistsError):
        store.add_key(dataclasses.replace(record, sealed_private=b"other", created=at(9)))
    assert store.list_keys() == [record]


def test_ring_key_state_records_when(store: Store) -> None:
    record = ring_key(KeyAlgorithm.ES256)
    store.add_key(record)
    plus_two = timezone(timedelta(hours=2))

    store.set_key_state(record.kid, KeyState.RETIRING, at(10).astimezone(plus_two))
    [retiring] = store.list_keys()
    assert retiring == dataclasses.replace(record, state=KeyState.RETIRING, retiring_since=at(10))
    assert is_utc(retiring.retiring_since)

    store.set_key_state(record.kid, KeyState.RETIRED, at(20))
    [retired] = store.list_keys()
    assert retired == dataclasses.replace(
        record, state=KeyState.RETIRED, retiring_since=at(10), retired_at=at(20)
    )
    assert is_utc(retired.retired_at)

    store.set_key_state(record.kid, KeyState.ACTIVE, at(30))
    assert store.list_keys() == [record]


def test_state_of_a_missing_ring_key_is_no_such_entity(store: Store) -> None:
    with pytest.raises(NoSuchEntityError):
        store.set_key_state("a256gcm-missing", KeyState.RETIRED, T0)


# --- time -------------------------------------------------------------------------------------


def test_times_in_other_zones_come_back_as_the_same_instant_in_utc(
    store: Store,
) -> None:
    plus_two = datetime(2024, 5, 1, 14, 0, 0, 654321, tzinfo=timezone(timedelta(hours=2)))
    minus_five = datetime(2024, 5, 1, 7, 30, tzinfo=timezone(timedelta(hours=-5)))
    account = new_account(store, created=plus_two)
    user = new_entity(store, account, Kind.USER, "alice", created=minus_five)
    key = new_key(store, account, user, created=plus_two)
    store.record_key_use(key.access_key_id, minus_five, "iam", "us-east-1")
    policy = new_entity(store, account, Kind.POLICY, "read")
    store.add_version(policy, version(policy, 1, default=True, created=minus_five))

    found_account = store.get_account(account.id)
    found_user = store.get_entity_by_id(user.id)
    found_key = store.get_access_key(key.access_key_id)
    [found_version] = store.list_versions(policy)
    for found, expected in [
        (found_account.created, plus_two),
        (found_user.created, minus_five),
        (found_key.created, plus_two),
        (found_key.last_used, minus_five),
        (found_version.created, minus_five),
    ]:
        assert found == expected
        assert found is not None
        assert found.tzinfo is UTC or is_utc(found)
        assert found.astimezone(UTC).isoformat() == found.isoformat()


def test_keys_sort_by_instant_across_zones(store: Store, account: Account) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    # 13:00+02:00 is 11:00 UTC, before 12:00 UTC
    earlier = new_key(
        store, account, user, created=datetime(2024, 5, 1, 13, tzinfo=timezone(timedelta(hours=2)))
    )
    later = new_key(store, account, user, created=datetime(2024, 5, 1, 12, tzinfo=UTC))
    assert store.list_access_keys(account.id, user) == [earlier, later]


# --- directory version ------------------------------------------------------------------------


def test_every_write_bumps_the_directory_version_once(store: Store) -> None:
    account = Account(ids.new_account_id(), "acme", "root@example.com", "x", T0)
    user = Entity(Kind.USER, account.id, "alice", ids.new_unique_id("AIDA"), "/", T0)
    group = Entity(Kind.GROUP, account.id, "devs", ids.new_unique_id("AGPA"), "/", T0)
    policy = Entity(Kind.POLICY, account.id, "read", ids.new_unique_id("ANPA"), "/", T0)
    key = AccessKey(ids.new_access_key_id(), account.id, user.id, b"s", KeyStatus.ACTIVE, T0)
    ring = ring_key()
    writes: list[tuple[str, Callable[[], None]]] = [
        ("create_account", lambda: store.create_account(account)),
        ("create_entity user", lambda: store.create_entity(user)),
        ("create_entity group", lambda: store.create_entity(group)),
        ("create_entity policy", lambda: store.create_entity(policy)),
        ("update_entity", lambda: store.update_entity(dataclasses.replace(user, path="/x/"))),
        ("add_member", lambda: store.add_member(group, user)),
        ("remove_member", lambda: store.remove_member(group, user)),
        ("attach", lambda: store.attach(user, policy)),
        ("detach", lambda: store.detach(user, policy)),
        ("put_inline", lambda: store.put_inline(user, "p", policy_document())),
        ("put_inline again", lambda: store.put_inline(user, "p", policy_document("x"))),
        ("delete_inline", lambda: store.delete_inline(user, "p")),
        ("add_version", lambda: store.add_version(policy, version(policy, 1, default=True))),
        ("add_version 2", lambda: store.add_version(policy, version(policy, 2))),
        ("set_default_version", lambda: store.set_default_version(policy, "v2")),
        ("delete_version", lambda: store.delete_version(policy, "v1")),
        ("create_access_key", lambda: store.create_access_key(key)),
        (
            "set_access_key_status",
            lambda: store.set_access_key_status(key.access_key_id, KeyStatus.INACTIVE),
        ),
        ("delete_access_key", lambda: store.delete_access_key(key.access_key_id)),
        ("delete_entity", lambda: store.delete_entity(group)),
        ("add_key", lambda: store.add_key(ring)),
        ("set_key_state", lambda: store.set_key_state(ring.kid, KeyState.RETIRING, at(1))),
    ]
    for what, write in writes:
        before = store.directory_version()
        write()
        assert store.directory_version() == before + 1, what


def test_reads_and_key_use_leave_the_directory_version_alone(
    store: Store, account: Account
) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    group = new_entity(store, account, Kind.GROUP, "devs")
    policy = new_entity(store, account, Kind.POLICY, "read")
    store.add_member(group, user)
    store.attach(user, policy)
    store.put_inline(user, "p", policy_document())
    store.add_version(policy, version(policy, 1, default=True))
    key = new_key(store, account, user)
    store.add_key(ring_key())
    before = store.directory_version()

    store.get_account(account.id)
    store.list_accounts()
    store.get_entity(account.id, Kind.USER, "alice")
    store.get_entity_by_id(user.id)
    store.list_entities(account.id, Kind.USER)
    store.groups_of(user)
    store.members_of(group)
    store.attached(user)
    store.attached_to(policy)
    store.get_inline(user, "p")
    store.list_inline(user)
    store.list_versions(policy)
    store.get_access_key(key.access_key_id)
    store.list_access_keys(account.id, user)
    store.record_key_use(key.access_key_id, at(1), "iam", "us-east-1")
    store.list_keys()
    store.list_keys(KeyPurpose.SIGN)

    assert store.directory_version() == before


def test_failed_writes_leave_the_directory_version_alone(store: Store, account: Account) -> None:
    user = new_entity(store, account, Kind.USER, "alice")
    group = new_entity(store, account, Kind.GROUP, "devs")
    policy = new_entity(store, account, Kind.POLICY, "read")
    ghost = Entity(Kind.USER, account.id, "ghost", ids.new_unique_id("AIDA"), "/", T0)
    missing_key = ids.new_access_key_id()
    ring = ring_key()
    store.add_key(ring)
    failing: list[Callable[[], None]] = [
        lambda: store.create_account(account),
        lambda: store.create_entity(dataclasses.replace(user, id=ids.new_unique_id("AIDA"))),
        lambda: store.update_entity(ghost),
        lambda: store.delete_entity(ghost),
        lambda: store.remove_member(group, user),
        lambda: store.detach(user, policy),
        lambda: store.delete_inline(user, "none"),
        lambda: store.set_default_version(policy, "v1"),
        lambda: store.delete_version(policy, "v1"),
        lambda: store.set_access_key_status(missing_key, KeyStatus.INACTIVE),
        lambda: store.delete_access_key(missing_key),
        lambda: store.add_member(group, ghost),
        lambda: store.attach(ghost, policy),
        lambda: store.put_inline(ghost, "p", policy_document()),
        lambda: store.add_key(ring),
        lambda: store.set_key_state("a256gcm-missing", KeyState.RETIRED, T0),
    ]
    before = store.directory_version()
    for index, write in enumerate(failing):
        with pytest.raises((NoSuchEntityError, EntityAlreadyExistsError)):
            write()
        assert store.directory_version() == before, f"failing write {index}"


def test_replicas_share_the_directory(store: Store, open_store: OpenStore) -> None:
    replica = open_store()
    before = replica.directory_version()
    account = new_account(store)
    user = new_entity(store, account, Kind.USER, "alice")
    assert replica.directory_version() == before + 2
    assert replica.get_entity(account.id, Kind.USER, "alice") == user
    replica.delete_entity(user)
    with pytest.raises(NoSuchEntityError):
        store.get_entity_by_id(user.id)


def test_replicas_share_the_key_ring(store: Store, open_store: OpenStore) -> None:
    replica = open_store()
    record = ring_key(KeyAlgorithm.RS256)
    before = replica.directory_version()
    store.add_key(record)
    assert replica.directory_version() == before + 1
    assert replica.list_keys() == [record]
    replica.set_key_state(record.kid, KeyState.RETIRING, at(5))
    assert store.list_keys()[0].state is KeyState.RETIRING


# --- the SAML replay cache --------------------------------------------------------------------


def test_an_assertion_is_remembered_once(store: Store) -> None:
    assert store.remember_assertion("a" * 64, at(10), at(0)) is True
    assert store.remember_assertion("a" * 64, at(10), at(1)) is False
    assert (
        store.remember_assertion("a" * 64, at(20), at(9)) is False
    )  # a later expiry changes nothing
    assert store.remember_assertion("b" * 64, at(10), at(1)) is True


def test_expired_assertions_are_forgotten(store: Store) -> None:
    assert store.remember_assertion("a" * 64, at(10), at(0)) is True
    # At its NotOnOrAfter the entry is purged; an assertion that old is refused for its
    # time anyway, so remembering it again is harmless.
    assert store.remember_assertion("a" * 64, at(20), at(10)) is True
    assert store.remember_assertion("a" * 64, at(20), at(15)) is False


def test_assertion_expiry_compares_instants_across_zones(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    store.remember_assertion("a" * 64, at(10).astimezone(plus_two), at(0))
    # 5 minutes before the expiry, written in another zone: still remembered
    assert store.remember_assertion("a" * 64, at(30), at(5).astimezone(plus_two)) is False


def test_remembering_assertions_leaves_the_directory_version_alone(store: Store) -> None:
    before = store.directory_version()
    store.remember_assertion("a" * 64, at(10), at(0))
    store.remember_assertion("a" * 64, at(10), at(1))
    store.remember_assertion("b" * 64, at(30), at(20))  # purges "a"
    assert store.directory_version() == before


def test_replicas_share_the_replay_cache(store: Store, open_store: OpenStore) -> None:
    replica = open_store()
    assert store.remember_assertion("a" * 64, at(10), at(0)) is True
    assert replica.remember_assertion("a" * 64, at(10), at(1)) is False
    assert replica.remember_assertion("b" * 64, at(10), at(1)) is True
    assert store.remember_assertion("b" * 64, at(10), at(2)) is False


# --- broker web sessions ------------------------------------------------------------------------


def test_a_web_session_is_kept_until_it_expires_and_replaced_on_put(store: Store) -> None:
    store.put_web_session("s" * 64, "first", at(10), at(0))
    assert store.get_web_session("s" * 64, at(1)) == "first"
    store.put_web_session("s" * 64, "second", at(20), at(2))
    assert store.get_web_session("s" * 64, at(15)) == "second"
    assert store.get_web_session("s" * 64, at(20)) is None
    assert store.get_web_session("t" * 64, at(1)) is None
    store.delete_web_session("s" * 64)
    assert store.get_web_session("s" * 64, at(3)) is None
