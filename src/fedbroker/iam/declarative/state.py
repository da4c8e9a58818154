"""What a directory file asks for: the desired state, already validated.

Every value here passed the same rules the IAM API applies (names, paths, tags, limits, and
each policy document through the policy engine with the kind of where it is used), so a plan
built from it can only fail on what the directory holds, never on the file itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedbroker.errors import FedbrokerError

FORMAT_VERSION = 1


class DirectoryFileError(FedbrokerError):
    """A directory file that cannot be applied; ``problems`` lists every reason, located.

    Raised before anything is changed: by :func:`load_file` for the file itself and by
    :func:`plan` for what the file asks of this directory.
    """

    code = "ValidationError"
    status = 400

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
        super().__init__((self.problems[0] if self.problems else "invalid file") + suffix)


@dataclass(frozen=True, slots=True)
class Document:
    """A policy document: ``value`` is what is compared, ``text`` what is stored."""

    value: Mapping[str, Any]
    text: str

    def same_as(self, stored: str) -> bool:
        """Whether the stored JSON text means the same document (spacing and key order aside)."""
        try:
            return bool(json.loads(stored) == self.value)
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to a managed policy (by name or ARN) or a group (by name)."""

    text: str
    where: str  # location in the file, for messages


@dataclass(frozen=True, slots=True)
class DesiredPolicy:
    name: str
    path: str
    document: Document
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    where: str = ""


@dataclass(frozen=True, slots=True)
class DesiredGroup:
    name: str
    path: str = "/"
    policies: tuple[Ref, ...] = ()
    inline: Mapping[str, Document] = field(default_factory=dict)
    where: str = ""


@dataclass(frozen=True, slots=True)
class DesiredUser:
    name: str
    path: str = "/"
    groups: tuple[Ref, ...] = ()
    policies: tuple[Ref, ...] = ()
    inline: Mapping[str, Document] = field(default_factory=dict)
    permissions_boundary: Ref | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    where: str = ""


@dataclass(frozen=True, slots=True)
class DesiredRole:
    name: str
    trust: Document
    path: str = "/"
    max_session_duration: int = 3600
    description: str = ""
    policies: tuple[Ref, ...] = ()
    inline: Mapping[str, Document] = field(default_factory=dict)
    permissions_boundary: Ref | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    where: str = ""


@dataclass(frozen=True, slots=True)
class DesiredOidcProvider:
    """An OpenID Connect provider: ``url`` normalised, ``name`` the URL without its scheme."""

    url: str
    name: str
    client_ids: tuple[str, ...] = ()
    thumbprints: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    where: str = ""
    expose_claims: bool = False  # fedbroker's option: top-level claims as condition keys


@dataclass(frozen=True, slots=True)
class DesiredSamlProvider:
    """A SAML provider; ``metadata`` is the document's text (given inline or read from a file)."""

    name: str
    metadata: str
    tags: Mapping[str, str] = field(default_factory=dict)
    where: str = ""
    allow_sha1: bool = False  # fedbroker's option: accept responses signed with SHA-1


@dataclass(frozen=True, slots=True)
class DesiredState:
    """The whole file. Entities are authoritative for what they list; see docs/directory-file.md.

    ``prunable_users_with_credentials`` names users that ``--prune`` may delete even though
    they hold credentials (access keys, a console password, MFA devices). ``providers_listed``
    says the file has a ``providers`` section: only then does ``--prune`` delete the identity
    providers it does not name.
    """

    policies: tuple[DesiredPolicy, ...] = ()
    groups: tuple[DesiredGroup, ...] = ()
    users: tuple[DesiredUser, ...] = ()
    roles: tuple[DesiredRole, ...] = ()
    prunable_users_with_credentials: frozenset[str] = frozenset()  # lower-cased names
    oidc_providers: tuple[DesiredOidcProvider, ...] = ()
    saml_providers: tuple[DesiredSamlProvider, ...] = ()
    providers_listed: bool = False
