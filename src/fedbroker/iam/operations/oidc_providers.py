"""OpenID Connect identity providers: Create/Get/Delete/List, client ids, thumbprints, tags.

IAM API Reference, "CreateOpenIDConnectProvider" and the operations around it. A provider is
named by its URL without the scheme, host in lower case (its ARN is
``arn:aws:iam::ACCOUNT:oidc-provider/HOST[:PORT][/PATH]``), so one URL is one provider.
URLs are ``https://``; ``http://`` is accepted only for a loopback host (``localhost``,
127.0.0.0/8, ``[::1]``), so that tests and local development can run a provider on the same
machine. Thumbprints are optional, as in IAM today; the broker does not fetch any.
Deleting, adding and removing a client id are idempotent, as IAM documents them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import (
    InvalidInputError,
    LimitExceededError,
    NoSuchEntityError,
    ValidationError,
)
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.common import request_tag_context, tags_list
from fedbroker.iam.operations.providers import (
    arn_param,
    arn_resource,
    create_provider,
    named_provider,
    provider_by_arn,
    register_tagging,
    tag_context,
)
from fedbroker.iam.params import Params
from fedbroker.iam.registry import operation

KIND = Kind.OIDC_PROVIDER
MAX_URL = 255
MAX_CLIENT_IDS = 100
MAX_CLIENT_ID = 255
MAX_THUMBPRINTS = 5
THUMBPRINT_LENGTH = 40
_HEX = re.compile(r"[0-9A-Fa-f]{40}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# The path becomes part of the provider's ARN: only the characters an ARN resource may hold.
_PATH = re.compile(r"(?:/[A-Za-z0-9_+=,.@:-]*)*")


@dataclass(frozen=True, slots=True)
class ProviderUrl:
    """A checked provider URL: ``url`` normalised (scheme and host in lower case) and its
    ``name``, the URL without the scheme: the provider's name and the end of its ARN."""

    url: str
    name: str


def provider_url(raw: str) -> ProviderUrl:
    """``raw`` as a provider URL; raises ``InvalidInput`` saying what is wrong with it."""
    if any(not 0x21 <= ord(c) <= 0x7E for c in raw):
        raise InvalidInputError(f"the URL `{raw[:64]}` must be printable ASCII without spaces")
    try:
        parts = urllib.parse.urlsplit(raw)
        port = parts.port
    except ValueError:
        raise InvalidInputError(f"`{raw}` is not a valid URL") from None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in ("https", "http"):
        raise InvalidInputError(f"the URL `{raw}` must begin with https://")
    if "?" in raw or "#" in raw:
        raise InvalidInputError(
            f"the URL `{raw}` must not have a query or a fragment (only a host and a path)"
        )
    if "@" in parts.netloc:
        raise InvalidInputError(f"the URL `{raw}` must not hold a user name or password")
    address = _ip_address(host)
    if address is None and not _HOST.fullmatch(host):
        raise InvalidInputError(f"the URL `{raw}` has no valid host name")
    if scheme == "http" and not (host == "localhost" or (address and address.is_loopback)):
        raise InvalidInputError(
            f"the URL `{raw}` must begin with https:// (http:// is accepted only for "
            "localhost, 127.0.0.0/8 and [::1])"
        )
    if not _PATH.fullmatch(parts.path):
        raise InvalidInputError(
            f"the path of the URL `{raw}` may hold only letters, digits and _+=,.@:-/"
        )
    netloc = f"[{host}]" if address is not None and address.version == 6 else host
    if port is not None:
        netloc += f":{port}"
    name = netloc + parts.path
    return ProviderUrl(f"{scheme}://{name}", name)


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def client_ids(values: Iterable[str]) -> list[str]:
    """Client ids (audiences) in order, without repeats; raises on a bad one or too many."""
    out: list[str] = []
    for value in values:
        if not 1 <= len(value) <= MAX_CLIENT_ID:
            raise ValidationError(f"a client id must be 1 to {MAX_CLIENT_ID} characters")
        if value not in out:
            out.append(value)
    if len(out) > MAX_CLIENT_IDS:
        raise LimitExceededError(
            f"cannot exceed quota for ClientIdsPerOpenIdConnectProvider: {MAX_CLIENT_IDS}"
        )
    return out


def thumbprints(values: Iterable[str]) -> list[str]:
    """Server certificate thumbprints (hex SHA-1, 40 characters), without repeats (case
    ignored); raises on a bad one or more than five."""
    out: list[str] = []
    for value in values:
        if len(value) != THUMBPRINT_LENGTH:
            raise ValidationError(
                f"thumbprint `{value[:64]}` must be {THUMBPRINT_LENGTH} characters long"
            )
        if not _HEX.fullmatch(value):
            raise InvalidInputError(f"thumbprint `{value}` is not hexadecimal")
        if value.lower() not in (t.lower() for t in out):
            out.append(value)
    if len(out) > MAX_THUMBPRINTS:
        raise LimitExceededError(
            f"cannot exceed quota for ThumbprintsPerOpenIdConnectProvider: {MAX_THUMBPRINTS}"
        )
    return out


