"""Node peers (tests/peers/) started by the tests on 127.0.0.1: ``node script.mjs PORT``.

Started with ``node`` itself (``npx`` leaves a child holding the port), waited for by polling
a URL, stopped by their own PID. ``scripts/test.sh`` installs ``tests/peers/node_modules``;
without it the tests that need a peer fail with a message saying so (they never skip).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEERS = Path(__file__).resolve().parents[1] / "peers"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NodePeer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def node_peer(
    script: str,
    ready_path: str,
    log_dir: Path,
    *args: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[NodePeer]:
    """``port``: a port chosen beforehand (when the peer's URL must be known before it runs);
    ``env``: variables added to the peer's environment."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("`node` is not on PATH; the Node peers need Node 20 or later")
    if not (PEERS / "node_modules").is_dir():
        raise RuntimeError(
            f"{PEERS}/node_modules is missing: run `npm ci` there (scripts/test.sh does)"
        )
    port = port or free_port()
    log = log_dir / f"{script}.{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [node, str(PEERS / script), str(port), *args],
            cwd=PEERS,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + ready_path, timeout=1):
                    break
            except (urllib.error.URLError, OSError) as failed:
                if isinstance(failed, urllib.error.HTTPError):
                    failed.close()  # its response holds the connection's socket
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{script} did not start:\n{log.read_text(errors='replace')}"
                    ) from None
                time.sleep(0.1)
        yield NodePeer(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class MockOidc:
    """npm ``oauth2-mock-server`` (tests/peers/mock-oidc.mjs): an issuer that mints RS256
    tokens with whatever claims it is asked for."""

    url: str

    @property
    def name(self) -> str:
        """The IAM provider name: the URL without the scheme."""
        return self.url.split("://", 1)[1]

    def token(self, aud: str | list[str] = "sts.amazonaws.com", **claims: Any) -> str:
        """A token for ``aud`` with ``claims`` (``None`` removes a claim the server adds)."""
        body = json.dumps({"grant_type": "client_credentials", "aud": aud, "claims": claims})
        request = urllib.request.Request(
            self.url + "/token",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.load(response)["access_token"])


@contextmanager
def mock_oidc(log_dir: Path) -> Iterator[MockOidc]:
    with node_peer("mock-oidc.mjs", "/.well-known/openid-configuration", log_dir) as peer:
        yield MockOidc(peer.url)
