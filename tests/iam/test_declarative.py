"""The directory file as a service: load (whole-file validation), plan, apply, export.

Runs against the SQL store on SQLite and on PostgreSQL. Directory state that a file does not
describe is set up through the IAM API (``fedbroker.iam.api.execute``), as an administrator
would have made it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from fedbroker.audit.events import MemoryAuditSink
from fedbroker.directory.ids import new_account_id
from fedbroker.directory.model import Account, Entity, Kind, PolicyVersion
from fedbroker.directory.sql import SqlStore
from fedbroker.directory.store import Store
from fedbroker.iam import declarative
from fedbroker.iam.api import RequestMeta, execute
from fedbroker.iam.context import Caller, Services
from fedbroker.iam.declarative import DesiredState, DirectoryFileError
from tests.iam.conftest import T0, make_services

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "directory.yaml"


def doc(action: str = "s3:GetObject", resource: str = "*") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
    }


def trust(service: str = "ec2.amazonaws.com") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


def base_file() -> dict[str, Any]:
    return {
        "version": 1,
        "policies": [
            {"name": "ReadReports", "path": "/app/", "document": doc(), "tags": {"team": "red"}},
            {"name": "Boundary", "document": doc("s3:*")},
        ],
        "groups": [
            {"name": "analysts", "policies": ["ReadReports"], "inline": {"g": doc("sqs:*")}},
            {"name": "ops"},
        ],
        "users": [
            {
                "name": "alice",
                "groups": ["analysts"],
                "policies": ["ReadReports"],
                "inline": {"own": doc("s3:PutObject")},
                "permissions_boundary": "Boundary",
                "tags": {"team": "red"},
            },
            {"name": "bob", "path": "/contractors/", "groups": ["analysts", "ops"]},
        ],
        "roles": [
            {
                "name": "ci-deploy",
                "trust": trust(),
                "description": "ci",
                "max_session_duration": 7200,
                "policies": ["ReadReports"],
                "inline": {"deploy": doc("s3:PutObject", "arn:aws:s3:::releases/*")},
                "permissions_boundary": "Boundary",
                "tags": {"team": "platform"},
            }
        ],
    }


def apply(services: Services, account: Account, data: dict[str, Any], **kw: Any) -> list[str]:
    desired = declarative.load_data(data)
    return [str(c) for c in declarative.apply(services, account, desired, **kw)]


def plan(store: Store, account: Account, data: dict[str, Any], **kw: Any) -> list[str]:
    return [str(c) for c in declarative.plan(store, account, declarative.load_data(data), **kw)]


def problems(call: Callable[[], object]) -> list[str]:
    with pytest.raises(DirectoryFileError) as caught:
        call()
    return list(caught.value.problems)


def iam(services: Services, account: Account, action: str, **form: str) -> dict[str, Any]:
    """An IAM API call by the account's root user, as an administrator would make it."""
    caller = Caller(account, None, "AKIAEXAMPLEROOTKEY00")
    meta = RequestMeta("req", "192.0.2.1", "test", True)
    return execute(services, caller, meta, action, form)


def entity(store: Store, account: Account, kind: Kind, name: str) -> Entity:
    return store.get_entity(account.id, kind, name)


# --- loading ---------------------------------------------------------------------------------


def test_the_example_file_loads() -> None:
    desired = declarative.load_file(EXAMPLE)
    assert [p.name for p in desired.policies] == ["ReadReports", "DeveloperBoundary"]
    assert [u.name for u in desired.users] == ["alice", "bob"]
    assert desired.roles[0].permissions_boundary is not None
    # The inline document given as JSON text is kept as written.
    assert desired.groups[0].inline["read-dashboards"].text.startswith('{"Version"')


