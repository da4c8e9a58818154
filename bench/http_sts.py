"""STS exchanges over HTTP: ``AssumeRoleWithWebIdentity`` per second, side by side.

Issue 4's performance requirement: web-identity exchanges per second over HTTP on 2 cores
(JWKS cached, RS256 ID token), measured in the same run as moto's server doing the same boto3
call and a bare Flask endpoint under gunicorn with 2 sync workers; the target is at least half
the bare endpoint's rate, with p99 under 20 ms.

Three servers run side by side on 127.0.0.1 for the whole section:

- **fedbroker**: ``fedbroker serve`` with its defaults (gunicorn, 2 sync workers, SQLite in a
  temporary data directory), an OIDC provider registered for a JWKS server this process runs
  (:class:`Issuer`, ``http://127.0.0.1:<port>``), and a role trusting it (``StringEquals`` on
  ``<provider>:aud``, ``StringLike`` on ``<provider>:sub``);
- **moto**: ``python -m moto.server`` (werkzeug, threaded, one process), the same role
  (moto does not verify the token at all);
- **Flask**: ``bench/flask_hello.py`` under gunicorn with 2 sync workers, the reference
  ceiling (no application work).

One RS256 ID token is minted here, and boto3 (unsigned, as botocore sends this call) exchanges
it once against fedbroker and moto while a ``before-send`` hook keeps the exact request.
Before anything is timed both answers must hold ``Credentials``, the credentials must work
(``GetCallerIdentity`` names the assumed role), and a byte-for-byte replay must answer HTTP 200
with credentials. wrk (``-t1 -c8 --latency``) then replays that request, the same form POST
to Flask, in interleaved rounds whose order rotates; any non-2xx answer, socket error or
sampled body without credentials stops the benchmark. Last, one exchange is profiled
in-process (``bench/sts_profile.py``). See ``bench/README.md``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import importlib
import json
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bench import sts_profile
from bench.http_iam import WRK_SAMPLE_EVERY, WrkRun, wrk_executable, wrk_script, wrk_version
from bench.http_servers import (
    REGION,
    HttpBenchError,
    Log,
    Server,
    SignedRequest,
    _environment,
    _wait_until_up,
    free_port,
    iam_client,
    replay,
    start_fedbroker,
    start_moto,
)

ACTION = "AssumeRoleWithWebIdentity"
AUDIENCE = "sts.amazonaws.com"
SUBJECT = "repo:octo/app:ref:refs/heads/main"
SUBJECT_PATTERN = "repo:octo/app:*"
ROLE_NAME = "bench-web-identity"
SESSION_NAME = "bench-session"
TOKEN_LIFETIME_S = 6 * 3600  # outlives any run
JWKS_MAX_AGE_S = 3600
FLASK_LABEL = "Flask hello (2 sync workers)"
FEDBROKER_LABEL = "fedbroker (SQLite, 2 sync workers)"
MOTO_LABEL = "moto (one process)"
WRK_THREADS = 1
WRK_CONNECTIONS = 8
TARGET_FLASK_SHARE = 0.5
TARGET_P99_MS = 20.0
#: What a sampled body must hold: credentials from the exchanges, ``hello`` from Flask.
CREDENTIALS_MARKS = ("<AssumeRoleWithWebIdentityResponse", "<AccessKeyId>ASIA", "<SessionToken>")
FLASK_MARKS = ("hello",)


# --- the OIDC provider: an RS256 key, its JWKS over HTTP, one ID token ------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64json(value: object) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


class Issuer:
    """A provider this process controls: discovery and a one-key JWKS on 127.0.0.1 (served
    from a thread, ``Cache-Control: max-age`` one hour), and RS256 ID tokens signed with
    ``cryptography``. ``hits`` counts requests per path (the broker's key fetches)."""

    def __init__(self) -> None:
        self.kid = "bench-rs256"
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.hits: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def name(self) -> str:
        """IAM's name for the provider: its URL without the scheme."""
        return self.url.split("://", 1)[1]

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": _b64(n),
                "e": _b64(e)}  # fmt: skip

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                issuer.hits[self.path] += 1
                if self.path == "/.well-known/openid-configuration":
                    document: dict[str, Any] = {
                        "issuer": issuer.url,
                        "jwks_uri": issuer.url + "/jwks",
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                elif self.path == "/jwks":
                    document = {"keys": [issuer.jwk()]}
                else:
                    self.send_error(404)
                    return
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", f"public, max-age={JWKS_MAX_AGE_S}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def token(self, now: float | None = None) -> str:
        """An ID token shaped like GitHub Actions' (the claims a CI workload carries)."""
        issued = int(now if now is not None else time.time())
        claims = {
            "iss": self.url,
            "sub": SUBJECT,
            "aud": AUDIENCE,
            "iat": issued,
            "nbf": issued - 5,
            "exp": issued + TOKEN_LIFETIME_S,
            "jti": secrets.token_hex(16),
            "ref": "refs/heads/main",
            "sha": secrets.token_hex(20),
            "repository": "octo/app",
            "repository_owner": "octo",
            "actor": "octocat",
            "workflow": "deploy",
            "event_name": "push",
            "run_id": "6421913570",
            "job_workflow_ref": "octo/app/.github/workflows/deploy.yml@refs/heads/main",
        }
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{_b64json(header)}.{_b64json(claims)}"
        signature = self.private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"


@contextlib.contextmanager
def running_issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    issuer.start()
    try:
        yield issuer
    finally:
        issuer.stop()


# --- servers and the exchange -----------------------------------------------------------------


def start_flask(work: Path) -> Server:
    """``bench/flask_hello.py`` under gunicorn, 2 sync workers (as ``fedbroker serve`` runs)."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = work / "flask.log"
    repo = Path(__file__).resolve().parent.parent
    command = [
        sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
        "--timeout", "60", "--no-control-socket", "--bind", f"127.0.0.1:{port}",
        "bench.flask_hello:app",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=_environment(work), cwd=repo
        )
    url = f"http://127.0.0.1:{port}"
    _wait_until_up(url, process, log_path)
    return Server(FLASK_LABEL, url, "", "", process, log_path)


def trust_policy(provider_arn: str, provider_name: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{provider_name}:aud": AUDIENCE},
                        "StringLike": {f"{provider_name}:sub": SUBJECT_PATTERN},
                    },
                }
            ],
        }
    )


def setup_role(server: Server, issuer: Issuer) -> str:
    """The provider (fedbroker only: moto trusts any token) and the role; the role's ARN."""
    iam = iam_client(server.url, server.key_id, server.secret)
    if server.is_fedbroker:
        provider_arn = str(
            iam.create_open_id_connect_provider(Url=issuer.url, ClientIDList=[AUDIENCE])[
                "OpenIDConnectProviderArn"
            ]
        )
    else:
        provider_arn = f"arn:aws:iam::123456789012:oidc-provider/{issuer.name}"
    role = iam.create_role(
        RoleName=ROLE_NAME, AssumeRolePolicyDocument=trust_policy(provider_arn, issuer.name)
    )
    return str(role["Role"]["Arn"])


def _sts_client(url: str, credentials: dict[str, Any] | None = None) -> Any:
    boto3: Any = importlib.import_module("boto3")
    botocore: Any = importlib.import_module("botocore")
    config: Any = importlib.import_module("botocore.config")
    if credentials is None:
        return boto3.client(
            "sts",
            endpoint_url=url,
            region_name=REGION,
            config=config.Config(retries={"max_attempts": 1}, signature_version=botocore.UNSIGNED),
        )
    return boto3.client(
        "sts",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=config.Config(retries={"max_attempts": 1}),
    )


def exchange_with_boto3(server: Server, role_arn: str, token: str) -> SignedRequest:
    """boto3's ``assume_role_with_web_identity`` (unsigned), the request it sent kept; the
    answer must hold credentials that work (``GetCallerIdentity`` names the session)."""
    sts = _sts_client(server.url)
    captured: list[SignedRequest] = []

    def capture(request: Any, **_: Any) -> None:
        body = request.body
        captured.append(
            SignedRequest(
                request.url,
                {
                    k: v.decode() if isinstance(v, bytes) else str(v)
                    for k, v in request.headers.items()
                    if k.lower() != "content-length"
                },
                body.encode() if isinstance(body, str) else bytes(body or b""),
            )
        )

    sts.meta.events.register(f"before-send.sts.{ACTION}", capture)
    answer = sts.assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName=SESSION_NAME, WebIdentityToken=token
    )
    creds = answer.get("Credentials") or {}
    if not str(creds.get("AccessKeyId", "")).startswith("ASIA") or len(captured) != 1:
        raise HttpBenchError(f"{server.label}: boto3 {ACTION} answered {answer!r}")
    if server.is_fedbroker and answer.get("SubjectFromWebIdentityToken") != SUBJECT:
        raise HttpBenchError(f"{server.label}: wrong subject in {answer!r}")
    me = _sts_client(server.url, creds).get_caller_identity()
    if not str(me["Arn"]).endswith(f":assumed-role/{ROLE_NAME}/{SESSION_NAME}"):
        raise HttpBenchError(f"{server.label}: the credentials are {me['Arn']}, not the role's")
    return captured[0]


