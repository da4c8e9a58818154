"""Fetching an identity provider's public documents (OIDC discovery, JWKS) over HTTP(S).

:class:`HttpFetcher` is the seam: the JWKS cache asks it for one URL with a time budget and a
size cap, and tests give it a real local server instead of a mock. :class:`StdlibFetcher` is
the default, on the standard library's ``http.client``: two small GETs per provider per cache
lifetime need neither a connection pool nor a new dependency, and ``http.client`` lets the
whole exchange be bounded, which ``requests``/``httpx`` timeouts (per socket operation) do not.

What the default does, and why:

- the whole request (connect, headers, body) gets ``timeout`` seconds: a watchdog timer shuts
  the socket down when the budget is spent, so a server that drips one byte a second cannot
  hold a worker for longer;
- at most ``max_bytes`` of body are read; a longer document is refused, not truncated;
- redirects are not followed and no proxy is taken from the environment: the broker fetches
  exactly the URLs a registered provider names;
- ``https`` is verified against the system's certificate authorities.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


class FetchError(Exception):
    """The document could not be fetched; the message says why (no secrets in it)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    # Header names in lower case; a repeated header keeps its last value.
    headers: Mapping[str, str] = field(default_factory=dict)


class HttpFetcher(Protocol):
    def get(self, url: str, *, timeout: float, max_bytes: int) -> HttpResponse:
        """GET ``url`` within ``timeout`` seconds in all; raise :class:`FetchError` when it
        cannot be done or the body is longer than ``max_bytes``."""
        ...


_USER_AGENT = "fedbroker (+jwks fetch)"


class StdlibFetcher:
    """The default :class:`HttpFetcher` (module docstring)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context or ssl.create_default_context()

    def get(self, url: str, *, timeout: float, max_bytes: int) -> HttpResponse:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise FetchError(f"`{url}` is not an http(s) URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        expired = threading.Event()
        # The socket, kept apart: http.client drops ``conn.sock`` when the response is to
        # close the connection, while the response goes on reading from it.
        opened: list[socket.socket] = []

        def abort() -> None:
            expired.set()
            for sock in opened:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(timeout, abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.connect()
            if conn.sock is not None:
                opened.append(conn.sock)
                if expired.is_set():  # the budget ran out while connecting
                    abort()
            conn.request(
                "GET", target, headers={"Accept": "application/json", "User-Agent": _USER_AGENT}
            )
            response = conn.getresponse()
            body = response.read(max_bytes + 1)
            headers = {name.lower(): value for name, value in response.getheaders()}
            status = response.status
        except (OSError, http.client.HTTPException, ValueError) as error:
            # The socket's own timeout is the whole budget too: whichever of it and the
            # watchdog fires first, the answer did not come in time.
            if expired.is_set() or isinstance(error, TimeoutError):
                raise FetchError(f"no complete answer from `{url}` within {timeout:g} s") from None
            raise FetchError(f"`{url}` could not be fetched ({type(error).__name__})") from None
        finally:
            watchdog.cancel()
            conn.close()
        if expired.is_set():
            raise FetchError(f"no complete answer from `{url}` within {timeout:g} s")
        if len(body) > max_bytes:
            raise FetchError(f"`{url}` answered with more than {max_bytes} bytes")
        return HttpResponse(status, body, headers)