def test_every_problem_is_reported_with_its_location() -> None:
    text = """
version: 1
polices: []
policies:
  - name: "bad name"
    document: {Version: "2012-10-17", Statement: [{Effect: Allw, Action: "s3:*"}]}
  - name: ok
    document: "{not json"
groups:
  - name: g
    policies: [a, a]
users:
  - name: alice
    tags: {"aws:owner": x}
    inline:
      extra: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "s3:*", Resource: "*"}]}
      other: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: s3:*, Principal: "*"}]}
  - name: ALICE
    groupz: []
roles:
  - name: r
    max_session_duration: 60
    trust: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "sts:AssumeRole"}]}
  - name: r2
"""
    found = problems(lambda: declarative.load_text(text))
    expected = [
        "polices: unknown field; did you mean `policies`?",
        "policies[0].name: `bad name` is not a valid name",
        "policies[0].document: statement 1: Effect:",
        "policies[0].document: statement 1: Resource:",
        "policies[1].document: ",
        "groups[0].policies[1]: policy `a` is listed twice",
        "users[0].tags: tag key `aws:owner` uses the reserved prefix `aws:`",
        "users[0].inline.other: statement 1: Principal:",
        "users[0].inline.other: statement 1: Resource:",
        "users[1].groupz: unknown field; did you mean `groups`?",
        "users[1].name: user `ALICE` is also defined at users[0]",
        "roles[0].max_session_duration: must be a whole number of seconds from 3600 to 43200",
        "roles[0].trust: statement 1: Principal:",
        "roles[1].trust: required",
    ]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in found), (prefix, found)
    assert len(found) == len(expected), found


def test_inline_policies_of_one_owner_are_limited_together() -> None:
    big = doc("s3:GetObject", "arn:aws:s3:::" + "b" * 1200)
    data = {"version": 1, "users": [{"name": "u", "inline": {"a": big, "b": big}}]}
    [found] = problems(lambda: declarative.load_data(data))
    assert found.startswith("users[0].inline: maximum policy size of 2048 characters")


def test_structure_errors() -> None:
    assert problems(lambda: declarative.load_text("")) == [
        "file: is empty; a directory file starts with `version: 1`"
    ]
    assert problems(lambda: declarative.load_text("- a\n")) == ["file: must be a mapping"]
    assert problems(lambda: declarative.load_text("users: {}\n")) == [
        "version: required; this format is version 1",
        "users: must be a list",
    ]
    too_many = [f"p{i}" for i in range(11)]
    data = {"version": 1, "roles": [{"name": "r", "trust": trust(), "policies": too_many}]}
    assert problems(lambda: declarative.load_data(data)) == [
        "roles[0].policies: at most 10 managed policies can be attached"
    ]


def test_yaml_is_read_strictly() -> None:
    text = """
version: 1
policies:
  - name: p
    description: yes
    document: {Version: 2012-10-17, Statement: [{Effect: Allow, Action: "s3:*", Resource: "*"}]}
"""
    desired = declarative.load_text(text)
    assert desired.policies[0].document.value["Version"] == "2012-10-17"  # not a date
    assert desired.policies[0].description == "yes"  # not a boolean
    twice = "version: 1\nversion: 1\n"
    [found] = problems(lambda: declarative.load_text(twice))
    assert found.startswith("line 2, column 1: found the key `version` twice")
    [found] = problems(lambda: declarative.load_text('{"version": 1, "version": 1}', as_json=True))
    assert "found the key `version` twice" in found
    [found] = problems(lambda: declarative.load_text("version: [1\n"))
    assert found.startswith("line 2, column 1:")


def test_a_user_cannot_be_both_kept_and_pruned() -> None:
    data = {"version": 1, "users": [{"name": "bob"}], "prune": {"users_with_credentials": ["Bob"]}}
    assert problems(lambda: declarative.load_data(data)) == [
        "prune.users_with_credentials[0]: user `Bob` is also defined at users[0]; "
        "a user cannot be both kept and deleted"
    ]


# --- plan and apply --------------------------------------------------------------------------


def test_create_from_empty_then_nothing_to_do(
    store: Store, services: Services, account: Account
) -> None:
    changes = apply(services, account, base_file())
    assert changes == [
        "+ policy ReadReports",
        "+ policy Boundary",
        "+ group analysts",
        "+ group ops",
        "+ user alice",
        "+ user bob",
        "+ role ci-deploy",
        "+ group analysts: policy ReadReports",
        "+ group analysts: inline policy g",
        "+ user alice: group analysts",
        "+ user alice: policy ReadReports",
        "+ user alice: inline policy own",
        "+ user bob: group analysts",
        "+ user bob: group ops",
        "+ role ci-deploy: policy ReadReports",
        "+ role ci-deploy: inline policy deploy",
    ]
    assert plan(store, account, base_file()) == []
    assert apply(services, account, base_file()) == []

    alice = entity(store, account, Kind.USER, "alice")
    boundary = entity(store, account, Kind.POLICY, "Boundary")
    assert alice.attrs["permissions_boundary"] == boundary.arn
    assert alice.tags == {"team": "red"}
    assert [g.name for g in store.groups_of(alice)] == ["analysts"]
    assert [p.arn for p in store.attached(alice)] == [
        f"arn:aws:iam::{account.id}:policy/app/ReadReports"
    ]
    assert json.loads(store.get_inline(alice, "own").document) == doc("s3:PutObject")
    bob = entity(store, account, Kind.USER, "bob")
    assert bob.path == "/contractors/"
    role = entity(store, account, Kind.ROLE, "ci-deploy")
    assert role.attrs["max_session_duration"] == 7200
    assert role.attrs["description"] == "ci"
    assert json.loads(str(role.attrs["trust_policy"])) == trust()
    policy = entity(store, account, Kind.POLICY, "ReadReports")
    assert policy.tags == {"team": "red"}
    assert [(v.version_id, v.is_default) for v in store.list_versions(policy)] == [("v1", True)]


