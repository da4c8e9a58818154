"""Buckets and objects on local disk.

``ROOT/<bucket>/`` is a bucket: ``bucket.json`` (its creation time), ``policy.json`` (its bucket
policy, optional), ``objects/`` and ``meta/``. An object is stored under its key percent-encoded
(``/`` too, so keys never become directories), prefixed with ``o`` so that keys like ``.`` and
``..`` stay plain file names; its metadata (ETag, size, content type, time) sits in ``meta/``.
Writes go to a temporary file first and are renamed into place, so a reader sees the old object
or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote

MAX_NAME = 255  # a file name, in bytes, on every common file system


class StorageError(Exception):
    """An S3 error: its code, HTTP status and message."""

    def __init__(self, code: str, status: int, message: str, **fields: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.fields = fields


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # hex MD5, without the quotes
    content_type: str
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    created: datetime


def _file_name(key: str) -> str:
    name = "o" + quote(key, safe="")
    if len(name.encode()) > MAX_NAME:
        raise StorageError("KeyTooLongError", 400, "Your key is too long", Key=key)
    return name


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalDisk:
    """S3's data model over a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def bucket_dir(self, bucket: str) -> Path:
        return self.root / bucket

    def exists(self, bucket: str) -> bool:
        return (self.root / bucket / "bucket.json").is_file()

    def require(self, bucket: str) -> Path:
        if not self.exists(bucket):
            raise StorageError(
                "NoSuchBucket", 404, "The specified bucket does not exist", BucketName=bucket
            )
        return self.root / bucket

    def buckets(self) -> list[BucketInfo]:
        found = []
        for entry in sorted(self.root.iterdir()):
            marker = entry / "bucket.json"
            if not entry.name.startswith(".") and marker.is_file():
                created = json.loads(marker.read_text())["created"]
                found.append(BucketInfo(entry.name, datetime.fromisoformat(created)))
        return found

    def create_bucket(self, bucket: str, now: datetime) -> None:
        path = self.root / bucket
        (path / "objects").mkdir(parents=True, exist_ok=True)
        (path / "meta").mkdir(exist_ok=True)
        try:
            fd = os.open(path / "bucket.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise StorageError(
                "BucketAlreadyOwnedByYou",
                409,
                "Your previous request to create the named bucket succeeded and you already "
                "own it.",
                BucketName=bucket,
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump({"created": now.isoformat()}, handle)

    def delete_bucket(self, bucket: str) -> None:
        path = self.require(bucket)
        if any((path / "objects").iterdir()):
            raise StorageError(
                "BucketNotEmpty",
                409,
                "The bucket you tried to delete is not empty",
                BucketName=bucket,
            )
        for name in ("bucket.json", "policy.json"):
            (path / name).unlink(missing_ok=True)
        (path / "objects").rmdir()
        (path / "meta").rmdir()
        path.rmdir()

    def put(self, bucket: str, key: str, data: bytes, content_type: str, now: datetime) -> str:
        path = self.require(bucket)
        name = _file_name(key)
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        meta = {
            "key": key,
            "etag": etag,
            "size": len(data),
            "content_type": content_type,
            "last_modified": now.isoformat(),
        }
        _atomic_write(path / "objects" / name, data)
        _atomic_write(path / "meta" / (name + ".json"), json.dumps(meta).encode())
        return etag

    def info(self, bucket: str, key: str) -> ObjectInfo:
        path = self.require(bucket)
        try:
            meta = json.loads((path / "meta" / (_file_name(key) + ".json")).read_text())
        except FileNotFoundError:
            raise StorageError(
                "NoSuchKey", 404, "The specified key does not exist.", Key=key
            ) from None
        return ObjectInfo(
            meta["key"],
            meta["size"],
            meta["etag"],
            meta["content_type"],
            datetime.fromisoformat(meta["last_modified"]),
        )

    def read(self, bucket: str, key: str) -> tuple[ObjectInfo, bytes]:
        info = self.info(bucket, key)
        try:
            data = (self.root / bucket / "objects" / _file_name(key)).read_bytes()
        except FileNotFoundError:
            raise StorageError(
                "NoSuchKey", 404, "The specified key does not exist.", Key=key
            ) from None
        return info, data

    def delete(self, bucket: str, key: str) -> None:
        path = self.require(bucket)
        name = _file_name(key)
        (path / "objects" / name).unlink(missing_ok=True)
        (path / "meta" / (name + ".json")).unlink(missing_ok=True)

    def keys(self, bucket: str) -> Iterator[str]:
        """Every key of the bucket, in S3's order (UTF-8 binary)."""
        path = self.require(bucket)
        names = [unquote(n[1:]) for n in os.listdir(path / "objects") if n.startswith("o")]
        yield from sorted(names, key=lambda k: k.encode())

    # --- the bucket policy ----------------------------------------------------------------------

    def policy_path(self, bucket: str) -> Path:
        return self.root / bucket / "policy.json"

    def put_policy(self, bucket: str, document: str) -> None:
        _atomic_write(self.require(bucket) / "policy.json", document.encode())

    def delete_policy(self, bucket: str) -> None:
        (self.require(bucket) / "policy.json").unlink(missing_ok=True)