def provider_attrs(entity: Entity) -> tuple[str, list[str], list[str]]:
    """The stored URL, client ids and thumbprints of a provider."""
    ids = entity.attrs.get("client_ids")
    prints = entity.attrs.get("thumbprints")
    return (
        str(entity.attrs.get("url") or f"https://{entity.name}"),
        [str(i) for i in ids] if isinstance(ids, list) else [],
        [str(t) for t in prints] if isinstance(prints, list) else [],
    )


def _create_resource(ctx: CallContext, params: Params) -> str:
    raw = params.form.get("Url", "")
    try:
        name = provider_url(raw).name
    except InvalidInputError:
        name = raw.split("://", 1)[-1]
    return ctx.arn(f"{KIND.resource_type}/{name}")


@operation(
    "CreateOpenIDConnectProvider",
    _create_resource,
    extra_context=lambda c, p: request_tag_context(p),
)
def create_oidc_provider(ctx: CallContext, params: Params) -> dict[str, Any]:
    url = provider_url(params.req("Url", max_len=MAX_URL))
    attrs: dict[str, object] = {
        "url": url.url,
        "client_ids": client_ids(params.members("ClientIDList")),
        "thumbprints": thumbprints(params.members("ThumbprintList")),
        "tags": params.tags(),
    }
    provider = create_provider(ctx, KIND, url.name, attrs)
    ctx.response_elements = {"openIDConnectProviderArn": provider.arn}
    result: dict[str, Any] = {"OpenIDConnectProviderArn": provider.arn}
    if provider.tags:
        result["Tags"] = tags_list(provider.tags)
    return result


@operation(
    "GetOpenIDConnectProvider", arn_resource(KIND), read_only=True, extra_context=tag_context(KIND)
)
def get_oidc_provider(ctx: CallContext, params: Params) -> dict[str, Any]:
    provider = named_provider(ctx, params, KIND)
    _, ids, prints = provider_attrs(provider)
    result: dict[str, Any] = {
        # IAM answers with the URL as the provider is named: without the scheme.
        "Url": provider.name,
        "ClientIDList": ids,
        "ThumbprintList": prints,
        "CreateDate": provider.created,
    }
    if provider.tags:
        result["Tags"] = tags_list(provider.tags)
    return result


@operation("DeleteOpenIDConnectProvider", arn_resource(KIND), extra_context=tag_context(KIND))
def delete_oidc_provider(ctx: CallContext, params: Params) -> dict[str, Any]:
    # Idempotent, as IAM documents it: a provider that is not there (or went meanwhile) is
    # no error.
    with contextlib.suppress(NoSuchEntityError):
        ctx.store.delete_entity(named_provider(ctx, params, KIND))
    return {}


@operation("ListOpenIDConnectProviders", lambda ctx, params: "*", read_only=True)
def list_oidc_providers(ctx: CallContext, params: Params) -> dict[str, Any]:
    providers = ctx.store.list_entities(ctx.account_id, KIND)
    return {"OpenIDConnectProviderList": [{"Arn": p.arn} for p in providers]}


def _update(ctx: CallContext, provider: Entity, **attrs: object) -> None:
    ctx.store.update_entity(replace(provider, attrs={**provider.attrs, **attrs}))


@operation(
    "AddClientIDToOpenIDConnectProvider", arn_resource(KIND), extra_context=tag_context(KIND)
)
def add_client_id(ctx: CallContext, params: Params) -> dict[str, Any]:
    provider = provider_by_arn(ctx, KIND, arn_param(params, KIND))
    new = params.req("ClientID", max_len=MAX_CLIENT_ID)
    _, ids, _ = provider_attrs(provider)
    if new not in ids:
        _update(ctx, provider, client_ids=client_ids([*ids, new]))
    return {}


@operation(
    "RemoveClientIDFromOpenIDConnectProvider", arn_resource(KIND), extra_context=tag_context(KIND)
)
def remove_client_id(ctx: CallContext, params: Params) -> dict[str, Any]:
    provider = named_provider(ctx, params, KIND)
    gone = params.req("ClientID", max_len=MAX_CLIENT_ID)
    _, ids, _ = provider_attrs(provider)
    if gone in ids:
        _update(ctx, provider, client_ids=[i for i in ids if i != gone])
    return {}


@operation(
    "UpdateOpenIDConnectProviderThumbprint", arn_resource(KIND), extra_context=tag_context(KIND)
)
def update_thumbprints(ctx: CallContext, params: Params) -> dict[str, Any]:
    provider = named_provider(ctx, params, KIND)
    given = params.members("ThumbprintList")
    if not given and "ThumbprintList" not in params.form:
        params.req("ThumbprintList")  # raises: the list is required (it may be empty)
    _update(ctx, provider, thumbprints=thumbprints(given))
    return {}


register_tagging(KIND)