def check_answer(label: str, status: int, body: bytes, marks: Sequence[str]) -> None:
    text = body.decode("utf-8", errors="replace")
    if status != 200 or not all(mark in text for mark in marks):
        raise HttpBenchError(f"{label}: answered HTTP {status}: {text[:500]}")


# --- wrk --------------------------------------------------------------------------------------


def run_wrk(
    label: str, request: SignedRequest, marks: Sequence[str], seconds: float, script: Path
) -> WrkRun:
    """One ``wrk -t1 -c8 --latency`` run; raises :class:`HttpBenchError` on any non-2xx answer,
    non-200 status, socket error or sampled body without ``marks``."""
    script.write_text(wrk_script(request, marks), encoding="utf-8")
    command = [
        wrk_executable(), f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}",
        f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s", "-s", str(script),
        request.url,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    found = re.search(r"^BENCHJSON (\{.*\})$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or found is None:
        raise HttpBenchError(f"{label}: wrk failed:\n{out.stdout}\n{out.stderr}")
    data: dict[str, int] = json.loads(found.group(1))
    problems = []
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out.stdout)
    if non_2xx is not None and int(non_2xx.group(1)):
        problems.append(f"{non_2xx.group(1)} non-2xx/3xx responses")
    if data["seen"] != data["ok"]:
        problems.append(f"{data['seen'] - data['ok']} of {data['seen']} responses not HTTP 200")
    errors = {k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    if errors:
        problems.append(f"socket errors {errors}")
    if data["bad"] or not data["sampled"]:
        problems.append(f"{data['bad']} of {data['sampled']} sampled bodies without {marks}")
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


# --- the measurement --------------------------------------------------------------------------


@dataclass
class Target:
    """One server under load: what wrk sends and what a sampled answer must hold."""

    server: Server
    request: SignedRequest
    marks: tuple[str, ...]
    runs: list[WrkRun] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.server.label

    def rate(self) -> float:
        return statistics.median(r.per_second for r in self.runs)

    def latency_ms(self, which: str) -> float:
        return float(statistics.median(getattr(r, which) for r in self.runs))

    def cpu_ms(self) -> float:
        return statistics.median(r.server_cpu_ms_per_request for r in self.runs)


@dataclass
class StsResult:
    rounds: int
    seconds: float
    targets: list[Target]
    token_length: int
    request_bytes: int
    jwks_fetches: int
    profile: sts_profile.Profile | None
    wrk_version: str
    setup_seconds: float
    total_seconds: float

    def target(self, label: str) -> Target:
        return next(t for t in self.targets if t.label == label)

    def ratio(self, label: str, reference: str) -> float:
        return self.target(label).rate() / self.target(reference).rate()

    def round_ratios(self, label: str, reference: str) -> list[float]:
        mine, theirs = self.target(label).runs, self.target(reference).runs
        return [a.per_second / b.per_second for a, b in zip(mine, theirs, strict=True)]

    def flask_share_met(self) -> bool:
        return self.ratio(FEDBROKER_LABEL, FLASK_LABEL) >= TARGET_FLASK_SHARE

    def p99_met(self) -> bool:
        return self.target(FEDBROKER_LABEL).latency_ms("p99_ms") < TARGET_P99_MS


def _timed_rounds(
    targets: Sequence[Target], rounds: int, seconds: float, work: Path, log: Log
) -> None:
    for index in range(rounds):
        order = [targets[(index + k) % len(targets)] for k in range(len(targets))]
        for target in order:
            cpu = target.server.cpu_seconds()
            run = run_wrk(target.label, target.request, target.marks, seconds, work / "sts.lua")
            cpu = target.server.cpu_seconds() - cpu
            target.runs.append(dataclasses.replace(run, server_cpu_seconds=cpu))
        summary = ", ".join(f"{t.label} {t.runs[-1].per_second:,.0f}" for t in targets)
        log(f"  sts round {index + 1}/{rounds}, requests/s: {summary}")


def _stop_all(servers: Sequence[Server]) -> None:
    for server in reversed(servers):
        server.stop()


def measure(
    work_root: Path, rounds: int, seconds: float, log: Log, *, profile: bool = True
) -> StsResult:
    """Start the JWKS server and the three servers, check, time, profile, stop everything."""
    started = time.monotonic()
    work = work_root / f"sts-{secrets.token_hex(4)}"
    work.mkdir(parents=True)
    servers: list[Server] = []
    result_profile = None
    with contextlib.ExitStack() as stack:
        issuer = stack.enter_context(running_issuer())
        stack.callback(_stop_all, servers)
        fedbroker = start_fedbroker(work / "fedbroker", FEDBROKER_LABEL, None)
        servers.append(fedbroker)
        moto = start_moto(work / "moto")
        moto.label = MOTO_LABEL
        servers.append(moto)
        flask = start_flask(work / "flask")
        servers.append(flask)
        log(f"  sts: JWKS at {issuer.url}; " + ", ".join(f"{s.label} at {s.url}" for s in servers))
        token = issuer.token()
        targets: list[Target] = []
        for server in (fedbroker, moto):
            role_arn = setup_role(server, issuer)
            request = exchange_with_boto3(server, role_arn, token)
            check_answer(server.label, *replay(request), CREDENTIALS_MARKS)
            targets.append(Target(server, request, CREDENTIALS_MARKS))
        exchange = targets[0].request
        flask_request = SignedRequest(flask.url + "/", exchange.headers, exchange.body)
        check_answer(flask.label, *replay(flask_request), FLASK_MARKS)
        targets.append(Target(flask, flask_request, FLASK_MARKS))
        for target in targets:  # warm-up, untimed: every worker loads its keys and caches
            run_wrk(target.label, target.request, target.marks, 1, work / "sts.lua")
        setup_seconds = time.monotonic() - started
        _timed_rounds(targets, rounds, seconds, work, log)
        jwks_fetches = issuer.hits["/jwks"]
        if profile:
            log("  sts: profiling one exchange in-process")
            assert fedbroker.data_dir is not None
            result_profile = sts_profile.measure(
                fedbroker.data_dir, exchange, token, issuer.private.public_key(), log
            )
    shutil.rmtree(work, ignore_errors=True)
    return StsResult(
        rounds=rounds,
        seconds=seconds,
        targets=targets,
        token_length=len(token),
        request_bytes=len(exchange.body),
        jwks_fetches=jwks_fetches,
        profile=result_profile,
        wrk_version=wrk_version(),
        setup_seconds=setup_seconds,
        total_seconds=time.monotonic() - started,
    )


# --- report -----------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def _projection(result: StsResult, profile: sts_profile.Profile) -> list[str]:
    """Do the in-process figures account for the HTTP ones, and how much work per exchange
    does the target leave? The server's CPU per request is taken as gunicorn's share (the bare
    endpoint's CPU less its WSGI app in-process) plus the WSGI app's in-process time, and the
    rate as inversely proportional to it (both servers share the same 2 cores with wrk)."""
    fb, flask = result.target(FEDBROKER_LABEL), result.target(FLASK_LABEL)
    fb_us, hello_us = profile.whole_cpu("wsgi"), profile.whole_cpu("hello wsgi")
    server_ms = flask.cpu_ms() - hello_us / 1000  # gunicorn, sockets, kernel: per request
    expected_ms = server_ms + fb_us / 1000
    budget_us = (flask.cpu_ms() / TARGET_FLASK_SHARE - server_ms) * 1000
    agrees = 0.75 <= expected_ms / fb.cpu_ms() <= 1.33
    return [
        "",
        "### What the profile says about the HTTP figures",
        "",
        f"- The bare endpoint's server spends {flask.cpu_ms():.2f} ms of CPU per request over "
        f"HTTP, of which its WSGI app takes {hello_us / 1000:.2f} ms of CPU in-process: about "
        f"{server_ms:.2f} ms per request is gunicorn's (parsing, sockets, the kernel), the "
        "same for both servers. fedbroker's WSGI app takes "
        f"{fb_us / 1000:.2f} ms of CPU per exchange in-process, so its server should spend about "
        f"{expected_ms:.2f} ms; it spent {fb.cpu_ms():.2f} ms"
        + (
            ": the in-process figures account for the HTTP ones."
            if agrees
            else " (they differ by more than a third: CPU time per request swells when the "
            "machine is busy, so compare the proportions, not the absolutes)."
        ),
        f"- {TARGET_FLASK_SHARE:.0%} of the bare endpoint's rate needs about "
        f"{flask.cpu_ms() / TARGET_FLASK_SHARE:.2f} ms of server CPU per exchange or less, "
        f"i.e. at most about {budget_us:,.0f} µs of CPU in the WSGI app in this run's conditions "
        f"(it takes {fb_us:,.0f} µs: "
        + ("within the budget)." if fb_us <= budget_us else f"{fb_us - budget_us:,.0f} µs over).")
        + " Estimate from the in-process figures alone: "
        f"{flask.cpu_ms() / expected_ms:.2f} of the bare endpoint's rate (measured: "
        f"{result.ratio(FEDBROKER_LABEL, FLASK_LABEL):.2f}).",
    ]


def render(result: StsResult) -> list[str]:
    fb, moto, flask = (result.target(x) for x in (FEDBROKER_LABEL, MOTO_LABEL, FLASK_LABEL))
    runs = [r for t in result.targets for r in t.runs]
    out = [
        "",
        "## STS exchanges over HTTP: `AssumeRoleWithWebIdentity` per second",
        "",
        "Servers and load on the same machine, 127.0.0.1. fedbroker: `fedbroker serve` with "
        "its defaults (gunicorn, 2 sync workers, SQLite), an OIDC provider registered for a "
        "JWKS server of the benchmark (`http://127.0.0.1:<port>`, one RSA-2048 key, "
        f"`max-age={JWKS_MAX_AGE_S}`) and a role trusting it (`StringEquals` on "
        "`<provider>:aud`, `StringLike` on `<provider>:sub`); moto: `python -m moto.server` "
        "(werkzeug, threaded, one process; it does not verify the token); Flask: "
        "`bench/flask_hello.py` under gunicorn with 2 sync workers, answering `hello` to the "
        f"same POST (the ceiling). *wrk*: {result.wrk_version} `-t{WRK_THREADS} "
        f"-c{WRK_CONNECTIONS} --latency` replaying the unsigned form POST boto3 sent "
        f"(`{result.request_bytes:,}` bytes; the same RS256 ID token of "
        f"{result.token_length:,} characters every time). {result.rounds} interleaved rounds "
        f"of {result.seconds:g} s per server (order rotating); medians of rounds, ratios "
        "between medians; latency percentiles from wrk (medians of the runs' percentiles).",
        "",
        "| server | requests/s | / Flask | / moto | p50 ms | p90 ms | p99 ms "
        "| server CPU ms per request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in result.targets:
        out.append(
            f"| {t.label} | {t.rate():,.0f} | {t.rate() / flask.rate():.2f}x "
            f"| {t.rate() / moto.rate():.2f}x | {t.latency_ms('p50_ms'):.1f} "
            f"| {t.latency_ms('p90_ms'):.1f} | {t.latency_ms('p99_ms'):.1f} | {t.cpu_ms():.2f} |"
        )
    share = result.ratio(FEDBROKER_LABEL, FLASK_LABEL)
    per_round = result.round_ratios(FEDBROKER_LABEL, FLASK_LABEL)
    p99 = fb.latency_ms("p99_ms")
    out += [
        "",
        "Targets (issue 4):",
        "",
        f"- fedbroker / Flask = {share:.2f} >= {TARGET_FLASK_SHARE:.2f}: "
        f"{_verdict(result.flask_share_met())} (per round {min(per_round):.2f}-"
        f"{max(per_round):.2f}, median {statistics.median(per_round):.2f}); fedbroker / moto = "
        f"{result.ratio(FEDBROKER_LABEL, MOTO_LABEL):.1f}x.",
        f"- fedbroker p99 {p99:.1f} ms < {TARGET_P99_MS:.0f} ms: {_verdict(result.p99_met())}.",
        "",
        "Checks: before timing, boto3's `assume_role_with_web_identity` (unsigned) answered "
        "with `ASIA` credentials on fedbroker and moto, those credentials' `GetCallerIdentity` "
        "named the assumed role, and a byte-for-byte replay answered HTTP 200 with "
        f"credentials (Flask: `hello`). Timed wrk runs: {sum(r.requests for r in runs):,} "
        f"responses, all HTTP 200, no non-2xx, no socket errors, "
        f"{sum(r.sampled for r in runs):,} bodies checked (every {WRK_SAMPLE_EVERY}th), all "
        f"with credentials (or `hello`). JWKS fetched {result.jwks_fetches} times in all "
        "(discovery and keys once per worker process: the keys are cached).",
        "",
        "*Server CPU per request*: user + system time of the server's processes (gunicorn's "
        "arbiter and workers; moto's one process) during the wrk run, from `/proc`, divided "
        "by the requests. It is steadier than the rates on this shared machine: "
        f"fedbroker spends {fb.cpu_ms() - flask.cpu_ms():.2f} ms more per request than the "
        f"bare Flask endpoint ({fb.cpu_ms():.2f} against {flask.cpu_ms():.2f}), and "
        f"{fb.cpu_ms() / moto.cpu_ms():.2f}x moto's CPU per exchange. On two idle cores that "
        f"is at most about {2000 / fb.cpu_ms():,.0f} exchanges/s for fedbroker, "
        f"{2000 / flask.cpu_ms():,.0f} requests/s for Flask (wrk itself takes a share of "
        f"the same 2 cores) and {1000 / moto.cpu_ms():,.0f} exchanges/s for moto on its one "
        "core.",
        "",
        "Per round, requests/s (fedbroker / Flask):",
        "",
        "| round | " + " | ".join(t.label for t in result.targets) + " | fedbroker / Flask |",
        "| ---: | " + " | ".join("---:" for _ in result.targets) + " | ---: |",
    ]
    for index in range(result.rounds):
        cells = " | ".join(f"{t.runs[index].per_second:,.0f}" for t in result.targets)
        out.append(f"| {index + 1} | {cells} | {per_round[index]:.2f} |")
    if result.profile is not None:
        out += sts_profile.render(result.profile)
        out += _projection(result, result.profile)
    out += [
        "",
        f"STS section: {result.total_seconds:.0f} s ({result.setup_seconds:.0f} s of set-up).",
    ]
    return out
