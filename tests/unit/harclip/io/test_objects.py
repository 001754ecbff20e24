"""The object store client's pure parts: error mapping, byte ranges, settings to client."""

from __future__ import annotations

import asyncio

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from harclip.config import ObjectStoreSettings
from harclip.errors import ReadRefused, ReadUnavailable, SinkRefused, SinkUnavailable
from harclip.io.objects import (
    ObjectStore,
    RangeNotSatisfiable,
    _content_range,
    _range_header,
    object_errors,
    s3_fault,
)


def _client_error(code: str, status: int) -> ClientError:
    reply = {
        "Error": {"Code": code, "Message": f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(reply, "PutObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ConnectionRefusedError("refused"),
        _client_error("SlowDown", 503),
        _client_error("InternalError", 500),
        _client_error("RequestTimeout", 400),  # S3 says 400, but it means "try again"
        _client_error("TooManyRequests", 429),
        _client_error("Whatever", 502),
    ],
)
def test_no_answer_timeouts_5xx_and_throttling_are_transient(error: BaseException) -> None:
    found = s3_fault(error)
    assert found is not None and found[0] == "transient"


@pytest.mark.parametrize(
    "error",
    [
        _client_error("AccessDenied", 403),
        _client_error("SignatureDoesNotMatch", 403),
        _client_error("InvalidBucketName", 400),
        _client_error("EntityTooLarge", 400),
        NoCredentialsError(),
        ParamValidationError(report="Key is missing"),
    ],
)
def test_refusals_are_permanent(error: BaseException) -> None:
    found = s3_fault(error)
    assert found is not None and found[0] == "permanent"


def test_other_exceptions_are_not_the_clients() -> None:
    assert s3_fault(ValueError("a bug")) is None


def test_writes_and_reads_map_to_their_errors() -> None:
    async def fail(e: BaseException) -> None:
        raise e

    write, read = object_errors("write")(fail), object_errors("read")(fail)
    with pytest.raises(SinkUnavailable, match="object store fail: not now: SlowDown"):
        asyncio.run(write(_client_error("SlowDown", 503)))
    with pytest.raises(SinkRefused, match="AccessDenied"):
        asyncio.run(write(_client_error("AccessDenied", 403)))
    with pytest.raises(ReadUnavailable):
        asyncio.run(read(EndpointConnectionError(endpoint_url="http://x")))
    with pytest.raises(ReadRefused):
        asyncio.run(read(_client_error("AccessDenied", 403)))
    # already harclip's: passes through unchanged (the API maps this one to 416)
    with pytest.raises(RangeNotSatisfiable) as info:
        asyncio.run(read(RangeNotSatisfiable("k", 10, 10)))
    assert (info.value.start, info.value.total_size) == (10, 10)
    assert isinstance(info.value, ReadRefused)


def test_range_header() -> None:
    assert _range_header(0, None) is None  # the whole object
    assert _range_header(0, 99) == "bytes=0-99"
    assert _range_header(5, None) == "bytes=5-"
    assert _range_header(5, 5) == "bytes=5-5"
    for start, end in ((-1, None), (5, 4)):
        with pytest.raises(ValueError, match="bad byte range"):
            _range_header(start, end)


def test_content_range() -> None:
    assert _content_range("bytes 2-5/10", 4) == (2, 5, 10)
    assert _content_range("bytes 2-5/*", 4) == (2, 5, 4)


def test_a_store_connects_nothing_until_started() -> None:
    store = ObjectStore(ObjectStoreSettings(url="http://127.0.0.1:1"))
    assert store.bucket == "harclip"
    with pytest.raises(RuntimeError, match="before start"):
        asyncio.run(store.put("k", b"", "text/plain"))
    asyncio.run(store.close())  # closing an unstarted store is fine
