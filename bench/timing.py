"""Interleaved-round timing with ``time.perf_counter_ns``.

These machines are shared and noisy (repetitions vary 20-100%), so a lone measurement means
little. Every engine is timed in every round, in an order that rotates from round to round,
so a slow spell hits all of them alike; the figure quoted is the median over rounds of each
round's mean cost per call, and ratios are taken between medians of the same run.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Pass = Callable[[], object]


ALL = "all"  # the block over every request, mixed; the headline figure comes from it


@dataclass
class Contender:
    """One engine's passes: ``ALL`` over every request, then one per request shape."""

    name: str
    passes: Mapping[str, Pass]
    counts: Mapping[str, int]
    reps: int = 1  # passes per block, so that each timed block lasts at least ~2 ms

    def calibrate(self, min_block_ns: int) -> int:
        """Warm up, set ``reps``, and return the estimated duration of one round in ns."""
        total = 0
        for run in self.passes.values():
            run()  # warm-up: memo tables, regex caches, lazy imports
            start = time.perf_counter_ns()
            run()
            elapsed = max(1, time.perf_counter_ns() - start)
            self.reps = max(self.reps, math.ceil(min_block_ns / elapsed))
            total += elapsed
        return total * self.reps


@dataclass
class Samples:
    """Per-round mean ns per call: ``overall`` from the mixed block, ``by_shape`` per shape."""

    overall: list[float] = field(default_factory=list)
    by_shape: dict[str, list[float]] = field(default_factory=dict)

    def median_us(self, shape: str | None = None) -> float:
        values = self.overall if shape is None else self.by_shape[shape]
        return statistics.median(values) / 1000.0

    @property
    def rounds(self) -> int:
        return len(self.overall)


def interleaved(contenders: Sequence[Contender], rounds: int) -> dict[str, Samples]:
    """Run ``rounds`` rounds; in round ``i`` the contenders start at index ``i mod n``.

    Everything alive before the rounds (modules, compiled policies, prepared requests) is
    moved out of the collector's reach with ``gc.freeze()``, so a collection triggered by one
    engine's garbage does not scan the others' data on someone else's clock.
    """
    samples = {c.name: Samples() for c in contenders}
    gc.collect()
    gc.freeze()
    try:
        for index in range(rounds):
            order = [contenders[(index + k) % len(contenders)] for k in range(len(contenders))]
            for contender in order:
                result = samples[contender.name]
                for key, run in contender.passes.items():
                    reps = contender.reps
                    start = time.perf_counter_ns()
                    for _ in range(reps):
                        run()
                    elapsed = time.perf_counter_ns() - start
                    per_call = elapsed / (contender.counts[key] * reps)
                    if key == ALL:
                        result.overall.append(per_call)
                    else:
                        result.by_shape.setdefault(key, []).append(per_call)
    finally:
        gc.unfreeze()
    return samples


def probe_us(run: Pass, calls: int) -> float:
    """µs per call of one pass over ``calls`` requests, after one warm-up pass."""
    run()
    start = time.perf_counter_ns()
    run()
    return (time.perf_counter_ns() - start) / calls / 1000.0


def per_call_ns(call: Callable[[int], object], count: int, repeats: int) -> list[int]:
    """Time ``call(i)`` one call at a time for ``i`` in ``range(count)``, ``repeats`` times."""
    out: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(repeats):
        for i in range(count):
            start = clock()
            call(i)
            out.append(clock() - start)
    return out


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return float(ordered[rank])


def timer_overhead_ns() -> float:
    """Median cost of one ``perf_counter_ns`` pair around nothing."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(20_000):
        start = clock()
        samples.append(clock() - start)
    return float(statistics.median(samples))
