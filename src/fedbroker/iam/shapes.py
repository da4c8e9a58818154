"""Result values whose wire shape a plain ``dict`` or ``list`` cannot say."""

from __future__ import annotations

from typing import Any


class XmlMap(dict[str, Any]):
    """A map member (IAM's ``SummaryMap``, ``EvalDecisionDetails``).

    A plain ``dict`` in a result is a structure whose keys are member names; in the Query
    protocol a map is written differently, as ``<entry><key>…</key><value>…</value></entry>``.
    """