def test_every_write_is_an_audited_iam_call(
    store: Store, services: Services, account: Account
) -> None:
    desired = declarative.load_data(base_file())
    calls = [call.action for c in declarative.plan(store, account, desired) for call in c.calls]
    declarative.apply(services, account, desired)
    assert isinstance(services.audit, MemoryAuditSink)
    events = services.audit.events
    assert [e.event_name for e in events] == calls
    assert calls[:3] == ["CreatePolicy", "CreatePolicy", "CreateGroup"]
    for event in events:
        assert event.event_source == "iam.amazonaws.com"
        assert event.error_code is None and not event.read_only
        assert event.recipient_account_id == account.id
        identity = event.user_identity.to_dict()
        assert identity == {
            "type": "Root",
            "principalId": account.id,
            "arn": account.root_arn,
            "accountId": account.id,
            "invokedBy": "fedbroker apply",
        }
    create_user = next(e for e in events if e.event_name == "CreateUser")
    assert create_user.request_parameters["UserName"] == "alice"
    assert create_user.response_elements is not None  # as the API records it


def test_a_changed_policy_document_becomes_a_new_default_version(
    store: Store, services: Services, account: Account
) -> None:
    data: dict[str, Any] = {"version": 1, "policies": [{"name": "P", "document": doc("s3:Get0")}]}
    apply(services, account, data)
    for number in range(2, 6):
        data["policies"][0]["document"] = doc(f"s3:Get{number}")
        assert apply(services, account, data) == [
            f"~ policy P: document (new default version v{number})"
        ]
    policy = entity(store, account, Kind.POLICY, "P")
    assert [v.version_id for v in store.list_versions(policy)] == ["v5", "v4", "v3", "v2", "v1"]
    # At five versions the oldest non-default one makes room, as Terraform's provider does.
    data["policies"][0]["document"] = doc("s3:Get6")
    assert apply(services, account, data) == [
        "~ policy P: document (new default version v6, deletes v1)"
    ]
    versions = store.list_versions(entity(store, account, Kind.POLICY, "P"))
    assert [(v.version_id, v.is_default) for v in versions] == [
        ("v6", True),
        ("v5", False),
        ("v4", False),
        ("v3", False),
        ("v2", False),
    ]
    assert json.loads(versions[0].document) == doc("s3:Get6")
    assert entity(store, account, Kind.POLICY, "P").attrs["default_version"] == "v6"
    # A document equal up to spacing and key order is no change.
    data["policies"][0]["document"] = json.dumps(doc("s3:Get6"), indent=8, sort_keys=True)
    assert plan(store, account, data) == []


