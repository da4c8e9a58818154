"""A real OIDC issuer on 127.0.0.1 for the federation unit tests: discovery and a JWKS over
HTTP, served by ``http.server`` in a thread, with switches for the failures a provider can
have (down, slow, dripping) and a count of every request, so the tests can see what the
broker fetched and when.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Issuer:
    """What the server answers; change the fields while it runs."""

    def __init__(self) -> None:
        self.url = ""
        self.keys: list[dict[str, Any]] = []
        self.cache_control: str | None = None
        self.status = 200  # for both documents; 500 plays a provider that is down
        self.stall = False  # answer nothing until released (a slow provider)
        self.drip = False  # send the JWKS one byte at a time, slowly
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()

    @property
    def jwks_fetches(self) -> int:
        return self.hits["/jwks"]


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            issuer.hits[self.path] += 1
            if issuer.stall:
                issuer.release.wait(30)
                return
            if self.path == "/.well-known/openid-configuration":
                body = json.dumps({"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"})
            elif self.path == "/jwks":
                body = json.dumps({"keys": issuer.keys})
            else:
                self.send_error(404)
                return
            self.send_response(issuer.status)
            self.send_header("Content-Type", "application/json")
            if issuer.cache_control:
                self.send_header("Cache-Control", issuer.cache_control)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if issuer.drip and self.path == "/jwks":
                for byte in body.encode():
                    if issuer.release.wait(0.05):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                return
            self.wfile.write(body.encode())

    return Handler


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(issuer))
    server.daemon_threads = True
    server.block_on_close = False
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        issuer.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def elapsed(start: float) -> float:
    """Seconds since ``start`` (``time.monotonic()``): only for generous upper bounds."""
    return time.monotonic() - start
