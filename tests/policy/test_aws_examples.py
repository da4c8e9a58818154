"""The policy engine against the outcomes AWS documents for its own examples.

Each vector under ``vectors/aws_docs`` is a ``fedbroker policy simulate`` request built from an
example in the IAM User Guide (or the Organizations guide), with the decision the page states.
A vector marked ``known_gap`` records a documented outcome the engine does not reproduce yet;
it is expected to fail (strictly, so fixing the engine flags the marker for removal).
"""

from __future__ import annotations

from typing import Any

import pytest

from fedbroker.policy.simulate import Simulator
from tests.policy.vectors import VECTORS_DIR, load_vectors

AWS_DOCS = load_vectors(VECTORS_DIR / "aws_docs")
DECISIONS = {"Allow", "ExplicitDeny", "ImplicitDeny"}


def _params() -> list[Any]:
    params = []
    for vector_id, vector in AWS_DOCS:
        marks = []
        if "known_gap" in vector:
            marks.append(pytest.mark.xfail(reason=vector["known_gap"], strict=True))
        params.append(pytest.param(vector, id=vector_id, marks=marks))
    return params


def test_vectors_are_well_formed() -> None:
    assert len(AWS_DOCS) >= 80
    for vector_id, vector in AWS_DOCS:
        assert vector.get("source", "").startswith("https://"), vector_id
        assert ("expect" in vector) != ("expect_error" in vector), vector_id
        if "expect" in vector:
            assert vector["expect"] in DECISIONS, vector_id
        assert set(vector["input"]) <= {"policies", "request"}, vector_id


@pytest.mark.parametrize("vector", _params())
def test_aws_documented_example(vector: dict[str, Any]) -> None:
    result = Simulator().run(vector["input"])
    if "expect_error" in vector:
        assert "error" in result, result
        assert result["error"]["code"] == vector["expect_error"], result["error"]
        return
    assert "error" not in result, result["error"]
    assert result["decision"] == vector["expect"], result["explanation"]
