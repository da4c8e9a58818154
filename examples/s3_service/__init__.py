"""An S3-compatible resource service on local disk, protected by fedbroker's check on use.

    python -m examples.s3_service --broker-data-dir D [--database-url URL] --root DIR --port P

Every request goes through :class:`fedbroker.enforce.Enforcer`, which checks its SigV4
signature (with long-term keys or temporary credentials from the broker's STS) and decides
the S3 action on the S3 resource with the broker's policy engine: the caller's identity
policies, permissions boundary and session policies, and the bucket's policy. See README.md.
"""

from __future__ import annotations

from pathlib import Path
from wsgiref.types import WSGIApplication, WSGIEnvironment

from examples.s3_service.app import S3App
from examples.s3_service.operations import BUCKET_NAME, parse
from examples.s3_service.policies import BucketPolicies
from examples.s3_service.storage import LocalDisk
from fedbroker.audit.events import AuditSink, JsonlAuditSink
from fedbroker.clock import Clock, SystemClock
from fedbroker.credentials.check import RequestChecker
from fedbroker.enforce import Enforcer, Route, s3_error

MAX_OBJECT_BYTES = 64 * 1024 * 1024


def create_app(
    checker: RequestChecker,
    root: Path,
    *,
    clock: Clock | None = None,
    audit: AuditSink | None = None,
    account_id: str | None = None,
) -> WSGIApplication:
    """The protected service. ``account_id`` owns the buckets (default: every caller's own
    account, so requests are never cross-account); decisions are audited to ``audit``
    (default ``ROOT/.audit/events.jsonl``)."""
    the_clock = clock or SystemClock()
    disk = LocalDisk(root)
    policies = BucketPolicies(disk)

    def route(environ: WSGIEnvironment) -> Route | None:
        op = parse(environ)
        if op is None:
            return None
        policy = policies.get(op.bucket) if BUCKET_NAME.fullmatch(op.bucket) else None
        return Route(op.action, op.resource, op.context or None, policy)

    return Enforcer(
        S3App(disk, the_clock),
        checker,
        route,
        renderer=s3_error,
        clock=the_clock,
        max_body_bytes=MAX_OBJECT_BYTES,
        resource_account=account_id,
        audit=audit or JsonlAuditSink(root / ".audit" / "events.jsonl"),
        event_source="s3.amazonaws.com",
        # As S3: an unsigned request is anonymous, let in only by a bucket policy granting "*".
        allow_anonymous=True,
    )
