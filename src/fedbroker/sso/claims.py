"""Claims to session tags and source identity, through the provider's configuration.

A provider entity may carry ``attrs["sso_claims"]``, set by ``fedbroker sso configure-oidc``
(``--source-identity-claim``, ``--tag-claim CLAIM=TAG``) or the declarative file::

    {"source_identity": "email", "tags": {"groups": "Groups", "dept": "Department"}}

It applies on top of AWS's own conventions (the ``https://aws.amazon.com/tags`` and
``.../source_identity`` claims): a mapped tag replaces a token tag of the same key (tag keys
compare case-insensitively), a mapped source identity replaces the token's. A claim that is a
list of strings becomes one tag value joined with ``:`` (tag values have no comma). A value the
session cannot carry (not 2-64 of ``[\\w+=,.@-]`` for a source identity, not a valid tag value)
refuses the sign-in: silently dropping it would change what trust policies see.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

SOURCE_IDENTITY = re.compile(r"[\w+=,.@-]{2,64}")
TAG_KEY = re.compile(r"[\w\s.:/=+\-@]{1,128}")
TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]{0,256}")
CLAIM_NAME = re.compile(r"[A-Za-z0-9_.:/\-]{1,128}")
MAX_TAGS = 50


class ClaimMappingError(ValueError):
    """A claim value the mapping cannot turn into a tag or source identity (safe to log)."""


@dataclass(frozen=True)
class ClaimMapping:
    source_identity: str | None = None  # the claim that becomes the SourceIdentity
    tags: tuple[tuple[str, str], ...] = ()  # (claim, tag key)

    def to_attr(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.source_identity is not None:
            out["source_identity"] = self.source_identity
        if self.tags:
            out["tags"] = dict(self.tags)
        return out

    @classmethod
    def from_attr(cls, value: object) -> ClaimMapping:
        """The mapping stored in a provider entity; ``ValueError`` when it is malformed."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise ValueError("the claim mapping is not an object")
        unknown = set(value) - {"source_identity", "tags"}
        if unknown:
            raise ValueError(f"unknown claim mapping field `{sorted(unknown)[0]}`")
        source = value.get("source_identity")
        if source is not None and (not isinstance(source, str) or not CLAIM_NAME.fullmatch(source)):
            raise ValueError("`source_identity` is not a claim name")
        tags = value.get("tags", {})
        if not isinstance(tags, Mapping):
            raise ValueError("`tags` is not an object of claim names to tag keys")
        pairs: list[tuple[str, str]] = []
        for claim, key in tags.items():
            if not isinstance(claim, str) or not CLAIM_NAME.fullmatch(claim):
                raise ValueError(f"`{str(claim)[:128]}` is not a claim name")
            if not isinstance(key, str) or not TAG_KEY.fullmatch(key) or key.startswith("aws:"):
                raise ValueError(f"`{str(key)[:128]}` is not a session tag key")
            pairs.append((claim, key))
        lowered = [k.lower() for _, k in pairs]
        if len(set(lowered)) != len(lowered):
            raise ValueError("two claims map to the same tag key")
        if len(pairs) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags can be mapped")
        return cls(source, tuple(pairs))


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return ":".join(value)
    return None


def apply_mapping(
    mapping: ClaimMapping,
    claims: Mapping[str, object],
    tags: Mapping[str, str],
    transitive: tuple[str, ...],
    source_identity: str | None,
) -> tuple[dict[str, str], tuple[str, ...], str | None]:
    """Tags, transitive tag keys and source identity after the mapping (module docstring);
    :class:`ClaimMappingError` for a value the session cannot carry. A mapped claim that is
    absent leaves things as they were."""
    out = dict(tags)
    keys = list(transitive)
    for claim, key in mapping.tags:
        value = _text(claims.get(claim))
        if value is None:
            continue
        if not TAG_VALUE.fullmatch(value):
            raise ClaimMappingError(f"the claim `{claim}` is not a valid session tag value")
        for existing in [k for k in out if k.lower() == key.lower()]:
            del out[existing]
            keys = [k for k in keys if k != existing]
        out[key] = value
    if len(out) > MAX_TAGS:
        raise ClaimMappingError(f"{len(out)} session tags; at most {MAX_TAGS} are allowed")
    if mapping.source_identity is not None:
        claimed = claims.get(mapping.source_identity)
        if isinstance(claimed, str):
            if not SOURCE_IDENTITY.fullmatch(claimed):
                raise ClaimMappingError(
                    f"the claim `{mapping.source_identity}` is not a valid source identity "
                    "(2-64 characters of [\\w+=,.@-])"
                )
            source_identity = claimed
    return out, tuple(keys), source_identity
