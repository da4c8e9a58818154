"""One ``AssumeRoleWithWebIdentity`` exchange taken apart in-process: where the time goes and
which SQL statements it costs.

The broker's own app (``create_app`` on the benchmark server's data directory, so the same
SQLite database, provider, role and key ring) answers the very request wrk replays, through
Flask's test client (no HTTP, no gunicorn) and through ``fedbroker.sts.api.execute`` (no
Flask). One real exchange is run with the operation's inner calls wrapped, in this process
only, to capture their arguments (the verified token, the trust context, the session claims,
the audit event, the result); each step is then timed on its own with those arguments, in
interleaved rounds:

- the ID token check (``OidcVerifier.verify`` with the provider given from memory), and the
  signature alone through joserfc and through raw ``cryptography`` (the floor);
- the two directory reads the operation makes (the OIDC provider, the role);
- the trust policy: ``parse_policy`` of the role's document, and its evaluation;
- minting and sealing the credentials (``issue_credentials`` with the key ring);
- the audit event (``JsonlAuditSink.emit``), the XML answer, parsing the form.

SQL statements are counted with SQLAlchemy's ``before_cursor_execute`` and ``begin`` events
and the pool's ``checkout`` event over a few hundred exchanges, each attributed to the store
method that ran it (the store's public methods are wrapped on the instance). Last, cProfile
over the same exchanges lists the functions with the most time of their own.
"""

from __future__ import annotations

import base64
import collections
import cProfile
import dataclasses
import enum
import functools
import inspect
import json
import math
import pstats
import statistics
import threading
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
PROTOTYPE_CALLS = 40
SQL_CALLS = 300
PROFILE_CALLS = 300
TOP_FUNCTIONS = 15


@dataclass(frozen=True)
class StepTime:
    key: str
    label: str
    us: float


@dataclass
class SqlLine:
    caller: str  # the store method that ran it
    statement: str  # verb and tables
    per_call: float
    sample: str


@dataclass
class Profile:
    in_situ: dict[str, float]  # IN_SITU key (and "whole") -> median µs per exchange
    prototypes: dict[str, float] | None  # PROTOTYPES key -> median µs per execute
    steps: list[StepTime]
    sql_calls: int
    sql_seconds: float
    sql: list[SqlLine]
    queries_per_call: float
    control_per_call: float  # BEGIN sent as SQL (SQLite)
    checkouts_per_call: float
    begins_per_call: float
    hot: Hot
    notes: list[str] = field(default_factory=list)

    def us(self, key: str) -> float:
        return next(s.us for s in self.steps if s.key == key)

    @property
    def saved_us(self) -> float:
        """What the prototyped fixes together take off one exchange (0 when not measured)."""
        if not self.prototypes:
            return 0.0
        return self.prototypes["today"] - min(self.prototypes.values())

    @property
    def database_us(self) -> float:
        return sum(self.in_situ.get(k, 0.0) for k in ("read provider", "read role", "version"))


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
    keys = list(steps)
    for index in range(ROUNDS):
        for key in keys[index % len(keys) :] + keys[: index % len(keys)]:
            run, n = steps[key][1], reps[key]
            start = time.perf_counter_ns()
            for _ in range(n):
                run()
            samples[key].append((time.perf_counter_ns() - start) / n / 1000)
    return [StepTime(key, steps[key][0], statistics.median(samples[key])) for key in steps]


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


