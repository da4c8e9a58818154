"""``DecodeAuthorizationMessage`` (AWS STS API Reference): the details of a denial, for callers
allowed ``sts:DecodeAuthorizationMessage``.

The message is one that a check on use sealed (:mod:`fedbroker.credentials.authz_message`):
the decision's explanation (which policy type denied, which statement, which condition key
failed with which request value) in AWS's ``DecodedMessage`` shape, returned as a JSON string
as AWS returns it. Only callers of the account the denied principal belongs to may decode it;
a message from another account reads as invalid, as does anything altered or sealed with a
retired key.
"""

from __future__ import annotations

import json
from typing import Any

from fedbroker.credentials.authz_message import (
    MAX_MESSAGE_LENGTH,
    InvalidAuthorizationMessageError,
    message_account,
    open_message,
)
from fedbroker.errors import AccessDeniedError, FedbrokerError
from fedbroker.iam.params import Params
from fedbroker.policy import make_request
from fedbroker.sts.api import StsContext, sts_operation

ACTION = "sts:DecodeAuthorizationMessage"


@sts_operation("DecodeAuthorizationMessage", read_only=True)
def decode_authorization_message(ctx: StsContext, params: Params) -> dict[str, Any]:
    caller = ctx.caller
    assert caller is not None  # a signed operation
    message = params.req("EncodedMessage", min_len=1, max_len=MAX_MESSAGE_LENGTH)
    policies = caller.policy_set(ctx.services.policies)
    if policies is not None:  # the root user may do anything in its account
        context = caller.request_context(
            ctx.now, ctx.meta.source_ip, ctx.meta.secure_transport, ctx.services.region
        )
        decision = policies.authorize(
            make_request(ACTION, "*", caller.principal, context, caller.account.id)
        )
        if not decision.allowed:
            raise AccessDeniedError(
                f"user: {caller.arn} is not authorized to perform: {ACTION} because "
                f"{decision.reason}"
            )
    ring = ctx.services.keyring
    if ring is None:
        raise FedbrokerError("the key ring is not configured")
    content = open_message(ring, message, ctx.now)
    if message_account(content) != caller.account.id:
        raise InvalidAuthorizationMessageError("the message is about another account")
    return {"DecodedMessage": json.dumps(content, separators=(",", ":"), ensure_ascii=False)}
