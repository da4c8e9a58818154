"""``POST /`` (and ``GET /``): the AWS Query protocol endpoint shared by IAM and STS.

Requests are routed by the service in the SigV4 credential scope; the action comes from the
form. This module only adapts: it reads the request, asks the authenticator and the service,
and renders the answer or the error. Every outcome is audited.
"""

from __future__ import annotations

import logging
import urllib.parse

from flask import Blueprint, Response, current_app, request

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
blueprint = Blueprint("query", __name__)


def _services() -> Services:
    services: Services = current_app.extensions["fedbroker.services"]
    return services


def _authenticator() -> Authenticator:
    authenticator: Authenticator = current_app.extensions["fedbroker.authenticator"]
    return authenticator


def _xml(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/xml")


@blueprint.route("/", methods=["POST", "GET"])
def query() -> Response:
    request_id = new_request_id()
    meta = iam_api.RequestMeta(
        request_id=request_id,
        source_ip=request.remote_addr or "unknown",
        user_agent=request.headers.get("User-Agent", "")[:256],
        secure_transport=request.scheme == "https",
    )
    services = _services()
    form: dict[str, str] = {}
    action = "Unknown"
    namespace = xml.IAM_NAMESPACE
    try:
        body = _read_body()
        form = _parse_form(body)
        action = form.get("Action", "")
        http_request = HttpRequest(
            method=request.method,
            path=request.environ.get("RAW_URI", request.path).split("?", 1)[0] or "/",
            query=request.query_string.decode("latin-1"),
            headers=dict(request.headers),
            body=body,
        )
        if not action:
            raise InvalidActionError("missing `Action` parameter")
        if sts_api.is_unsigned(action) and "Authorization" not in request.headers:
            namespace = sts_api.NAMESPACE
            result = sts_api.execute(services, None, meta, action, form)
            return _xml(xml.response(action, result, request_id, namespace))
        try:
            authenticated = _authenticator().authenticate(http_request, services.clock.now())
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
        return _xml(xml.response(action, result, request_id, namespace))
    except FedbrokerError as exc:
        if not exc.audited:
            iam_api.audit(
                services,
                UserIdentity("Unknown"),
                meta,
                action or "Unknown",
                form,
                error=exc,
            )
        return _xml(
            xml.error(
                exc.code, exc.message, request_id, sender=exc.status < 500, namespace=namespace
            ),
            exc.status,
        )


def _read_body() -> bytes:
    limit = current_app.config["MAX_BODY_BYTES"]
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
    body = request.get_data(cache=False)
    if len(body) > limit:
        raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
    return body


def _parse_form(body: bytes) -> dict[str, str]:
    pairs = urllib.parse.parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True)
    if body:
        pairs += urllib.parse.parse_qsl(
            body.decode("utf-8", errors="replace"), keep_blank_values=True
        )
    return dict(pairs)
