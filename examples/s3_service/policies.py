"""Bucket policies: ``ROOT/<bucket>/policy.json``, parsed once per change of the file.

A policy file that does not parse fails closed: the bucket is denied to everyone until it is
fixed (the error is logged), never opened up.
"""

from __future__ import annotations

import logging
import threading

from examples.s3_service.storage import LocalDisk
from fedbroker.errors import FedbrokerError
from fedbroker.policy import Policy, PolicyKind, parse_policy

log = logging.getLogger("examples.s3_service")

DENY_ALL = (
    '{"Version":"2012-10-17","Statement":[{"Sid":"BrokenBucketPolicy","Effect":"Deny",'
    '"Principal":"*","Action":"*","Resource":"*"}]}'
)


def parse_bucket_policy(document: str, bucket: str) -> Policy:
    """Raises :class:`MalformedPolicyDocumentError` with IAM's message."""
    return parse_policy(document, PolicyKind.RESOURCE, f"bucket policy of {bucket}")


class BucketPolicies:
    """The current bucket policy of each bucket, compiled."""

    def __init__(self, disk: LocalDisk) -> None:
        self.disk = disk
        self._lock = threading.Lock()
        self._compiled: dict[str, tuple[tuple[int, int], Policy]] = {}

    def get(self, bucket: str) -> Policy | None:
        path = self.disk.policy_path(bucket)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        version = (stat.st_mtime_ns, stat.st_size)
        found = self._compiled.get(bucket)
        if found is not None and found[0] == version:
            return found[1]
        try:
            policy = parse_bucket_policy(path.read_text(), bucket)
        except FileNotFoundError:
            return None
        except (FedbrokerError, UnicodeDecodeError) as error:
            log.error("bucket policy of %s does not parse, denying everything: %s", bucket, error)
            policy = parse_policy(DENY_ALL, PolicyKind.RESOURCE, f"broken policy of {bucket}")
        with self._lock:
            self._compiled[bucket] = (version, policy)
        return policy
