"""``POST /authorize``: the check on use over HTTP (see :mod:`fedbroker.enforce.remote`).

This module only adapts: it reads the body (within ``AUTHORIZE_MAX_BODY_BYTES``), hands the
call to the :class:`~fedbroker.enforce.remote.RemoteAuthorizer` and renders its answer or
error as AWS JSON-protocol documents (``{"__type": code, "message": …}``).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, request

from fedbroker.credentials.sigv4 import HttpRequest
from fedbroker.directory.ids import new_request_id
from fedbroker.enforce.remote import CallMeta, RemoteAuthorizer
from fedbroker.errors import FedbrokerError, PayloadTooLargeError
from fedbroker.iam.context import Services

blueprint = Blueprint("authorize", __name__)
DEFAULT_MAX_BODY = 64 * 1024


def _json(body: dict[str, Any], status: int, request_id: str) -> Response:
    response = Response(json.dumps(body), status=status, content_type="application/json")
    response.headers["x-amzn-RequestId"] = request_id
    return response


@blueprint.route("/authorize", methods=["POST"])
def authorize() -> Response:
    services: Services = current_app.extensions["fedbroker.services"]
    authorizer: RemoteAuthorizer = current_app.extensions["fedbroker.authorizer"]
    meta = CallMeta(
        request_id=new_request_id(),
        source_ip=request.remote_addr or "unknown",
        user_agent=request.headers.get("User-Agent", "")[:256],
        secure_transport=request.scheme == "https",
    )
    now = services.clock.now()
    try:
        try:
            body = _read_body(current_app.config.get("AUTHORIZE_MAX_BODY_BYTES", DEFAULT_MAX_BODY))
        except PayloadTooLargeError as exc:
            authorizer.refused(meta, exc, now)
            raise
        call = HttpRequest(
            method=request.method,
            path=request.environ.get("RAW_URI", request.path).split("?", 1)[0] or "/",
            query=request.query_string.decode("latin-1"),
            headers=dict(request.headers),
            body=body,
        )
        answer = authorizer.handle(call, meta, now)
    except FedbrokerError as exc:
        response = _json({"__type": exc.code, "message": exc.message}, exc.status, meta.request_id)
        response.headers["x-amzn-ErrorType"] = exc.code
        return response
    return _json(answer, 200, meta.request_id)


def _read_body(limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
    return body
