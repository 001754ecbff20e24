"""The one S3 client of the project: evidence objects (snapshots, thumbnails, clips) in one bucket
of any S3-compatible store (`ObjectStoreSettings`), through boto3.

boto3 is synchronous; every call runs in a worker thread (`asyncio.to_thread`), so no event loop
waits on the network. Failures become harclip's errors through `object_errors` (harclip.io.errors'
table): writes (`start`, `put`, `delete`) raise `SinkUnavailable` / `SinkRefused`, reads (`head`,
`get`, `list`) `ReadUnavailable` / `ReadRefused`; a missing object is None, not an error.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harclip.config import ObjectStoreSettings
from harclip.errors import ReadRefused
from harclip.io.errors import Fault, mapped

_DELETE_BATCH = 1000  # DeleteObjects' limit per request
_HEAD_CONCURRENCY = 16  # heads in flight while counting what `delete` removes


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object: its key, size (bytes), content type and ETag (without quotes)."""

    key: str
    size: int
    content_type: str
    etag: str


@dataclass(frozen=True, slots=True)
class ObjectBody:
    """The bytes of an object, or of a byte range of it."""

    data: bytes
    content_type: str
    total_size: int  # of the whole object, bytes
    start: int  # inclusive byte range of `data` within the object (end = start - 1 when empty)
    end: int


class RangeNotSatisfiable(ReadRefused):
    """A byte range that starts at or past the object's end (HTTP 416)."""

    def __init__(self, key: str, start: int, total_size: int) -> None:
        super().__init__(
            f"object store get: range starting at byte {start} is past the end of {key!r} "
            f"({total_size} bytes)"
        )
        self.key = key
        self.start = start
        self.total_size = total_size  # for the 416 reply's `Content-Range: bytes */<size>`


# ---- error mapping -------------------------------------------------------------------------

# S3 error codes that mean "not now": throttling, a busy or briefly broken server
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled",
        "TooManyRequestsException", "RequestLimitExceeded", "ServiceUnavailable",
        "InternalError", "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
        "OperationAborted",
    }
)  # fmt: skip


def s3_fault(e: BaseException) -> tuple[Fault, str] | None:
    """boto3's failures: no answer, a timeout, a 5xx or throttling is transient; any other
    refusal (4xx: credentials, permissions, a bad request) is permanent."""
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as NoConnection

    if isinstance(e, ClientError):
        code, status = _code(e), _status(e)
        if code in _TRANSIENT_CODES or status >= 500 or status in (408, 429):
            return "transient", f"not now: {code} (HTTP {status})"
        return "permanent", f"refused: {code} (HTTP {status}): {_message(e)}"
    if isinstance(e, HTTPClientError | NoConnection | OSError):  # refused, reset, timed out
        return "transient", str(e)
    if isinstance(e, BotoCoreError):  # no credentials, bad parameters, bad endpoint
        return "permanent", str(e)
    return None


object_errors = mapped("object store", s3_fault)  # the one S3 error mapping


def _code(e: Any) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _status(e: Any) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _message(e: Any) -> str:
    return str(e.response.get("Error", {}).get("Message", "")) or str(e)


def _missing(e: BaseException) -> bool:
    """True for "no such object" (GetObject's NoSuchKey, HeadObject's bare 404)."""
    from botocore.exceptions import ClientError

    if not isinstance(e, ClientError):
        return False
    return _code(e) in ("NoSuchKey", "NotFound", "404") or _status(e) == 404


def _bad_range(e: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(e, ClientError) and (_code(e) == "InvalidRange" or _status(e) == 416)


def _info(key: str, size: Any, content_type: Any, etag: Any) -> ObjectInfo:
    return ObjectInfo(key, int(size or 0), str(content_type or ""), str(etag or "").strip('"'))


def _range_header(start: int, end: int | None) -> str | None:
    """The `Range` header for bytes `start`..`end` (inclusive; None: to the end)."""
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"bad byte range {start}..{end}: need 0 <= start <= end")
    if start == 0 and end is None:
        return None
    return f"bytes={start}-{'' if end is None else end}"


def _content_range(value: str, size: int) -> tuple[int, int, int]:
    """(start, end, total) from `Content-Range: bytes <start>-<end>/<total>`."""
    span, _, total = value.removeprefix("bytes ").partition("/")
    first, _, last = span.partition("-")
    return int(first), int(last), int(total) if total.isdigit() else size


# ---- the store -----------------------------------------------------------------------------