def _count_sql(store: Any, exchange: Callable[[int], None]) -> tuple[_SqlRecorder, float]:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    recorder = _SqlRecorder()
    listeners = (
        (Engine, "before_cursor_execute", recorder.on_statement),
        (Engine, "begin", recorder.on_begin),
        (Pool, "checkout", recorder.on_checkout),
    )
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        with _store_wrapped(store, recorder):
            started = time.perf_counter()
            exchange(SQL_CALLS)
            seconds = time.perf_counter() - started
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)
    return recorder, seconds


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
        return "bench (the test client loop)"
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
    from fedbroker.directory.model import Kind
    from fedbroker.sts import api as sts_api
    from fedbroker.sts import web_identity

    def entity_key(*args: Any) -> str:
        return "read provider" if Kind.OIDC_PROVIDER in args else "read role"

    services = app.extensions["fedbroker.services"]
    store = services.store
    patches: list[tuple[Any, str, str | Callable[..., str]]] = [
        (app.view_functions, "query.query", "query"),
        (sts_api, "execute", "execute"),
        (sts_api, "_audit", "audit"),
        (web_identity, trust_function(), "trust"),
        (web_identity, "issue_credentials", "issue"),
        (services.web_identity, "verify", "verify"),
        (store, "get_entity", entity_key),
        (store, "directory_version", "version"),
    ]
    originals = [(owner, name, _get(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, key in patches:
            _set(owner, name, recorder.wrap(key, _get(owner, name)))
        yield
    finally:
        for owner, name, original in originals:
            if isinstance(owner, dict) or inspect.ismodule(owner):
                _set(owner, name, original)
            else:
                delattr(owner, name)  # the class's method again


def _get(owner: Any, name: str) -> Any:
    return owner[name] if isinstance(owner, dict) else getattr(owner, name)


def _set(owner: Any, name: str, value: Any) -> None:
    if isinstance(owner, dict):
        owner[name] = value
    else:
        setattr(owner, name, value)


#: In-situ rows: key, label. ``outside`` is the whole exchange less everything below it.
IN_SITU = (
    ("verify", "verify the ID token (`OidcVerifier.verify`, less the provider read)"),
    ("read provider", "read the OIDC provider (`store.get_entity` in `web_identity._lookup`)"),
    ("read role", "read the role (`store.get_entity` in `sts.operations.find_role`)"),
    ("trust", "trust policy check (`authorize_federated`: compiled policy, evaluation)"),
    ("issue", "mint and seal the credentials (`issue_credentials`)"),
    ("audit", "audit event (`sts.api._audit`: record + `JsonlAuditSink.emit`)"),
    ("version", "key ring: directory version check (`store.directory_version`)"),
    ("execute", "the rest of `sts.api.execute` and the operation (parameters, context, claims)"),
    ("query", "`web.query.query` outside `execute`: body, form, request id, XML, `Response`"),
    ("outside", "Flask and its test client (routing, WSGI environ, request and response objects)"),
)


def _in_situ(app: Any, via_flask: Callable[[int], None]) -> dict[str, float]:
    """Median µs per exchange of each row of :data:`IN_SITU` and of the whole, over rounds."""
    samples: dict[str, list[float]] = collections.defaultdict(list)
    recorder = _InSitu()
    with _instrumented(app, recorder):
        via_flask(5)
        for _ in range(ROUNDS):
            recorder.ns.clear()
            start = time.perf_counter_ns()
            via_flask(IN_SITU_CALLS)
            whole = time.perf_counter_ns() - start
            inside = sum(recorder.ns.values())
            samples["whole"].append(whole / IN_SITU_CALLS / 1000)
            samples["outside"].append((whole - inside) / IN_SITU_CALLS / 1000)
            for key, _ in IN_SITU:
                if key != "outside":
                    samples[key].append(recorder.ns[key] / IN_SITU_CALLS / 1000)
    return {key: statistics.median(values) for key, values in samples.items()}


# --- prototypes of the fixes (this process only) ---------------------------------------------


class KeptOpenAuditSink:
    """``JsonlAuditSink`` with the log opened once: one write and one flush per event."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def emit(self, event: Any) -> None:
        line = json.dumps(event.to_record(), separators=(",", ":"), default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


#: Cumulative variants of ``sts.api.execute``: key, label.
PROTOTYPES = (
    ("today", "`sts.api.execute` as it is"),
    (
        "view",
        "+ the provider and the role read through `DirectoryView` (refreshed with the "
        "request's time, as the check on use does)",
    ),
    ("parse", "+ the trust policy's `parse_policy` memoised on its text"),
    ("audit", "+ the audit log kept open (one write and flush per event)"),
)


def _prototypes(
    services: Any, form: dict[str, str], meta: Any, audit_path: Path
) -> dict[str, float] | None:
    """Median µs per ``execute`` of each :data:`PROTOTYPES` variant, interleaved rounds;
    ``None`` when this fedbroker has no ``DirectoryView``."""
    try:
        from fedbroker.directory.view import DirectoryView
    except ImportError:
        return None
    from fedbroker.sts import api as sts_api
    from fedbroker.sts import web_identity

    view = DirectoryView(services.store)
    with_view = dataclasses.replace(services, store=view)
    sink = KeptOpenAuditSink(audit_path)
    with_sink = dataclasses.replace(with_view, audit=sink)
    # Older code parsed the trust policy on every exchange (``web_identity.parse_policy``);
    # newer code compiles it once per text, and this variant has nothing to change.
    original_parse = getattr(web_identity, "parse_policy", None)
    memoised = functools.lru_cache(maxsize=256)(original_parse) if original_parse else None
    plan: dict[str, tuple[Any, bool]] = {
        "today": (services, False),
        "view": (with_view, False),
        "parse": (with_view, True),
        "audit": (with_sink, True),
    }
    if memoised is None:
        del plan["parse"]
    samples: dict[str, list[float]] = {key: [] for key in plan}
    keys = list(plan)
    try:
        for index in range(ROUNDS + 1):
            for key in keys[index % len(keys) :] + keys[: index % len(keys)]:
                chosen, memo = plan[key]
                if memoised is not None:
                    setattr(web_identity, "parse_policy", memoised if memo else original_parse)  # noqa: B010
                start = time.perf_counter_ns()
                for _ in range(PROTOTYPE_CALLS):
                    view.refresh(services.clock.now())
                    sts_api.execute(chosen, None, meta, ACTION, form)
                if index:  # the first round warms every variant up
                    elapsed = time.perf_counter_ns() - start
                    samples[key].append(elapsed / PROTOTYPE_CALLS / 1000)
    finally:
        if original_parse is not None:
            setattr(web_identity, "parse_policy", original_parse)  # noqa: B010
        sink.close()
    return {key: statistics.median(values) for key, values in samples.items()}


# --- the measurement --------------------------------------------------------------------------


def measure(
    data_dir: Path, exchange: SignedRequest, token: str, public_key: rsa.RSAPublicKey, log: Log
) -> Profile:
    from joserfc import jws

    from bench.flask_hello import app as hello_app
    from fedbroker.config import Settings
    from fedbroker.credentials.session_token import issue_credentials
    from fedbroker.directory.model import Kind
    from fedbroker.iam.api import RequestMeta
    from fedbroker.policy import PolicyKind, PolicySet, make_request, parse_policy
    from fedbroker.sts import api as sts_api
    from fedbroker.sts import web_identity
    from fedbroker.web import xml
    from fedbroker.web.app import create_app

    hello = hello_app.test_client()
    app = create_app(Settings(data_dir=data_dir))
    services = app.extensions["fedbroker.services"]
    store = services.store
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

    def via_flask(count: int) -> None:
        for _ in range(count):
            answer = client.post(
                "/", data=exchange.body, headers=exchange.headers, base_url=base_url
            )
            text = answer.get_data(as_text=True)
            if answer.status_code != 200 or "<AccessKeyId>ASIA" not in text:
                raise HttpBenchError(f"sts profile: HTTP {answer.status_code}: {text[:300]}")

    try:
        via_flask(3)  # fetches the JWKS, loads the key ring
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
        key = verifier.jwks.keys(provider_ref.url, now).by_kid(verified.kid).key
        registry = getattr(verifier, "_registry", None)
        signing_input, _, signature = token.rpartition(".")
        sig = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))

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
            "joserfc": (
                "of which the signature: joserfc `jws.deserialize_compact`",
                lambda: jws.deserialize_compact(
                    token, key, algorithms=[verified.algorithm], registry=registry
                ),
            ),
            "floor": (
                "the floor: raw `cryptography` RS256 verify of the same token",
                lambda: public_key.verify(
                    sig, signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
                ),
            ),
            "read role": (
                "`store.get_entity` of the role (one SQLite read)",
                lambda: store.get_entity(role.account_id, Kind.ROLE, role.name),
            ),
            "version": (
                "`store.directory_version()` (one SQLite read)",
                store.directory_version,
            ),
            "trust check": (
                "the trust check as the operation calls it (`authorize_federated`)",
                lambda: trust_check(*got.authorize),
            ),
            "trust parse": (
                "`parse_policy` of the trust policy (what a check without a compiled copy adds)",
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
                "`JsonlAuditSink.emit`: JSON record, open + append + close of the log",
                lambda: services.audit.emit(got.event),
            ),
            "xml": (
                "`web.xml.response` of the result",
                lambda: xml.response(ACTION, got.result, "bench", sts_api.NAMESPACE),
            ),
            "form": ("`parse_qsl` of the request body", lambda: form_parse(body_text)),
            "hello": (
                "for comparison: the same POST to `bench/flask_hello.py` through its test client",
                lambda: hello.post(
                    "/", data=exchange.body, headers=exchange.headers, base_url=base_url
                ),
            ),
        }
        in_situ = _in_situ(app, via_flask)
        prototypes = _prototypes(services, form, meta, data_dir / "bench-prototype-audit.jsonl")
        steps_timed = _time_steps(steps)
        recorder, sql_seconds = _count_sql(store, via_flask)
        hot = _hot_functions(via_flask)
    finally:
        store.close()
    queries = [(c, s) for c, s in recorder.statements if not _is_control(s)]
    counts = collections.Counter((c, _describe(s)) for c, s in queries)
    samples = {_describe(s): " ".join(s.split()) for _, s in queries}
    sql = [
        SqlLine(caller, what, n / SQL_CALLS, samples[what]) for (caller, what), n in counts.items()
    ]
    profile = Profile(
        in_situ=in_situ,
        prototypes=prototypes,
        steps=steps_timed,
        sql_calls=SQL_CALLS,
        sql_seconds=sql_seconds,
        sql=sql,
        queries_per_call=len(queries) / SQL_CALLS,
        control_per_call=(len(recorder.statements) - len(queries)) / SQL_CALLS,
        checkouts_per_call=recorder.checkouts / SQL_CALLS,
        begins_per_call=recorder.begins / SQL_CALLS,
        hot=hot,
    )
    log(
        f"  sts profile: {in_situ['whole']:,.0f} µs per exchange in-process, "
        f"{profile.queries_per_call:.2f} queries per exchange"
    )
    return profile


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
        "SQLite database, provider, role and key ring) answers the replayed request through "
        "Flask's test client (no HTTP, no gunicorn). *In situ*: the own time of each step "
        "(nested steps excluded) inside real exchanges, the steps wrapped with a timer in this "
        f"process only; median µs per exchange of {ROUNDS} rounds of {IN_SITU_CALLS} "
        "exchanges.",
        "",
        "| step, in situ | µs | share |",
        "| --- | ---: | ---: |",
        f"| **whole exchange** (test client → `query` → `sts.api.execute`) | {whole:,.0f} | 100% |",
    ]
    for key, label in IN_SITU:
        us = p.in_situ.get(key, 0.0)
        out.append(f"| {label} | {us:,.0f} | {100 * us / whole:.0f}% |")
    out += [
        "",
        f"The directory reads alone are {p.database_us:,.0f} µs "
        f"({100 * p.database_us / whole:.0f}% of the exchange).",
        "",
        "Steps timed on their own with the arguments captured from a real exchange (median µs "
        f"of {ROUNDS} interleaved rounds, blocks of at least {MIN_BLOCK_NS / 1e6:.0f} ms):",
        "",
        "| step, alone | µs |",
        "| --- | ---: |",
    ]
    out += [f"| {s.label} | {s.us:,.1f} |" for s in p.steps]
    if p.prototypes is not None:
        today = p.prototypes["today"]
        out += [
            "",
            "Prototypes of the fixes suggested below, measured in this process only (`src/` "
            "untouched; the variants are cumulative; median µs per `sts.api.execute` of "
            f"{ROUNDS} interleaved rounds of {PROTOTYPE_CALLS} exchanges):",
            "",
            "| variant | µs per exchange | saved |",
            "| --- | ---: | ---: |",
        ]
        for key, label in PROTOTYPES:
            if key not in p.prototypes:
                continue
            us = p.prototypes[key]
            saved = (
                "—" if key == "today" else f"{today - us:,.0f} µs ({100 * (1 - us / today):.0f}%)"
            )
            out.append(f"| {label} | {us:,.0f} | {saved} |")
    out += [
        "",
        f"SQL per exchange ({p.sql_calls} exchanges through the test client in "
        f"{p.sql_seconds:.2f} s; SQLAlchemy `before_cursor_execute`, `begin` and pool "
        "`checkout` events, each statement attributed to the store method that ran it):",
        "",
        "| store method | statement | per exchange | SQL |",
        "| --- | --- | ---: | --- |",
    ]
    for line in p.sql:
        sql = line.sample if len(line.sample) <= 90 else line.sample[:87] + "..."
        count = round(line.per_call * p.sql_calls)
        per_call = _n(line.per_call) if line.per_call >= 0.05 else f"{count} in {p.sql_calls}"
        out.append(f"| `{line.caller}` | {line.statement} | {per_call} | `{sql}` |")
    out += [
        "",
        f"In all **{_n(p.queries_per_call)} queries per exchange**, plus "
        f"{_n(p.control_per_call)} `BEGIN` statements, {_n(p.checkouts_per_call)} pool "
        f"checkouts and {_n(p.begins_per_call)} transactions (each read: checkout, `BEGIN`, "
        "query, the pool's `ROLLBACK`). A fractional `directory_version` is the key ring's "
        "check, at most once per second per process.",
        "",
        f"cProfile over {PROFILE_CALLS} exchanges through the test client "
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
