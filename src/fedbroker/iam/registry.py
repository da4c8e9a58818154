"""The table of IAM operations: handler, the resource each is authorized on, read-only flag."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fedbroker.iam.context import CallContext
from fedbroker.iam.params import Params

Handler = Callable[[CallContext, Params], dict[str, Any]]
ResourceOf = Callable[[CallContext, Params], str]
ContextOf = Callable[[CallContext, Params], Mapping[str, object]]
GrantOf = Callable[[CallContext, Params], bool]


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    handler: Handler
    resource: ResourceOf
    read_only: bool
    extra_context: ContextOf | None
    # Allows a call that no policy allows (but none explicitly denies), as IAM itself grants
    # some self-service actions: the password policy's AllowUsersToChangePassword.
    implicit_grant: GrantOf | None = None


OPERATIONS: dict[str, Operation] = {}


def operation(
    name: str,
    resource: ResourceOf,
    *,
    read_only: bool = False,
    extra_context: ContextOf | None = None,
    implicit_grant: GrantOf | None = None,
) -> Callable[[Handler], Handler]:
    """Register ``handler`` as the IAM action ``name``."""

    def register(handler: Handler) -> Handler:
        if name in OPERATIONS:
            raise RuntimeError(f"IAM operation {name} registered twice")
        OPERATIONS[name] = Operation(
            name, handler, resource, read_only, extra_context, implicit_grant
        )
        return handler

    return register
