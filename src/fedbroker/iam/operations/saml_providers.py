"""SAML identity providers: Create/Get/Update/Delete/List and tags.

IAM API Reference, "CreateSAMLProvider" and the operations around it. The metadata document is
parsed and checked by :mod:`fedbroker.federation.saml_metadata` on every write; a document that
is not usable identity provider metadata gets ``InvalidInput`` naming what is wrong, and
nothing is stored. What the SAML sign-in needs (entity id, signing certificates with their
SHA-256 fingerprints, SSO endpoints and bindings, NameID formats) is kept beside the document
in the provider's attributes, so it is never parsed again.

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
from fedbroker.federation.saml_metadata import parse_idp_metadata
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


def _create_resource(ctx: CallContext, params: Params) -> str:
    return ctx.arn(f"{KIND.resource_type}/{params.form.get('Name', '')}")


@operation(
    "CreateSAMLProvider", _create_resource, extra_context=lambda c, p: request_tag_context(p)
)
def create_saml_provider(ctx: CallContext, params: Params) -> dict[str, Any]:
    name = params.req("Name", max_len=MAX_NAME, pattern=NAME)
    attrs = metadata_attrs(_document(params), ctx.now)
    attrs["tags"] = params.tags()
    provider = create_provider(ctx, KIND, name, attrs)
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
    }
    if provider.tags:
        result["Tags"] = tags_list(provider.tags)
    return result


@operation("UpdateSAMLProvider", arn_resource(KIND), extra_context=tag_context(KIND))
def update_saml_provider(ctx: CallContext, params: Params) -> dict[str, Any]:
    provider = named_provider(ctx, params, KIND)
    # IAM also updates assertion encryption here; the broker has none yet, so the document
    # is what there is to update, and it is required.
    attrs = metadata_attrs(_document(params), ctx.now)
    ctx.store.update_entity(replace(provider, attrs={**provider.attrs, **attrs}))
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
