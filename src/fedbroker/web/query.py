"""``POST /`` (and ``GET /``): the AWS Query protocol endpoint shared by IAM and STS.

Requests are routed by the service in the SigV4 credential scope; the action comes from the
form. This module only adapts: it reads the request, asks the authenticator and the service,
and renders the answer or the error. Every outcome is audited.

It is a WSGI middleware in front of the Flask app (``app.wsgi_app``), not a Flask view: the
endpoint needs nothing Flask offers (no routing beyond one path, no templates, sessions or
cookies), and building Flask's request context and response objects cost more than the whole
token exchange behind it (bench/RESULTS.md, "STS exchanges over HTTP"). Every other path goes
on to Flask.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fedbroker.audit.events import UserIdentity
from fedbroker.credentials.authn import Authenticator
from fedbroker.credentials.sigv4 import HttpRequest
from fedbroker.directory.ids import new_request_id
from fedbroker.errors import (
    AuthenticationError,
    FedbrokerError,
    InvalidActionError,
    PayloadTooLargeError,
)
from fedbroker.iam import api as iam_api
from fedbroker.iam.context import Services
from fedbroker.sts import api as sts_api
from fedbroker.web import xml

log = logging.getLogger("fedbroker.web")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_STATUS = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


@dataclass(frozen=True, slots=True)
class QueryRequest:
    """What the endpoint reads of an HTTP request; header names lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    source_ip: str
    secure_transport: bool


class QueryEndpoint:
    """WSGI middleware answering ``/`` with the Query protocol; anything else goes to ``app``."""

    def __init__(
        self, app: WsgiApp, services: Services, authenticator: Authenticator, max_body: int
    ) -> None:
        self.app = app
        self.services = services
        self.authenticator = authenticator
        self.max_body = max_body
        sts_api.load_operations()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        if environ.get("PATH_INFO") != "/" or method not in ("POST", "GET"):
            return self.app(environ, start_response)
        request_id = new_request_id()
        try:
            request = self._read(environ, method)
        except PayloadTooLargeError as exc:
            meta = iam_api.RequestMeta(
                request_id, environ.get("REMOTE_ADDR") or "unknown", _agent(environ), False
            )
            status, body = _refused(self.services, meta, "Unknown", {}, exc, xml.IAM_NAMESPACE)
        else:
            status, body = handle(self.services, self.authenticator, request, request_id)
        data = body.encode("utf-8")
        start_response(
            _STATUS.get(status) or f"{status} Unknown",
            [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))],
        )
        return [data]

    def _read(self, environ: dict[str, Any], method: str) -> QueryRequest:
        limit = self.max_body
        length_text = environ.get("CONTENT_LENGTH") or ""
        stream = environ["wsgi.input"]
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                length = 0
            if length > limit:
                raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
            body = stream.read(length) if length > 0 else b""
        elif environ.get("wsgi.input_terminated"):  # chunked: read to the end, bounded
            body = stream.read(limit + 1)
            if len(body) > limit:
                raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
        else:
            body = b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        if length_text:
            headers["content-length"] = length_text
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or "/"
        return QueryRequest(
            method=method,
            path=raw_uri.split("?", 1)[0] or "/",
            query=environ.get("QUERY_STRING", ""),
            headers=headers,
            body=body,
            source_ip=environ.get("REMOTE_ADDR") or "unknown",
            secure_transport=environ.get("wsgi.url_scheme") == "https",
        )


def _agent(environ: dict[str, Any]) -> str:
    return str(environ.get("HTTP_USER_AGENT", ""))[:256]


def handle(
    services: Services, authenticator: Authenticator, request: QueryRequest, request_id: str
) -> tuple[int, str]:
    """Answer one Query protocol request: the HTTP status and the XML document."""
    meta = iam_api.RequestMeta(
        request_id=request_id,
        source_ip=request.source_ip,
        user_agent=request.headers.get("user-agent", "")[:256],
        secure_transport=request.secure_transport,
    )
    form: dict[str, str] = {}
    action = "Unknown"
    namespace = xml.IAM_NAMESPACE
    try:
        form = _parse_form(request.query, request.body)
        action = form.get("Action", "")
        if not action:
            raise InvalidActionError("missing `Action` parameter")
        if "authorization" not in request.headers and sts_api.is_unsigned(action):
            namespace = sts_api.NAMESPACE
            result = sts_api.execute(services, None, meta, action, form)
            return 200, xml.response(action, result, request_id, namespace)
        http_request = HttpRequest(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            body=request.body,
        )
        try:
            authenticated = authenticator.authenticate(http_request, services.clock.now())
        except AuthenticationError as exc:
            log.info("authentication failed: %s (%s)", exc.code, exc.detail)
            raise
        service = authenticated.auth.service
        if service == "sts":
            namespace = sts_api.NAMESPACE
            result = sts_api.execute(services, authenticated.caller, meta, action, form)
        elif service == "iam":
            result = iam_api.execute(services, authenticated.caller, meta, action, form)
        else:
            raise InvalidActionError(f"service `{service}` is not served here")
        return 200, xml.response(action, result, request_id, namespace)
    except FedbrokerError as exc:
        return _refused(services, meta, action, form, exc, namespace)


def _refused(
    services: Services,
    meta: iam_api.RequestMeta,
    action: str,
    form: dict[str, str],
    exc: FedbrokerError,
    namespace: str,
) -> tuple[int, str]:
    if not exc.audited:
        iam_api.audit(services, UserIdentity("Unknown"), meta, action or "Unknown", form, error=exc)
    document = xml.error(
        exc.code, exc.message, meta.request_id, sender=exc.status < 500, namespace=namespace
    )
    return exc.status, document


def _parse_form(query: str, body: bytes) -> dict[str, str]:
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True) if query else []
    if body:
        pairs += urllib.parse.parse_qsl(
            body.decode("utf-8", errors="replace"), keep_blank_values=True
        )
    return dict(pairs)
