"""One ``AssumeRoleWithWebIdentity`` exchange taken apart in-process: where the time goes and
which SQL statements it costs.

The broker's own app (``create_app`` on the benchmark server's data directory, so the same
SQLite database, provider, role and key ring) answers the very request wrk replays, in this
process: through its WSGI callable with a prepared environ (no HTTP, no gunicorn, no test
client), through Flask's test client, and through ``fedbroker.sts.api.execute`` alone. One
real exchange is run with the operation's inner calls wrapped, in this process only, to
capture their arguments (the verified token, the trust context, the session claims, the audit
event, the result); each step is then timed on its own with those arguments, in interleaved
rounds:

- the ID token check (``OidcVerifier.verify`` with the provider given from memory), its
  signature check alone (``fedbroker.federation.oidc._signature_valid``), raw
  ``cryptography`` (the floor) and, for comparison, joserfc's ``jws.deserialize_compact``
  (what the check used before);
- the per-request directory cost: ``DirectoryView.refresh`` (the store's ``change_hint``),
  the provider and role reads from the view's memory, and what a store read would cost;
- the trust policy: the check as the operation calls it, ``parse_policy``, evaluation;
- minting and sealing the credentials (``issue_credentials`` with the key ring);
- the audit event (``JsonlAuditSink.emit``), the XML answer, parsing the form.

*In situ*, the own time of each step (nested steps excluded) is measured inside real
exchanges driven through the WSGI callable, the steps wrapped with a timer:
``fedbroker.web.query.handle`` (a module function the ``QueryEndpoint`` middleware calls by
its global name), ``sts.api.execute``, the verifier, the view's ``refresh`` and ``get_entity``,
the change hint, the trust check, ``issue_credentials``, the audit.

SQL statements are counted with SQLAlchemy's ``before_cursor_execute`` and ``begin`` events
and the pool's ``checkout`` event over a few hundred exchanges, each attributed to the store
method that ran it (the store's public methods are wrapped on the instance); the change hint
(SQLite ``PRAGMA data_version`` on the store's own ``sqlite3`` connection, outside
SQLAlchemy) is counted apart. Last, cProfile over the same exchanges lists the functions with
the most time of their own.
"""

from __future__ import annotations

import base64
import collections
import cProfile
import enum
import inspect
import io
import math
import pstats
import statistics
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bench.http_servers import HttpBenchError, Log, SignedRequest

ACTION = "AssumeRoleWithWebIdentity"
ROUNDS = 9
MIN_BLOCK_NS = 4_000_000  # each timed block lasts at least ~4 ms
IN_SITU_CALLS = 60
SQL_CALLS = 300
PROFILE_CALLS = 300
TOP_FUNCTIONS = 15


@dataclass(frozen=True)
class StepTime:
    key: str
    label: str
    us: float  # wall clock: what a caller waits, preemption on a busy machine included
    cpu_us: float  # this process's CPU time: comparable with a server's CPU per request


@dataclass
class SqlLine:
    caller: str  # the store method that ran it
    statement: str  # verb and tables
    per_call: float
    sample: str


@dataclass
class Profile:
    wholes: list[StepTime]  # WHOLES: whole exchanges (and the bare endpoint), uninstrumented
    in_situ: dict[str, float]  # IN_SITU key (and "whole") -> median µs per exchange
    steps: list[StepTime]
    sql_calls: int
    sql_seconds: float
    sql: list[SqlLine]
    queries_per_call: float
    control_per_call: float  # BEGIN sent as SQL (SQLite)
    checkouts_per_call: float
    begins_per_call: float
    hints_per_call: float  # the store's change_hint (not through SQLAlchemy)
    hot: Hot
    notes: list[str] = field(default_factory=list)

    def us(self, key: str) -> float:
        return next(s.us for s in self.steps if s.key == key)

    def whole(self, key: str) -> float:
        """Wall-clock µs of a whole request (:data:`WHOLES`)."""
        return next(s.us for s in self.wholes if s.key == key)

    def whole_cpu(self, key: str) -> float:
        """CPU µs of a whole request (:data:`WHOLES`)."""
        return next(s.cpu_us for s in self.wholes if s.key == key)

    @property
    def directory_us(self) -> float:
        """In situ: what the directory costs an exchange (refresh, hint, reads, store)."""
        keys = ("refresh", "hint", "read provider", "read role", "store read", "version")
        return sum(self.in_situ.get(k, 0.0) for k in keys)