def test_updates_of_trust_membership_tags_boundary_and_relations(
    store: Store, services: Services, account: Account
) -> None:
    apply(services, account, base_file())
    data = base_file()
    alice, bob = data["users"]
    role = data["roles"][0]
    role["trust"] = trust("lambda.amazonaws.com")
    role["max_session_duration"] = 3600
    del role["description"]
    alice["groups"] = ["ops"]
    alice["tags"] = {"Team": "blue", "new": "1"}
    del alice["permissions_boundary"]
    alice["policies"] = []
    alice["inline"] = {"own": doc("s3:DeleteObject")}
    bob["path"] = "/staff/"
    data["policies"][0]["tags"] = {}
    data["groups"][0]["inline"] = {}
    changes = apply(services, account, data)
    assert changes == [
        "~ policy ReadReports: tags",
        "~ user alice: permissions boundary",
        "~ user alice: tags",
        "~ user bob: path /contractors/ → /staff/",
        "~ role ci-deploy: trust policy",
        "~ role ci-deploy: max session duration 7200 → 3600",
        "~ role ci-deploy: description",
        "- group analysts: inline policy g",
        "- user alice: group analysts",
        "- user alice: policy ReadReports",
        "+ user alice: group ops",
        "~ user alice: inline policy own",
    ]
    assert plan(store, account, data) == []
    user = entity(store, account, Kind.USER, "alice")
    assert user.tags == {"Team": "blue", "new": "1"}  # `team` replaced, keys ignore case
    assert "permissions_boundary" not in user.attrs
    assert [g.name for g in store.groups_of(user)] == ["ops"]
    assert store.attached(user) == []
    assert entity(store, account, Kind.USER, "bob").path == "/staff/"
    updated = entity(store, account, Kind.ROLE, "ci-deploy")
    assert json.loads(str(updated.attrs["trust_policy"])) == trust("lambda.amazonaws.com")
    assert updated.attrs["description"] == ""
    assert entity(store, account, Kind.POLICY, "ReadReports").tags == {}


def test_named_entities_are_authoritative_and_others_left_alone(
    store: Store, services: Services, account: Account
) -> None:
    apply(services, account, base_file())
    iam(services, account, "CreateUser", UserName="carol")
    iam(
        services, account, "AttachUserPolicy", UserName="alice", PolicyArn=_arn(account, "Boundary")
    )
    iam(
        services,
        account,
        "PutUserPolicy",
        UserName="alice",
        PolicyName="x",
        PolicyDocument=json.dumps(doc()),
    )
    iam(
        services,
        account,
        "TagUser",
        UserName="alice",
        **{"Tags.member.1.Key": "extra", "Tags.member.1.Value": "v"},
    )
    assert plan(store, account, base_file()) == [
        "~ user alice: tags",
        "- user alice: policy Boundary",
        "- user alice: inline policy x",
    ]
    apply(services, account, base_file())
    entity(store, account, Kind.USER, "carol")  # not in the file: left alone


def _arn(account: Account, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account.id}:policy{path}{name}"


def test_references_resolve_to_the_file_or_the_directory(
    store: Store, services: Services, account: Account
) -> None:
    iam(services, account, "CreatePolicy", PolicyName="Existing", PolicyDocument=json.dumps(doc()))
    iam(services, account, "CreateGroup", GroupName="old-group")
    data = {
        "version": 1,
        "policies": [{"name": "New", "path": "/p/", "document": doc()}],
        "users": [
            {
                "name": "u",
                "groups": ["old-group"],
                "policies": ["Existing", _arn(account, "New", "/p/")],
                "permissions_boundary": _arn(account, "Existing"),
            }
        ],
    }
    assert plan(store, account, data) == [
        "+ policy New",
        "+ user u",
        "+ user u: group old-group",
        "+ user u: policy Existing",
        "+ user u: policy New",
    ]
    wrong = {
        "version": 1,
        "policies": [{"name": "New", "path": "/p/", "document": doc()}],
        "users": [
            {
                "name": "u",
                "groups": ["nobody"],
                "policies": [
                    "Missing",
                    "arn:aws:iam::aws:policy/ReadOnlyAccess",
                    _arn(account, "New", "/other/"),
                ],
            }
        ],
    }
    assert problems(lambda: plan(store, account, wrong)) == [
        "users[0].groups[0]: group `nobody` is neither in the file nor in the directory",
        "users[0].policies[0]: policy `Missing` is neither in the file nor in the directory",
        "users[0].policies[1]: `arn:aws:iam::aws:policy/ReadOnlyAccess` is not a customer "
        f"managed policy of account {account.id}",
        f"users[0].policies[2]: `{_arn(account, 'New', '/other/')}` does not match the policy "
        f"`{_arn(account, 'New', '/p/')}`",
    ]
    # Under --prune everything referred to must be in the file: the rest is being deleted.
    found = problems(lambda: plan(store, account, data, prune=True))
    assert found == [
        "users[0].permissions_boundary: policy `Existing` is not in the file, so --prune would "
        "delete it; add it to `policies`",
        "users[0].groups[0]: group `old-group` is not in the file, so --prune would delete it; "
        "add it to `groups`",
        "users[0].policies[0]: policy `Existing` is not in the file, so --prune would delete "
        "it; add it to `policies`",
    ]


