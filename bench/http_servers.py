"""The servers of the HTTP benchmark and what every load needs: start fedbroker and moto on
127.0.0.1, create the benchmark role, capture a genuine botocore-signed ``GetRole`` request,
replay it and check the answer."""

from __future__ import annotations

import configparser
import contextlib
import http.client
import importlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLE_NAME = "bench-role"
OTHER_ROLE = "bench-other"  # tagged to make a directory change in the SQL-count phase
TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
ROLE_DESCRIPTION = "fedbroker HTTP benchmark role"
ROLE_TAGS = [{"Key": "team", "Value": "bench"}, {"Key": "env", "Value": "test"}]
MOTO_KEY = ("testing", "testing")  # moto accepts any credentials
REGION = "us-east-1"
# The machine's PostgreSQL (trust authentication; see shared/PEERS.md).
POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER = "127.0.0.1", 5432, "postgres"

Log = Callable[[str], None]


class HttpBenchError(RuntimeError):
    """A server misbehaved (wrong answer, error status, socket error): nothing is timed."""


# --- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(runtime_dir: Path) -> dict[str, str]:
    """The parent's environment without ``FEDBROKER_*`` settings (defaults are what is
    measured). ``XDG_RUNTIME_DIR`` gives each gunicorn its own control socket: by default every
    gunicorn of a user binds ``$HOME/.gunicorn/gunicorn.ctl``, and stopping one removes the
    socket of another server running on the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDBROKER_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    return env


@dataclass
class Server:
    """One running server: its URL, the key to sign with, how to stop it."""

    label: str  # "fedbroker (SQLite)", "fedbroker (PostgreSQL)", "moto"
    url: str
    key_id: str
    secret: str
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path | None = None
    database_url: str | None = None

    @property
    def is_fedbroker(self) -> bool:
        return self.label.startswith("fedbroker")

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server's processes: the command and everything under
        it (gunicorn's workers), plus, on PostgreSQL, the backends serving its database."""
        pids = _descendants(self.process.pid)
        if self.database_url is not None:
            pids |= _postgres_backends(self.database_url)
        return sum(_cpu_of(pid) for pid in pids)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """Fields of ``/proc/PID/stat`` after the command name (field 3, state, comes first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()


def _cpu_of(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS if fields else 0.0  # utime, stime


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))  # ppid
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _postgres_backends(database_url: str) -> set[int]:
    import psycopg

    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return {int(row[0]) for row in rows}


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return
        except urllib.error.HTTPError as answered:
            answered.close()
            return  # answered (an AWS-shaped error): it is up
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise HttpBenchError(
                    f"server at {url} did not start:\n" + log_path.read_text(errors="replace")
                ) from None
            time.sleep(0.1)


def _fedbroker_command() -> str:
    candidate = Path(sys.executable).parent / "fedbroker"
    if not candidate.exists():
        raise FileNotFoundError(f"{candidate} not found: install the project into the venv")
    return str(candidate)


def start_fedbroker(work: Path, label: str, database_url: str | None) -> Server:
    """``fedbroker init`` (with a bootstrap administrator) then ``fedbroker serve`` on a free
    port with every other setting at its default (two sync workers)."""
    work.mkdir(parents=True, exist_ok=True)
    data_dir, creds = work / "data", work / "credentials"
    db_args = ["--database-url", database_url] if database_url else []
    env = _environment(work)
    exe = _fedbroker_command()
    subprocess.run(
        [
            exe,
            "init",
            "--data-dir",
            str(data_dir),
            *db_args,
            "--bootstrap-admin",
            "admin",
            "--credentials-file",
            str(creds),
            "--profile",
            "admin",
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    parser = configparser.RawConfigParser()
    parser.read(creds)
    port = free_port()
    log_path = work / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [exe, "serve", "--data-dir", str(data_dir), "--port", str(port), *db_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    _wait_until_up(url, process, log_path)
    return Server(
        label,
        url,
        parser.get("admin", "aws_access_key_id"),
        parser.get("admin", "aws_secret_access_key"),
        process,
        log_path,
        data_dir,
        database_url,
    )


def start_moto(work: Path) -> Server:
    """moto's own server command (werkzeug, threaded, one process), on a free port."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = work / "moto.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_environment(work),
        )
    url = f"http://127.0.0.1:{port}"
    _wait_until_up(url, process, log_path)
    return Server("moto", url, MOTO_KEY[0], MOTO_KEY[1], process, log_path)


@contextlib.contextmanager
def postgres_database(log: Log) -> Iterator[str | None]:
    """A new, empty PostgreSQL database on the machine's server, dropped afterwards; ``None``
    (and a log line) when the server cannot be reached."""
    import psycopg
    from psycopg import sql

    name = f"fedbroker_bench_{secrets.token_hex(5)}"

    def admin() -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            host=POSTGRES_HOST,
            port=POSTGRES_PORT,
            user=POSTGRES_USER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )

    try:
        connection = admin()
    except psycopg.OperationalError as error:
        log(f"  http: PostgreSQL not reachable ({error}); no PostgreSQL row")
        yield None
        return
    with connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with admin() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# --- boto3: setup, the signed request, checks -------------------------------------------------


def iam_client(url: str, key_id: str, secret: str) -> Any:
    """A boto3 IAM client for ``url`` that does not retry (a failure shows at once)."""
    # Imported by name: boto3 ships no type information, and Any is what it would give.
    boto3: Any = importlib.import_module("boto3")
    config: Any = importlib.import_module("botocore.config")
    return boto3.client(
        "iam",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=config.Config(retries={"max_attempts": 1}),
    )


def create_roles(server: Server) -> None:
    """The same two roles on every server (the second one only serves directory changes)."""
    client = iam_client(server.url, server.key_id, server.secret)
    client.create_role(
        RoleName=ROLE_NAME,
        AssumeRolePolicyDocument=TRUST_POLICY,
        Description=ROLE_DESCRIPTION,
        Tags=ROLE_TAGS,
    )
    client.create_role(RoleName=OTHER_ROLE, AssumeRolePolicyDocument=TRUST_POLICY)


@dataclass(frozen=True)
class SignedRequest:
    """A botocore-signed ``GetRole`` request exactly as boto3 sent it (less Content-Length,
    which the sender sets)."""

    url: str
    headers: dict[str, str]
    body: bytes


def sign_get_role(server: Server) -> SignedRequest:
    """Call ``get_role`` with boto3 and keep the request it sent (a ``before-send`` hook sees
    the final, signed request). The call itself must succeed and name the role."""
    client = iam_client(server.url, server.key_id, server.secret)
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

    client.meta.events.register("before-send.iam.GetRole", capture)
    answer = client.get_role(RoleName=ROLE_NAME)
    if answer["Role"]["RoleName"] != ROLE_NAME or len(captured) != 1:
        raise HttpBenchError(f"{server.label}: boto3 GetRole answered {answer!r}")
    return captured[0]


def check_get_role_body(label: str, status: int, body: bytes) -> None:
    text = body.decode("utf-8", errors="replace")
    if (
        status != 200
        or "<GetRoleResponse" not in text
        or f"<RoleName>{ROLE_NAME}</RoleName>" not in text
    ):
        raise HttpBenchError(f"{label}: GetRole answered HTTP {status}: {text[:500]}")


def replay(signed: SignedRequest) -> tuple[int, bytes]:
    """Send the signed request once more, byte for byte, on a new connection."""
    parts = urllib.parse.urlsplit(signed.url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        connection.request("POST", parts.path or "/", body=signed.body, headers=signed.headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
