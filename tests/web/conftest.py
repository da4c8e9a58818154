"""A real broker for the API tests: `fedbroker init` then `fedbroker serve` on 127.0.0.1.

One server per backend per session; tests name their entities uniquely, so they share it.
"""

from __future__ import annotations

import configparser
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
FEDBROKER = str(Path(sys.executable).parent / "fedbroker")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    url: str
    data_dir: Path
    credentials_file: Path
    admin_key_id: str
    admin_secret: str
    backend: str
    database_url: str | None = None

    @property
    def root_password_file(self) -> Path:
        return self.data_dir.parent / "root-password"

    @property
    def store_args(self) -> list[str]:
        """The `--data-dir`/`--database-url` flags that reach this broker's directory."""
        db = ["--database-url", self.database_url] if self.database_url else []
        return ["--data-dir", str(self.data_dir), *db]

    @property
    def audit_log(self) -> Path:
        return self.data_dir / "audit" / "events.jsonl"

    def client(
        self, service: str = "iam", key_id: str | None = None, secret: str | None = None
    ) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key_id or self.admin_key_id,
            aws_secret_access_key=secret or self.admin_secret,
            config=Config(retries={"max_attempts": 1}),
        )

    def audit_events(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(line) for line in self.audit_log.read_text().splitlines()]


def start_broker(tmp: Path, backend: str, database_url: str | None) -> Iterator[Broker]:
    data_dir = tmp / "data"
    creds = tmp / "credentials"
    db_args = ["--database-url", database_url] if database_url else []
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
    (tmp / "root-password").write_text("root password for tests\n")
    subprocess.run(
        [
            FEDBROKER,
            "init",
            "--root-password-file",
            str(tmp / "root-password"),
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
    log = open(tmp / "serve.log", "w")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        [FEDBROKER, "serve", "--data-dir", str(data_dir), "--port", str(port), *db_args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=1)
            break
        except urllib.error.HTTPError as answered:
            answered.close()  # its response holds the connection's socket
            break  # answered (with an AWS error): it is up
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.close()
                raise RuntimeError(
                    "broker did not start:\n" + (tmp / "serve.log").read_text()
                ) from None
            time.sleep(0.1)
    try:
        yield Broker(
            url,
            data_dir,
            creds,
            parser.get("admin", "aws_access_key_id"),
            parser.get("admin", "aws_secret_access_key"),
            backend,
            database_url,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    tmp = tmp_path_factory.mktemp(f"broker-{request.param}")
    if request.param == "sqlite":
        yield from start_broker(tmp, "sqlite", None)
        return
    from tests.support.postgres import temporary_database

    with temporary_database() as url:
        yield from start_broker(tmp, "postgresql", url)


@pytest.fixture
def iam(broker: Broker) -> Any:
    return broker.client("iam")


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


# --- the browser (headless Chromium), shared by the sign-in tests -----------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from tests.support.browser import chromium

    yield from chromium()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    from tests.support.browser import local_page

    yield from local_page(browser)
