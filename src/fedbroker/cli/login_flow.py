"""``fedbroker login``'s two ways to get a broker CLI session.

- Loopback (RFC 8252 §7.3, with PKCE S256, RFC 7636): a one-shot HTTP server on a random port of
  127.0.0.1 receives the browser's redirect with the one-time code, which is redeemed with the
  verifier that never left this process.
- Device authorization (RFC 8628): prints a URL and a short code to enter on any device, then
  polls the token endpoint at the interval the broker asks for (``slow_down`` adds 5 seconds).

Everything is printed to stderr: stdout stays clean for scripts.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import sys
import threading
import time
import urllib.parse
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from fedbroker.cli.broker_client import BrokerClient, BrokerError

LOGIN_TIMEOUT = 300  # seconds to finish signing in in the browser


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Answer:
    def __init__(self) -> None:
        self.params: dict[str, str] | None = None
        self.done = threading.Event()


def _handler(state: str, answer: _Answer) -> type[BaseHTTPRequestHandler]:
    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            params = dict(urllib.parse.parse_qsl(parts.query))
            if parts.path != "/callback" or params.get("state") != state:
                # Not our redirect (a stray request or a forged one): ignore, keep waiting.
                self._reply(404, "Not the sign-in this terminal is waiting for.")
                return
            if "code" in params:
                self._reply(200, "Signed in. You can close this window and return to the terminal.")
            else:
                self._reply(
                    400,
                    "The sign-in was not completed: "
                    + params.get("error_description", params.get("error", "no code")),
                )
            answer.params = params
            answer.done.set()

        def _reply(self, status: int, text: str) -> None:
            body = (
                "<!doctype html><meta charset=utf-8><title>fedbroker</title>"
                f"<p>{html.escape(text)}</p>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the query holds the one-time code: never log it

    return Callback


def loopback_login(
    client: BrokerClient, provider: str | None, open_browser: bool
) -> dict[str, Any]:
    """Sign in through the browser; the token endpoint's answer (the CLI session)."""
    verifier = secrets.token_urlsafe(48)
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(24)
    answer = _Answer()
    server = HTTPServer(("127.0.0.1", 0), _handler(state, answer))
    port = server.server_address[1]
    redirect_uri = f"http://127.0.0.1:{port}/callback"
    url = client.authorize_url(redirect_uri, challenge, state, provider)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    thread.daemon = True
    thread.start()
    try:
        _say("Sign in through your browser. If it does not open, visit this URL:")
        _say(url)
        if open_browser:
            webbrowser.open(url)
        if not answer.done.wait(LOGIN_TIMEOUT):
            raise BrokerError("timeout", "no sign-in arrived from the browser in time")
    finally:
        server.shutdown()
        server.server_close()
    params = answer.params or {}
    if "code" not in params:
        raise BrokerError(
            params.get("error", "access_denied"),
            params.get("error_description", "the sign-in was not completed"),
        )
    return client.redeem(params["code"], verifier, redirect_uri)


def device_login(
    client: BrokerClient, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """RFC 8628: show the code, poll until approved, denied or expired."""
    start = client.start_device()
    for field in ("device_code", "user_code", "verification_uri", "interval", "expires_in"):
        if field not in start:
            raise BrokerError("server_error", f"the broker's device answer lacks `{field}`")
    _say(f"To sign in, open {start['verification_uri']} on any device and enter the code:")
    _say(f"    {start['user_code']}")
    if start.get("verification_uri_complete"):
        _say(f"or open {start['verification_uri_complete']}")
    interval = int(start["interval"])
    # Until the broker answers something else than "pending": a session, or expired_token once
    # the code's expires_in has passed, or access_denied.
    while True:
        sleep(interval)
        try:
            return client.poll_device(str(start["device_code"]))
        except BrokerError as error:
            if error.error == "authorization_pending":
                continue
            if error.error == "slow_down":
                interval = int(error.extra.get("interval", interval + 5))
                continue
            if error.error == "expired_token":
                raise BrokerError(
                    "expired_token", "the code expired before it was approved; log in again"
                ) from None
            raise
