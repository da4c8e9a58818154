"""Which S3 operation a request is, and what it asks of the policy engine.

One function, :func:`parse`, serves both the Enforcer (as the route: action, resource, condition
keys, bucket policy) and the app (as its dispatch), so the two can never disagree about what a
request does. Path-style addressing only: ``/bucket/key``. Actions and ARNs are S3's ("Actions,
resources, and condition keys for Amazon S3"): ``arn:aws:s3:::bucket`` and
``arn:aws:s3:::bucket/key``; ``ListObjectsV2`` is ``s3:ListBucket`` with ``s3:prefix``,
``s3:delimiter`` and ``s3:max-keys``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl
from wsgiref.types import WSGIEnvironment

BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Query parameters that select another S3 API than the ones served here.
_SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption",
        "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "logging", "metrics",
        "notification", "object-lock", "ownershipControls", "partNumber", "publicAccessBlock",
        "replication", "requestPayment", "restore", "retention", "select", "session",
        "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning", "versions",
        "website",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Operation:
    """One S3 request: the operation, its bucket and key, and what the engine is asked."""

    name: str
    bucket: str = ""
    key: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return "s3:" + _ACTIONS.get(self.name, self.name)

    @property
    def resource(self) -> str:
        if not self.bucket:
            return "arn:aws:s3:::*"
        if self.key:
            return f"arn:aws:s3:::{self.bucket}/{self.key}"
        return f"arn:aws:s3:::{self.bucket}"

    @property
    def context(self) -> dict[str, object]:
        """S3's condition keys for this request."""
        if self.name not in ("ListObjectsV2", "ListObjects"):
            return {}
        keys: dict[str, object] = {"s3:prefix": self.params.get("prefix", "")}
        if "delimiter" in self.params:
            keys["s3:delimiter"] = self.params["delimiter"]
        if "max-keys" in self.params:
            keys["s3:max-keys"] = self.params["max-keys"]
        return keys


_ACTIONS = {
    "ListBuckets": "ListAllMyBuckets",
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "HeadBucket": "ListBucket",
    "HeadObject": "GetObject",
}


def parse(environ: WSGIEnvironment) -> Operation | None:
    """The operation of a path-style S3 request, or ``None`` for one this service does not
    serve (the app answers those ``NotImplemented`` without touching anything)."""
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    raw = str(environ.get("PATH_INFO", "/")).encode("latin-1").decode("utf-8", "replace")
    params = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
    names = {n for n in params if not n.lower().startswith("x-amz-") and n != "x-id"}
    if names & _SUBRESOURCES:
        return None
    bucket, _, key = raw.lstrip("/").partition("/")
    if not bucket:
        return Operation("ListBuckets") if method == "GET" else None
    if key:
        if environ.get("HTTP_X_AMZ_COPY_SOURCE"):
            return None  # CopyObject
        name = {
            "GET": "GetObject",
            "HEAD": "HeadObject",
            "PUT": "PutObject",
            "DELETE": "DeleteObject",
        }.get(method)
        return Operation(name, bucket, key, params) if name else None
    if "policy" in names:
        policy_ops = {
            "GET": "GetBucketPolicy",
            "PUT": "PutBucketPolicy",
            "DELETE": "DeleteBucketPolicy",
        }
        return Operation(policy_ops[method], bucket) if method in policy_ops else None
    if "location" in names:
        return Operation("GetBucketLocation", bucket) if method == "GET" else None
    if method == "GET":
        return Operation(
            "ListObjectsV2" if params.get("list-type") == "2" else "ListObjects", bucket, "", params
        )
    name = {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method)
    return Operation(name, bucket) if name else None
