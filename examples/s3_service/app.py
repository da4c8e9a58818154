"""The S3 service itself: a plain WSGI app over :class:`LocalDisk`, S3's XML shapes and errors.

It trusts the Enforcer in front of it (see :func:`examples.s3_service.create_app`) to have
authenticated and authorized each request; it only serves what :func:`operations.parse`
recognises and answers everything else ``NotImplemented``. Responses follow the Amazon S3 API
Reference: ``ListAllMyBucketsResult``, ``ListBucketResult`` (V1 and V2, with
``encoding-type=url``, which boto3 always asks for), object headers (``ETag``,
``Last-Modified``, ``Content-Type``, ``Content-Length``) and ``<Error>`` documents.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote_plus
from wsgiref.types import StartResponse, WSGIEnvironment
from xml.sax.saxutils import escape

from examples.s3_service.operations import BUCKET_NAME, Operation, parse
from examples.s3_service.policies import parse_bucket_policy
from examples.s3_service.storage import LocalDisk, StorageError
from fedbroker.clock import Clock
from fedbroker.credentials.check import CheckResult
from fedbroker.directory.ids import new_request_id
from fedbroker.errors import MalformedPolicyDocumentError

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_KEYS = 1000
Answer = tuple[int, list[tuple[str, str]], bytes]


def _xml(root: str, body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NAMESPACE}">{body}</{root}>'
    ).encode()


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _ok(body: bytes = b"", status: int = 200, **headers: str) -> Answer:
    pairs = [(name.replace("_", "-"), value) for name, value in headers.items()]
    if body:
        pairs.append(("Content-Type", "application/xml"))
    return status, pairs, body


class S3App:
    """A WSGI application serving path-style S3 requests from local disk."""

    def __init__(self, disk: LocalDisk, clock: Clock) -> None:
        self.disk = disk
        self.clock = clock
        self._handlers: dict[str, Callable[[Operation, WSGIEnvironment], Answer]] = {
            "ListBuckets": self.list_buckets,
            "CreateBucket": self.create_bucket,
            "HeadBucket": self.head_bucket,
            "DeleteBucket": self.delete_bucket,
            "GetBucketLocation": self.get_bucket_location,
            "ListObjectsV2": self.list_objects,
            "ListObjects": self.list_objects,
            "PutObject": self.put_object,
            "GetObject": self.get_object,
            "HeadObject": self.get_object,
            "DeleteObject": self.delete_object,
            "GetBucketPolicy": self.get_bucket_policy,
            "PutBucketPolicy": self.put_bucket_policy,
            "DeleteBucketPolicy": self.delete_bucket_policy,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = str(environ.get("fedbroker.request_id") or new_request_id())
        op = parse(environ)
        try:
            if op is None:
                raise StorageError(
                    "NotImplemented",
                    501,
                    "A header or query you provided implies functionality that is not implemented.",
                )
            status, headers, body = self._handlers[op.name](op, environ)
        except StorageError as error:
            fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in error.fields.items())
            status = error.status
            headers = [("Content-Type", "application/xml")]
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{error.code}</Code><Message>{escape(error.message)}</Message>"
                f"{fields}<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId>"
                "</Error>"
            ).encode()
        headers = [*headers, ("x-amz-request-id", request_id)]
        if not any(name.lower() == "content-length" for name, _ in headers):
            headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    # --- buckets --------------------------------------------------------------------------------

    def list_buckets(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        check = environ.get("fedbroker.check")
        owner = check.caller.account.id if isinstance(check, CheckResult) else ""
        buckets = "".join(
            f"<Bucket><Name>{b.name}</Name><CreationDate>{_time(b.created)}</CreationDate></Bucket>"
            for b in self.disk.buckets()
        )
        return _ok(
            _xml(
                "ListAllMyBucketsResult",
                f"<Owner><ID>{owner}</ID><DisplayName>{owner}</DisplayName></Owner>"
                f"<Buckets>{buckets}</Buckets>",
            )
        )

    def create_bucket(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        if not BUCKET_NAME.fullmatch(op.bucket) or ".." in op.bucket:
            raise StorageError(
                "InvalidBucketName", 400, "The specified bucket is not valid.", BucketName=op.bucket
            )
        self.disk.create_bucket(op.bucket, self.clock.now())
        return _ok(Location=f"/{op.bucket}")

    def head_bucket(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        self.disk.require(op.bucket)
        return _ok(x_amz_bucket_region="us-east-1")

    def delete_bucket(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        self.disk.delete_bucket(op.bucket)
        return _ok(status=204)

    def get_bucket_location(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        self.disk.require(op.bucket)
        return _ok(_xml("LocationConstraint", ""))

    def list_objects(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        """ListObjectsV2 (and V1): prefix, delimiter, max-keys, continuation, start-after."""
        params = op.params
        v2 = op.name == "ListObjectsV2"
        prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
        try:
            max_keys = min(MAX_KEYS, int(params.get("max-keys", MAX_KEYS)))
            if max_keys < 0:
                raise ValueError
        except ValueError:
            raise StorageError(
                "InvalidArgument", 400, "Provided max-keys not an integer or within integer range"
            ) from None
        token = params.get("continuation-token") if v2 else None
        after = params.get("start-after" if v2 else "marker", "")
        skip_prefix = ""
        if token:
            after, skip_prefix = _read_token(token)
        contents: list[str] = []
        prefixes: list[str] = []
        encode = _encoder(params.get("encoding-type"))
        last, truncated = "", False
        for key in self.disk.keys(op.bucket):
            if not key.startswith(prefix) or key.encode() <= after.encode():
                continue
            if skip_prefix and key.startswith(skip_prefix):
                continue
            common = ""
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if prefixes and prefixes[-1] == common:
                        continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            if common:
                prefixes.append(common)
                last, skip_prefix = common, common
            else:
                info = self.disk.info(op.bucket, key)
                contents.append(
                    f"<Contents><Key>{encode(key)}</Key>"
                    f"<LastModified>{_time(info.last_modified)}</LastModified>"
                    f'<ETag>"{info.etag}"</ETag><Size>{info.size}</Size>'
                    "<StorageClass>STANDARD</StorageClass></Contents>"
                )
                last = key
        parts = [
            f"<Name>{op.bucket}</Name><Prefix>{encode(prefix)}</Prefix>",
            f"<MaxKeys>{max_keys}</MaxKeys>",
        ]
        if delimiter:
            parts.append(f"<Delimiter>{encode(delimiter)}</Delimiter>")
        if params.get("encoding-type") == "url":
            parts.append("<EncodingType>url</EncodingType>")
        parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if v2:
            parts.append(f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>")
            if token:
                parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
            if params.get("start-after"):
                parts.append(f"<StartAfter>{encode(params['start-after'])}</StartAfter>")
            if truncated:
                next_token = _make_token(last, skip_prefix)
                parts.append(f"<NextContinuationToken>{next_token}</NextContinuationToken>")
        else:
            parts.append(f"<Marker>{encode(after)}</Marker>")
            if truncated and delimiter:
                parts.append(f"<NextMarker>{encode(last)}</NextMarker>")
        parts += contents
        parts += [
            f"<CommonPrefixes><Prefix>{encode(p)}</Prefix></CommonPrefixes>" for p in prefixes
        ]
        return _ok(_xml("ListBucketResult", "".join(parts)))

    # --- objects --------------------------------------------------------------------------------

    def put_object(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        stream: Any = environ["wsgi.input"]
        data = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
        _check_digests(environ, data)
        content_type = str(environ.get("CONTENT_TYPE") or "binary/octet-stream")
        etag = self.disk.put(op.bucket, op.key, data, content_type, self.clock.now())
        return _ok(ETag=f'"{etag}"')

    def get_object(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        info, data = self.disk.read(op.bucket, op.key)
        headers = [
            ("Content-Type", info.content_type),
            ("Content-Length", str(info.size)),
            ("ETag", f'"{info.etag}"'),
            ("Last-Modified", format_datetime(info.last_modified, usegmt=True)),
            ("Accept-Ranges", "bytes"),
        ]
        return 200, headers, data

    def delete_object(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        self.disk.delete(op.bucket, op.key)
        return _ok(status=204)

    # --- the bucket policy ----------------------------------------------------------------------

    def get_bucket_policy(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        path = self.disk.require(op.bucket) / "policy.json"
        if not path.is_file():
            raise StorageError(
                "NoSuchBucketPolicy", 404, "The bucket policy does not exist", BucketName=op.bucket
            )
        return 200, [("Content-Type", "application/json")], path.read_bytes()

    def put_bucket_policy(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        stream: Any = environ["wsgi.input"]
        data = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
        try:
            document = data.decode()
            json.loads(document)
            parse_bucket_policy(document, op.bucket)
        except (UnicodeDecodeError, ValueError):
            raise StorageError(
                "MalformedPolicy", 400, "Policies must be valid JSON and the first byte must be '{'"
            ) from None
        except MalformedPolicyDocumentError as error:
            raise StorageError("MalformedPolicy", 400, error.message) from None
        self.disk.put_policy(op.bucket, document)
        return _ok(status=204)

    def delete_bucket_policy(self, op: Operation, environ: WSGIEnvironment) -> Answer:
        self.disk.delete_policy(op.bucket)
        return _ok(status=204)


def _encoder(encoding: str | None) -> Callable[[str], str]:
    if encoding == "url":
        return lambda text: quote_plus(text, safe="/")
    return escape


def _make_token(after: str, skip_prefix: str) -> str:
    raw = json.dumps([after, skip_prefix]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _read_token(token: str) -> tuple[str, str]:
    try:
        after, skip = json.loads(base64.urlsafe_b64decode(token.encode()))
        if isinstance(after, str) and isinstance(skip, str):
            return after, skip
    except (ValueError, TypeError, binascii.Error):
        pass
    raise StorageError("InvalidArgument", 400, "The continuation token provided is incorrect")


def _check_digests(environ: WSGIEnvironment, data: bytes) -> None:
    """``Content-MD5`` and ``x-amz-checksum-crc32``, when the client sends them."""
    md5 = environ.get("HTTP_CONTENT_MD5")
    if md5 is not None:
        expected = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        if md5 != expected:
            raise StorageError(
                "BadDigest", 400, "The Content-MD5 you specified did not match what we received."
            )
    crc32 = environ.get("HTTP_X_AMZ_CHECKSUM_CRC32")
    if crc32 is not None:
        expected = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        if crc32 != expected:
            raise StorageError(
                "BadDigest",
                400,
                "The CRC32 you specified did not match the calculated checksum.",
            )
