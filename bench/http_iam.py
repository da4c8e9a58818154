"""IAM over HTTP: signed ``GetRole`` calls per second, fedbroker's server against moto's.

Both servers run on 127.0.0.1 as their commands start them: ``fedbroker serve`` with its
default workers (gunicorn, sync) on SQLite in a temporary data directory, the same on a
temporary PostgreSQL database, and ``python -m moto.server`` (moto's werkzeug server, one
process). The same role is created on each with boto3, then two loads are timed in
interleaved rounds:

- **wrk** (``-t1 -c8``) replaying a genuine botocore-signed ``GetRole`` request, captured from a
  real boto3 call just before each round (SigV4 signatures stay valid for five minutes);
- **boto3**, several client processes each calling ``client.get_role`` in a loop for the same
  time, the "same boto3 calls" measurement (a single boto3 loop tops out near 400 calls/s).

Every answer is checked before timing (HTTP 200 and a ``GetRoleResponse`` naming the role);
during wrk runs every status is counted and a sample of bodies is checked, and a round with
any non-200 answer, socket error or wrong body stops the benchmark. See ``bench/README.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import re
import secrets
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import http_sql
from bench.http_servers import (
    ROLE_NAME,
    HttpBenchError,
    Log,
    Server,
    SignedRequest,
    check_get_role_body,
    create_roles,
    iam_client,
    postgres_database,
    replay,
    sign_get_role,
    start_fedbroker,
    start_moto,
)

WRK_THREADS = 1
WRK_CONNECTIONS = 8
WRK_SAMPLE_EVERY = 25  # check the body of every 25th response
CLIENT_PROCESSES = 4


# --- wrk --------------------------------------------------------------------------------------

_LUA_CHECKS = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) seen = 0; ok = 0; sampled = 0; bad = 0 end
function response(status, headers, body)
  seen = seen + 1
  if status == 200 then ok = ok + 1 end
  if seen % SAMPLE_EVERY == 1 then
    sampled = sampled + 1
    for _, mark in ipairs(MARKS) do
      if not string.find(body, mark, 1, true) then bad = bad + 1; break end
    end
  end
end
function done(summary, latency, requests)
  local totals = {seen = 0, ok = 0, sampled = 0, bad = 0}
  for _, t in ipairs(threads) do
    for k, _ in pairs(totals) do totals[k] = totals[k] + t:get(k) end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "seen": %d, "ok": %d, "sampled": %d, "bad": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), totals.seen, totals.ok, totals.sampled, totals.bad,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _lua(value: str) -> str:
    return json.dumps(value)  # a JSON string of printable ASCII is a valid Lua string


def wrk_script(request: SignedRequest, marks: Sequence[str]) -> str:
    """A wrk script sending ``request`` every time; sampled answers must hold ``marks``."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua(request.body.decode())}", "wrk.headers = {}"]
    lines += [f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in request.headers.items()]
    lines.append(f"SAMPLE_EVERY = {WRK_SAMPLE_EVERY}")
    lines.append("MARKS = {" + ", ".join(_lua(m) for m in marks) + "}")
    return "\n".join(lines) + "\n" + _LUA_CHECKS


@dataclass(frozen=True)
class WrkRun:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    sampled: int
    server_cpu_seconds: float = 0.0  # filled by the caller, which can see the server

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def server_cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_seconds / max(1, self.requests)


def wrk_executable() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise FileNotFoundError("wrk not found: `apt-get install -y wrk` (scripts/bench.sh does)")
    return found


