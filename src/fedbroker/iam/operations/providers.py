"""What OIDC and SAML provider operations share: a provider is named in a request by its ARN
(``arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH``, ``…:saml-provider/NAME``), which is also
the resource the call is authorized on; its tags are managed by ARN too.

fedbroker's own provider options are tags under ``fedbroker:``, so that boto3, the AWS CLI and
the directory file set them with IAM's own calls (``Create…`` with ``Tags``, ``Tag…``,
``Untag…``), with the value ``true`` or ``false``:

- ``fedbroker:expose_claims`` (OIDC): every top-level string or list claim of the provider's
  tokens is also a condition key ``<provider>:<claim>`` for trust policies;
- ``fedbroker:allow_sha1`` (SAML): responses signed with SHA-1 are accepted.

The provider's attribute of the same name (``expose_claims``, ``allow_sha1``) is what STS
reads; a call that writes an option's tag sets it (``true``) or clears it (``false``, or the
tag untagged), and a call that does not leaves it alone, so ``fedbroker sso configure-saml
--allow-sha1`` (which sets the attribute only) and the tags coexist. Any other ``fedbroker:``
key, or another value, is refused (``InvalidInput``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import (
    FedbrokerError,
    InvalidInputError,
    LimitExceededError,
    NoSuchEntityError,
)
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.common import new_entity, request_tag_context, tags_list
from fedbroker.iam.operations.tagging import merged_tags
from fedbroker.iam.params import Params
from fedbroker.iam.registry import operation

ARN_PARAM = {Kind.OIDC_PROVIDER: "OpenIDConnectProviderArn", Kind.SAML_PROVIDER: "SAMLProviderArn"}
NOUN = {Kind.OIDC_PROVIDER: "OpenIDConnectProvider", Kind.SAML_PROVIDER: "SAMLProvider"}
WHAT = {Kind.OIDC_PROVIDER: "OIDC provider", Kind.SAML_PROVIDER: "SAML provider"}
# IAM quotas: "SAML providers in an AWS account" and "OIDC providers ...", 100 each.
MAX_PROVIDERS = 100

OPTION_PREFIX = "fedbroker:"
OPTIONS = {
    Kind.OIDC_PROVIDER: {"fedbroker:expose_claims": "expose_claims"},
    Kind.SAML_PROVIDER: {"fedbroker:allow_sha1": "allow_sha1"},
}

# Any partition and account, so that the ARN of another account is "not found", not "invalid".
_ARN = re.compile(r"arn:[\w-]+:iam::(\d{12}):(oidc-provider|saml-provider)/(\S+)", re.ASCII)


def _shown(value: str) -> str:
    return value if len(value) <= 128 else value[:125] + "..."


def arn_param(params: Params, kind: Kind) -> str:
    return params.req(ARN_PARAM[kind], max_len=2048, min_len=20)


def provider_by_arn(ctx: CallContext, kind: Kind, arn: str) -> Entity:
    """The provider of the caller's account that ``arn`` names.

    Raises ``InvalidInput`` for something that is not an ARN of this kind of provider and
    ``NoSuchEntity`` when there is no such provider in the caller's account.
    """
    match = _ARN.fullmatch(arn)
    if match is None or match.group(2) != kind.resource_type:
        raise InvalidInputError(f"`{_shown(arn)}` is not the ARN of an {WHAT[kind]}")
    account, _, name = match.groups()
    missing = NoSuchEntityError(f"the {WHAT[kind]} `{_shown(arn)}` does not exist")
    if account != ctx.account_id:
        raise missing
    try:
        return ctx.store.get_entity(ctx.account_id, kind, name)
    except NoSuchEntityError:
        raise missing from None


def named_provider(ctx: CallContext, params: Params, kind: Kind) -> Entity:
    return provider_by_arn(ctx, kind, arn_param(params, kind))


def option_tag(key: str) -> bool:
    """Whether a tag key is in the namespace of fedbroker's provider options."""
    return key.lower().startswith(OPTION_PREFIX)


