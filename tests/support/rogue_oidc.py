"""A deliberately malicious OpenID Connect provider on 127.0.0.1 (a test double, named so).

A real provider (the npm ``oidc-provider`` of the browser tests) never answers its token
request with an ID token that another issuer signed, so the relying party's check "the ID
token comes from the provider this login was started with" cannot be exercised against one.
This one can: its authorization endpoint sends the browser straight back with a code, and its
token endpoint answers with whatever :attr:`RogueProvider.mint` makes of the authorization
request (``nonce``, ``client_id``) — for instance a genuine token of another registered issuer.
Each instance also serves its own discovery document and JWKS, so it can play that other
issuer too. Test only; keys are generated per run and are not secret.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.tokens import JwtKey


@dataclass
class RogueProvider:
    key: JwtKey
    url: str = ""
    # What the token endpoint returns as `id_token`, given the authorization request's query.
    mint: Callable[[dict[str, str]], str] | None = None
    codes: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.url.split("://", 1)[1]

    def token(self, issuer: RogueProvider, request: dict[str, str], **claims: Any) -> str:
        """A token signed by this provider's key as ``issuer`` says (``iss`` = issuer's URL)."""
        body: dict[str, Any] = {
            "iss": issuer.url,
            "sub": request.get("login_hint", "mallory"),
            "aud": request["client_id"],
            "nonce": request["nonce"],
            "iat": 0,
            "exp": 4102444800,  # 2100-01-01: the broker's clock is real in the browser tests
        }
        body.update(claims)
        return self.key.sign(body, "RS256")


def _handler(rogue: RogueProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, value: Any, status: int = 200) -> None:
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            if parts.path == "/.well-known/openid-configuration":
                self._json(
                    {
                        "issuer": rogue.url,
                        "authorization_endpoint": rogue.url + "/authorize",
                        "token_endpoint": rogue.url + "/token",
                        "jwks_uri": rogue.url + "/jwks",
                    }
                )
            elif parts.path == "/jwks":
                self._json({"keys": [rogue.key.jwk(alg="RS256", use="sig")]})
            elif parts.path == "/authorize":
                query = dict(urllib.parse.parse_qsl(parts.query))
                code = secrets.token_urlsafe(16)
                rogue.codes[code] = query
                back = (
                    query["redirect_uri"]
                    + "?"
                    + urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
                )
                self.send_response(302)
                self.send_header("Location", back)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            request = rogue.codes.pop(form.get("code", ""), None)
            if self.path != "/token" or request is None or rogue.mint is None:
                self._json({"error": "invalid_grant"}, 400)
                return
            self._json(
                {"access_token": "rogue", "token_type": "Bearer", "id_token": rogue.mint(request)}
            )

    return Handler


@contextmanager
def rogue_provider() -> Iterator[RogueProvider]:
    rogue = RogueProvider(JwtKey.rsa(secrets.token_hex(4)))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rogue))
    server.daemon_threads = True
    rogue.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield rogue
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
