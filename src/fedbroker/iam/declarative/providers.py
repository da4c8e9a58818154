"""Identity providers in the directory file: reading ``providers:``, diffing it against the
directory, and exporting it.

    providers:
      oidc:
        - url: https://token.actions.githubusercontent.com
          client_ids: [sts.amazonaws.com]
          thumbprints: [...]                  # optional
          expose_claims: true                 # optional, fedbroker's option
          tags: {...}
      saml:
        - name: corporate
          metadata_file: corporate-idp.xml    # relative to the file; or `metadata:` inline
          allow_sha1: false                   # optional, fedbroker's option
          tags: {...}

The options are the providers' ``fedbroker:`` tags to the IAM API
(:mod:`~fedbroker.iam.operations.providers`): they are written with the same tag calls, and
exported as options, not as tags.

The rules are the IAM operations' own (URL, client id and thumbprint checks from
:mod:`~fedbroker.iam.operations.oidc_providers`, the metadata parser of the federation layer),
and changes are made by the same IAM calls. Kept apart from ``load``/``plan``/``export``,
which hold users, groups, roles and policies, so that each of those stays one job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fedbroker.directory.model import Account, Entity, Kind
from fedbroker.directory.store import Store
from fedbroker.errors import FedbrokerError
from fedbroker.federation.saml_metadata import parse_idp_metadata
from fedbroker.iam.declarative.changes import Call, Change, Verb, members, tag_calls, tag_form
from fedbroker.iam.declarative.fields import FieldReader, at, shown
from fedbroker.iam.declarative.state import DesiredOidcProvider, DesiredSamlProvider, DesiredState
from fedbroker.iam.operations import oidc_providers as oidc
from fedbroker.iam.operations import saml_providers as saml
from fedbroker.iam.operations.providers import OPTIONS, option_tag

OIDC, SAML = Kind.OIDC_PROVIDER, Kind.SAML_PROVIDER
FIELDS = {
    "oidc": ("url", "client_ids", "thumbprints", "expose_claims", "tags"),
    "saml": ("name", "metadata", "metadata_file", "allow_sha1", "tags"),
}
# Each option's field in the file, by kind: the same name as its attribute and tag.
OPTION_FIELDS = {kind: {attr: key for key, attr in keys.items()} for kind, keys in OPTIONS.items()}

# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadProviders:
    oidc: tuple[DesiredOidcProvider, ...] = ()
    saml: tuple[DesiredSamlProvider, ...] = ()
    listed: bool = False


def read(
    reader: FieldReader, value: object, base_dir: Path | None, now: datetime | None
) -> ReadProviders:
    """The ``providers`` section; problems go to ``reader``. ``metadata_file`` paths are
    relative to ``base_dir`` (the file's directory); metadata that expired before ``now``
    is a problem."""
    if value is None:
        return ReadProviders()
    if value == []:  # the placeholder of format version 1 before providers were supported
        return ReadProviders(listed=True)
    if not isinstance(value, dict):
        reader.problem("providers", "must be a mapping with `oidc` and `saml` lists")
        return ReadProviders()
    fields = reader.mapping(value, "providers", ("oidc", "saml"), ())
    assert fields is not None
    oidc_items = reader.list_of(fields.get("oidc"), "providers.oidc")
    saml_items = reader.list_of(fields.get("saml"), "providers.saml")
    oidc_read = [_oidc(reader, item, f"providers.oidc[{i}]") for i, item in enumerate(oidc_items)]
    saml_read = [
        _saml(reader, item, f"providers.saml[{i}]", base_dir, now)
        for i, item in enumerate(saml_items)
    ]
    oidc_found = tuple(p for p in oidc_read if p is not None)
    saml_found = tuple(p for p in saml_read if p is not None)
    _unique(reader, [(p.name, p.where, "url") for p in oidc_found], "OIDC provider")
    _unique(reader, [(p.name, p.where, "name") for p in saml_found], "SAML provider")
    return ReadProviders(oidc_found, saml_found, listed=True)


def _unique(reader: FieldReader, items: list[tuple[str, str, str]], noun: str) -> None:
    seen: dict[str, str] = {}
    for name, where, key in items:
        first = seen.setdefault(name.lower(), where)
        if first != where:
            reader.problem(
                at(where, key),
                f"{noun} `{name}` is also defined at {first} (names ignore case)",
            )


def _strings(
    reader: FieldReader, value: object, where: str, noun: str, *, fold: bool = False
) -> list[str]:
    """A list of strings without repeats (compared without regard to case if ``fold``)."""
    out: list[str] = []
    for index, item in enumerate(reader.list_of(value, where)):
        text = reader.string(item, f"{where}[{index}]")
        if text is None:
            continue
        if (text.lower() in (o.lower() for o in out)) if fold else (text in out):
            reader.problem(f"{where}[{index}]", f"{noun} `{shown(text)}` is listed twice")
            continue
        out.append(text)
    return out


def _oidc(reader: FieldReader, item: object, where: str) -> DesiredOidcProvider | None:
    fields = reader.mapping(item, where, FIELDS["oidc"], ("url",))
    if fields is None:
        return None
    url: oidc.ProviderUrl | None = None
    raw = fields.get("url")
    text = reader.string(raw, at(where, "url")) if raw is not None else None
    if text is not None:
        if len(text) > oidc.MAX_URL:
            reader.problem(at(where, "url"), f"at most {oidc.MAX_URL} characters")
        else:
            url = _checked(reader, at(where, "url"), oidc.provider_url, text)
    ids = _strings(reader, fields.get("client_ids"), at(where, "client_ids"), "client id")
    prints = _strings(
        reader, fields.get("thumbprints"), at(where, "thumbprints"), "thumbprint", fold=True
    )
    ids = _checked(reader, at(where, "client_ids"), oidc.client_ids, ids) or []
    prints = _checked(reader, at(where, "thumbprints"), oidc.thumbprints, prints) or []
    tags = _tags(reader, fields.get("tags"), at(where, "tags"))
    expose = _flag(reader, fields.get("expose_claims"), at(where, "expose_claims"))
    if url is None:
        return None
    return DesiredOidcProvider(
        url.url, url.name, tuple(ids), tuple(prints), tags, where, expose_claims=expose
    )


def _tags(reader: FieldReader, value: object, where: str) -> dict[str, str]:
    tags = reader.tags(value, where)
    for key in [k for k in tags if option_tag(k)]:
        reader.problem(at(where, key), "fedbroker's options are fields of the provider, not tags")
        del tags[key]
    return tags


def _flag(reader: FieldReader, value: object, where: str) -> bool:
    if value is None:
        return False
    if type(value) is not bool:
        reader.problem(where, "must be true or false")
        return False
    return value


def _checked(reader: FieldReader, where: str, check: Any, value: Any) -> Any:
    """``check(value)``, or ``None`` with the IAM error's message recorded as a problem."""
    try:
        return check(value)
    except FedbrokerError as exc:
        reader.problem(where, exc.message)
        return None


def _saml(
    reader: FieldReader, item: object, where: str, base_dir: Path | None, now: datetime | None
) -> DesiredSamlProvider | None:
    fields = reader.mapping(item, where, FIELDS["saml"], ("name",))
    if fields is None:
        return None
    raw = fields.get("name")
    name = reader.string(raw, at(where, "name")) if raw is not None else None
    if name is not None and not (1 <= len(name) <= saml.MAX_NAME and saml.NAME.fullmatch(name)):
        reader.problem(
            at(where, "name"),
            f"`{shown(name)}` is not a valid SAML provider name "
            f"(1 to {saml.MAX_NAME} letters, digits and ._-)",
        )
        name = None
    document = _document(reader, fields, where, base_dir)
    if document is not None:
        here = at(where, "metadata_file" if "metadata_file" in fields else "metadata")
        if not saml.MIN_METADATA <= len(document) <= saml.MAX_METADATA:
            reader.problem(
                here, f"must be {saml.MIN_METADATA} to {saml.MAX_METADATA} characters long"
            )
            document = None
        elif _checked(reader, here, lambda d: parse_idp_metadata(d, now=now), document) is None:
            document = None
    tags = _tags(reader, fields.get("tags"), at(where, "tags"))
    allow_sha1 = _flag(reader, fields.get("allow_sha1"), at(where, "allow_sha1"))
    if name is None or document is None:
        return None
    return DesiredSamlProvider(name, document, tags, where, allow_sha1=allow_sha1)


def _document(
    reader: FieldReader, fields: Mapping[str, object], where: str, base_dir: Path | None
) -> str | None:
    inline, path = fields.get("metadata"), fields.get("metadata_file")
    if inline is not None and path is not None:
        reader.problem(where, "give `metadata` or `metadata_file`, not both")
        return None
    if inline is not None:
        return reader.string(inline, at(where, "metadata"))
    if path is None:
        reader.problem(at(where, "metadata"), "required: `metadata` or `metadata_file`")
        return None
    text = reader.string(path, at(where, "metadata_file"))
    if text is None:
        return None
    file = Path(text) if base_dir is None else base_dir / text
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        reader.problem(at(where, "metadata_file"), f"cannot read `{file}`: {exc.strerror}")
    except UnicodeDecodeError:
        reader.problem(at(where, "metadata_file"), f"`{file}` is not UTF-8 text")
    return None


# --- planning --------------------------------------------------------------------------------


@dataclass(slots=True)
class ProviderPlan:
    """Provider changes by when they run: with the other entities, with the removal and the
    addition of relations (client ids), and under ``--prune``."""

    entities: list[Change] = field(default_factory=list)
    remove: list[Change] = field(default_factory=list)
    add: list[Change] = field(default_factory=list)
    prune: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def plan(store: Store, account: Account, desired: DesiredState, prune: bool) -> ProviderPlan:
    out = ProviderPlan()
    current = {
        kind: {e.name.lower(): e for e in store.list_entities(account.id, kind)}
        for kind in (OIDC, SAML)
    }
    for provider in desired.oidc_providers:
        _plan_oidc(out, current[OIDC].get(provider.name.lower()), provider)
    for saml_provider in desired.saml_providers:
        _plan_saml(out, current[SAML].get(saml_provider.name.lower()), saml_provider)
    if prune and desired.providers_listed:
        named = {
            OIDC: {p.name.lower() for p in desired.oidc_providers},
            SAML: {p.name.lower() for p in desired.saml_providers},
        }
        for kind, action, param in (
            (OIDC, "DeleteOpenIDConnectProvider", "OpenIDConnectProviderArn"),
            (SAML, "DeleteSAMLProvider", "SAMLProviderArn"),
        ):
            for key, entity in current[kind].items():
                if key not in named[kind]:
                    call = Call(action, {param: entity.arn})
                    out.prune.append(Change(Verb.DELETE, kind, entity.name, None, (call,)))
    return out


def _immutable(
    out: ProviderPlan, where: str, current: Entity, what: str, old: str, new: str
) -> None:
    noun = current.kind.resource_type
    out.problems.append(
        f"{where}: the {what} of {noun} `{current.name}` is `{old}` and IAM cannot change it to "
        f"`{new}`; delete the provider first (or keep the {what})"
    )


def _tagged(kind: Kind, tags: Mapping[str, str], options: Mapping[str, bool]) -> dict[str, str]:
    """``tags`` with the tag of each option that is on."""
    keys = OPTION_FIELDS[kind]
    return {**tags, **{keys[attr]: "true" for attr, on in options.items() if on}}


def _current_tags(entity: Entity) -> dict[str, str]:
    """The provider's tags, with its options as they are in effect (the attribute), so that a
    file turns off an option even if only its attribute is set."""
    plain = {k: v for k, v in entity.tags.items() if not option_tag(k)}
    options = {attr: entity.attrs.get(attr) is True for attr in OPTION_FIELDS[entity.kind]}
    return _tagged(entity.kind, plain, options)


def _plan_oidc(out: ProviderPlan, current: Entity | None, desired: DesiredOidcProvider) -> None:
    tags = _tagged(OIDC, desired.tags, {"expose_claims": desired.expose_claims})
    if current is None:
        form = {
            "Url": desired.url,
            **members("ClientIDList", list(desired.client_ids)),
            **members("ThumbprintList", list(desired.thumbprints)),
            **tag_form(tags),
        }
        call = Call("CreateOpenIDConnectProvider", form)
        out.entities.append(Change(Verb.CREATE, OIDC, desired.name, None, (call,)))
        return
    url, ids, prints = oidc.provider_attrs(current)
    if url != desired.url:
        _immutable(out, at(desired.where, "url"), current, "url", url, desired.url)
        return
    arn, name = {"OpenIDConnectProviderArn": current.arn}, current.name
    for gone in (i for i in ids if i not in desired.client_ids):
        call = Call("RemoveClientIDFromOpenIDConnectProvider", {**arn, "ClientID": gone})
        out.remove.append(Change(Verb.DELETE, OIDC, name, f"client id {gone}", (call,)))
    for new in (i for i in desired.client_ids if i not in ids):
        call = Call("AddClientIDToOpenIDConnectProvider", {**arn, "ClientID": new})
        out.add.append(Change(Verb.CREATE, OIDC, name, f"client id {new}", (call,)))
    if sorted(t.lower() for t in prints) != sorted(t.lower() for t in desired.thumbprints):
        # An empty list is sent as the bare parameter, as botocore sends it.
        listed = members("ThumbprintList", list(desired.thumbprints)) or {"ThumbprintList": ""}
        call = Call("UpdateOpenIDConnectProviderThumbprint", {**arn, **listed})
        out.entities.append(Change(Verb.UPDATE, OIDC, name, "thumbprints", (call,)))
    retag = tag_calls("OpenIDConnectProvider", arn, _current_tags(current), tags)
    if retag:
        out.entities.append(Change(Verb.UPDATE, OIDC, name, "tags", retag))


def _plan_saml(out: ProviderPlan, current: Entity | None, desired: DesiredSamlProvider) -> None:
    tags = _tagged(SAML, desired.tags, {"allow_sha1": desired.allow_sha1})
    if current is None:
        form = {
            "Name": desired.name,
            "SAMLMetadataDocument": desired.metadata,
            **tag_form(tags),
        }
        call = Call("CreateSAMLProvider", form)
        out.entities.append(Change(Verb.CREATE, SAML, desired.name, None, (call,)))
        return
    if current.name != desired.name:
        _immutable(out, at(desired.where, "name"), current, "name", current.name, desired.name)
        return
    arn = {"SAMLProviderArn": current.arn}
    if current.attrs.get("metadata") != desired.metadata:
        call = Call("UpdateSAMLProvider", {**arn, "SAMLMetadataDocument": desired.metadata})
        out.entities.append(Change(Verb.UPDATE, SAML, current.name, "metadata", (call,)))
    retag = tag_calls("SAMLProvider", arn, _current_tags(current), tags)
    if retag:
        out.entities.append(Change(Verb.UPDATE, SAML, current.name, "tags", retag))


# --- export ----------------------------------------------------------------------------------


def export(store: Store, account: Account) -> dict[str, Any] | None:
    """The ``providers`` section for ``account``'s providers (``None`` when it has none).
    SAML metadata is written inline; ``metadata_file`` is for files written by hand."""
    section: dict[str, Any] = {}
    listed_oidc = []
    for provider in store.list_entities(account.id, OIDC):
        url, ids, prints = oidc.provider_attrs(provider)
        out: dict[str, Any] = {"url": url}
        if ids:
            out["client_ids"] = ids
        if prints:
            out["thumbprints"] = prints
        _export_options(out, provider)
        listed_oidc.append(out)
    listed_saml = []
    for provider in store.list_entities(account.id, SAML):
        out = {"name": provider.name, "metadata": str(provider.attrs.get("metadata", ""))}
        _export_options(out, provider)
        listed_saml.append(out)
    if listed_oidc:
        section["oidc"] = listed_oidc
    if listed_saml:
        section["saml"] = listed_saml
    return section or None


def _export_options(out: dict[str, Any], provider: Entity) -> None:
    """The provider's options (those that are on) and its tags other than the options'."""
    for attr in OPTION_FIELDS[provider.kind]:
        if provider.attrs.get(attr) is True:
            out[attr] = True
    tags = {k: v for k, v in provider.tags.items() if not option_tag(k)}
    if tags:
        out["tags"] = tags