def test_changes_iam_does_not_allow_are_refused_before_anything_changes(
    store: Store, services: Services, account: Account
) -> None:
    apply(services, account, base_file())
    version = store.directory_version()
    data = base_file()
    data["roles"][0]["path"] = "/moved/"
    data["policies"][0]["description"] = "new words"
    data["policies"][1]["name"] = "BOUNDARY"
    data["users"][0]["tags"] = {}  # a change that alone would be applied
    found = problems(lambda: apply(services, account, data))
    assert found == [
        "policies[0].description: the description of policy `ReadReports` is `` and IAM "
        "cannot change it to `new words`; delete the policy first (or keep the description)",
        "policies[1].name: the name of policy `Boundary` is `Boundary` and IAM cannot change it "
        "to `BOUNDARY`; delete the policy first (or keep the name)",
        "roles[0].path: the path of role `ci-deploy` is `/` and IAM cannot change it to "
        "`/moved/`; delete the role first (or keep the path)",
    ]
    assert store.directory_version() == version
    # Users and groups can be renamed (here: in case) and moved.
    data = base_file()
    data["users"][0]["name"] = "Alice"
    data["groups"][1]["path"] = "/teams/"
    data["users"][1]["groups"] = ["analysts", "OPS"]
    assert plan(store, account, data) == [
        "~ group ops: path / → /teams/",
        "~ user Alice: name alice → Alice",
    ]


def test_dry_run_plans_without_writing(store: Store, services: Services, account: Account) -> None:
    version = store.directory_version()
    assert len(plan(store, account, base_file())) == 16
    assert store.directory_version() == version
    assert isinstance(services.audit, MemoryAuditSink) and services.audit.events == []


# --- pruning ---------------------------------------------------------------------------------


def _clutter(services: Services, account: Account) -> None:
    """Entities the base file does not name, with everything that blocks their deletion."""
    policy_doc = json.dumps(doc())
    iam(services, account, "CreatePolicy", PolicyName="Old", PolicyDocument=policy_doc)
    iam(
        services,
        account,
        "CreatePolicyVersion",
        PolicyArn=_arn(account, "Old"),
        PolicyDocument=policy_doc,
    )
    iam(services, account, "CreateGroup", GroupName="old-group")
    iam(
        services,
        account,
        "AttachGroupPolicy",
        GroupName="old-group",
        PolicyArn=_arn(account, "Old"),
    )
    iam(services, account, "CreateUser", UserName="old-user")
    iam(services, account, "AddUserToGroup", GroupName="old-group", UserName="old-user")
    iam(services, account, "AddUserToGroup", GroupName="old-group", UserName="alice")
    iam(
        services,
        account,
        "PutUserPolicy",
        UserName="old-user",
        PolicyName="i",
        PolicyDocument=policy_doc,
    )
    iam(
        services,
        account,
        "CreateRole",
        RoleName="old-role",
        AssumeRolePolicyDocument=json.dumps(trust()),
    )
    iam(services, account, "AttachRolePolicy", RoleName="old-role", PolicyArn=_arn(account, "Old"))


def test_prune_deletes_what_the_file_does_not_name(
    store: Store, services: Services, account: Account
) -> None:
    apply(services, account, base_file())
    _clutter(services, account)
    alice = entity(store, account, Kind.USER, "alice")
    key = iam(services, account, "CreateAccessKey", UserName="alice")["AccessKey"]["AccessKeyId"]
    assert apply(services, account, base_file()) == ["- user alice: group old-group"]
    changes = apply(services, account, base_file(), prune=True)
    assert changes == [
        "- user old-user: group old-group",
        "- user old-user: inline policy i",
        "- user old-user",
        "- role old-role: policy Old",
        "- role old-role",
        "- group old-group: policy Old",
        "- group old-group",
        "- policy Old: version v2",
        "- policy Old",
    ]
    assert plan(store, account, base_file(), prune=True) == []
    for kind, names in (
        (Kind.USER, ["alice", "bob"]),
        (Kind.GROUP, ["analysts", "ops"]),
        (Kind.ROLE, ["ci-deploy"]),
        (Kind.POLICY, ["Boundary", "ReadReports"]),
    ):
        assert [e.name for e in store.list_entities(account.id, kind)] == names
    # The access keys of a user that stays are never touched.
    assert [k.access_key_id for k in store.list_access_keys(account.id, alice)] == [key]