def option_attrs(kind: Kind, tags: Mapping[str, str]) -> dict[str, bool]:
    """The options that the tags of one ``Create…``/``Tag…`` call set, by attribute.

    Raises ``InvalidInput`` for an unknown ``fedbroker:`` key (on this kind of provider) or a
    value other than ``true``/``false``."""
    options = OPTIONS[kind]
    out: dict[str, bool] = {}
    for raw_key, value in tags.items():
        key = raw_key.lower()
        if not option_tag(key):
            continue
        if key not in options:
            known = ", ".join(f"`{k}`" for k in options)
            raise InvalidInputError(
                f"`{raw_key}` is not an option of {WHAT[kind]}s (the {WHAT[kind]} option is "
                f"{known})"
            )
        if value not in ("true", "false"):
            raise InvalidInputError(
                f"the option `{raw_key}` is `true` or `false`, not `{value[:64]}`"
            )
        out[options[key]] = value == "true"
    return out


def with_options(attrs: Mapping[str, object], options: Mapping[str, bool]) -> dict[str, object]:
    """``attrs`` with ``options`` set (on) or removed (off). Only the options a call names
    change: one set otherwise (``fedbroker sso configure-saml``) is left as it is."""
    out = dict(attrs)
    for attr, on in options.items():
        if on:
            out[attr] = True
        else:
            out.pop(attr, None)
    return out


def create_provider(ctx: CallContext, kind: Kind, name: str, attrs: dict[str, object]) -> Entity:
    """A new provider, within IAM's quota of providers of its kind per account; its options
    follow its tags (:func:`option_attrs`)."""
    tags = attrs.get("tags")
    if isinstance(tags, dict):
        attrs = with_options(attrs, option_attrs(kind, tags))
    if len(ctx.store.list_entities(ctx.account_id, kind)) >= MAX_PROVIDERS:
        raise LimitExceededError(
            f"cannot exceed quota for {NOUN[kind]}sPerAccount: {MAX_PROVIDERS}"
        )
    return new_entity(ctx, kind, name, "/", attrs)


def arn_resource(kind: Kind) -> Callable[[CallContext, Params], str]:
    """The provider ARN the request names, as the resource it is authorized on."""

    def resource(ctx: CallContext, params: Params) -> str:
        return params.form.get(ARN_PARAM[kind]) or ctx.arn(f"{kind.resource_type}/")

    return resource


def tag_context(kind: Kind) -> Callable[[CallContext, Params], dict[str, object]]:
    """``aws:RequestTag``/``aws:TagKeys`` of the request and ``aws:ResourceTag`` of the
    provider it names (when that exists)."""

    def context(ctx: CallContext, params: Params) -> dict[str, object]:
        out = request_tag_context(params)
        try:
            provider = named_provider(ctx, params, kind)
        except FedbrokerError:
            return out
        out.update({f"aws:ResourceTag/{k}": v for k, v in provider.tags.items()})
        return out

    return context


def register_tagging(kind: Kind) -> None:
    """``Tag…``, ``Untag…`` and ``List…Tags`` for providers of ``kind``, named by ARN."""
    noun, resource, context = NOUN[kind], arn_resource(kind), tag_context(kind)

    def tag(ctx: CallContext, params: Params) -> dict[str, Any]:
        provider = named_provider(ctx, params, kind)
        given = params.tags()
        merged = merged_tags(provider, given)
        attrs = with_options({**provider.attrs, "tags": merged}, option_attrs(kind, given))
        ctx.store.update_entity(replace(provider, attrs=attrs))
        return {}

    def untag(ctx: CallContext, params: Params) -> dict[str, Any]:
        provider = named_provider(ctx, params, kind)
        remove = {key.lower() for key in params.members("TagKeys")}
        kept = {k: v for k, v in provider.tags.items() if k.lower() not in remove}
        off = {attr: False for key, attr in OPTIONS[kind].items() if key in remove}
        attrs = with_options({**provider.attrs, "tags": kept}, off)
        ctx.store.update_entity(replace(provider, attrs=attrs))
        return {}

    def list_tags(ctx: CallContext, params: Params) -> dict[str, Any]:
        return {"Tags": tags_list(named_provider(ctx, params, kind).tags), "IsTruncated": False}

    operation(f"Tag{noun}", resource, extra_context=context)(tag)
    operation(f"Untag{noun}", resource, extra_context=context)(untag)
    operation(f"List{noun}Tags", resource, read_only=True, extra_context=context)(list_tags)
