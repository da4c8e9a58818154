"""SAML identity providers: Create/Get/Update/Delete/List and tags.

IAM API Reference, "CreateSAMLProvider" and the operations around it. The metadata document is
parsed and checked by :mod:`fedbroker.federation.saml_metadata` on every write; a document that
is not usable identity provider metadata gets ``InvalidInput`` naming what is wrong, and
nothing is stored. What the SAML sign-in needs (entity id, signing certificates with their
SHA-256 fingerprints, SSO endpoints and bindings, NameID formats) is kept beside the document
in the provider's attributes, so it is never parsed again.

Assertion encryption as IAM has it: ``AssertionEncryptionMode`` (``Allowed``, the default,
or ``Required``) and up to two private keys (``AddPrivateKey``, ``RemovePrivateKey``; listed
by id and time in ``PrivateKeyList``), kept sealed by :mod:`fedbroker.iam.saml_keys`. The
browser sign-in's own settings of a provider (IdP-initiated logins, SHA-1, clock skew) are
set with ``fedbroker sso configure-saml``.

``ValidUntil`` is the metadata's ``validUntil``; without one it is 100 years after the
document was stored, as IAM does (its own example: created 2017-03-06, valid until
2117-03-06).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Any

from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import InvalidInputError
from fedbroker.federation.saml_metadata import parse_idp_metadata
from fedbroker.iam import saml_keys
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.common import request_tag_context, tags_list
from fedbroker.iam.operations.providers import (
    arn_resource,
    create_provider,
    named_provider,
    register_tagging,
    tag_context,
)
from fedbroker.iam.params import Params
from fedbroker.iam.registry import operation

KIND = Kind.SAML_PROVIDER
NAME = re.compile(r"[\w._-]+", re.ASCII)
MAX_NAME = 128
MIN_METADATA = 1000
MAX_METADATA = 10_000_000
DEFAULT_VALIDITY_YEARS = 100
ENCRYPTION_MODES = ("Allowed", "Required")


def metadata_attrs(document: str, now: datetime) -> dict[str, object]:
    """The attributes a provider keeps for ``document``; raises ``InvalidInput`` for a
    document that is not usable identity provider metadata (or has expired at ``now``)."""
    metadata = parse_idp_metadata(document, now=now)
    valid_until = metadata.valid_until or _years_later(now, DEFAULT_VALIDITY_YEARS)
    return {"metadata": document, "valid_until": valid_until.isoformat(), "idp": metadata.to_json()}


def _years_later(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February, in a year that has none
        return moment.replace(year=moment.year + years, day=28)


def valid_until(provider: Entity) -> datetime | None:
    value = provider.attrs.get("valid_until")
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _document(params: Params) -> str:
    return params.req("SAMLMetadataDocument", min_len=MIN_METADATA, max_len=MAX_METADATA)


def _encryption(ctx: CallContext, params: Params, provider: Entity) -> Entity:
    """``provider`` with the request's AssertionEncryptionMode, AddPrivateKey and
    RemovePrivateKey applied (removal first, as IAM's rotation guide does it)."""
    mode = params.opt("AssertionEncryptionMode", max_len=16)
    if mode is not None:
        if mode not in ENCRYPTION_MODES:
            raise InvalidInputError(
                f"AssertionEncryptionMode `{mode}` is not one of {', '.join(ENCRYPTION_MODES)}"
            )
        provider = replace(provider, attrs={**provider.attrs, "assertion_encryption_mode": mode})
    removed = params.opt("RemovePrivateKey", max_len=64)
    if removed is not None:
        provider = saml_keys.remove_private_key(provider, removed)
    added = params.form.get("AddPrivateKey")  # a secret: never echoed in an error
    if added is not None:
        if not 1 <= len(added) <= 16384:
            raise InvalidInputError("AddPrivateKey must be 1-16384 characters")
        provider, _ = saml_keys.add_private_key(ctx.services.master_key, provider, ctx.now, added)
    if provider.attrs.get("assertion_encryption_mode") == "Required" and not saml_keys.private_keys(
        provider
    ):
        raise InvalidInputError(
            "AssertionEncryptionMode `Required` needs a private key (AddPrivateKey)"
        )
    return provider


def _create_resource(ctx: CallContext, params: Params) -> str:
    return ctx.arn(f"{KIND.resource_type}/{params.form.get('Name', '')}")


@operation(
    "CreateSAMLProvider", _create_resource, extra_context=lambda c, p: request_tag_context(p)
)
def create_saml_provider(ctx: CallContext, params: Params) -> dict[str, Any]:
    name = params.req("Name", max_len=MAX_NAME, pattern=NAME)
    attrs = metadata_attrs(_document(params), ctx.now)
    attrs["tags"] = params.tags()
    # Checked (and the key sealed with the provider's ARN) before anything is stored.
    draft = _encryption(ctx, params, Entity(KIND, ctx.account_id, name, "", "/", ctx.now, attrs))
    provider = create_provider(ctx, KIND, name, draft.attrs)
    ctx.response_elements = {"sAMLProviderArn": provider.arn}
    result: dict[str, Any] = {"SAMLProviderArn": provider.arn}
    if provider.tags:
        result["Tags"] = tags_list(provider.tags)
    return result


@operation("GetSAMLProvider", arn_resource(KIND), read_only=True, extra_context=tag_context(KIND))
def get_saml_provider(ctx: CallContext, params: Params) -> dict[str, Any]:
    provider = named_provider(ctx, params, KIND)
    result: dict[str, Any] = {
        "SAMLMetadataDocument": str(provider.attrs.get("metadata", "")),
        "CreateDate": provider.created,
        "ValidUntil": valid_until(provider),
        "AssertionEncryptionMode": str(provider.attrs.get("assertion_encryption_mode", "Allowed")),
    }
    keys = saml_keys.private_keys(provider)
    if keys:
        result["PrivateKeyList"] = [{"KeyId": k.key_id, "Timestamp": k.created} for k in keys]
    if provider.tags:
        result["Tags"] = tags_list(provider.tags)
    return result


@operation("UpdateSAMLProvider", arn_resource(KIND), extra_context=tag_context(KIND))
def update_saml_provider(ctx: CallContext, params: Params) -> dict[str, Any]:
    provider = named_provider(ctx, params, KIND)
    if params.form.get("SAMLMetadataDocument") is not None or not any(
        params.form.get(k) is not None
        for k in ("AssertionEncryptionMode", "AddPrivateKey", "RemovePrivateKey")
    ):
        attrs = metadata_attrs(_document(params), ctx.now)
        provider = replace(provider, attrs={**provider.attrs, **attrs})
    ctx.store.update_entity(_encryption(ctx, params, provider))
    return {"SAMLProviderArn": provider.arn}


@operation("DeleteSAMLProvider", arn_resource(KIND), extra_context=tag_context(KIND))
def delete_saml_provider(ctx: CallContext, params: Params) -> dict[str, Any]:
    ctx.store.delete_entity(named_provider(ctx, params, KIND))
    return {}


@operation("ListSAMLProviders", lambda ctx, params: "*", read_only=True)
def list_saml_providers(ctx: CallContext, params: Params) -> dict[str, Any]:
    providers = ctx.store.list_entities(ctx.account_id, KIND)
    return {
        "SAMLProviderList": [
            {"Arn": p.arn, "ValidUntil": valid_until(p), "CreateDate": p.created} for p in providers
        ]
    }


register_tagging(KIND)
