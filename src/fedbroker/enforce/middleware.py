"""A WSGI middleware that checks every request with the policy engine before the app sees it.

    app = Enforcer(app, checker, route, renderer=s3_error)

``route(environ)`` maps a request to the action and resource it asks for, as a pair or a
:class:`Route` (which adds condition keys such as ``s3:prefix`` and the resource policy, e.g. a
bucket policy). It returns ``None`` for a request the app answers without any check (a health
endpoint, or an operation the app refuses by itself): the default is the app's to choose, so
make ``route`` and the app's own dispatch the same function.

Allowed requests reach the app with the body put back in ``wsgi.input``, the
:class:`~fedbroker.credentials.check.CheckResult` in ``environ["fedbroker.check"]`` (an
:class:`~fedbroker.credentials.check.AnonymousResult` for an anonymous one) and the request id
in ``environ["fedbroker.request_id"]``.

With ``allow_anonymous``, a request that carries no signature at all is decided as an
anonymous one, as S3 does: only a resource policy granting everyone (``"Principal": "*"``)
lets it in, and a denial is S3's plain ``AccessDenied`` "Access Denied" (there is nobody to
explain the decision to). Without it, an unsigned request is refused as unauthenticated.

Everything else is refused through the renderer: authentication failures with their AWS
codes, denials with ``AccessDenied`` and an encoded authorization message that
``sts:DecodeAuthorizationMessage`` opens for callers allowed to. A service bug (a malformed
resource policy, a route supplying a key the credentials own) fails closed, as a 500.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from fedbroker.audit.events import AuditEvent, AuditSink, UserIdentity
from fedbroker.clock import Clock, SystemClock
from fedbroker.credentials.check import AnonymousResult, CheckResult, RequestChecker
from fedbroker.credentials.sigv4 import HttpRequest, parse_auth
from fedbroker.directory.ids import new_request_id
from fedbroker.enforce.errors import ErrorRenderer, Refusal, json_error
from fedbroker.errors import FedbrokerError, MalformedPolicyDocumentError, PayloadTooLargeError
from fedbroker.policy import Policy

log = logging.getLogger("fedbroker.enforce")

DEFAULT_MAX_BODY = 16 * 1024 * 1024


class Route(NamedTuple):
    """What a request asks for. A plain ``(action, resource)`` pair is a Route without extras."""

    action: str
    resource: str
    context: Mapping[str, object] | None = None
    resource_policy: Policy | str | None = None


Router = Callable[[WSGIEnvironment], tuple[str, str] | Route | None]
Result = CheckResult | AnonymousResult
# CloudTrail's userIdentity of an anonymous request (S3 data events).
ANONYMOUS_IDENTITY = UserIdentity("AWSAccount", "", None, "anonymous")


class Enforcer:
    """Checks each request with ``checker`` and refuses what is not allowed.

    ``max_body_bytes`` bounds the body read for the signature check (bigger bodies are refused
    before they are read); ``resource_account`` is the account owning the service's resources
    (default: the caller's, so every request is same-account); with ``audit``, every decision
    is written as a CloudTrail-shaped event from ``event_source``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        checker: RequestChecker,
        route: Router,
        *,
        renderer: ErrorRenderer = json_error,
        clock: Clock | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        resource_account: str | None = None,
        audit: AuditSink | None = None,
        event_source: str = "fedbroker.enforce",
        allow_anonymous: bool = False,
    ) -> None:
        self.app = app
        self.checker = checker
        self.route = route
        self.renderer = renderer
        self.clock = clock or SystemClock()
        self.max_body_bytes = max_body_bytes
        self.resource_account = resource_account
        self.audit = audit
        self.event_source = event_source
        self.allow_anonymous = allow_anonymous

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        routed = self.route(environ)
        if routed is None:
            return self.app(environ, start_response)
        route = routed if isinstance(routed, Route) else Route(*routed)
        request_id = new_request_id()
        now = self.clock.now()
        result: Result | None = None
        try:
            body = _read_body(environ, self.max_body_bytes)
            request = HttpRequest(
                method=str(environ.get("REQUEST_METHOD", "GET")),
                path=raw_path(environ),
                query=str(environ.get("QUERY_STRING", "")),
                headers=request_headers(environ),
                body=body,
            )
            transport: dict[str, Any] = {
                "source_ip": environ.get("REMOTE_ADDR") or None,
                "secure_transport": environ.get("wsgi.url_scheme") == "https",
                "resource_account": self.resource_account,
            }
            if self.allow_anonymous and parse_auth(request) is None:
                result = self.checker.check_anonymous(
                    route.action,
                    route.resource,
                    now,
                    route.context,
                    route.resource_policy,
                    **transport,
                )
            else:
                result = self.checker.check(
                    request,
                    route.action,
                    route.resource,
                    now,
                    route.context,
                    route.resource_policy,
                    **transport,
                )
        except (MalformedPolicyDocumentError, ValueError) as exc:
            log.error("refused %s on %s: the service's check is broken: %s", *route[:2], exc)
            refusal = Refusal("InternalFailure", "internal error", 500, request_id, *route[:2])
            return self._refuse(refusal, None, environ, start_response)
        except FedbrokerError as exc:
            detail = exc.detail
            log.info("refused %s on %s: %s (%s)", *route[:2], exc.code, detail or exc.message)
            refusal = Refusal(exc.code, exc.message, exc.status, request_id, *route[:2])
            return self._refuse(refusal, None, environ, start_response, detail)
        if isinstance(result, AnonymousResult) and not result.allowed:
            refusal = Refusal(
                "AccessDenied", "Access Denied", 403, request_id, route.action, route.resource
            )
            return self._refuse(refusal, result, environ, start_response)
        if isinstance(result, CheckResult) and not result.allowed:
            refusal = Refusal(
                "AccessDenied",
                result.denial_message(),
                403,
                request_id,
                route.action,
                route.resource,
                self.checker.encode(result, now),
            )
            return self._refuse(refusal, result, environ, start_response)
        self._emit(environ, route, request_id, result, None)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["fedbroker.check"] = result
        environ["fedbroker.request_id"] = request_id
        return self.app(environ, start_response)

    def _refuse(
        self,
        refusal: Refusal,
        result: Result | None,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        detail: str | None = None,
    ) -> Iterable[bytes]:
        self._emit(
            environ,
            Route(refusal.action, refusal.resource),
            refusal.request_id,
            result,
            refusal,
            detail,
        )
        status, headers, body = self.renderer(refusal)
        headers = [*headers, ("Content-Length", str(len(body)))]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    def _emit(
        self,
        environ: WSGIEnvironment,
        route: Route,
        request_id: str,
        result: Result | None,
        refusal: Refusal | None,
        detail: str | None = None,
    ) -> None:
        if self.audit is None:
            return
        identity = UserIdentity("Unknown")
        region, account = "", None
        if isinstance(result, CheckResult):
            identity, region = result.caller.identity, result.auth.region
            account = result.caller.account.id
        elif isinstance(result, AnonymousResult):
            identity, account = ANONYMOUS_IDENTITY, self.resource_account
        error_message = None
        if refusal is not None:
            error_message = f"{refusal.message} ({detail})" if detail else refusal.message
        additional: dict[str, Any] = {}
        if result is not None:
            additional["decision"] = result.decision.effect.value
            additional["decidedBy"] = result.decision.decided_by
        self.audit.emit(
            AuditEvent(
                event_time=self.clock.now(),
                event_source=self.event_source,
                event_name=route.action.partition(":")[2] or route.action,
                region=region,
                source_ip=str(environ.get("REMOTE_ADDR", "")),
                user_agent=str(environ.get("HTTP_USER_AGENT", ""))[:256],
                user_identity=identity,
                request_id=request_id,
                request_parameters={"action": route.action, "resource": route.resource},
                error_code=refusal.code if refusal is not None else None,
                error_message=error_message,
                read_only=environ.get("REQUEST_METHOD") in ("GET", "HEAD"),
                recipient_account_id=account,
                additional=additional or None,
            )
        )


