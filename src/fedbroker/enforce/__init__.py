"""Enforcement for resource services: a WSGI middleware over the per-use check.

    from fedbroker.enforce import Enforcer, Route, open_local_checker, s3_error

    checker = open_local_checker(Path("/var/lib/fedbroker"))
    app = Enforcer(app, checker, route, renderer=s3_error)

Framework-free (WSGI only). The check itself is
:class:`fedbroker.credentials.check.RequestChecker`; services in other languages ask the
broker's ``POST /authorize`` instead.
"""

from fedbroker.credentials.check import CheckResult, RequestChecker
from fedbroker.enforce.errors import ErrorRenderer, Refusal, json_error, query_error, s3_error
from fedbroker.enforce.local import open_local_checker
from fedbroker.enforce.middleware import Enforcer, Route, raw_path, request_headers

__all__ = [
    "CheckResult",
    "Enforcer",
    "ErrorRenderer",
    "Refusal",
    "RequestChecker",
    "Route",
    "json_error",
    "open_local_checker",
    "query_error",
    "raw_path",
    "request_headers",
    "s3_error",
]
