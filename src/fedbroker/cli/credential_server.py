"""``fedbroker serve-credentials``: a local endpoint for botocore's container provider.

botocore's ``ContainerProvider`` reads ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (a loopback
``http`` URL is allowed) and sends ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` verbatim as the
``Authorization`` header; it expects ``AccessKeyId``, ``SecretAccessKey``, ``Token`` and
``Expiration``, and fetches again before they expire, so a long-running process refreshes on
its own. The server listens on a random port of 127.0.0.1 and answers only requests that carry
the random token it printed.
"""

from __future__ import annotations

import hmac
import json
import secrets
import signal
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import click

PATH = "/credentials"


def serve(fetch: Callable[[], dict[str, Any]]) -> None:
    token = secrets.token_urlsafe(32)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                self._json(401, {"message": "missing or wrong authorization token"})
                return
            if self.path.split("?", 1)[0] != PATH:
                self._json(404, {"message": "not found"})
                return
            try:
                credentials = fetch()
            except click.ClickException as error:
                click.echo(f"fedbroker: {error.format_message()}", err=True)
                self._json(503, {"message": error.format_message()})
                return
            self._json(
                200,
                {
                    "AccessKeyId": credentials["AccessKeyId"],
                    "SecretAccessKey": credentials["SecretAccessKey"],
                    "Token": credentials["SessionToken"],
                    "Expiration": credentials["Expiration"],
                },
            )

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    click.echo(f"export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:{port}{PATH}")
    click.echo(f"export AWS_CONTAINER_AUTHORIZATION_TOKEN={token}")
    sys.stdout.flush()
    click.echo("serving credentials; stop with Ctrl-C", err=True)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
