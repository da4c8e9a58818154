"""Pick the benchmark requests for a workload and check that the engines agree on them.

Requests are sorted into four shapes by fedbroker's decision, then every engine must give
the same decision (moto as allow / deny only) before anything is timed:

* ``allowed``: good context, some ``Allow`` applies and no ``Deny`` does;
* ``denied``: good context, a ``Deny`` statement applies;
* ``implicit``: good context, nothing applies;
* ``cond-miss``: allowed in the good context, implicitly denied when one condition key has a
  bad value (the statement that would allow it misses on its condition).

Up to ``per_shape`` requests of each shape are taken, spread over as many distinct actions as
possible; a shape with fewer candidates is cycled so that every workload is timed on the same
mix. The order is shuffled so consecutive calls rarely share an action.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from bench.engines import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY, Engine, Fedbroker, agrees
from bench.workload import BenchRequest, Workload

SHAPES = ("allowed", "denied", "implicit", "cond-miss")


class DisagreementError(AssertionError):
    """Two engines decided a benchmark request differently."""


@dataclass
class Selection:
    by_shape: dict[str, list[BenchRequest]]
    available: dict[str, int]  # distinct candidates of each shape before cycling

    @property
    def requests(self) -> list[BenchRequest]:
        return [r for shape in SHAPES for r in self.by_shape[shape]]

    @property
    def distinct_actions(self) -> int:
        return len({r.action for r in self.requests})


def classify(fedbroker: Fedbroker, workload: Workload) -> dict[str, list[BenchRequest]]:
    """Every candidate request that has a shape, by shape."""
    good: dict[tuple[str, str], str] = {}
    out: dict[str, list[BenchRequest]] = {shape: [] for shape in SHAPES}
    for request in workload.candidates:
        if request.bad_key is None:
            effect = fedbroker.decide(request)
            good[(request.action, request.resource)] = effect
            shape = {ALLOW: "allowed", EXPLICIT_DENY: "denied", IMPLICIT_DENY: "implicit"}[effect]
            out[shape].append(request)
    for request in workload.candidates:
        if request.bad_key is None or good[(request.action, request.resource)] != ALLOW:
            continue
        outcome, missed = fedbroker.explain(request)
        if outcome.value == IMPLICIT_DENY and missed:
            out["cond-miss"].append(request)
    return out


def select(classified: dict[str, list[BenchRequest]], per_shape: int, seed: int = 7) -> Selection:
    rng = random.Random(seed)
    by_shape: dict[str, list[BenchRequest]] = {}
    for shape in SHAPES:
        pool = list(classified[shape])
        if not pool:
            raise DisagreementError(f"the workload has no `{shape}` request")
        rng.shuffle(pool)
        by_action: dict[str, list[BenchRequest]] = defaultdict(list)
        for request in pool:
            by_action[request.action].append(request)
        spread: list[BenchRequest] = []
        while len(spread) < len(pool):  # round-robin over actions
            for queue in by_action.values():
                if queue:
                    spread.append(queue.pop())
        chosen = [spread[i % len(spread)] for i in range(per_shape)]
        rng.shuffle(chosen)
        by_shape[shape] = chosen
    return Selection(by_shape, {s: len(classified[s]) for s in SHAPES})


def check_agreement(
    reference: Engine, others: Sequence[Engine], requests: Sequence[BenchRequest]
) -> int:
    """Raise :class:`DisagreementError` unless every engine agrees; return requests checked."""
    for request in requests:
        expected = reference.decide(request)
        for engine in others:
            got = engine.decide(request)
            if not agrees(expected, got):
                raise DisagreementError(
                    f"{engine.name} says {got}, {reference.name} says {expected} for "
                    f"{request.action} on {request.resource} (bad key: {request.bad_key})"
                )
    return len(requests)


def shuffled(requests: Sequence[BenchRequest], seed: int = 11) -> list[BenchRequest]:
    out = list(requests)
    random.Random(seed).shuffle(out)
    return out
