"""Run the whole benchmark and print (optionally also write) a Markdown report.

    .venv/bin/python -m bench [--quick] [--only engine|http|sts] [--markdown FILE]

For each principal size (10, 100, 1,000, 10,000 statements) it builds the workload, builds the
three engines, picks the benchmark requests, asserts that the engines agree on them, then times
fedbroker, cedarpy (per call and batched) and moto in interleaved rounds. Then it times bulk
``simulate --jsonl`` through the CLI and in-process. Last, IAM over HTTP: signed ``GetRole``
calls per second against ``fedbroker serve`` and moto's server, and the SQL statements per
call (``bench/http_iam.py``, ``bench/http_sql.py``); and STS exchanges over HTTP:
``AssumeRoleWithWebIdentity`` per second against moto's server and a bare Flask endpoint, with
an in-process profile of one exchange (``bench/http_sts.py``, ``bench/sts_profile.py``). See
``bench/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench import bulk, http_iam, http_sts
from bench.engines import Cedar, CedarBatch, Engine, Fedbroker, Moto
from bench.scenario import SHAPES, check_agreement, classify, select, shuffled
from bench.timing import (
    ALL,
    Contender,
    Pass,
    Samples,
    interleaved,
    per_call_ns,
    percentile,
    probe_us,
)
from bench.timing import timer_overhead_ns as measure_timer_overhead
from bench.workload import REQUEST_ACTIONS, build_workload, hot_count, policy_count
from fedbroker.policy import make_request

REPO = Path(__file__).resolve().parent.parent
WORK_DIR = REPO / "bench" / ".work"
HEADLINE_SIZE = 100
TARGET_US = 20.0
TARGET_CEDAR_RATIO = 5.0
TARGET_MOTO_RATIO = 20.0
ENGINE_ORDER = ("fedbroker", "cedarpy", "cedarpy-batch", "moto")
#: Seconds of interleaved rounds per size (scaled by --budget-scale).
BUDGET_S = {10: 4.0, 100: 16.0, 1000: 24.0, 10000: 30.0}

T = TypeVar("T")


@dataclass(frozen=True)
class Variant:
    """One principal to time: ``size`` statements of which ``hot`` (default
    ``hot_count(size)``) name a requested service; ``peers``: time cedarpy and moto too."""

    size: int
    hot: int | None = None
    peers: bool = True
    tag: str = ""

    @property
    def label(self) -> str:
        return f"{self.size:,} {self.tag}".strip()


@dataclass
class SizeResult:
    variant: Variant
    patterns: int
    policies: int
    hot: int
    requests: int
    distinct_actions: int
    available: dict[str, int]
    agreement: dict[str, int]  # engine -> requests checked against fedbroker
    rounds: int
    samples: dict[str, Samples]
    skipped: dict[str, str] = field(default_factory=dict)
    per_call_us: dict[str, float] = field(default_factory=dict)  # filled by measure_growth
    growth_us: float = 0.0  # filled by measure_growth
    index_survivors: tuple[float, int] = (0.0, 0)
    build_ms: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.variant.label

    @property
    def size(self) -> int:
        return self.variant.size

    def median(self, engine: str, shape: str | None = None) -> float | None:
        samples = self.samples.get(engine)
        return None if samples is None else samples.median_us(shape)

    def ratio(self, engine: str) -> float | None:
        mine, theirs = self.median("fedbroker"), self.median(engine)
        return None if mine is None or theirs is None else theirs / mine


@dataclass
class GrowthSubject:
    """fedbroker on one variant, kept for the growth rounds interleaved across variants."""

    result: SizeResult
    run: Pass  # decides every request once
    one: Callable[[int], object]  # decides request i
    calls: int


def _timed_build(build: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter_ns()
    built = build()
    return built, (time.perf_counter_ns() - start) / 1e6


def run_variant(
    variant: Variant,
    per_shape: int,
    budget_s: float,
    max_round_s: float,
    log: Callable[[str], None],
) -> tuple[SizeResult, GrowthSubject]:
    """Build, select, check agreement and (with peers) time one variant."""
    size = variant.size
    workload = build_workload(size, hot=variant.hot)
    fedbroker, fb_ms = _timed_build(lambda: Fedbroker(workload))
    build_ms = {"fedbroker": fb_ms}
    engines: list[Engine] = [fedbroker]
    peers: list[Engine] = []
    if variant.peers:
        cedar, build_ms["cedarpy"] = _timed_build(lambda: Cedar(workload))
        moto, build_ms["moto"] = _timed_build(lambda: Moto(workload))
        peers = [cedar, moto]
        engines += [cedar, CedarBatch(workload), moto]
    classified = classify(fedbroker, workload)
    selection = select(classified, per_shape)
    requests = selection.requests

    # Probe each engine on two requests: one too slow to finish a round in
    # ``max_round_s`` is reported from the probe alone and left out of the rounds.
    calls_per_round = 2 * len(requests)  # the mixed block plus the per-shape blocks
    skipped: dict[str, str] = {}
    timed: list[Engine] = []
    for engine in engines if variant.peers else []:
        probe = probe_us(engine.pass_over(requests[:2]), 2)
        if probe * calls_per_round / 1e6 > max_round_s:
            skipped[engine.name] = (
                f"about {probe / 1000:,.0f} ms per call from a 2-request probe; a round would "
                f"take {probe * calls_per_round / 1e6:,.0f} s"
            )
        else:
            timed.append(engine)

    # Agreement before timing: on every classified candidate where that is cheap, else on
    # each distinct request the benchmark times.
    pool = [r for rs in classified.values() for r in rs] if size <= 100 else requests
    checked = list({id(r): r for r in pool}.values())
    agreement: dict[str, int] = {}
    for engine in peers:
        if engine in timed:
            agreement[engine.name] = check_agreement(fedbroker, [engine], checked)
    name = f"{variant.label} statements"
    if agreement:
        log(f"  {name}: {len(checked)} requests decided alike by fedbroker, {', '.join(agreement)}")

    contenders = []
    round_ns = 0
    mixed = shuffled(requests)
    for engine in timed:
        passes = {ALL: engine.pass_over(mixed)}
        passes.update({s: engine.pass_over(shuffled(selection.by_shape[s])) for s in SHAPES})
        counts = {ALL: len(mixed)}
        counts.update({s: len(selection.by_shape[s]) for s in SHAPES})
        contender = Contender(engine.name, passes, counts)
        round_ns += contender.calibrate(min_block_ns=2_000_000)
        contenders.append(contender)
    rounds = 0
    samples: dict[str, Samples] = {}
    if contenders:
        rounds = max(5, min(101, int(budget_s * 1e9 / max(round_ns, 1))))
        log(f"  {name}: {rounds} interleaved rounds of {len(contenders)} engines")
        samples = interleaved(contenders, rounds)

    survivors = [fedbroker.candidate_count(r.action) for r in requests]
    result = SizeResult(
        variant=variant,
        patterns=workload.distinct_patterns,
        policies=policy_count(size),
        hot=workload.hot,
        requests=len(requests),
        distinct_actions=selection.distinct_actions,
        available=selection.available,
        agreement=agreement,
        rounds=rounds,
        samples=samples,
        skipped=skipped,
        index_survivors=(statistics.mean(survivors), max(survivors)),
        build_ms=build_ms,
    )
    principal = fedbroker.principal
    authorize = fedbroker.policies.authorize
    args = [(r.action, r.resource, r.context) for r in shuffled(requests, seed=3)]

    def one(i: int) -> object:
        action, resource, context = args[i]
        return authorize(make_request(action, resource, principal, context))

    return result, GrowthSubject(result, fedbroker.pass_over(mixed), one, len(args))


def measure_growth(subjects: Sequence[GrowthSubject], rounds: int) -> None:
    """fedbroker alone on every variant, interleaved across variants so that sizes compare.

    In each round every variant (in rotating order) runs its 64-request block ``reps`` times
    and then decides each request once more, timed one by one. Fills ``growth_us`` (median of
    the rounds' block means) and ``per_call_us`` (percentiles of the single decisions).
    """
    blocks: dict[str, list[float]] = {s.result.label: [] for s in subjects}
    singles: dict[str, list[int]] = {s.result.label: [] for s in subjects}
    reps = {
        s.result.label: Contender(s.result.label, {ALL: s.run}, {ALL: s.calls}).calibrate(0)
        for s in subjects
    }
    for label, one_pass_ns in reps.items():
        reps[label] = max(1, math.ceil(2_000_000 / max(one_pass_ns, 1)))
    gc.collect()
    gc.freeze()
    try:
        for index in range(rounds):
            for k in range(len(subjects)):
                subject = subjects[(index + k) % len(subjects)]
                label = subject.result.label
                start = time.perf_counter_ns()
                for _ in range(reps[label]):
                    subject.run()
                elapsed = time.perf_counter_ns() - start
                blocks[label].append(elapsed / (reps[label] * subject.calls))
                singles[label] += per_call_ns(subject.one, subject.calls, 1)
    finally:
        gc.unfreeze()
    for subject in subjects:
        label = subject.result.label
        subject.result.growth_us = statistics.median(blocks[label]) / 1000
        subject.result.per_call_us = {
            name: percentile(singles[label], fraction) / 1000
            for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        }


# --- report -----------------------------------------------------------------------------------


def _us(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}x"


def machine_note(timer_overhead_ns: float) -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("cedarpy", "moto", "boto3", "fedbroker")
    )
    return [
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}; shared and noisy (see shared/PERFORMANCE.md)",
        f"- Python {platform.python_version()}; {versions}; fedbroker commit {commit}",
        f"- fedbroker source: {source_note()}",
        f"- timer: time.perf_counter_ns, {timer_overhead_ns:.0f} ns per empty start/stop pair",
    ]


def source_note() -> str:
    """Where ``fedbroker`` was imported from and whether that is the commit named above."""
    import fedbroker

    where = Path(fedbroker.__file__).resolve().parent.parent
    if where != REPO / "src":
        return f"{where} (not this repository's src/)"
    try:
        changed = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "src/ (state unknown)"
    return f"src/ with {len(changed)} uncommitted changes" if changed else "src/ as committed"


def render(
    results: Sequence[SizeResult],
    bulk_result: bulk.BulkResult | None,
    http_result: http_iam.HttpResult | None,
    header: list[str],
    command: str,
    sts_result: http_sts.StsResult | None = None,
) -> str:
    out: list[str] = ["# fedbroker benchmark", "", f"Command: `{command}`", ""]
    out += header
    if results:
        out += _engine_sections(results)
    if bulk_result is not None:
        out += _bulk_section(bulk_result)
    if http_result is not None:
        out += http_iam.render(http_result)
    if sts_result is not None:
        out += http_sts.render(sts_result)
    return "\n".join(out) + "\n"


def _engine_sections(results: Sequence[SizeResult]) -> list[str]:
    out: list[str] = []
    out += [
        "",
        "## Decision cost, median µs per call (medians of interleaved rounds)",
        "",
        "Every engine decides the same 64 requests (16 each: allowed, denied by a Deny, "
        "implicitly denied, condition miss; a few dozen distinct actions, mixed in one block) "
        "for the same principal. fedbroker: `make_request` + `authorize`. cedarpy: "
        "`is_authorized` with pre-parsed `PolicySet` and `Entities` handles and request "
        "dictionaries prepared ahead; *batch*: one `is_authorized_batch` call for the 64 "
        "requests, per request. moto: `IAMPolicy.is_action_permitted` on pre-parsed policies. "
        "*hot*: statements naming a service the requests use.",
        "",
        "| statements (policies, hot) | fedbroker | cedarpy | cedarpy batch | moto "
        "| cedarpy / fedbroker | cedarpy batch / fedbroker | moto / fedbroker | rounds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    compared = [r for r in results if r.variant.peers]
    for r in compared:
        out.append(
            f"| {r.label} ({r.policies}, {r.hot}) | {_us(r.median('fedbroker'))} "
            f"| {_us(r.median('cedarpy'))} | {_us(r.median('cedarpy-batch'))} "
            f"| {_us(r.median('moto'))} | {_ratio(r.ratio('cedarpy'))} "
            f"| {_ratio(r.ratio('cedarpy-batch'))} | {_ratio(r.ratio('moto'))} | {r.rounds} |"
        )
    notes = [f"{name} at {r.label}: {why}" for r in results for name, why in r.skipped.items()]
    if notes:
        out += ["", "Not timed: " + "; ".join(notes) + "."]

    out += ["", "## Targets (100 statements, same run)", ""]
    head = next((r for r in results if r.variant == Variant(HEADLINE_SIZE)), None)
    out += ["- not measured"] if head is None else _targets(head)

    out += [
        "",
        "## By request shape, median µs per call",
        "",
        "| statements | shape | fedbroker | cedarpy | cedarpy batch | moto |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in compared:
        for shape in SHAPES:
            cells = " | ".join(_us(r.median(e, shape)) for e in ENGINE_ORDER)
            out.append(f"| {r.label} | {shape} | {cells} |")

    out += [
        "",
        "## fedbroker growth with the number of statements",
        "",
        "fedbroker alone, in rounds interleaved across all the principals below so that the "
        "sizes compare (the peers' rows above were each measured in their own rounds). "
        "*(40 hot)*: the 100-statement principal's hot statements exactly, plus cold "
        "statements that cannot apply. *After index*: statements left once the service "
        "buckets and the per-action memo have filtered them (mean / max over the requests); "
        "only those are checked against resource and conditions. *median*: median of rounds "
        "of the 64-request block; p50/p90/p99: single decisions, each timed on its own "
        "(timer overhead included). Build: parse and compile the principal's policies once.",
        "",
        "| statements | hot | after index | median µs | p50 µs | p90 µs | p99 µs "
        "| build ms: fedbroker / cedarpy / moto |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        mean_left, max_left = r.index_survivors
        build = " / ".join(
            f"{r.build_ms[e]:,.1f}" if e in r.build_ms else "—"
            for e in ("fedbroker", "cedarpy", "moto")
        )
        out.append(
            f"| {r.label} | {r.hot} | {mean_left:.1f} / {max_left} | {_us(r.growth_us)} "
            f"| {_us(r.per_call_us['p50'])} | {_us(r.per_call_us['p90'])} "
            f"| {_us(r.per_call_us['p99'])} | {build} |"
        )

    out += [
        "",
        "## Workloads and agreement (asserted before timing)",
        "",
        "| statements | distinct action/resource patterns | candidates: allowed / denied / "
        "implicit / cond-miss | actions timed | requests decided alike |",
        "| --- | ---: | --- | ---: | --- |",
    ]
    for r in results:
        avail = " / ".join(str(r.available[s]) for s in SHAPES)
        checks = ", ".join(f"{name} {count}" for name, count in r.agreement.items()) or "—"
        out.append(f"| {r.label} | {r.patterns:,} | {avail} | {r.distinct_actions} | {checks} |")
    return out


def _bulk_section(b: bulk.BulkResult) -> list[str]:
    out = [
        "",
        "## Bulk `fedbroker policy simulate --jsonl`",
        "",
        f"{b.lines:,} lines ({b.file_bytes / 1e6:.1f} MB) reusing {len(bulk.SET_SIZES)} "
        f"policy sets of {min(bulk.SET_SIZES)}-{max(bulk.SET_SIZES)} statements; medians "
        f"of {b.rounds} alternating rounds. Decisions: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(b.decisions.items()))
        + " (the CLI's and the in-process decisions are compared line by line).",
        "",
        "| path | lines/s |",
        "| --- | ---: |",
        f"| CLI subprocess, wall clock | {b.cli_lines_per_s:,.0f} |",
        f"| CLI subprocess, less start-up "
        f"({statistics.median(b.startup_seconds) * 1000:.0f} ms for an empty file) "
        f"| {b.cli_lines_per_s_net:,.0f} |",
        f"| in-process `Simulator.run_line` | {b.in_process_lines_per_s:,.0f} |",
        "",
        "Where an in-process line's time goes (median µs per line over the first 2,000 lines; "
        "the steps are timed separately, so they need not add up exactly):",
        "",
        "| step | µs |",
        "| --- | ---: |",
    ]
    return out + [f"| {name} | {us:,.1f} |" for name, us in b.steps_us.items()]


def _targets(r: SizeResult) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    fb = r.median("fedbroker") or float("inf")
    lines = [
        f"- median fedbroker decision {fb:.1f} µs <= {TARGET_US:.0f} µs: {verdict(fb <= TARGET_US)}"
    ]
    for engine, target in (
        ("cedarpy", TARGET_CEDAR_RATIO),
        ("cedarpy-batch", TARGET_CEDAR_RATIO),
        ("moto", TARGET_MOTO_RATIO),
    ):
        ratio = r.ratio(engine)
        if ratio is None:
            lines.append(f"- {engine}: not measured")
        else:
            lines.append(
                f"- {engine} / fedbroker = {ratio:.1f}x >= {target:.0f}x: "
                f"{verdict(ratio >= target)}"
            )
    return lines


# --- entry point ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,1000,10000", help="statement counts")
    parser.add_argument(
        "--dense-sizes", default="100", help="statement counts also run with every statement hot"
    )
    parser.add_argument(
        "--cold-sizes",
        default="1000,10000",
        help="statement counts also run, fedbroker only, with the 100-statement principal's "
        "hot statements and the rest cold",
    )
    parser.add_argument("--per-shape", type=int, default=16, help="requests per shape")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="scale round budgets")
    parser.add_argument("--max-round-seconds", type=float, default=8.0)
    parser.add_argument("--bulk-lines", type=int, default=20_000)
    parser.add_argument("--bulk-rounds", type=int, default=3)
    parser.add_argument("--no-bulk", action="store_true")
    parser.add_argument(
        "--only",
        choices=("engine", "http", "sts"),
        help="run only the policy-engine sections (engine: decisions, growth, bulk), only "
        "IAM over HTTP, or only STS exchanges over HTTP (sts)",
    )
    parser.add_argument("--http-rounds", type=int, default=7, help="interleaved HTTP rounds")
    parser.add_argument(
        "--http-seconds", type=float, default=3.0, help="seconds per server and load per round"
    )
    parser.add_argument("--no-http", action="store_true", help="skip IAM over HTTP")
    parser.add_argument(
        "--no-sts",
        action="store_true",
        help="skip STS exchanges over HTTP (rounds and seconds: --http-rounds, --http-seconds)",
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="HTTP: no fedbroker-on-PostgreSQL row"
    )
    parser.add_argument(
        "--no-sql-count", action="store_true", help="HTTP: skip counting SQL per call"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, short rounds")
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.sizes, args.cold_sizes = "10,100", "1000"
        args.budget_scale, args.bulk_lines, args.bulk_rounds = 0.2, 2000, 1
        args.http_rounds, args.http_seconds = 3, 1.0
    run_engine = args.only in (None, "engine")
    run_http = args.only == "http" or (args.only is None and not args.no_http)
    run_sts = args.only == "sts" or (args.only is None and not args.no_sts)

    def numbers(text: str) -> list[int]:
        return [int(n) for n in text.split(",") if n]

    cold_hot = hot_count(HEADLINE_SIZE)
    plan = [Variant(n) for n in numbers(args.sizes)]
    plan += [Variant(n, hot=n, tag="dense") for n in numbers(args.dense_sizes)]
    plan += [
        Variant(n, hot=cold_hot, peers=False, tag=f"({cold_hot} hot)")
        for n in numbers(args.cold_sizes)
    ]
    plan.sort(key=lambda v: (v.size, v.tag))
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.monotonic()
    overhead = measure_timer_overhead()
    results: list[SizeResult] = []
    bulk_result = None
    if run_engine:
        results, bulk_result = run_engine_sections(args, plan, log)
    http_result = None
    if run_http:
        log(
            f"bench: IAM over HTTP, {args.http_rounds} rounds of {args.http_seconds:g} s per "
            "server and load"
        )
        http_result = http_iam.measure(
            WORK_DIR,
            args.http_rounds,
            args.http_seconds,
            log,
            postgres=not args.no_postgres,
            count_sql=not args.no_sql_count,
        )
    sts_result = None
    if run_sts:
        log(
            f"bench: STS exchanges over HTTP, {args.http_rounds} rounds of "
            f"{args.http_seconds:g} s per server"
        )
        sts_result = http_sts.measure(WORK_DIR, args.http_rounds, args.http_seconds, log)
    report = render(
        results, bulk_result, http_result, machine_note(overhead), command.strip(), sts_result
    )
    report += f"\nTotal benchmark time: {time.monotonic() - started:.0f} s.\n"
    print(report)
    if args.markdown is not None:
        args.markdown.write_text(report, encoding="utf-8")
        log(f"bench: report written to {args.markdown}")
    return 0


def run_engine_sections(
    args: argparse.Namespace, plan: Sequence[Variant], log: Callable[[str], None]
) -> tuple[list[SizeResult], bulk.BulkResult | None]:
    """Decision cost per size against the peers, growth across sizes, bulk simulate."""
    log(f"bench: {len(REQUEST_ACTIONS)} request actions; {', '.join(v.label for v in plan)}")
    results: list[SizeResult] = []
    subjects: list[GrowthSubject] = []
    for variant in plan:
        budget = BUDGET_S.get(variant.size, 20.0) * args.budget_scale
        result, subject = run_variant(variant, args.per_shape, budget, args.max_round_seconds, log)
        results.append(result)
        subjects.append(subject)
    growth_rounds = max(21, int(201 * args.budget_scale))
    log(f"  fedbroker growth: {growth_rounds} rounds interleaved across {len(subjects)} variants")
    measure_growth(subjects, growth_rounds)
    del subjects
    bulk_result = None
    if not args.no_bulk:
        log(f"  bulk simulate: {args.bulk_lines} lines, {args.bulk_rounds} rounds")
        bulk_result = bulk.measure(WORK_DIR, args.bulk_lines, args.bulk_rounds)
    return results, bulk_result
