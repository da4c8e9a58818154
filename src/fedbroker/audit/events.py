"""Audit events in CloudTrail's record shape ("CloudTrail record contents").

Secrets never enter an event: parameters named like secrets are replaced before the event is
built, and response elements are chosen by the caller to exclude them.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

SECRET_FIELDS = frozenset(
    {
        "password",
        "newpassword",
        "oldpassword",
        "secretaccesskey",
        "sessiontoken",
        "authenticationcode1",
        "authenticationcode2",
        "base32stringseed",
        "qrcodepng",
        "samlassertion",
        "webidentitytoken",
        "x-amz-security-token",
        "signature",
    }
)
REDACTED = "HIDDEN_DUE_TO_SECURITY_REASONS"
_ROTATION_CHECK = 1.0  # seconds between looks at the audit log's path (rotation)


def redact(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with every secret-looking field replaced (nested included)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key.lower().replace("_", "") in SECRET_FIELDS:
            out[key] = REDACTED
        elif isinstance(value, Mapping):
            out[key] = redact(value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class UserIdentity:
    type: str  # Root, IAMUser, AssumedRole, WebIdentityUser, SAMLUser, Unknown
    principal_id: str | None = None
    arn: str | None = None
    account_id: str | None = None
    access_key_id: str | None = None
    user_name: str | None = None
    invoked_by: str | None = None  # the tool or service that made the call on the identity's behalf
    # CloudTrail's sessionContext (sessionIssuer, attributes, sourceIdentity, ...) and
    # webIdFederationData, for calls made with temporary credentials.
    session_context: Mapping[str, Any] | None = None
    web_id_federation: Mapping[str, Any] | None = None
    identity_provider: str | None = None  # a SAMLUser's NameQualifier, a WebIdentityUser's provider

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "principalId": self.principal_id,
            "arn": self.arn,
            "accountId": self.account_id,
            "accessKeyId": self.access_key_id,
            "userName": self.user_name,
            "invokedBy": self.invoked_by,
            "sessionContext": dict(self.session_context) if self.session_context else None,
            "identityProvider": self.identity_provider,
        }
        if self.web_id_federation and out["sessionContext"] is not None:
            out["sessionContext"]["webIdFederationData"] = dict(self.web_id_federation)
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event_time: datetime
    event_source: str  # iam.amazonaws.com, sts.amazonaws.com
    event_name: str
    region: str
    source_ip: str
    user_agent: str
    user_identity: UserIdentity
    request_id: str
    request_parameters: Mapping[str, Any] = field(default_factory=dict)
    response_elements: Mapping[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    read_only: bool = False
    recipient_account_id: str | None = None
    additional: Mapping[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "eventVersion": "1.08",
            "userIdentity": self.user_identity.to_dict(),
            "eventTime": self.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": self.event_source,
            "eventName": self.event_name,
            "awsRegion": self.region,
            "sourceIPAddress": self.source_ip,
            "userAgent": self.user_agent,
            "requestParameters": redact(self.request_parameters),
            "responseElements": (
                redact(self.response_elements) if self.response_elements is not None else None
            ),
            "requestID": self.request_id,
            "eventID": str(uuid.uuid4()),
            "readOnly": self.read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": self.recipient_account_id,
        }
        if self.error_code is not None:
            record["errorCode"] = self.error_code
            record["errorMessage"] = self.error_message
        if self.additional:
            record["additionalEventData"] = dict(self.additional)
        return record


class AuditSink(Protocol):
    def emit(self, event: AuditEvent) -> None: ...


class JsonlAuditSink:
    """Appends one JSON record per line to a file opened ``O_APPEND``, never rewritten.

    The file stays open: each event is one ``write`` of one whole line, which the kernel
    appends atomically at the end even when several worker processes share the file. It is
    reopened in a new process (after a fork) and when the path no longer names the open file
    (the log was rotated or removed); the path is looked at once a second at most, so events
    go to the new file within a second of a rotation. Nothing is fsynced.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._inode: tuple[int, int] | None = None
        self._checked = 0.0  # time.monotonic() of the last look at the path

    def emit(self, event: AuditEvent) -> None:
        line = json.dumps(event.to_record(), separators=(",", ":"), default=str) + "\n"
        data = line.encode("utf-8")
        with self._lock:
            fd = self._current()
            written = os.write(fd, data)
            while written < len(data):  # a short write (full disk, signal): write the rest
                written += os.write(fd, data[written:])

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def _current(self) -> int:
        """The open descriptor of ``path``; called with the lock held."""
        fd = self._fd
        if fd is not None and self._pid == os.getpid():
            now = time.monotonic()
            if now < self._checked + _ROTATION_CHECK:
                return fd
            self._checked = now
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_dev, st.st_ino) == self._inode:
                return fd
            os.close(fd)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        st = os.fstat(fd)
        self._checked = time.monotonic()
        self._fd, self._pid, self._inode = fd, os.getpid(), (st.st_dev, st.st_ino)
        return fd


class MemoryAuditSink:
    """Keeps events in memory (tests, tools)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        self.events.append(event)