def wrk_version() -> str:
    out = subprocess.run([wrk_executable(), "-v"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "wrk"


def run_wrk(label: str, signed: SignedRequest, seconds: float, script: Path) -> WrkRun:
    """One wrk run; raises :class:`HttpBenchError` on any non-200, socket error or bad body."""
    script.write_text(
        wrk_script(signed, ["<GetRoleResponse", f"<RoleName>{ROLE_NAME}</RoleName>"]),
        encoding="utf-8",
    )
    command = [
        wrk_executable(),
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        signed.url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    found = re.search(r"^BENCHJSON (\{.*\})$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or found is None:
        raise HttpBenchError(f"{label}: wrk failed:\n{out.stdout}\n{out.stderr}")
    data: dict[str, int] = json.loads(found.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out.stdout)
    problems = []
    if non_2xx is not None and int(non_2xx.group(1)):
        problems.append(f"{non_2xx.group(1)} non-2xx/3xx responses")
    if data["seen"] != data["ok"]:
        problems.append(f"{data['seen'] - data['ok']} of {data['seen']} responses not HTTP 200")
    errors = {k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    if errors:
        problems.append(f"socket errors {errors}")
    if data["bad"] or not data["sampled"]:
        problems.append(f"{data['bad']} of {data['sampled']} sampled bodies without the role")
    if problems:
        raise HttpBenchError(f"{label}: wrk run rejected: {'; '.join(problems)}\n{out.stdout}")
    return WrkRun(
        data["requests"],
        data["duration_us"] / 1e6,
        data["p50_us"] / 1000,
        data["p90_us"] / 1000,
        data["p99_us"] / 1000,
        data["sampled"],
    )


# --- boto3 in several processes ---------------------------------------------------------------


def _client_worker(conn: Connection) -> None:
    """One client process. On ``(url, key, secret)`` it makes (or reuses) a client, calls
    ``get_role`` once to warm it and answers ``"ready"``; then on ``(start_at, end_at)``
    (``time.monotonic``, the same clock in every process) it calls ``get_role`` from
    ``start_at`` until ``end_at`` and answers the number of calls and the CPU seconds it
    spent. ``None`` ends it."""
    clients: dict[str, Any] = {}
    while True:
        message = conn.recv()
        if message is None:
            return
        try:
            url, key_id, secret = message
            client = clients.get(url)
            if client is None:
                client = clients[url] = iam_client(url, key_id, secret)
            client.get_role(RoleName=ROLE_NAME)
            conn.send("ready")
            start_at, end_at = conn.recv()
            time.sleep(max(0.0, start_at - time.monotonic()))
            calls = 0
            cpu = time.process_time()
            while time.monotonic() < end_at:
                if client.get_role(RoleName=ROLE_NAME)["Role"]["RoleName"] != ROLE_NAME:
                    raise HttpBenchError(f"{url}: GetRole named another role")
                calls += 1
            conn.send((calls, time.process_time() - cpu))
        except Exception as error:  # reported to the parent, which stops the run
            conn.send(f"failed: {type(error).__name__}: {error}")
            return


@dataclass(frozen=True)
class Boto3Run:
    calls: int
    seconds: float
    client_cpu_seconds: float  # all client processes together

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds

    @property
    def client_cpu_ms_per_call(self) -> float:
        return 1000 * self.client_cpu_seconds / max(1, self.calls)


class ClientPool:
    """``processes`` long-lived boto3 client processes (spawned: no state from the parent)."""

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        for _ in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_client_worker, args=(child,), daemon=True)
            process.start()
            self._pipes.append(parent)
            self._processes.append(process)

    def run(self, server: Server, seconds: float) -> Boto3Run:
        """All processes together, calling for the same ``seconds``."""
        for pipe in self._pipes:
            pipe.send((server.url, server.key_id, server.secret))
        self._answers(server, lambda a: a == "ready")
        start_at = time.monotonic() + 0.05
        for pipe in self._pipes:
            pipe.send((start_at, start_at + seconds))
        answers = self._answers(server, lambda a: isinstance(a, tuple))
        calls = sum(int(a[0]) for a in answers)
        cpu = sum(float(a[1]) for a in answers)
        return Boto3Run(calls, seconds, cpu)

    def _answers(self, server: Server, expected: Callable[[Any], bool]) -> list[Any]:
        answers: list[Any] = [pipe.recv() for pipe in self._pipes]
        failures = [a for a in answers if not expected(a)]
        if failures:
            raise HttpBenchError(f"{server.label}: boto3 client process: {failures[0]}")
        return answers

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


# --- the measurement --------------------------------------------------------------------------


@dataclass
class ServerFigures:
    """One server's runs, one of each load per round."""

    label: str
    wrk: list[WrkRun] = field(default_factory=list)
    boto3: list[Boto3Run] = field(default_factory=list)

    def wrk_rps(self) -> float:
        return statistics.median(r.per_second for r in self.wrk)

    def boto3_rps(self) -> float:
        return statistics.median(r.per_second for r in self.boto3)

    def latency_ms(self, which: str) -> float:
        return float(statistics.median(getattr(r, which) for r in self.wrk))

    def client_cpu_ms(self) -> float:
        return statistics.median(r.client_cpu_ms_per_call for r in self.boto3)

    def server_cpu_ms(self) -> float:
        return statistics.median(r.server_cpu_ms_per_request for r in self.wrk)


@dataclass
class HttpResult:
    rounds: int
    seconds: float
    figures: dict[str, ServerFigures]
    sql: http_sql.SqlCounts | None
    wrk_version: str
    setup_seconds: float
    total_seconds: float
    notes: list[str] = field(default_factory=list)


def _timed_rounds(
    servers: Sequence[Server],
    rounds: int,
    seconds: float,
    clients: ClientPool,
    work: Path,
    log: Log,
) -> dict[str, ServerFigures]:
    """``rounds`` rounds; each runs wrk and the boto3 processes against every server, in an
    order that rotates from round to round. The request is re-signed before every wrk run."""
    figures = {s.label: ServerFigures(s.label) for s in servers}
    plan = [(s, kind) for kind in ("wrk", "boto3") for s in servers]
    for index in range(rounds):
        order = [plan[(index + k) % len(plan)] for k in range(len(plan))]
        for server, kind in order:
            if kind == "wrk":
                signed = sign_get_role(server)
                cpu = server.cpu_seconds()
                run = run_wrk(server.label, signed, seconds, work / "get_role.lua")
                cpu = server.cpu_seconds() - cpu
                figures[server.label].wrk.append(dataclasses.replace(run, server_cpu_seconds=cpu))
            else:
                figures[server.label].boto3.append(clients.run(server, seconds))
        summary = ", ".join(
            f"{f.label} {f.wrk[-1].per_second:,.0f}/{f.boto3[-1].per_second:,.0f}"
            for f in figures.values()
        )
        log(f"  http round {index + 1}/{rounds}, wrk/boto3 calls/s: {summary}")
    return figures


def _stop_all(servers: Sequence[Server]) -> None:
    for server in reversed(servers):
        server.stop()


def measure(
    work_root: Path,
    rounds: int,
    seconds: float,
    log: Log,
    *,
    postgres: bool = True,
    count_sql: bool = True,
) -> HttpResult:
    """Start the servers, check them, time them, count SQL per call, stop everything."""
    started = time.monotonic()
    work = work_root / f"http-{secrets.token_hex(4)}"
    work.mkdir(parents=True)
    servers: list[Server] = []
    notes: list[str] = []
    sql = None
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(postgres_database(log)) if postgres else None
        if postgres and database_url is None:
            notes.append("PostgreSQL was not reachable: no PostgreSQL row.")
        # Registered after the database: the servers stop before it is dropped.
        stack.callback(_stop_all, servers)
        servers.append(start_fedbroker(work / "sqlite", "fedbroker (SQLite)", None))
        servers.append(start_moto(work / "moto"))
        if database_url is not None:
            servers.append(start_fedbroker(work / "pg", "fedbroker (PostgreSQL)", database_url))
        log(f"  http: started {', '.join(f'{s.label} at {s.url}' for s in servers)}")
        for server in servers:
            create_roles(server)
            status, body = replay(sign_get_role(server))
            check_get_role_body(server.label, status, body)
        clients = ClientPool(CLIENT_PROCESSES)
        stack.callback(clients.close)
        for server in servers:  # warm-up, untimed: every worker builds its caches
            run_wrk(server.label, sign_get_role(server), 1, work / "get_role.lua")
            clients.run(server, 0.5)
        setup_seconds = time.monotonic() - started
        figures = _timed_rounds(servers, rounds, seconds, clients, work, log)
        if count_sql:
            log("  http: counting SQL statements per GetRole call")
            sql = http_sql.count(servers, work, log)
    shutil.rmtree(work, ignore_errors=True)
    return HttpResult(
        rounds=rounds,
        seconds=seconds,
        figures=figures,
        sql=sql,
        wrk_version=wrk_version(),
        setup_seconds=setup_seconds,
        total_seconds=time.monotonic() - started,
        notes=notes,
    )


# --- report -----------------------------------------------------------------------------------


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def render(result: HttpResult) -> list[str]:
    figures = list(result.figures.values())
    moto = result.figures.get("moto")
    wrk_runs = [r for f in figures for r in f.wrk]
    out = [
        "",
        "## IAM over HTTP: signed `GetRole` calls per second",
        "",
        "Servers and load on the same machine, 127.0.0.1. fedbroker: `fedbroker serve` with its "
        "defaults (gunicorn, 2 sync workers), SQLite in a temporary data directory or a "
        "temporary PostgreSQL database; moto: `python -m moto.server` (werkzeug, threaded, one "
        "process). The same role (description, two tags) on each, created with boto3. *wrk*: "
        f"{result.wrk_version} `-t{WRK_THREADS} -c{WRK_CONNECTIONS}` replaying a genuine "
        "botocore-signed `GetRole` request, re-signed before every run. *boto3*: "
        f"{CLIENT_PROCESSES} client processes calling `get_role` for the same time. "
        f"{result.rounds} interleaved rounds of {result.seconds:g} s per server and load "
        "(order rotating); medians of rounds, ratios between medians; latency percentiles "
        "from wrk (medians of the runs' percentiles).",
        "",
        "| server | wrk requests/s | wrk / moto | p50 ms | p90 ms | p99 ms "
        "| server CPU ms per request (wrk) "
        f"| boto3 calls/s ({CLIENT_PROCESSES} processes) | boto3 / moto "
        "| boto3 client CPU ms per call |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in figures:
        wrk_ratio = f"{f.wrk_rps() / moto.wrk_rps():.2f}x" if moto else "—"
        boto_ratio = f"{f.boto3_rps() / moto.boto3_rps():.2f}x" if moto else "—"
        out.append(
            f"| {f.label} | {_rate(f.wrk_rps())} | {wrk_ratio} | {f.latency_ms('p50_ms'):.1f} "
            f"| {f.latency_ms('p90_ms'):.1f} | {f.latency_ms('p99_ms'):.1f} "
            f"| {f.server_cpu_ms():.2f} | {_rate(f.boto3_rps())} | {boto_ratio} "
            f"| {f.client_cpu_ms():.2f} |"
        )
    client_ms = statistics.median(f.client_cpu_ms() for f in figures)
    out += [
        "",
        f"Checks: before timing, every server answered boto3's `get_role` and a byte-for-byte "
        "replay of it with HTTP 200 and a `GetRoleResponse` naming the role. Timed wrk runs: "
        f"{sum(r.requests for r in wrk_runs):,} responses, all HTTP 200, no socket errors, "
        f"{sum(r.sampled for r in wrk_runs):,} bodies checked (every {WRK_SAMPLE_EVERY}th), "
        "all naming the role; every boto3 answer named the role.",
        "",
        "*Server CPU per request*: user + system time of the server's processes during the "
        "wrk run (`/proc`: the command and its children, i.e. gunicorn's arbiter and "
        "workers; for PostgreSQL also the backends serving the database) divided by the "
        "requests. Throughput on this shared machine swings with other load; CPU per request "
        "much less, and it says what the server could do on idle cores:",
        "",
    ]
    for f in figures:
        cores = 1 if f.label == "moto" else 2
        why = "one process, bound by the GIL" if cores == 1 else "two sync workers"
        out.append(
            f"- {f.label}: {f.server_cpu_ms():.2f} ms per request, at most about "
            f"{_rate(1000 * cores / f.server_cpu_ms())} requests/s on {cores} idle "
            f"core{'s' if cores > 1 else ''} ({why})"
            + (
                f"; {f.server_cpu_ms() / moto.server_cpu_ms():.2f}x moto's CPU per request"
                if moto and f is not moto
                else ""
            )
            + "."
        )
    out += [
        "",
        f"The boto3 clients spend {client_ms:.1f} ms of CPU per call (median over servers), "
        f"so on 2 cores shared with the server they cannot send much more than "
        f"{2000 / client_ms:,.0f} calls/s whatever the server: the boto3 column measures "
        "the client as much as the server; wrk's column is the server's capacity.",
        "",
        "Per round, wrk requests/s / boto3 calls/s:",
        "",
        "| round | " + " | ".join(f.label for f in figures) + " |",
        "| ---: | " + " | ".join("---:" for _ in figures) + " |",
    ]
    for index in range(result.rounds):
        cells = " | ".join(
            f"{_rate(f.wrk[index].per_second)} / {_rate(f.boto3[index].per_second)}"
            for f in figures
        )
        out.append(f"| {index + 1} | {cells} |")
    out += ["", *result.notes] if result.notes else []
    if result.sql is not None:
        out += http_sql.render(result.sql)
    out += [
        "",
        f"HTTP section: {result.total_seconds:.0f} s ({result.setup_seconds:.0f} s of set-up).",
    ]
    return out