def test_prune_never_deletes_a_user_holding_keys_unless_the_file_releases_it(
    store: Store, services: Services, account: Account
) -> None:
    apply(services, account, base_file())
    iam(services, account, "CreateUser", UserName="keyholder")
    iam(services, account, "CreateUser", UserName="plain")
    iam(services, account, "CreateAccessKey", UserName="keyholder")
    key = iam(services, account, "CreateAccessKey", UserName="keyholder")["AccessKey"]
    version = store.directory_version()
    found = problems(lambda: apply(services, account, base_file(), prune=True))
    assert found == [
        "--prune: user `keyholder` is not in the file but has 2 access keys; add it to "
        "`users`, or list it under `prune.users_with_credentials` to delete it together with "
        "its access keys"
    ]
    assert store.directory_version() == version  # not even `plain` was deleted
    assert apply(services, account, base_file()) == []  # without --prune: left alone

    released = {**base_file(), "prune": {"users_with_credentials": ["keyholder", "gone-already"]}}
    assert apply(services, account, released) == []  # only read with --prune
    keys = store.list_access_keys(account.id, entity(store, account, Kind.USER, "keyholder"))
    changes = apply(services, account, released, prune=True)
    assert changes == [
        f"- user keyholder: access key {keys[0].access_key_id}",
        f"- user keyholder: access key {key['AccessKeyId']}",
        "- user keyholder",
        "- user plain",
    ]
    assert all(k.user_id is None for k in store.list_access_keys(account.id, None))


def test_prune_refuses_users_with_credentials_it_cannot_remove(
    store: Store, services: Services, account: Account
) -> None:
    iam(services, account, "CreateUser", UserName="console")
    user = entity(store, account, Kind.USER, "console")
    store.update_entity(
        Entity(
            user.kind,
            user.account_id,
            user.name,
            user.id,
            user.path,
            user.created,
            {**user.attrs, "login_profile": {"password_hash": "x"}},
        )
    )
    data = {"version": 1, "prune": {"users_with_credentials": ["console"]}}
    assert problems(lambda: plan(store, account, data, prune=True)) == [
        "--prune: user `console` has a console password; fedbroker apply deletes access keys "
        "but not console passwords or MFA devices: remove those first"
    ]


# --- export ----------------------------------------------------------------------------------


def test_export_then_apply_changes_nothing(
    store: Store, services: Services, account: Account
) -> None:
    apply(services, account, base_file())
    _clutter(services, account)
    iam(services, account, "CreateAccessKey", UserName="alice")
    data = declarative.export(store, account)
    assert data["version"] == 1
    assert [u["name"] for u in data["users"]] == ["alice", "bob", "old-user"]
    alice = data["users"][0]
    assert alice == {
        "name": "alice",
        "groups": ["analysts", "old-group"],
        "policies": ["ReadReports"],
        "inline": {"own": doc("s3:PutObject")},
        "permissions_boundary": "Boundary",
        "tags": {"team": "red"},
    }
    assert data["roles"][1] == {"name": "old-role", "trust": trust(), "policies": ["Old"]}
    for as_json in (False, True):
        text = declarative.dump(data, as_json)
        desired = declarative.load_text(text, as_json=as_json)
        assert declarative.plan(store, account, desired, prune=True) == []


def test_an_empty_directory_exports_as_just_the_version(store: Store) -> None:
    assert declarative.export(store, _new_account(store)) == {"version": 1}


def _new_account(store: Store) -> Account:
    account = Account(new_account_id(), None, "root@example.com", "$scrypt$not-a-hash", T0)
    store.create_account(account)
    return account


# --- concurrency -----------------------------------------------------------------------------


