"""Reading a directory file: the whole file is checked, and every problem reported with its
location (``users[2].inline.extra: statement 1: Effect: ...``), before anything can change.

The rules are the IAM API's own (name and path patterns and lengths, tag rules, attachment
and inline-size limits, each document through the policy engine with the kind of where it is
used), imported from the operations rather than restated here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from fedbroker.directory.model import Kind
from fedbroker.iam.declarative import providers, syntax
from fedbroker.iam.declarative.fields import FieldReader, at
from fedbroker.iam.declarative.state import (
    FORMAT_VERSION,
    DesiredGroup,
    DesiredPolicy,
    DesiredRole,
    DesiredState,
    DesiredUser,
    DirectoryFileError,
)
from fedbroker.iam.operations.common import NAME_LIMITS
from fedbroker.policy import PolicyKind

TOP_LEVEL = ("version", "policies", "groups", "users", "roles", "providers", "prune")
FIELDS = {
    "policies": ("name", "path", "description", "document", "tags"),
    "groups": ("name", "path", "policies", "inline"),
    "users": ("name", "path", "groups", "policies", "inline", "permissions_boundary", "tags"),
    "roles": (
        "name",
        "path",
        "trust",
        "max_session_duration",
        "description",
        "policies",
        "inline",
        "permissions_boundary",
        "tags",
    ),
}
PRUNE_FIELDS = ("users_with_credentials",)

T = TypeVar("T")


class _Named(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def where(self) -> str: ...


def load_file(path: str | Path, *, now: datetime | None = None) -> DesiredState:
    """Read and check a directory file; JSON if its name ends in ``.json``, else YAML.

    SAML metadata files it names are read relative to its directory; with ``now``, SAML
    metadata whose ``validUntil`` has passed is a problem. Raises :class:`DirectoryFileError`
    listing every problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DirectoryFileError([f"cannot read `{path}`: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise DirectoryFileError([f"`{path}` is not UTF-8 text"]) from None
    return load_text(text, as_json=path.suffix.lower() == ".json", base_dir=path.parent, now=now)


def load_text(
    text: str,
    *,
    as_json: bool = False,
    base_dir: Path | None = None,
    now: datetime | None = None,
) -> DesiredState:
    """Like :func:`load_file`, from the file's text (metadata files relative to ``base_dir``,
    or to the working directory)."""
    try:
        data = syntax.parse(text, as_json)
    except syntax.SyntaxProblem as exc:
        raise DirectoryFileError([str(exc)]) from None
    return load_data(data, base_dir=base_dir, now=now)


def load_data(
    data: object, *, base_dir: Path | None = None, now: datetime | None = None
) -> DesiredState:
    """Check already-decoded file data (the result of YAML or JSON parsing)."""
    reader = _Reader(base_dir, now)
    state = reader.state(data)
    if reader.problems:
        raise DirectoryFileError(reader.problems)
    return state


class _Reader(FieldReader):
    """The file's structure: its sections and the entities in them."""

    def __init__(self, base_dir: Path | None, now: datetime | None) -> None:
        super().__init__()
        self.base_dir = base_dir
        self.now = now

    # --- the file and its sections ---------------------------------------------------------

    def state(self, data: object) -> DesiredState:
        if data is None:
            self.problem(
                "file", f"is empty; a directory file starts with `version: {FORMAT_VERSION}`"
            )
            return DesiredState()
        top = self.mapping(data, "file", TOP_LEVEL, ())
        if top is None:
            return DesiredState()
        version = top.get("version")
        if version is None:
            self.problem("version", f"required; this format is version {FORMAT_VERSION}")
        elif type(version) is not int or version != FORMAT_VERSION:
            self.problem("version", f"`{version}` is not supported; this fedbroker reads version 1")
        found = providers.read(self, top.get("providers"), self.base_dir, self.now)
        policies = self.section(top, "policies", self.policy)
        groups = self.section(top, "groups", self.group)
        users = self.section(top, "users", self.user)
        roles = self.section(top, "roles", self.role)
        self.unique(policies, "policy")
        self.unique(groups, "group")
        self.unique(users, "user")
        self.unique(roles, "role")
        return DesiredState(
            tuple(policies),
            tuple(groups),
            tuple(users),
            tuple(roles),
            self.prune(top.get("prune"), users),
            found.oidc,
            found.saml,
            found.listed,
        )

    def section(
        self, top: Mapping[str, object], key: str, read: Callable[[object, str], T | None]
    ) -> list[T]:
        """The entities of one section; those that could not be read are left out."""
        value = top.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(key, "must be a list")
            return []
        read_ = (read(item, f"{key}[{index}]") for index, item in enumerate(value))
        return [entity for entity in read_ if entity is not None]

    def unique(self, items: Sequence[_Named], noun: str) -> None:
        seen: dict[str, str] = {}
        for item in items:
            first = seen.setdefault(item.name.lower(), item.where)
            if first != item.where:
                self.problem(
                    f"{item.where}.name",
                    f"{noun} `{item.name}` is also defined at {first} "
                    "(names are unique without regard to case)",
                )

    def prune(self, value: object, users: list[DesiredUser]) -> frozenset[str]:
        if value is None:
            return frozenset()
        fields = self.mapping(value, "prune", PRUNE_FIELDS, ())
        if fields is None:
            return frozenset()
        where = "prune.users_with_credentials"
        names = self.names(fields.get("users_with_credentials"), where, NAME_LIMITS[Kind.USER])
        defined = {u.name.lower(): u.where for u in users}
        for ref in names:
            if ref.text.lower() in defined:
                self.problem(
                    ref.where,
                    f"user `{ref.text}` is also defined at {defined[ref.text.lower()]}; "
                    "a user cannot be both kept and deleted",
                )
        return frozenset(ref.text.lower() for ref in names)

    # --- entities --------------------------------------------------------------------------

    def policy(self, item: object, where: str) -> DesiredPolicy | None:
        fields = self.mapping(item, where, FIELDS["policies"], ("name", "document"))
        if fields is None:
            return None
        name = self.name(fields.get("name"), at(where, "name"), NAME_LIMITS[Kind.POLICY])
        document = self.document(fields.get("document"), at(where, "document"), PolicyKind.MANAGED)
        path = self.path(fields.get("path"), at(where, "path"))
        description = self.description(fields.get("description"), at(where, "description"))
        tags = self.tags(fields.get("tags"), at(where, "tags"))
        if name is None or document is None:
            return None
        return DesiredPolicy(name, path, document, description, tags, where)

    def group(self, item: object, where: str) -> DesiredGroup | None:
        fields = self.mapping(item, where, FIELDS["groups"], ("name",))
        if fields is None:
            return None
        name = self.name(fields.get("name"), at(where, "name"), NAME_LIMITS[Kind.GROUP])
        path = self.path(fields.get("path"), at(where, "path"))
        policies = self.policy_refs(fields.get("policies"), at(where, "policies"))
        inline = self.inline(fields.get("inline"), at(where, "inline"), Kind.GROUP, name)
        if name is None:
            return None
        return DesiredGroup(name, path, policies, inline, where)

    def user(self, item: object, where: str) -> DesiredUser | None:
        fields = self.mapping(item, where, FIELDS["users"], ("name",))
        if fields is None:
            return None
        name = self.name(fields.get("name"), at(where, "name"), NAME_LIMITS[Kind.USER])
        path = self.path(fields.get("path"), at(where, "path"))
        groups = self.names(fields.get("groups"), at(where, "groups"), NAME_LIMITS[Kind.GROUP])
        policies = self.policy_refs(fields.get("policies"), at(where, "policies"))
        inline = self.inline(fields.get("inline"), at(where, "inline"), Kind.USER, name)
        boundary = self.policy_ref(
            fields.get("permissions_boundary"), at(where, "permissions_boundary")
        )
        tags = self.tags(fields.get("tags"), at(where, "tags"))
        if name is None:
            return None
        return DesiredUser(name, path, groups, policies, inline, boundary, tags, where)

    def role(self, item: object, where: str) -> DesiredRole | None:
        fields = self.mapping(item, where, FIELDS["roles"], ("name", "trust"))
        if fields is None:
            return None
        name = self.name(fields.get("name"), at(where, "name"), NAME_LIMITS[Kind.ROLE])
        trust = self.document(fields.get("trust"), at(where, "trust"), PolicyKind.TRUST)
        path = self.path(fields.get("path"), at(where, "path"))
        duration = self.duration(
            fields.get("max_session_duration"), at(where, "max_session_duration")
        )
        description = self.description(fields.get("description"), at(where, "description"))
        policies = self.policy_refs(fields.get("policies"), at(where, "policies"))
        inline = self.inline(fields.get("inline"), at(where, "inline"), Kind.ROLE, name)
        boundary = self.policy_ref(
            fields.get("permissions_boundary"), at(where, "permissions_boundary")
        )
        tags = self.tags(fields.get("tags"), at(where, "tags"))
        if name is None or trust is None:
            return None
        return DesiredRole(
            name, trust, path, duration, description, policies, inline, boundary, tags, where
        )
