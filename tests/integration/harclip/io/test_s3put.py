"""harclip.io.s3put against the real S3 server (`objects`): what `SignedPut` writes, boto3
reads back the same (bytes, content type, a key with spaces and non-ASCII); a wrong secret is
refused for good (`SinkRefused` naming the S3 code)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from harclip.config import Settings
from harclip.errors import SinkRefused
from harclip.io.objects import ObjectStore
from harclip.io.s3put import SignedPut


async def test_signed_put_reads_back(store: ObjectStore, prefix: str, settings: Settings) -> None:
    put = SignedPut(settings.objects)
    await put.start()
    try:
        for key, data in [("a.jpg", bytes(range(256)) * 20), ("cam é 2+x/b~c.jpg", b"x")]:
            await put.put(prefix + key, data, "image/jpeg")
            await put.put(prefix + key, data, "image/jpeg")  # a replay writes the same
            body = await store.get(prefix + key)
            assert body is not None
            assert (body.data, body.content_type) == (data, "image/jpeg")
    finally:
        await put.close()


async def test_wrong_secret_is_refused(prefix: str, settings: Settings) -> None:
    bad = settings.objects.model_copy(update={"secret_key": SecretStr("not-the-secret")})
    put = SignedPut(bad)
    await put.start()
    try:
        with pytest.raises(SinkRefused, match=r"SignatureDoesNotMatch|AccessDenied|HTTP 403"):
            await put.put(prefix + "x.jpg", b"x", "image/jpeg")
    finally:
        await put.close()
