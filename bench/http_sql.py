"""SQL statements per ``GetRole`` call: the caching requirement proved with a count.

Issue 3: "the credential check on each call must not read the database for the caller's
policies more than once per directory change". Counted two ways, without touching ``src/``:

**In-process, every statement.** The broker's own app (``create_app`` with a ``Settings`` for
the benchmark server's data directory or PostgreSQL database) answers the same signed
``GetRole`` through Flask's test client, while SQLAlchemy's ``before_cursor_execute`` event
records every statement and the pool's ``checkout`` event every connection checkout. Each
statement is attributed to the step that ran it (the authenticator, the policy cache, the
resource lookup of ``authorize``, the operation) by wrapping those entry points in this
process only. Counted warm, then on the first call after a directory change (a ``TagRole``
on another role, sent to the real server) and on the calls after it.

**From outside, on the real server (PostgreSQL).** Per-table scan and write counters of
``pg_stat_user_tables`` and transaction counters of ``pg_stat_database``, read before and
after a run of sequential replays of the signed request against ``fedbroker serve`` with its
two gunicorn workers; once warm, once right after a directory change. A backend publishes its
counters only from time to time, so before each reading the server's connections are ended
(``pg_terminate_backend``: a backend flushes its counters when it exits). The broker's pool
neither pings nor retries, so the first read on each ended connection answers HTTP 500: up to
``MAX_DROPPED`` such answers are sent again, counted and reported.
"""

from __future__ import annotations

import collections
import concurrent.futures
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.http_servers import (
    OTHER_ROLE,
    ROLE_NAME,
    Log,
    Server,
    SignedRequest,
    check_get_role_body,
    iam_client,
    replay,
    sign_get_role,
)

#: Tables only the policy cache reads (a user's groups, inline policies, attachments, the
#: managed policies' versions).
POLICY_TABLES = ("memberships", "inline_policies", "attachments", "policy_versions")
WARM_CALLS = 200
AFTER_CHANGE_CALLS = 20
OUTSIDE_CALLS = 400
#: Answers allowed to fail (HTTP 500) right after the benchmark ended the server's database
#: connections: the broker's pool neither pings nor retries, so the first statement on each
#: ended connection fails (about one per worker); counted and reported.
MAX_DROPPED = 10
TIMING_ROUNDS = 7
TIMING_CALLS = 40

_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END"})
_TABLE = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+\"?(\w+)\"?", re.IGNORECASE)


def describe(statement: str) -> str:
    """``SELECT directory_version`` style: the verb and the tables a statement names."""
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
    tables = list(dict.fromkeys(_TABLE.findall(statement)))
    return f"{verb} {', '.join(tables)}".strip()


def tables_of(statement: str) -> list[str]:
    return list(dict.fromkeys(_TABLE.findall(statement)))


def is_control(statement: str) -> bool:
    """``BEGIN``, ``COMMIT``, ``ROLLBACK``, ``SAVEPOINT``, ``RELEASE``: no data read."""
    words = statement.split(None, 1)
    return bool(words) and words[0].upper() in _CONTROL


@dataclass
class Window:
    """Statements seen while a number of calls ran."""

    calls: int
    statements: list[tuple[str, str]]  # (step, SQL)
    checkouts: int  # connections taken from the pool (PostgreSQL: each one pinged first)
    begins: int  # transactions begun by SQLAlchemy
    resets: int  # connections reset (rolled back) when returned to the pool

    @property
    def queries(self) -> list[tuple[str, str]]:
        """The statements that read or write (not ``BEGIN``, ``ROLLBACK``...)."""
        return [(step, sql) for step, sql in self.statements if not is_control(sql)]

    def per_call(self) -> float:
        """Queries per call."""
        return len(self.queries) / self.calls

    def control_per_call(self) -> float:
        """Transaction-control statements sent as SQL per call (SQLite's explicit BEGIN)."""
        return (len(self.statements) - len(self.queries)) / self.calls

    def policy_reads(self) -> int:
        return sum(1 for _, sql in self.queries if set(tables_of(sql)) & set(POLICY_TABLES))

    def by_statement(self) -> list[tuple[str, str, float]]:
        """(step, query description, per call), in the order first seen."""
        counts = collections.Counter((step, describe(sql)) for step, sql in self.queries)
        return [(step, what, n / self.calls) for (step, what), n in counts.items()]


