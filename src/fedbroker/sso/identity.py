"""A signed-in identity: what a sign-in proved, kept after the proof itself is gone.

An ID token or a SAML assertion is verified once, at sign-in; what it proved (the provider,
the subject, the trust-policy context keys of the API call, session tags, source identity) is
kept as a :class:`SignedIn` in the broker web session (or a CLI session), and role credentials
are issued from it later (:func:`fedbroker.sso.service.issue`) with the role's trust policy
evaluated again each time. It never holds the token or the assertion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

Kind = Literal["oidc", "saml"]
_KINDS = ("oidc", "saml")
_LOGOUT_FIELDS = ("name_id_format", "name_qualifier", "sp_name_qualifier", "session_index")


def _context_value(value: object) -> object:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError("a trust context value is a string or a list of strings")


def _strings(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"`{what}` is not an object of strings")
    return dict(value)


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"`{what}` is not a time")
    found = datetime.fromisoformat(value)
    if found.tzinfo is None:
        raise ValueError(f"`{what}` has no time zone")
    return found


@dataclass(frozen=True)
class SignedIn:
    """Who signed in, through which provider, and what the proof said (no secrets)."""

    kind: Kind
    account_id: str  # the account of the provider entity
    provider_name: str  # OIDC: the provider URL without scheme; SAML: the provider's name
    provider_arn: str
    subject: str  # OIDC `sub` / SAML NameID
    session_name: str  # the default RoleSessionName, [\w+=,.@-]{2,64}
    # The provider-specific context keys of the API call (<provider>:sub, saml:aud, ...,
    # aws:FederatedProvider); not the per-request aws:* keys, which each issue adds afresh.
    trust_context: dict[str, object]
    authenticated_at: datetime
    tags: dict[str, str] = field(default_factory=dict)
    transitive_tag_keys: tuple[str, ...] = ()
    source_identity: str | None = None
    allowed_roles: tuple[str, ...] | None = None  # SAML Role attribute; None: no restriction
    display: dict[str, str] = field(default_factory=dict)  # e.g. email, name; for pages
    # SAML: SessionNotOnOrAfter / SessionDuration cap every session issued from this sign-in.
    session_ends_by: datetime | None = None
    # SAML, for single logout: the NameID as the IdP sent it (format, NameQualifier,
    # SPNameQualifier) and the SessionIndex of its AuthnStatement; identifiers, not secrets.
    name_id_format: str | None = None
    name_qualifier: str | None = None
    sp_name_qualifier: str | None = None
    session_index: str | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "kind": self.kind,
            "account_id": self.account_id,
            "provider_name": self.provider_name,
            "provider_arn": self.provider_arn,
            "subject": self.subject,
            "session_name": self.session_name,
            "trust_context": self.trust_context,
            "tags": self.tags,
            "transitive_tag_keys": list(self.transitive_tag_keys),
            "source_identity": self.source_identity,
            "allowed_roles": None if self.allowed_roles is None else list(self.allowed_roles),
            "authenticated_at": self.authenticated_at.isoformat(),
            "display": self.display,
            "session_ends_by": self.session_ends_by.isoformat() if self.session_ends_by else None,
            **{name: getattr(self, name) for name in _LOGOUT_FIELDS},
        }
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SignedIn:
        """The inverse of :meth:`to_json`; ``ValueError`` for anything else."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a signed-in identity is a JSON object")
        kind = data.get("kind")
        if kind not in _KINDS:
            raise ValueError("unknown sign-in kind")
        texts = {}
        for name in ("account_id", "provider_name", "provider_arn", "subject", "session_name"):
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"`{name}` is not a string")
            texts[name] = value
        raw_context = data.get("trust_context")
        if not isinstance(raw_context, dict):
            raise ValueError("`trust_context` is not an object")
        keys = data.get("transitive_tag_keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError("`transitive_tag_keys` is not a list of strings")
        allowed = data.get("allowed_roles")
        if allowed is not None and (
            not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed)
        ):
            raise ValueError("`allowed_roles` is not a list of strings")
        source = data.get("source_identity")
        if source is not None and not isinstance(source, str):
            raise ValueError("`source_identity` is not a string")
        logout: dict[str, str | None] = {}
        for name in _LOGOUT_FIELDS:
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"`{name}` is not a string")
            logout[name] = value
        at, ends = data.get("authenticated_at"), data.get("session_ends_by")
        return cls(
            kind=cast(Kind, kind),
            trust_context={str(k): _context_value(v) for k, v in raw_context.items()},
            tags=_strings(data.get("tags", {}), "tags"),
            transitive_tag_keys=tuple(keys),
            source_identity=source,
            allowed_roles=None if allowed is None else tuple(allowed),
            authenticated_at=_time(at, "authenticated_at"),
            display=_strings(data.get("display", {}), "display"),
            session_ends_by=None if ends is None else _time(ends, "session_ends_by"),
            name_id_format=logout["name_id_format"],
            name_qualifier=logout["name_qualifier"],
            sp_name_qualifier=logout["sp_name_qualifier"],
            session_index=logout["session_index"],
            **texts,
        )