def _read_body(environ: WSGIEnvironment, limit: int) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    raw_length = environ.get("CONTENT_LENGTH") or ""
    if raw_length:
        try:
            length = int(raw_length)
        except ValueError:
            length = -1
        if length < 0:
            raise PayloadTooLargeError("`Content-Length` is not a length")
        if length > limit:
            raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
        return bytes(stream.read(length)) if length else b""
    if environ.get("wsgi.input_terminated"):
        body = bytes(stream.read(limit + 1))
        if len(body) > limit:
            raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
        return body
    return b""


def raw_path(environ: WSGIEnvironment) -> str:
    """The path as the client sent it (still percent-encoded), which is what SigV4 signs.

    Servers that keep it say so in ``RAW_URI`` (gunicorn, werkzeug) or ``REQUEST_URI``; without
    it the decoded ``PATH_INFO`` is encoded again the way AWS's SDKs encode paths."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        text = str(raw)
        if "://" in text.split("?", 1)[0]:
            text = urlsplit(text).path
        return text.split("?", 1)[0] or "/"
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    return quote(path.encode("latin-1"), safe="/~") or "/"


def request_headers(environ: WSGIEnvironment) -> dict[str, str]:
    """The request headers from a WSGI environ, lower-case names."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = str(value)
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return headers
