"""The CLI helper's HTTP client for the broker's ``/sso/cli`` endpoints (standard library).

A small client by hand rather than a dependency: JSON in, JSON out, RFC 6749 errors, and the
CLI must start fast (``credential-process`` runs before every AWS command).
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from fedbroker import __version__

TIMEOUT = 30
MAX_ANSWER = 256 * 1024
USER_AGENT = f"fedbroker-cli/{__version__}"
CLIENT_ID = "fedbroker-cli"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class BrokerError(Exception):
    """The broker refused (``error`` is its RFC 6749 code) or could not be reached."""

    def __init__(
        self, error: str, description: str, status: int = 0, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.extra = extra or {}


class BrokerClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        handle: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if handle is not None:
            headers["Authorization"] = f"Bearer {handle}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return _object(response.read(MAX_ANSWER + 1), response.status)
        except urllib.error.HTTPError as error:
            body = error.read(MAX_ANSWER + 1)
            status = error.code
            error.close()
            try:
                answer = _object(body, status)
            except BrokerError:
                raise BrokerError(
                    "server_error", f"the broker answered HTTP {status}", status
                ) from None
            raise BrokerError(
                str(answer.get("error", "server_error")),
                str(answer.get("error_description", f"the broker answered HTTP {status}")),
                status,
                answer,
            ) from None
        except (OSError, ValueError) as error:
            raise BrokerError(
                "unreachable", f"the broker at {self.url} could not be reached: {error}"
            ) from None

    # --- sign-in ----------------------------------------------------------------------------

    def authorize_url(
        self, redirect_uri: str, challenge: str, state: str, provider: str | None
    ) -> str:
        query = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": state,
            "host": socket.gethostname(),
        }
        if provider:
            query["provider"] = provider
        return f"{self.url}/sso/cli/authorize?{urllib.parse.urlencode(query)}"

    def redeem(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        return self._call(
            "POST",
            "/sso/cli/token",
            {
                "grant_type": "authorization_code",
                "client_id": CLIENT_ID,
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": redirect_uri,
            },
        )

    def start_device(self) -> dict[str, Any]:
        return self._call(
            "POST",
            "/sso/cli/device_authorization",
            {"client_id": CLIENT_ID, "host": socket.gethostname()},
        )

    def poll_device(self, device_code: str) -> dict[str, Any]:
        return self._call(
            "POST",
            "/sso/cli/token",
            {"grant_type": DEVICE_GRANT, "client_id": CLIENT_ID, "device_code": device_code},
        )

    # --- with a CLI session -----------------------------------------------------------------

    def providers(self) -> dict[str, Any]:
        return self._call("GET", "/sso/cli/providers")

    def roles(self, handle: str) -> dict[str, Any]:
        return self._call("GET", "/sso/cli/roles", handle=handle)

    def whoami(self, handle: str) -> dict[str, Any]:
        return self._call("GET", "/sso/cli/whoami", handle=handle)

    def credentials(self, handle: str, role_arn: str, duration: int | None) -> dict[str, Any]:
        form = {"role_arn": role_arn}
        if duration is not None:
            form["duration_seconds"] = str(duration)
        return self._call("POST", "/sso/cli/credentials", form, handle=handle)

    def revoke(self, handle: str) -> None:
        self._call("POST", "/sso/cli/revoke", {"token": handle, "client_id": CLIENT_ID})


def _object(body: bytes, status: int) -> dict[str, Any]:
    if len(body) > MAX_ANSWER:
        raise BrokerError("server_error", "the broker's answer is too large", status)
    try:
        value = json.loads(body)
    except ValueError:
        raise BrokerError("server_error", "the broker's answer is not JSON", status) from None
    if not isinstance(value, dict):
        raise BrokerError("server_error", "the broker's answer is not a JSON object", status)
    return value
