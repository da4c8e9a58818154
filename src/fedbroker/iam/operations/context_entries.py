"""``ContextEntries`` of the policy simulator: typed request context values.

IAM API Reference, "ContextEntry": a key name, its values and their type (``string``,
``numeric``, ``boolean``, ``ip``, ``binary``, ``date``, each also as a ``…List``). A list type
makes a multi-valued key (for ``ForAnyValue:``/``ForAllValues:``); a single type takes exactly
one value. Values are checked against their type here so that a typo is reported rather than
silently failing a condition.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable

from fedbroker.errors import InvalidInputError
from fedbroker.iam.params import Params
from fedbroker.policy.conditions import parse_date


def _number(value: str) -> object:
    return float(value)


def _boolean(value: str) -> object:
    if value.strip().lower() not in ("true", "false"):
        raise ValueError(value)
    return value


def _binary(value: str) -> object:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(value) from exc


def _text(value: str) -> object:
    return value


CHECKS: dict[str, Callable[[str], object]] = {
    "string": _text,
    "numeric": _number,
    "boolean": _boolean,
    "ip": ipaddress.ip_address,
    "binary": _binary,
    "date": parse_date,
}


def context_entries(params: Params) -> dict[str, object]:
    """The request context the simulation runs with, keyed as given."""
    context: dict[str, object] = {}
    seen: set[str] = set()
    index = 1
    while any(k.startswith(f"ContextEntries.member.{index}.") for k in params.form):
        prefix = f"ContextEntries.member.{index}"
        name = params.req(f"{prefix}.ContextKeyName", max_len=256, min_len=5)
        values = params.members(f"{prefix}.ContextKeyValues")
        type_name = params.opt(f"{prefix}.ContextKeyType") or (
            "string" if len(values) == 1 else "stringList"
        )
        base = type_name.removesuffix("List")
        check = CHECKS.get(base)
        if check is None:
            raise InvalidInputError(f"`{type_name}` is not a context key type")
        if name.lower() in seen:
            raise InvalidInputError(f"context key `{name}` is given more than once")
        seen.add(name.lower())
        for value in values:
            try:
                check(value)
            except ValueError:
                raise InvalidInputError(
                    f"value `{value[:64]}` of context key `{name}` is not a valid {base}"
                ) from None
        if base == type_name:
            if len(values) != 1:
                raise InvalidInputError(
                    f"context key `{name}` of type `{type_name}` takes exactly one value "
                    f"(use `{type_name}List` for several)"
                )
            context[name] = values[0]
        else:
            context[name] = list(values)
        index += 1
    return context
