"""The IAM policy language: parse, validate, compile, evaluate, explain.

Standard library only, no I/O and no clock reads: a service imports this package alone.

    >>> from fedbroker.policy import PolicyKind, PolicySet, make_request, parse_policy
    >>> policy = parse_policy('{"Version": "2012-10-17", "Statement": {"Effect": "Allow",'
    ...                       ' "Action": "s3:Get*", "Resource": "*"}}', PolicyKind.MANAGED)
    >>> request = make_request("s3:GetObject", "arn:aws:s3:::b/k")
    >>> PolicySet(identity=[policy]).authorize(request).effect
    <Effect.ALLOW: 'Allow'>
"""

from fedbroker.errors import MalformedPolicyDocumentError, PolicyProblem, PolicyTooLargeError
from fedbroker.policy.decision import Decision, Effect
from fedbroker.policy.document import Policy, Statement
from fedbroker.policy.evaluator import PolicySet, authorize
from fedbroker.policy.kinds import PolicyKind
from fedbroker.policy.parser import parse_policy
from fedbroker.policy.request import (
    Principal,
    PrincipalType,
    Request,
    make_request,
    principal_from_arn,
)
from fedbroker.policy.simulate import Simulator

__all__ = [
    "Decision",
    "Effect",
    "MalformedPolicyDocumentError",
    "Policy",
    "PolicyKind",
    "PolicyProblem",
    "PolicySet",
    "PolicyTooLargeError",
    "Principal",
    "PrincipalType",
    "Request",
    "Simulator",
    "Statement",
    "authorize",
    "make_request",
    "parse_policy",
    "principal_from_arn",
]