class ObjectStore:
    """One bucket of an S3-compatible store. `start()` connects (and creates the bucket);
    `close()` ends the connections. Keys come from `harclip.io.keys`."""

    def __init__(self, settings: ObjectStoreSettings) -> None:
        self._s = settings
        self._client: Any = None  # botocore's S3 client, thread-safe; made in start()

    @property
    def bucket(self) -> str:
        return self._s.bucket

    @object_errors("write")
    async def start(self) -> None:
        """Connect, and create the bucket unless it exists (idempotent)."""
        if self._client is None:
            self._client = await asyncio.to_thread(self._make_client)
        await asyncio.to_thread(self._ensure_bucket)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    @object_errors("write")
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` at `key`, replacing any object there (so a replay writes the same)."""
        await asyncio.to_thread(
            self._c.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
        )

    @object_errors("read")
    async def head(self, key: str) -> ObjectInfo | None:
        """The object's size, type and ETag; None when there is no such object."""
        return await asyncio.to_thread(self._head, key)

    @object_errors("read")
    async def get(self, key: str, start: int = 0, end: int | None = None) -> ObjectBody | None:
        """Bytes `start`..`end` (inclusive; None: to the end, clipped to the object's size) of
        the object; None when there is no such object. A `start` at or past the end raises
        `RangeNotSatisfiable` (HTTP 416)."""
        return await asyncio.to_thread(self._get, key, start, end)

    @object_errors("write")
    async def delete(self, keys: Sequence[str]) -> int:
        """Delete the objects at `keys` (missing ones are fine); how many of them existed."""
        keys = list(dict.fromkeys(keys))
        limit = asyncio.Semaphore(_HEAD_CONCURRENCY)

        async def exists(key: str) -> bool:
            async with limit:
                return await asyncio.to_thread(self._head, key) is not None

        found = await asyncio.gather(*(exists(k) for k in keys))
        for i in range(0, len(keys), _DELETE_BATCH):
            await asyncio.to_thread(self._delete_batch, keys[i : i + _DELETE_BATCH])
        return sum(found)

    @object_errors("read")
    async def list(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Every object whose key starts with `prefix` (all pages), by key. S3's listing does
        not carry content types: `content_type` is '' here (`head` has it)."""
        return await asyncio.to_thread(self._list, prefix)

    # ---- in a worker thread --------------------------------------------------------------

    @property
    def _c(self) -> Any:
        if self._client is None:
            raise RuntimeError("ObjectStore used before start()")
        return self._client

    def _make_client(self) -> Any:
        import boto3  # lazy: importing botocore takes a while
        from botocore.config import Config

        s = self._s
        config = Config(
            region_name=s.region,
            signature_version="s3v4",
            connect_timeout=s.request_timeout_s,
            read_timeout=s.request_timeout_s,
            retries={"mode": "standard", "total_max_attempts": 2},  # callers retry with backoff
            s3={"addressing_style": s.addressing},
            # S3-compatible servers differ in the newer default checksums; send them only where
            # the API requires one
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session()  # one per store: sessions are not thread-safe
        return session.client(
            "s3",
            endpoint_url=s.url,
            aws_access_key_id=s.access_key,
            aws_secret_access_key=s.secret_key.get_secret_value(),
            config=config,
        )

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self._c.head_bucket(Bucket=self.bucket)
            return
        except ClientError as e:
            if _status(e) != 404:
                raise
        try:
            if self._s.region == "us-east-1":
                self._c.create_bucket(Bucket=self.bucket)
            else:
                where = {"LocationConstraint": self._s.region}
                self._c.create_bucket(Bucket=self.bucket, CreateBucketConfiguration=where)
        except ClientError as e:  # another process created it meanwhile
            if _code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def _head(self, key: str) -> ObjectInfo | None:
        try:
            r = self._c.head_object(Bucket=self.bucket, Key=key)
        except Exception as e:
            if _missing(e):
                return None
            raise
        return _info(key, r.get("ContentLength"), r.get("ContentType"), r.get("ETag"))

    def _get(self, key: str, start: int, end: int | None) -> ObjectBody | None:
        header = _range_header(start, end)
        args = {"Bucket": self.bucket, "Key": key} | ({"Range": header} if header else {})
        try:
            r = self._c.get_object(**args)
        except Exception as e:
            if _missing(e):
                return None
            if _bad_range(e):
                info = self._head(key)
                if info is None:
                    return None
                raise RangeNotSatisfiable(key, start, info.size) from e
            raise
        with r["Body"] as body:
            data: bytes = body.read()
        content_type = str(r.get("ContentType") or "")
        if "ContentRange" in r:
            first, last, total = _content_range(str(r["ContentRange"]), len(data))
            return ObjectBody(data, content_type, total, first, last)
        return ObjectBody(data, content_type, len(data), 0, len(data) - 1)

    def _delete_batch(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        objects = [{"Key": k} for k in keys]
        r = self._c.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
        errors = r.get("Errors") or []
        if errors:
            from botocore.exceptions import ClientError

            first = errors[0]
            reply = {
                "Error": {"Code": first.get("Code", ""), "Message": first.get("Message", "")},
                "ResponseMetadata": {"HTTPStatusCode": 500 if _is_busy(first) else 400},
            }
            raise ClientError(reply, "DeleteObjects")

    def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        pages = self._c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [
            _info(o["Key"], o.get("Size"), "", o.get("ETag"))
            for page in pages
            for o in page.get("Contents", [])
        ]


def _is_busy(error: dict[str, Any]) -> bool:
    return str(error.get("Code", "")) in _TRANSIENT_CODES