# --- capturing one real exchange --------------------------------------------------------------


@dataclass
class Captured:
    verify: tuple[Any, ...] = ()
    verified: Any = None
    authorize: tuple[Any, ...] = ()
    issue: tuple[Any, ...] = ()
    event: Any = None
    result: dict[str, Any] = field(default_factory=dict)


#: The operation's trust check, by the names it has had (newest first).
TRUST_FUNCTIONS = ("authorize_federated", "_authorize")


def trust_function() -> str:
    """The name under which ``fedbroker.sts.web_identity`` calls its trust check."""
    from fedbroker.sts import web_identity

    return next(name for name in TRUST_FUNCTIONS if hasattr(web_identity, name))


@contextmanager
def _patched(target: Any, name: str, wrapper: Callable[..., Any]) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, wrapper(original))
    try:
        yield
    finally:
        setattr(target, name, original)


def _capture(services: Any, form: dict[str, str], meta: Any) -> Captured:
    """Run one exchange with ``execute`` while the operation's inner calls are recorded."""
    from fedbroker.sts import api as sts_api
    from fedbroker.sts import web_identity

    got = Captured()
    verifier, audit = services.web_identity, services.audit

    def on_verify(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any) -> Any:
            got.verify = args
            got.verified = original(*args)
            return got.verified

        return wrapped

    def recorder(slot: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(*args: Any) -> Any:
                setattr(got, slot, args)
                return original(*args)

            return wrapped

        return wrap

    def on_emit(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(event: Any) -> Any:
            got.event = event
            return original(event)

        return wrapped

    with (
        _patched(verifier, "verify", on_verify),
        _patched(web_identity, trust_function(), recorder("authorize")),
        _patched(web_identity, "issue_credentials", recorder("issue")),
        _patched(audit, "emit", on_emit),
    ):
        got.result = sts_api.execute(services, None, meta, ACTION, form)
    # Instance attributes set by _patched shadowed the class's methods: remove them.
    for owner, name in ((verifier, "verify"), (audit, "emit")):
        if name in vars(owner):
            delattr(owner, name)
    if not got.verify or not got.authorize or not got.issue or got.event is None:
        raise HttpBenchError("sts profile: the exchange did not run the expected steps")
    return got


def _trust_arguments(args: tuple[Any, ...]) -> tuple[Any, Any, list[str], dict[str, object]]:
    """Role, principal, actions and context from the trust check's arguments, whichever its
    signature: ``(ctx, role, principal, actions, context, denied)`` or the older
    ``(role, provider_arn, actions, context, denied)``."""
    from fedbroker.directory.model import Entity
    from fedbroker.policy.request import Principal, PrincipalType

    role = next(a for a in args if isinstance(a, Entity))
    actions = next(a for a in args if isinstance(a, list))
    context = next(a for a in args if isinstance(a, dict))
    principal = next((a for a in args if isinstance(a, Principal)), None)
    if principal is None:
        arn = next(a for a in args if isinstance(a, str) and a.startswith("arn:"))
        principal = Principal(arn, PrincipalType.FEDERATED)
    return role, principal, actions, context


# --- timing -----------------------------------------------------------------------------------


def _time_steps(steps: dict[str, tuple[str, Callable[[], object]]]) -> list[StepTime]:
    """Median µs per call of each step, over interleaved rounds whose order rotates."""
    reps: dict[str, int] = {}
    for key, (_, run) in steps.items():
        run()  # warm-up
        start = time.perf_counter_ns()
        run()
        elapsed = max(1, time.perf_counter_ns() - start)
        reps[key] = max(1, min(2000, math.ceil(MIN_BLOCK_NS / elapsed)))
    samples: dict[str, list[float]] = {key: [] for key in steps}
    cpu: dict[str, list[float]] = {key: [] for key in steps}
    keys = list(steps)
    for index in range(ROUNDS):
        for key in keys[index % len(keys) :] + keys[: index % len(keys)]:
            run, n = steps[key][1], reps[key]
            start_cpu = time.process_time_ns()
            start = time.perf_counter_ns()
            for _ in range(n):
                run()
            samples[key].append((time.perf_counter_ns() - start) / n / 1000)
            cpu[key].append((time.process_time_ns() - start_cpu) / n / 1000)
    return [
        StepTime(key, steps[key][0], statistics.median(samples[key]), statistics.median(cpu[key]))
        for key in steps
    ]


# --- SQL --------------------------------------------------------------------------------------


class _SqlRecorder:
    def __init__(self) -> None:
        self.callers: list[str] = []
        self.statements: list[tuple[str, str]] = []
        self.checkouts = self.begins = 0

    def on_statement(self, *args: Any) -> None:
        caller = self.callers[0] if self.callers else "outside the store"
        self.statements.append((caller, str(args[2])))

    def on_checkout(self, *_: Any) -> None:
        self.checkouts += 1

    def on_begin(self, *_: Any) -> None:
        self.begins += 1

    def wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            shown = [_enum_text(a) for a in args if isinstance(a, enum.Enum)]
            self.callers.append(f"{name}({', '.join(map(str, shown))})")
            try:
                return method(*args, **kwargs)
            finally:
                self.callers.pop()

        return wrapped


def _enum_text(member: enum.Enum) -> str:
    value = member.value
    return str(value[0] if isinstance(value, tuple) else value)


@contextmanager
def _store_wrapped(store: Any, recorder: _SqlRecorder) -> Iterator[None]:
    names = [
        n
        for n, member in inspect.getmembers(type(store), inspect.isfunction)
        if not n.startswith("_")
    ]
    done: list[str] = []
    try:
        for name in names:
            try:
                setattr(store, name, recorder.wrap(name, getattr(store, name)))
            except AttributeError:  # __slots__: no attribution
                continue
            done.append(name)
        yield
    finally:
        for name in done:
            delattr(store, name)


def _count_sql(
    store: Any, view: Any, exchange: Callable[[int], None]
) -> tuple[_SqlRecorder, float, int]:
    """SQL statements (and the view's change-hint calls) over :data:`SQL_CALLS` exchanges."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    recorder = _SqlRecorder()
    hints = [0]
    hint = view._change_hint  # bound to the store's change_hint when the view was made

    def counted_hint() -> Any:
        hints[0] += 1
        return hint()

    listeners = (
        (Engine, "before_cursor_execute", recorder.on_statement),
        (Engine, "begin", recorder.on_begin),
        (Pool, "checkout", recorder.on_checkout),
    )
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    view._change_hint = counted_hint
    try:
        with _store_wrapped(store, recorder):
            started = time.perf_counter()
            exchange(SQL_CALLS)
            seconds = time.perf_counter() - started
    finally:
        view._change_hint = hint
        for target, name, fn in listeners:
            event.remove(target, name, fn)
    return recorder, seconds, hints[0]


# --- cProfile ---------------------------------------------------------------------------------


@dataclass
class Hot:
    """cProfile over exchanges: own time per exchange by function and by package."""

    functions: list[tuple[str, float, float]]  # function, own µs per exchange, share
    packages: list[tuple[str, float, float]]  # package, own µs per exchange, share
    per_call_us: float  # wall time per exchange under the profiler


def _hot_functions(exchange: Callable[[int], None]) -> Hot:
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    exchange(PROFILE_CALLS)
    profiler.disable()
    per_call_us = (time.perf_counter() - started) / PROFILE_CALLS * 1e6
    stats: Any = pstats.Stats(profiler)
    rows: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats
    total = sum(tt for _, _, tt, _, _ in rows.values()) or 1.0
    ranked = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)[:TOP_FUNCTIONS]
    functions = [
        (_where(func), tt / PROFILE_CALLS * 1e6, tt / total) for func, (_, _, tt, _, _) in ranked
    ]
    by_package: dict[str, float] = collections.defaultdict(float)
    for func, (_, _, tt, _, _) in rows.items():
        by_package[_package(func)] += tt
    packages = [
        (name, tt / PROFILE_CALLS * 1e6, tt / total)
        for name, tt in sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)
    ]
    return Hot(functions, packages, per_call_us)


#: Built-in (C) functions named after what they serve.
_C_OWNERS = (
    ("sqlite3", "sqlite3 (C)"),
    ("cryptography", "cryptography (C/Rust)"),
    ("_hashlib", "hashlib (C)"),
    ("zlib", "zlib (C)"),
    ("io.open", "file I/O (C)"),
    ("_io.", "file I/O (C)"),
    ("json", "json (C)"),
    ("re.Pattern", "re (C)"),
)


def _package(func: tuple[str, int, str]) -> str:
    """``sqlalchemy``, ``fedbroker.directory``, ``sqlite3 (C)``... for grouping own time."""
    path, _, name = func
    if path == "~":
        return next((label for mark, label in _C_OWNERS if mark in name), "other built-ins (C)")
    parts = Path(path).parts
    if "fedbroker" in parts:
        index = parts.index("fedbroker")
        sub = parts[index + 1] if len(parts) > index + 2 else ""
        return f"fedbroker.{sub}" if sub else "fedbroker"
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if "bench" in parts:
        return "bench (the WSGI loop)"
    return "standard library (Python)"


def _where(func: tuple[str, int, str]) -> str:
    path, line, name = func
    if path == "~":
        return name  # a built-in
    parts = Path(path).parts
    if "fedbroker" in parts:
        shown = "/".join(parts[parts.index("fedbroker") :])
    elif "site-packages" in parts:
        shown = "/".join(parts[parts.index("site-packages") + 1 :])
    else:
        shown = "/".join(parts[-2:])
    return f"{shown}:{line} {name}"


# --- in situ: where a real exchange spends its time -----------------------------------------


class _InSitu:
    """Own time (children excluded) spent in wrapped functions during real exchanges."""

    def __init__(self) -> None:
        self.ns: collections.Counter[str] = collections.Counter()
        self._children: list[int] = []

    def wrap(self, key: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self._children.append(0)
            start = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter_ns() - start
                children = self._children.pop()
                name = key if isinstance(key, str) else key(*args)
                self.ns[name] += elapsed - children
                if self._children:
                    self._children[-1] += elapsed

        return wrapped


@contextmanager
def _instrumented(app: Any, recorder: _InSitu) -> Iterator[None]:
    """Wrap the steps of :data:`IN_SITU` with ``recorder``'s timer, in this process only."""
    from fedbroker.directory.model import Kind
    from fedbroker.sts import api as sts_api
    from fedbroker.sts import web_identity
    from fedbroker.web import query

    def entity_key(*args: Any) -> str:
        return "read provider" if Kind.OIDC_PROVIDER in args else "read role"

    services = app.extensions["fedbroker.services"]
    store, view = services.store, services.directory
    patches: list[tuple[Any, str, str | Callable[..., str]]] = [
        (app, "wsgi_app", "endpoint"),  # the QueryEndpoint middleware
        (query, "handle", "handle"),
        (sts_api, "execute", "execute"),
        (sts_api, "_audit", "audit"),
        (web_identity, trust_function(), "trust"),
        (web_identity, "issue_credentials", "issue"),
        (services.web_identity, "verify", "verify"),
        (view, "refresh", "refresh"),
        (view, "_change_hint", "hint"),  # the store's change_hint, bound when the view was made
        (view, "get_entity", entity_key),
        (store, "get_entity", "store read"),
        (store, "directory_version", "version"),
    ]
    originals = [
        (owner, name, getattr(owner, name), inspect.ismodule(owner) or name in vars(owner))
        for owner, name, _ in patches
    ]
    try:
        for owner, name, key in patches:
            setattr(owner, name, recorder.wrap(key, getattr(owner, name)))
        yield
    finally:
        for owner, name, original, own in reversed(originals):
            if own:  # a module's function or the instance's own attribute
                setattr(owner, name, original)
            else:
                delattr(owner, name)  # the class's method again


#: In-situ rows: key, label. ``outside`` is the whole exchange less everything below it.
IN_SITU = (
    ("verify", "verify the ID token (`OidcVerifier.verify`: parse, claims, `_signature_valid`)"),
    ("read provider", "the OIDC provider from the view (`directory.get_entity` in `_lookup`)"),
    ("read role", "the role from the view (`directory.get_entity` in `find_role`)"),
    ("refresh", "`DirectoryView.refresh`, once per call (less the hint)"),
    ("hint", "the store's `change_hint` (SQLite `PRAGMA data_version`, own connection)"),
    ("store read", "`store.get_entity` (only on a miss of the view)"),
    ("version", "`store.directory_version` (the key ring's check; the view when the hint moved)"),
    ("trust", "trust policy check (`authorize_federated`: compiled policy, evaluation)"),
    ("issue", "mint and seal the credentials (`issue_credentials`)"),
    ("audit", "audit event (`sts.api._audit`: record + `JsonlAuditSink.emit`)"),
    ("execute", "the rest of `sts.api.execute` and the operation (parameters, context, claims)"),
    ("handle", "`web.query.handle` outside `execute`: form, request meta, XML document"),
    ("endpoint", "`QueryEndpoint.__call__` outside `handle`: environ read, request id, headers"),
    ("outside", "the rest: `Flask.__call__` and the benchmark's loop (environ copy, body check)"),
)

#: Whole requests timed without instrumentation: key, label.
WHOLES = (
    ("wsgi", "fedbroker: its WSGI app called with a prepared environ (no test client)"),
    ("client", "fedbroker through Flask's test client (`client.post`)"),
    ("execute", "fedbroker: `sts.api.execute` alone (no form parsing, no XML, no WSGI)"),
    ("hello wsgi", "bare endpoint (`bench/flask_hello.py`): its WSGI app, the same environ"),
    ("hello client", "bare endpoint through its test client"),
)


def _in_situ(app: Any, exchanges: Callable[[int], None]) -> dict[str, float]:
    """Median µs per exchange of each row of :data:`IN_SITU` and of the whole, over rounds."""
    samples: dict[str, list[float]] = collections.defaultdict(list)
    recorder = _InSitu()
    with _instrumented(app, recorder):
        exchanges(5)
        for _ in range(ROUNDS):
            recorder.ns.clear()
            start = time.perf_counter_ns()
            exchanges(IN_SITU_CALLS)
            whole = time.perf_counter_ns() - start
            inside = sum(recorder.ns.values())
            samples["whole"].append(whole / IN_SITU_CALLS / 1000)
            samples["outside"].append((whole - inside) / IN_SITU_CALLS / 1000)
            for key, _ in IN_SITU:
                if key != "outside":
                    samples[key].append(recorder.ns[key] / IN_SITU_CALLS / 1000)
    return {key: statistics.median(values) for key, values in samples.items()}


# --- WSGI without a test client ---------------------------------------------------------------


def prepared_environ(request: SignedRequest) -> dict[str, Any]:
    """The WSGI environ of ``request`` as werkzeug builds it (``REMOTE_ADDR`` 127.0.0.1), with
    gunicorn's ``RAW_URI``; ``wsgi.input`` is replaced on every call."""
    from werkzeug.test import EnvironBuilder

    parts = urllib.parse.urlsplit(request.url)
    builder = EnvironBuilder(
        path=parts.path or "/",
        method="POST",
        headers=list(request.headers.items()),
        data=request.body,
        base_url=f"{parts.scheme}://{parts.netloc}",
    )
    try:
        environ: dict[str, Any] = builder.get_environ()
    finally:
        builder.close()
    environ["RAW_URI"] = parts.path or "/"
    environ.pop("wsgi.input", None)
    return environ


def wsgi_call(
    app: Callable[..., Any], environ: dict[str, Any], body: bytes
) -> Callable[[], tuple[str, bytes]]:
    """One request straight into ``app``: a copy of ``environ``, a fresh body stream, the
    status line and the joined body back (the iterable closed, as a server does)."""

    def call() -> tuple[str, bytes]:
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []

        def start_response(line: str, headers: Any, exc_info: Any = None) -> None:
            status.append(line)

        chunks = app(env, start_response)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return status[0], data

    return call


# --- the measurement --------------------------------------------------------------------------


def measure(
    data_dir: Path, exchange: SignedRequest, token: str, public_key: rsa.RSAPublicKey, log: Log
) -> Profile:
    from bench.flask_hello import app as hello_app
    from fedbroker.config import Settings
    from fedbroker.credentials.session_token import issue_credentials
    from fedbroker.directory.model import Kind
    from fedbroker.federation.oidc import _signature_valid
    from fedbroker.iam.api import RequestMeta
    from fedbroker.policy import PolicyKind, PolicySet, make_request, parse_policy
    from fedbroker.sts import api as sts_api
    from fedbroker.sts import web_identity
    from fedbroker.web import xml
    from fedbroker.web.app import create_app

    hello = hello_app.test_client()
    app = create_app(Settings(data_dir=data_dir))
    services = app.extensions["fedbroker.services"]
    store, view = services.store, services.directory
    client = app.test_client()
    parts = urllib.parse.urlsplit(exchange.url)
    base_url = f"{parts.scheme}://{parts.netloc}"
    body_text = exchange.body.decode()
    form = dict(urllib.parse.parse_qsl(body_text, keep_blank_values=True))
    meta = RequestMeta(
        request_id="bench-profile",
        source_ip="127.0.0.1",
        user_agent="bench",
        secure_transport=False,
    )
    environ = prepared_environ(exchange)
    fedbroker_wsgi = wsgi_call(app, environ, exchange.body)
    hello_wsgi = wsgi_call(hello_app, environ, exchange.body)

    def checked(status: int | str, data: bytes) -> None:
        if not str(status).startswith("200") or b"<AccessKeyId>ASIA" not in data:
            text = data.decode("utf-8", errors="replace")
            raise HttpBenchError(f"sts profile: HTTP {status}: {text[:300]}")

    def via_client(count: int) -> None:
        for _ in range(count):
            answer = client.post(
                "/", data=exchange.body, headers=exchange.headers, base_url=base_url
            )
            checked(answer.status_code, answer.get_data())

    def via_wsgi(count: int) -> None:
        for _ in range(count):
            checked(*fedbroker_wsgi())

    try:
        via_client(3)  # fetches the JWKS, loads the key ring
        via_wsgi(3)
        status, data = hello_wsgi()
        if not status.startswith("200") or data != b"hello":
            raise HttpBenchError(f"sts profile: flask_hello answered {status} {data[:100]!r}")
        got = _capture(services, form, meta)
        trust_check = getattr(web_identity, trust_function())
        verifier = services.web_identity
        verified = got.verified
        provider_ref = verified.provider
        now = got.verify[2]
        role, principal, actions, context = _trust_arguments(got.authorize)
        ring, claims, issued_at = got.issue
        trust_text = str(role.attrs["trust_policy"])
        trust = parse_policy(trust_text, PolicyKind.TRUST, f"{role.arn} trust", enforce_size=False)
        provider_key = verifier.jwks.keys(provider_ref.url, now).by_kid(verified.kid)
        signing_input, _, signature = token.rpartition(".")
        sig = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        change_hint = view._change_hint

        def evaluate() -> object:
            policies = PolicySet(resource=trust, resource_required=True)
            return policies.authorize(
                make_request(actions[0], role.arn, principal, context, role.account_id)
            )

        steps: dict[str, tuple[str, Callable[[], object]]] = {
            "verify": (
                "`OidcVerifier.verify` (provider from memory, JWKS cached)",
                lambda: verifier.verify(token, lambda _name: provider_ref, now),
            ),
            "signature": (
                "of which the signature: `oidc._signature_valid` (`cryptography`)",
                lambda: _signature_valid(token, provider_key, verified.algorithm),
            ),
            "floor": (
                "the floor: raw `cryptography` RS256 verify of the same token",
                lambda: public_key.verify(
                    sig, signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
                ),
            ),
            "refresh": (
                "`DirectoryView.refresh` with nothing written (one change hint)",
                lambda: view.refresh(now),
            ),
            "hint": ("`store.change_hint()`: SQLite `PRAGMA data_version`", change_hint),
            "view read": (
                "`directory.get_entity` of the role (from the view's memory)",
                lambda: view.get_entity(role.account_id, Kind.ROLE, role.name),
            ),
            "store read": (
                "`store.get_entity` of the role (one SQLite read: what the view saves)",
                lambda: store.get_entity(role.account_id, Kind.ROLE, role.name),
            ),
            "version": (
                "`store.directory_version()` (one SQLite read: after a change)",
                store.directory_version,
            ),
            "trust check": (
                "the trust check as the operation calls it (`authorize_federated`)",
                lambda: trust_check(*got.authorize),
            ),
            "trust parse": (
                "`parse_policy` of the trust policy (done once per text, not per exchange)",
                lambda: parse_policy(
                    trust_text, PolicyKind.TRUST, f"{role.arn} trust", enforce_size=False
                ),
            ),
            "trust evaluate": (
                "evaluate the parsed trust policy: `PolicySet` + `make_request` + `authorize`",
                evaluate,
            ),
            "issue": (
                "`issue_credentials`: ids, secret, claims, DEFLATE, AES-256-GCM seal",
                lambda: issue_credentials(ring, claims, issued_at),
            ),
            "audit": (
                "`JsonlAuditSink.emit`: JSON record, one write to the log kept open",
                lambda: services.audit.emit(got.event),
            ),
            "xml": (
                "`web.xml.response` of the result",
                lambda: xml.response(ACTION, got.result, "bench", sts_api.NAMESPACE),
            ),
            "form": ("`parse_qsl` of the request body", lambda: form_parse(body_text)),
        }
        joserfc = _joserfc_step(token, provider_key, verified.algorithm)
        if joserfc is not None:  # after the floor
            steps = dict([*list(steps.items())[:3], ("joserfc", joserfc), *list(steps.items())[3:]])
        wholes: dict[str, tuple[str, Callable[[], object]]] = {
            "wsgi": (dict(WHOLES)["wsgi"], lambda: checked(*fedbroker_wsgi())),
            "client": (dict(WHOLES)["client"], lambda: via_client(1)),
            "execute": (
                dict(WHOLES)["execute"],
                lambda: sts_api.execute(services, None, meta, ACTION, form),
            ),
            "hello wsgi": (dict(WHOLES)["hello wsgi"], hello_wsgi),
            "hello client": (
                dict(WHOLES)["hello client"],
                lambda: hello.post(
                    "/", data=exchange.body, headers=exchange.headers, base_url=base_url
                ),
            ),
        }
        in_situ = _in_situ(app, via_wsgi)
        wholes_timed = _time_steps(wholes)
        steps_timed = _time_steps(steps)
        recorder, sql_seconds, hints = _count_sql(store, view, via_wsgi)
        hot = _hot_functions(via_wsgi)
    finally:
        store.close()
    queries = [(c, s) for c, s in recorder.statements if not _is_control(s)]
    counts = collections.Counter((c, _describe(s)) for c, s in queries)
    samples = {_describe(s): " ".join(s.split()) for _, s in queries}
    sql = [
        SqlLine(caller, what, n / SQL_CALLS, samples[what]) for (caller, what), n in counts.items()
    ]
    profile = Profile(
        wholes=wholes_timed,
        in_situ=in_situ,
        steps=steps_timed,
        sql_calls=SQL_CALLS,
        sql_seconds=sql_seconds,
        sql=sql,
        queries_per_call=len(queries) / SQL_CALLS,
        control_per_call=(len(recorder.statements) - len(queries)) / SQL_CALLS,
        checkouts_per_call=recorder.checkouts / SQL_CALLS,
        begins_per_call=recorder.begins / SQL_CALLS,
        hints_per_call=hints / SQL_CALLS,
        hot=hot,
    )
    log(
        f"  sts profile: {profile.whole('wsgi'):,.0f} µs per exchange through WSGI "
        f"({profile.whole_cpu('wsgi'):,.0f} µs CPU; {profile.whole('client'):,.0f} µs through "
        "the test client), "
        f"{profile.queries_per_call:.2f} queries per exchange"
    )
    return profile


def _joserfc_step(
    token: str, provider_key: Any, alg: str
) -> tuple[str, Callable[[], object]] | None:
    """For comparison: the same signature check through joserfc (what ``OidcVerifier`` used
    before it called ``cryptography`` directly); ``None`` without joserfc."""
    try:
        from joserfc import jws
    except ImportError:
        return None
    return (
        "for comparison: joserfc `jws.deserialize_compact` (what the check used before)",
        lambda: jws.deserialize_compact(token, provider_key.key, algorithms=[alg]),
    )


def form_parse(body: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(body, keep_blank_values=True))


_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END"})


def _is_control(statement: str) -> bool:
    words = statement.split(None, 1)
    return bool(words) and words[0].upper() in _CONTROL


def _describe(statement: str) -> str:
    from bench.http_sql import describe

    return describe(statement)


# --- report -----------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def render(p: Profile) -> list[str]:
    whole = p.in_situ["whole"]
    out = [
        "",
        "### One exchange in-process: where the time goes",
        "",
        "The broker's own app (`create_app` on the benchmark server's data directory: the same "
        "SQLite database, provider, role and key ring) answers the replayed request in this "
        "process (no HTTP, no gunicorn). Whole requests, uninstrumented (median µs of "
        f"{ROUNDS} interleaved rounds, blocks of at least {MIN_BLOCK_NS / 1e6:.0f} ms; the "
        "prepared environ is werkzeug's for the same request, copied per call with a fresh "
        "body stream). *Wall*: elapsed time, which on a busy shared machine includes time "
        "the process waited for a core; *CPU*: the process's CPU time over the same blocks, "
        "comparable with the servers' CPU per request above:",
        "",
        "| whole request, in-process | wall µs | CPU µs |",
        "| --- | ---: | ---: |",
    ]
    out += [f"| {s.label} | {s.us:,.0f} | {s.cpu_us:,.0f} |" for s in p.wholes]
    out += [
        "",
        "*In situ*: the own time of each step (nested steps excluded) inside real exchanges "
        "through the WSGI app (prepared environ), the steps wrapped with a timer in this "
        f"process only (the wrappers add their own cost); median wall-clock µs per exchange "
        f"of {ROUNDS} rounds of {IN_SITU_CALLS} exchanges (the shares are what to read).",
        "",
        "| step, in situ | µs | share |",
        "| --- | ---: | ---: |",
        f"| **whole exchange** (WSGI → `QueryEndpoint` → `handle` → `sts.api.execute`) "
        f"| {whole:,.0f} | 100% |",
    ]
    for key, label in IN_SITU:
        us = p.in_situ.get(key, 0.0)
        out.append(f"| {label} | {us:,.0f} | {100 * us / whole:.0f}% |")
    out += [
        "",
        f"The directory (refresh, change hint, reads from the view, store reads) costs "
        f"{p.directory_us:,.0f} µs in situ ({100 * p.directory_us / whole:.0f}% of the "
        "exchange).",
        "",
        "Steps timed on their own with the arguments captured from a real exchange (median µs "
        f"of {ROUNDS} interleaved rounds, blocks of at least {MIN_BLOCK_NS / 1e6:.0f} ms):",
        "",
        "| step, alone | wall µs | CPU µs |",
        "| --- | ---: | ---: |",
    ]
    out += [f"| {s.label} | {s.us:,.1f} | {s.cpu_us:,.1f} |" for s in p.steps]
    out += [
        "",
        f"SQL per exchange ({p.sql_calls} exchanges through the WSGI app in "
        f"{p.sql_seconds:.2f} s; SQLAlchemy `before_cursor_execute`, `begin` and pool "
        "`checkout` events, each statement attributed to the store method that ran it):",
        "",
    ]
    if p.sql:
        out += ["| store method | statement | per exchange | SQL |", "| --- | --- | ---: | --- |"]
    else:
        out.append("No statement at all through SQLAlchemy.")
    for line in p.sql:
        sql = line.sample if len(line.sample) <= 90 else line.sample[:87] + "..."
        count = round(line.per_call * p.sql_calls)
        per_call = _n(line.per_call) if line.per_call >= 0.05 else f"{count} in {p.sql_calls}"
        out.append(f"| `{line.caller}` | {line.statement} | {per_call} | `{sql}` |")
    out += [
        "",
        f"In all **{_n(p.queries_per_call)} queries per exchange**, plus "
        f"{_n(p.control_per_call)} `BEGIN` statements, {_n(p.checkouts_per_call)} pool "
        f"checkouts and {_n(p.begins_per_call)} transactions. A fractional "
        "`directory_version` is the key ring's check (at most once per second per process) "
        "or the view's after a change. Outside SQLAlchemy, change hints per exchange: "
        f"{_n(p.hints_per_call)} (`PRAGMA data_version` on the store's own `sqlite3` "
        "connection).",
        "",
        f"cProfile over {PROFILE_CALLS} exchanges through the WSGI app "
        f"({p.hot.per_call_us:,.0f} µs per exchange under the profiler, which inflates "
        "Python calls more than C): own time by package, then the functions with the most "
        "time of their own.",
        "",
        "| package | own µs per exchange | share |",
        "| --- | ---: | ---: |",
    ]
    out += [
        f"| {name} | {us:,.0f} | {100 * share:.1f}% |"
        for name, us, share in p.hot.packages
        if share >= 0.005
    ]
    out += ["", "| function | own µs per exchange | share |", "| --- | ---: | ---: |"]
    out += [f"| `{name}` | {us:,.1f} | {100 * share:.1f}% |" for name, us, share in p.hot.functions]
    return out