def test_a_racing_creator_is_absorbed_by_reading_again(
    store: Store, services: Services, account: Account, database_url: str
) -> None:
    """Another writer creates `alice` between this apply's plan and its CreateUser call."""
    other = SqlStore(database_url, auto_migrate=False)
    try:
        racing = make_services(other)

        class Interloper:
            def __init__(self, inner: Store) -> None:
                self.inner = inner
                self.raced = False

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

            def create_entity(self, new: Entity, first: PolicyVersion | None = None) -> None:
                if new.name == "alice" and not self.raced:
                    self.raced = True
                    iam(racing, account, "CreateUser", UserName="alice", Path="/elsewhere/")
                self.inner.create_entity(new, first)

        wrapped = Interloper(store)
        services = make_services(wrapped)
        changes = apply(services, account, base_file())
        assert wrapped.raced
        assert "+ user alice" not in changes
        assert "~ user alice: path /elsewhere/ → /" in changes
        assert plan(store, account, base_file()) == []
        assert isinstance(services.audit, MemoryAuditSink)
        failed = [e for e in services.audit.events if e.error_code]
        assert [(e.event_name, e.error_code) for e in failed] == [
            ("CreateUser", "EntityAlreadyExists")
        ]
    finally:
        other.close()


def test_a_policy_caught_between_its_two_writes_gets_the_creators_v1(
    store: Store, services: Services, account: Account
) -> None:
    """CreatePolicy stores the policy, then its v1: a writer in between must not add a v2."""
    data = {"version": 1, "policies": [{"name": "P", "document": doc()}]}
    attrs: dict[str, object] = {"default_version": "v1", "next_version": 2, "tags": {}}
    store.create_entity(
        Entity(Kind.POLICY, account.id, "P", "ANPAEXAMPLE0000000001", "/", T0, attrs)
    )
    assert plan(store, account, data) == ["~ policy P: document (version v1)"]
    # The creator's own v1 lands first: this writer's v1 fails, and it reads again.
    creator_v1 = PolicyVersion(_arn(account, "P"), "v1", json.dumps(doc()), True, T0)
    calls: list[str] = []
    real_add = store.add_version

    def add_version(policy: Entity, version: PolicyVersion) -> None:
        if not calls:
            real_add(policy, creator_v1)
        calls.append(version.version_id)
        real_add(policy, version)

    racing = make_services(_Patched(store, add_version=add_version))
    assert apply(racing, account, data) == []
    policy = entity(store, account, Kind.POLICY, "P")
    assert [(v.version_id, v.is_default) for v in store.list_versions(policy)] == [("v1", True)]
    assert policy.attrs["default_version"] == "v1"


class _Patched:
    """A store with some methods replaced."""

    def __init__(self, inner: Store, **methods: Any) -> None:
        self.inner = inner
        self.methods = methods

    def __getattr__(self, name: str) -> Any:
        return self.methods.get(name) or getattr(self.inner, name)


@pytest.mark.parametrize("replicas", ["one store", "two stores"])
def test_concurrent_applies_leave_the_directory_equal_to_the_file(
    store: Store, database_url: str, replicas: str
) -> None:
    other = SqlStore(database_url, auto_migrate=False) if replicas == "two stores" else store
    try:
        for _ in range(5):
            account = _new_account(store)
            desired = declarative.load_data(base_file())
            results = _together(
                [
                    partial(declarative.apply, make_services(store), account, desired),
                    partial(declarative.apply, make_services(other), account, desired),
                ]
            )
            for result in results:
                assert not isinstance(result, BaseException), result
            assert declarative.plan(store, account, desired) == []
            made = [str(c) for result in results for c in result]
            # Each entity was created exactly once, whoever created it. (Adding a relation is
            # idempotent, so both writers may report the same one; a policy whose creator lost
            # the race for its v1 is reported by the writer that won it.)
            made = [
                line.replace(": document (version v1)", "").replace("~ policy", "+ policy")
                if line.endswith(": document (version v1)")
                else line
                for line in made
            ]
            created = sorted(c for c in made if c.startswith("+ ") and ":" not in c)
            assert created == sorted(line for line in plan_lines() if ":" not in line)
            assert len(store.list_entities(account.id, Kind.POLICY)) == 2
            policy = store.get_entity(account.id, Kind.POLICY, "ReadReports")
            assert [v.version_id for v in store.list_versions(policy)] == ["v1"]
    finally:
        if other is not store:
            other.close()


def _together(tasks: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(tasks))
    results: list[Any] = [None] * len(tasks)

    def run(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = tasks[index]()
        except BaseException as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def plan_lines() -> list[str]:
    return [
        "+ policy ReadReports",
        "+ policy Boundary",
        "+ group analysts",
        "+ group ops",
        "+ user alice",
        "+ user bob",
        "+ role ci-deploy",
    ]


def test_desired_state_defaults() -> None:
    assert declarative.load_data({"version": 1}) == DesiredState()
