"""Context keys a policy refers to, and those a request is missing (the simulator's view)."""

from __future__ import annotations

import json
from typing import Any

from fedbroker.policy import make_request, parse_policy
from fedbroker.policy.keys import missing_keys, policy_keys


def doc(*statements: dict[str, Any], version: str = "2012-10-17") -> str:
    return json.dumps({"Version": version, "Statement": list(statements)})


HOME = {
    "Effect": "Allow",
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::home/${aws:username}/*",
    "Condition": {
        "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
        "StringEquals": {"s3:ExistingObjectTag/owner": "${aws:PrincipalTag/team, 'none'}"},
    },
}


def test_keys_from_conditions_and_variables_sorted_once_as_first_written() -> None:
    policy = parse_policy(
        doc(
            HOME,
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"Bool": {"AWS:SECURETRANSPORT": "false", "aws:sourceip": "true"}},
            },
        )
    )
    assert policy_keys([policy]) == [
        "aws:PrincipalTag/team",
        "AWS:SECURETRANSPORT",
        "aws:SourceIp",
        "aws:username",
        "s3:ExistingObjectTag/owner",
    ]


def test_variables_are_literal_text_in_2008_documents() -> None:
    literal = {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::${aws:username}"}
    assert policy_keys([parse_policy(doc(literal, version="2008-10-17"))]) == []
    assert policy_keys([parse_policy(doc(literal))]) == ["aws:username"]


def test_missing_keys_follow_what_could_change_the_decision() -> None:
    policy = parse_policy(doc(HOME))
    resource = "arn:aws:s3:::home/alice/notes"
    # Without aws:username the resource cannot match: the conditions do not matter yet.
    assert missing_keys([policy], make_request("s3:GetObject", resource)) == ["aws:username"]
    # Once it matches, the condition keys are needed; a variable with a default never is.
    known = make_request("s3:GetObject", resource, context={"aws:username": "alice"})
    assert missing_keys([policy], known) == ["aws:SourceIp", "s3:ExistingObjectTag/owner"]
    # Another action, or a resource the statement is not about, needs nothing.
    assert missing_keys([policy], make_request("s3:PutObject", resource)) == []
    elsewhere = make_request(
        "s3:GetObject", "arn:aws:s3:::other/x", context={"aws:username": "alice"}
    )
    assert missing_keys([policy], elsewhere) == []
    everything = make_request(
        "s3:GetObject",
        resource,
        context={
            "aws:username": "alice",
            "aws:sourceip": "10.0.0.1",
            "s3:ExistingObjectTag/owner": "red",
        },
    )
    assert missing_keys([policy], everything) == []
