"""Tag, untag and list tags: the same three operations for users and roles (policies later)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import LimitExceededError
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.common import arn_for, named, resource_tag_context, tags_list
from fedbroker.iam.params import MAX_TAGS, Params
from fedbroker.iam.registry import operation


def merged_tags(entity: Entity, new: dict[str, str]) -> dict[str, str]:
    """``entity``'s tags with ``new`` added; a key replaces one that differs only in case."""
    merged = dict(entity.tags)
    for key, value in new.items():
        existing = next((k for k in merged if k.lower() == key.lower()), None)
        if existing is not None:
            del merged[existing]
        merged[key] = value
    if len(merged) > MAX_TAGS:
        raise LimitExceededError(
            f"the {entity.kind.resource_type} would have more than {MAX_TAGS} tags"
        )
    return merged


def register_tagging(kind: Kind, noun: str) -> None:
    """Register ``Tag{noun}``, ``Untag{noun}`` and ``List{noun}Tags`` for ``kind``."""
    resource = arn_for(kind)
    context = resource_tag_context(kind)

    def tag(ctx: CallContext, params: Params) -> dict[str, Any]:
        entity = named(ctx, params, kind)
        merged = merged_tags(entity, params.tags())
        ctx.store.update_entity(replace(entity, attrs={**entity.attrs, "tags": merged}))
        return {}

    def untag(ctx: CallContext, params: Params) -> dict[str, Any]:
        entity = named(ctx, params, kind)
        remove = {k.lower() for k in params.members("TagKeys")}
        kept = {k: v for k, v in entity.tags.items() if k.lower() not in remove}
        ctx.store.update_entity(replace(entity, attrs={**entity.attrs, "tags": kept}))
        return {}

    def list_tags(ctx: CallContext, params: Params) -> dict[str, Any]:
        entity = named(ctx, params, kind)
        return {"Tags": tags_list(entity.tags), "IsTruncated": False}

    operation(f"Tag{noun}", resource, extra_context=context)(tag)
    operation(f"Untag{noun}", resource, extra_context=context)(untag)
    operation(f"List{noun}Tags", resource, read_only=True)(list_tags)