@dataclass
class InProcessCounts:
    label: str
    warm: Window
    first_after_change: Window
    after_change: Window
    sample_sql: dict[str, str] = field(default_factory=dict)  # description -> one SQL text
    timings_us: dict[str, float] = field(default_factory=dict)


@dataclass
class OutsideCounts:
    """Deltas of PostgreSQL's counters per window, from the real server."""

    label: str
    calls: int
    transactions: float  # xact_commit + xact_rollback
    scans: dict[str, int]  # table -> seq_scan + idx_scan
    writes: dict[str, int]  # table -> rows inserted + updated + deleted
    dropped: int = 0  # HTTP 500 on a connection the benchmark had ended (see MAX_DROPPED)

    def per_call(self, value: float) -> float:
        return value / self.calls


@dataclass
class SqlCounts:
    in_process: list[InProcessCounts]
    outside_warm: OutsideCounts | None
    outside_change: OutsideCounts | None


# --- in-process -------------------------------------------------------------------------------


class _Recorder:
    """Statement, transaction and checkout listeners on every engine and pool of this
    process."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self._clear()

    def _clear(self) -> None:
        self.statements: list[tuple[str, str]] = []
        self.checkouts = self.begins = self.resets = 0

    def on_statement(self, *args: Any) -> None:
        statement = args[2]  # (conn, cursor, statement, parameters, context, executemany)
        self.statements.append((self.steps[-1] if self.steps else "request", statement))

    def on_checkout(self, *_: Any) -> None:
        self.checkouts += 1

    def on_begin(self, *_: Any) -> None:
        self.begins += 1

    def on_reset(self, *_: Any) -> None:
        self.resets += 1

    def step(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.steps.append(name)
            try:
                return func(*args, **kwargs)
            finally:
                self.steps.pop()

        return wrapped

    @contextmanager
    def window(self, calls: int) -> Iterator[list[Window]]:
        self._clear()
        box: list[Window] = []
        yield box
        box.append(Window(calls, self.statements, self.checkouts, self.begins, self.resets))
        self._clear()


_LISTENERS = (
    ("Engine", "before_cursor_execute", "on_statement"),
    ("Engine", "begin", "on_begin"),
    ("Pool", "checkout", "on_checkout"),
    ("Pool", "reset", "on_reset"),
)


@contextmanager
def _listening(recorder: _Recorder) -> Iterator[None]:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    targets = {"Engine": Engine, "Pool": Pool}
    for target, name, method in _LISTENERS:
        event.listen(targets[target], name, getattr(recorder, method))
    try:
        yield
    finally:
        for target, name, method in _LISTENERS:
            event.remove(targets[target], name, getattr(recorder, method))


def count_in_process(server: Server, change: Callable[[], None]) -> InProcessCounts:
    """The broker's app in this process, on ``server``'s store, answering its signed GetRole."""
    import fedbroker.iam.api as iam_api
    from fedbroker.config import Settings
    from fedbroker.web.app import create_app

    assert server.data_dir is not None
    recorder = _Recorder()
    app = create_app(Settings(data_dir=server.data_dir, database_url=server.database_url))
    authenticator = app.extensions["fedbroker.authenticator"]
    policies = app.extensions["fedbroker.services"].policies
    authenticator.authenticate = recorder.step("authenticate", authenticator.authenticate)
    policies.sources = recorder.step("policy cache", policies.sources)
    original_authorize = iam_api.authorize
    iam_api.authorize = recorder.step("authorize: resource", original_authorize)
    client = app.test_client()
    signed = sign_get_role(server)  # signed for the server's host, which the test client sends

    def call(count: int) -> None:
        for _ in range(count):
            answer = client.post("/", data=signed.body, headers=signed.headers, base_url=server.url)
            check_get_role_body(server.label, answer.status_code, answer.get_data())

    try:
        with _listening(recorder):
            call(5)  # build the key and policy caches, record the key's last use
            with recorder.window(WARM_CALLS) as warm:
                call(WARM_CALLS)
            change()
            with recorder.window(1) as first:
                call(1)
            with recorder.window(AFTER_CHANGE_CALLS) as after:
                call(AFTER_CHANGE_CALLS)
        iam_api.authorize = original_authorize
        del authenticator.authenticate, policies.sources  # the classes' methods again
        timings = _time_steps(app, call)
    finally:
        iam_api.authorize = original_authorize
        app.extensions["fedbroker.services"].store.close()
    samples = {
        describe(sql): " ".join(sql.split()) for w in (*warm, *first) for _, sql in w.statements
    }
    return InProcessCounts(server.label, warm[0], first[0], after[0], samples, timings)


def _time_steps(app: Any, call: Callable[[int], None]) -> dict[str, float]:
    """Median µs of a whole in-process GetRole and of the two reads a warm call makes, in
    interleaved rounds."""
    from fedbroker.directory.model import Kind

    store = app.extensions["fedbroker.services"].store
    account_id = store.list_accounts()[0].id
    steps: dict[str, Callable[[int], object]] = {
        "GetRole, whole call in-process": call,
        "`directory_version()`": lambda n: [store.directory_version() for _ in range(n)],
        "`get_entity()` of the role": lambda n: [
            store.get_entity(account_id, Kind.ROLE, ROLE_NAME) for _ in range(n)
        ],
    }
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(TIMING_ROUNDS):
        for name, run in steps.items():
            start = time.perf_counter_ns()
            run(TIMING_CALLS)
            samples[name].append((time.perf_counter_ns() - start) / TIMING_CALLS / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


# --- outside: PostgreSQL's counters -----------------------------------------------------------


def _conninfo(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _snapshot(database_url: str) -> tuple[int, dict[str, tuple[int, int]]]:
    """End the server's connections (so their counters are flushed), then read the database's
    transaction count and each table's (scans, rows written)."""
    import psycopg

    with psycopg.connect(_conninfo(database_url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.05)
        time.sleep(0.2)  # let the exiting backends' counters land
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
        transactions = int(row[0]) if row is not None else 0
        tables = {
            name: (int(scans), int(writes))
            for name, scans, writes in conn.execute(
                "SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0), "
                "n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
            ).fetchall()
        }
    return transactions, tables


def count_outside(
    server: Server, calls: int, before: Callable[[], None] | None = None
) -> OutsideCounts:
    """Counter deltas over ``calls`` sequential replays against the real server, after a
    concurrent warm-up and then ``before`` (a directory change, say)."""
    assert server.database_url is not None
    signed: SignedRequest = sign_get_role(server)
    dropped = [0]

    def checked(status: int, body: bytes) -> bool:
        """True for a good answer; False for an allowed 500 (the connection was ended)."""
        if status == 500 and dropped[0] < MAX_DROPPED:
            dropped[0] += 1
            return False
        check_get_role_body(server.label, status, body)
        return True

    def concurrently() -> None:
        # Eight at a time, so that every worker answers some: caches current, connections
        # ended by a snapshot replaced.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for status, body in pool.map(lambda _: replay(signed), range(80)):
                checked(status, body)

    concurrently()
    if before is not None:
        before()
    tx0, tables0 = _snapshot(server.database_url)
    done = 0
    while done < calls:
        done += checked(*replay(signed))
    tx1, tables1 = _snapshot(server.database_url)
    concurrently()  # so that the next boto3 call (signing, a directory change) finds it healed
    names = sorted(set(tables0) | set(tables1))
    zero = (0, 0)
    return OutsideCounts(
        server.label,
        calls,
        tx1 - tx0,
        {n: tables1.get(n, zero)[0] - tables0.get(n, zero)[0] for n in names},
        {n: tables1.get(n, zero)[1] - tables0.get(n, zero)[1] for n in names},
        dropped[0],
    )


# --- entry point ------------------------------------------------------------------------------


def count(servers: Sequence[Server], work: Path, log: Log) -> SqlCounts:
    del work  # nothing written
    changes = iter(range(1, 1_000_000))

    def change_on(server: Server) -> Callable[[], None]:
        def change() -> None:
            client = iam_client(server.url, server.key_id, server.secret)
            client.tag_role(
                RoleName=OTHER_ROLE, Tags=[{"Key": "bench-change", "Value": str(next(changes))}]
            )

        return change

    in_process: list[InProcessCounts] = []
    outside_warm = outside_change = None
    for server in servers:
        if not server.is_fedbroker:
            continue
        counts = count_in_process(server, change_on(server))
        in_process.append(counts)
        log(
            f"  {server.label}: {counts.warm.per_call():.2f} queries per warm GetRole, "
            f"{counts.warm.policy_reads()} policy-table reads in {counts.warm.calls} calls; "
            f"after a change: {counts.first_after_change.per_call():.0f} on the first call"
        )
        if server.database_url is not None:
            outside_warm = count_outside(server, OUTSIDE_CALLS)
            outside_change = count_outside(server, OUTSIDE_CALLS, before=change_on(server))
    return SqlCounts(in_process, outside_warm, outside_change)


# --- report -----------------------------------------------------------------------------------

_STEP_NOTES = {
    "authenticate": "authenticate: is the access-key cache current?",
    "policy cache": "policy cache: is the compiled policy set current?",
    "authorize: resource": "authorize: the resource ARN (looks the role up)",
    "request": "the operation: GetRole reads the role",
}


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def requirement_met(counts: SqlCounts) -> bool:
    """No policy-table statement in any warm window; after a change, reads on the first call
    only (in-process), and at most one build per worker from outside."""
    inside = all(
        c.warm.policy_reads() == 0 and c.after_change.policy_reads() == 0 for c in counts.in_process
    )
    outside = counts.outside_warm is None or all(
        counts.outside_warm.scans.get(t, 0) == 0 for t in POLICY_TABLES
    )
    return inside and outside


def render(counts: SqlCounts) -> list[str]:
    out = [
        "",
        "### SQL statements per `GetRole` call",
        "",
        "Counted, not timed, without changing `src/` (see `bench/http_sql.py`). *In-process*: "
        "the broker's own app (`create_app` on the benchmark server's store) answers the same "
        "signed request through Flask's test client while SQLAlchemy's `before_cursor_execute` "
        "event records every statement, the engine's `begin` and the pool's `checkout` and "
        "`reset` events every transaction begun, connection taken and connection rolled "
        f"back on return. *Warm*: {WARM_CALLS} calls after 5 warm-up calls. Then one "
        "directory change (`TagRole` on another role, sent to the real server) and "
        f"{1 + AFTER_CHANGE_CALLS} more calls. Policy tables: {', '.join(POLICY_TABLES)}.",
        "",
        "*Queries*: statements that read or write; transaction control sent as SQL "
        "(`BEGIN`) is counted apart.",
        "",
        "| store | queries per warm call | + `BEGIN` statements "
        "| pool checkouts / transactions begun / resets (rollbacks) per warm call "
        f"| policy-table queries in {WARM_CALLS} warm calls "
        "| first call after a change: queries (on policy tables) "
        f"| the {AFTER_CHANGE_CALLS} calls after it, queries per call |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in counts.in_process:
        first, warm = c.first_after_change, c.warm
        out.append(
            f"| {c.label} | {_n(warm.per_call())} | {_n(warm.control_per_call())} "
            f"| {_n(warm.checkouts / warm.calls)} / {_n(warm.begins / warm.calls)} / "
            f"{_n(warm.resets / warm.calls)} "
            f"| {warm.policy_reads()} | {len(first.queries)} ({first.policy_reads()}) "
            f"| {_n(c.after_change.per_call())} |"
        )
    if counts.in_process:
        head = counts.in_process[0]
        same = all(c.warm.by_statement() == head.warm.by_statement() for c in counts.in_process[1:])
        out += [
            "",
            "The queries of a warm call"
            + (" (the same on every store)" if same else f" ({head.label})")
            + ", by the step that runs them:",
            "",
            "| step | statement | per call | SQL |",
            "| --- | --- | ---: | --- |",
        ]
        for step, what, per_call in head.warm.by_statement():
            sql = head.sample_sql.get(what, "")
            sql = sql if len(sql) <= 90 else sql[:87] + "..."
            out.append(f"| {_STEP_NOTES.get(step, step)} | {what} | {_n(per_call)} | `{sql}` |")
        out += [
            "",
            "The first call after a directory change: "
            + "; ".join(
                f"{step} {what}" for step, what, _ in head.first_after_change.by_statement()
            )
            + ".",
            "",
            "In-process cost of a warm call and of the two reads it repeats (median µs of "
            f"{TIMING_ROUNDS} interleaved rounds of {TIMING_CALLS} calls):",
            "",
            "| store | " + " | ".join(head.timings_us) + " |",
            "| --- | " + " | ".join("---:" for _ in head.timings_us) + " |",
        ]
        for c in counts.in_process:
            out.append(
                f"| {c.label} | " + " | ".join(f"{v:,.0f}" for v in c.timings_us.values()) + " |"
            )
    for c in counts.in_process:
        w = c.warm
        if "PostgreSQL" in c.label:
            trips = (w.checkouts + w.begins + len(w.queries) + w.resets) / w.calls
            out += [
                "",
                "On PostgreSQL the pool pings every connection it hands out "
                "(`pool_pre_ping=True`) and psycopg sends `BEGIN` and the reset's `ROLLBACK` "
                f"as commands of their own, so a warm call makes {_n(trips)} round trips to the "
                "server (per checkout: ping, BEGIN, query, ROLLBACK) for "
                f"{_n(w.per_call())} queries.",
            ]
        elif w.control_per_call():
            calls = (len(w.statements) + w.resets) / w.calls
            out += [
                "",
                f"On SQLite each read is a transaction of its own: an explicit `BEGIN` "
                "statement, the query, then the `ROLLBACK` of the pool's reset: "
                f"{_n(calls)} calls into sqlite3 per warm call for {_n(w.per_call())} queries.",
            ]
    out += _render_outside(counts.outside_warm, counts.outside_change)
    verdict = "met" if requirement_met(counts) else "NOT met"
    out += [
        "",
        f"Requirement (no read of the caller's policies more than once per directory change): "
        f"**{verdict}**.",
    ]
    return out


def _render_outside(warm: OutsideCounts | None, change: OutsideCounts | None) -> list[str]:
    if warm is None or change is None:
        return []
    tables = [t for t in warm.scans if t != "alembic_version"]
    out = [
        "",
        f"From outside, on PostgreSQL: `pg_stat_database` and `pg_stat_user_tables` deltas over "
        f"{warm.calls} sequential replays of the signed request to `fedbroker serve` (two "
        "workers, warmed first with concurrent calls); the second window starts right after a "
        "directory change. Scans: sequential plus index scans, totals over the window (a join "
        "scans both its tables).",
        "",
        "| window | calls | transactions per call | "
        + " | ".join(f"{t} scans" for t in tables)
        + " | rows written |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in tables) + " | ---: |",
    ]
    for name, w in (("warm", warm), ("after a directory change", change)):
        out.append(
            f"| {name} | {w.calls:,} | {_n(w.transactions / w.calls)} | "
            + " | ".join(f"{w.scans.get(t, 0):,}" for t in tables)
            + f" | {sum(w.writes.values()):,} |"
        )
    dropped = warm.dropped + change.dropped
    if dropped:
        out += [
            "",
            f"{dropped} requests answered HTTP 500 right after the benchmark ended the server's "
            "database connections (to flush their counters); they were tolerated (inside a "
            "counting window, sent again and not counted as calls): the broker's "
            "PostgreSQL pool neither pings a connection before use nor retries a statement "
            "that failed on a dropped one (`SqlStore`, `src/fedbroker/directory/sql.py`), so "
            "the first read on each ended connection fails (a database restart or failover "
            "would do the same to live traffic).",
        ]
    return out
