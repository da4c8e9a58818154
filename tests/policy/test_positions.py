"""Statement positions in a policy's text, as IAM's simulator reports them."""

from __future__ import annotations

import json

from fedbroker.policy.positions import Position, Span, statement_spans

# The policy of the AWS CLI's `simulate-custom-policy` example; IAM answers 1:38 to 1:167.
AWS_EXAMPLE = (
    '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*",'
    '"Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}}'
)


def test_single_statement_object_as_in_the_aws_example() -> None:
    assert statement_spans(AWS_EXAMPLE) == [Span(Position(1, 38), Position(1, 167))]


def test_statement_list_over_several_lines() -> None:
    text = json.dumps(
        {
            "Id": "x",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "s3:Delete*", "Resource": ["a:b:c:d:e:f", "*"]},
            ],
            "Version": "2012-10-17",
        },
        indent=2,
    )
    spans = statement_spans(text)
    lines = text.splitlines()
    assert len(spans) == 2
    for span in spans:
        assert lines[span.start.line - 1][span.start.column - 2] == "{"
        assert lines[span.end.line - 1][span.end.column - 2] == "}"
    assert spans[0].end.line < spans[1].start.line


def test_anything_unexpected_gives_no_positions_rather_than_an_error() -> None:
    assert statement_spans("[]") == []
    assert statement_spans('{"Statement": "x"}') == []
    assert statement_spans('{"Statement": [') == []
    assert statement_spans("") == []
