"""Bulk ``fedbroker policy simulate --jsonl`` throughput.

A generated file of ``lines`` requests reuses a handful of policy sets (4 to 20 statements
each, so a line is 1-5 KB, as a CI policy check would produce). It is fed to the real CLI as
a subprocess and, in the same rounds, to ``Simulator.run_line`` in-process. A third figure
splits the in-process cost of one line into its steps, to show where bulk time goes.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.workload import build_workload
from fedbroker.policy import Simulator
from fedbroker.policy.parser import load_json
from fedbroker.policy.simulate import build_request

SET_SIZES = (4, 8, 12, 16, 20)


def generate(path: Path, lines: int, seed: int = 5) -> int:
    """Write the request file; return its size in bytes."""
    rng = random.Random(seed)
    sets = []
    for size in SET_SIZES:
        workload = build_workload(size, seed=seed)
        sets.append(({"identity": workload.documents}, workload.candidates))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for _ in range(lines):
            policies, candidates = rng.choice(sets)
            request = rng.choice(candidates)
            line = {"policies": policies, "request": request.as_simulate()}
            out.write(json.dumps(line, separators=(",", ":")))
            out.write("\n")
    return path.stat().st_size


def fedbroker_executable() -> str:
    candidate = Path(sys.executable).parent / "fedbroker"
    if not candidate.exists():
        raise FileNotFoundError(f"{candidate} not found: install the project into the venv")
    return str(candidate)


def run_cli(path: Path, out_path: Path) -> float:
    """Seconds of wall time for one CLI run over ``path``."""
    command = [fedbroker_executable(), "policy", "simulate", "--jsonl", str(path)]
    with out_path.open("w", encoding="utf-8") as out:
        start = time.perf_counter_ns()
        subprocess.run(command, stdout=out, check=True)
        return (time.perf_counter_ns() - start) / 1e9


def run_in_process(lines: list[str]) -> tuple[float, list[object]]:
    """Seconds for ``Simulator.run_line`` over every line, and the decisions it gave.

    Only the decision strings are kept, as the CLI keeps nothing: holding 20,000 result
    dictionaries would make the collector rescan them throughout the run.
    """
    simulator = Simulator()  # a fresh cache per round, as a new CLI process has
    decisions: list[object] = []
    keep = decisions.append
    start = time.perf_counter_ns()
    for line in lines:
        keep(simulator.run_line(line).get("decision"))
    return (time.perf_counter_ns() - start) / 1e9, decisions


@dataclass
class BulkResult:
    lines: int
    file_bytes: int
    rounds: int
    cli_seconds: list[float] = field(default_factory=list)
    startup_seconds: list[float] = field(default_factory=list)
    in_process_seconds: list[float] = field(default_factory=list)
    steps_us: dict[str, float] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)

    @property
    def cli_lines_per_s(self) -> float:
        return self.lines / statistics.median(self.cli_seconds)

    @property
    def cli_lines_per_s_net(self) -> float:
        net = statistics.median(self.cli_seconds) - statistics.median(self.startup_seconds)
        return self.lines / net

    @property
    def in_process_lines_per_s(self) -> float:
        return self.lines / statistics.median(self.in_process_seconds)


def _interleaved_us(
    steps: dict[str, Callable[[str], object]], sample: list[str], rounds: int = 7
) -> dict[str, float]:
    """Median µs per line of each step, the steps taking turns within every round."""
    per_round: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            start = time.perf_counter_ns()
            for line in sample:
                fn(line)
            per_round[name].append((time.perf_counter_ns() - start) / len(sample))
    return {name: statistics.median(values) / 1000.0 for name, values in per_round.items()}


def step_costs(lines: list[str], sample_size: int = 2000) -> dict[str, float]:
    """Median µs per line of each step ``Simulator.run_line`` takes, on a sample of lines."""
    sample = lines[:sample_size]
    simulator = Simulator()
    for line in sample:
        simulator.run_line(line)  # compile every policy set once
    parsed = [load_json(line) for line in sample]
    prepared = [(simulator.policy_set(d["policies"]), build_request(d["request"])) for d in parsed]
    decisions = [ps.authorize(req) for ps, req in prepared]
    results = [d.to_dict() for d in decisions]
    index = {line: i for i, line in enumerate(sample)}

    def by_index(fn: Callable[[int], object]) -> Callable[[str], object]:
        return lambda line: fn(index[line])

    # Steps that need the previous step's output are called through an index lookup; its own
    # cost (the lambda and the dict lookup) is measured alongside and subtracted from theirs.
    lookup = "(index lookup)"
    indexed: dict[str, Callable[[int], object]] = {
        lookup: lambda i: i,
        "policy-set cache key + lookup (policy_set)": lambda i: simulator.policy_set(
            parsed[i]["policies"]
        ),
        "build_request": lambda i: build_request(parsed[i]["request"]),
        "authorize": lambda i: prepared[i][0].authorize(prepared[i][1]),
        "decision.to_dict (explanation)": lambda i: decisions[i].to_dict(),
        "json.dumps of the result (CLI)": lambda i: json.dumps(results[i], separators=(",", ":")),
    }
    steps: dict[str, Callable[[str], object]] = {
        "whole run_line": simulator.run_line,
        "json.loads with duplicate-key hook (load_json)": load_json,
        "json.loads, plain (for comparison)": json.loads,
    }
    steps.update({name: by_index(fn) for name, fn in indexed.items()})
    timed = _interleaved_us(steps, sample)
    overhead = timed.pop(lookup)
    return {
        name: us if name not in indexed else max(0.0, us - overhead) for name, us in timed.items()
    }


def measure(work_dir: Path, lines: int, rounds: int) -> BulkResult:
    path = work_dir / "simulate-bulk.jsonl"
    size = generate(path, lines)
    empty = work_dir / "simulate-empty.jsonl"
    empty.write_text("", encoding="utf-8")
    out_path = work_dir / "simulate-bulk.out.jsonl"
    text_lines = path.read_text(encoding="utf-8").splitlines()
    result = BulkResult(lines, size, rounds)
    in_process: list[object] = []
    for index in range(rounds):
        # Alternate which goes first, so neither always runs on a warmer machine.
        if index % 2 == 0:
            result.cli_seconds.append(run_cli(path, out_path))
            seconds, in_process = run_in_process(text_lines)
            result.in_process_seconds.append(seconds)
        else:
            seconds, in_process = run_in_process(text_lines)
            result.in_process_seconds.append(seconds)
            result.cli_seconds.append(run_cli(path, out_path))
        result.startup_seconds.append(run_cli(empty, work_dir / "simulate-empty.out.jsonl"))
    cli_results = [json.loads(x) for x in out_path.read_text(encoding="utf-8").splitlines()]
    if len(cli_results) != lines:
        raise AssertionError(f"the CLI wrote {len(cli_results)} lines for {lines}")
    for got, expected in zip(cli_results, in_process, strict=True):
        if got.get("decision") != expected or "error" in got:
            raise AssertionError(f"CLI and in-process results differ: {got} vs {expected}")
        decision = str(got["decision"])
        result.decisions[decision] = result.decisions.get(decision, 0) + 1
    result.steps_us = step_costs(text_lines)
    return result
