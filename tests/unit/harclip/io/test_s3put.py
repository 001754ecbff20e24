"""The lean PutObject: its SigV4 signature is botocore's, and its failures map like boto3's."""

from __future__ import annotations

import asyncio
import datetime

import aiohttp
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from harclip.config import ObjectStoreSettings
from harclip.errors import SinkRefused, SinkUnavailable
from harclip.io.s3put import S3Refusal, SignedPut, _refusal, put_errors, sign_put

NOW = datetime.datetime(2026, 12, 7, 16, 5, 9, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://127.0.0.1:9000", "thumbs/cam-1/2026-12-07/0193a1b2c3d4.jpg"),
        ("https://s3.example.org", "thumbs/caméra 2+x/2026-12-07/a~b_c.jpg"),
    ],
)
def test_signature_is_botocores(monkeypatch: pytest.MonkeyPatch, url: str, key: str) -> None:
    s = ObjectStoreSettings(url=url, bucket="harclip-evidence", region="eu-west-3")
    data = b"\xff\xd8 a small jpeg \xff\xd9"
    got_url, headers = sign_put(s, key, data, "image/jpeg", NOW)

    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: NOW.replace(tzinfo=None))
    req = AWSRequest(method="PUT", url=got_url, data=data, headers={"Content-Type": "image/jpeg"})
    creds = Credentials(s.access_key, s.secret_key.get_secret_value())
    S3SigV4Auth(creds, "s3", s.region).add_auth(req)
    assert headers["authorization"] == req.headers["Authorization"]
    assert headers["x-amz-date"] == req.headers["X-Amz-Date"] == "20261207T160509Z"
    assert headers["x-amz-content-sha256"] == req.headers["X-Amz-Content-SHA256"]
    assert got_url.endswith("/harclip-evidence/" + key.replace(" ", "%20").replace("é", "%C3%A9")
                            .replace("+", "%2B"))  # fmt: skip


def test_only_path_style_stores() -> None:
    assert SignedPut.usable(ObjectStoreSettings(addressing="path"))
    assert not SignedPut.usable(ObjectStoreSettings(addressing="virtual"))


def test_error_reply_names_code_and_message() -> None:
    body = (b'<?xml version="1.0"?><Error><Code>AccessDenied</Code>'
            b"<Message>no &amp; no</Message></Error>")  # fmt: skip
    e = _refusal(403, body)
    assert (e.status, e.code, e.message) == (403, "AccessDenied", "no &amp; no")
    assert _refusal(500, b"oops").code == ""


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (S3Refusal(403, "AccessDenied", "no"), SinkRefused),
        (S3Refusal(400, "InvalidArgument", "bad"), SinkRefused),
        (S3Refusal(503, "SlowDown", "later"), SinkUnavailable),
        (S3Refusal(500, "", ""), SinkUnavailable),
        (S3Refusal(429, "", ""), SinkUnavailable),
        (S3Refusal(400, "RequestTimeout", "slow"), SinkUnavailable),
        (aiohttp.ServerDisconnectedError(), SinkUnavailable),
        (ConnectionRefusedError("refused"), SinkUnavailable),
        (TimeoutError(), SinkUnavailable),
    ],
)
def test_failures_map_like_boto3s(error: Exception, expected: type[Exception]) -> None:
    @put_errors("write")
    async def put() -> None:
        raise error

    with pytest.raises(expected, match="object store put"):
        asyncio.run(put())


def test_put_before_start_and_oversized() -> None:
    p = SignedPut(ObjectStoreSettings())
    with pytest.raises(RuntimeError, match="before start"):
        asyncio.run(p.put("k", b"x", "image/jpeg"))

    async def big() -> None:
        await p.start()
        try:
            await p.put("k", b"x" * (2 << 20), "image/jpeg")
        finally:
            await p.close()

    with pytest.raises(ValueError, match="up to"):
        asyncio.run(big())


def test_tls_trust_is_boto3s(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_CA_BUNDLE (a private CA, as boto3 reads it) is trusted by the lean path too; without
    it, or over plain HTTP, the default verification applies."""
    import ssl

    import certifi

    from harclip.errors import ConfigError
    from harclip.io.s3put import trust

    https = ObjectStoreSettings(url="https://s3.example:9000")
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    assert trust(https) is True and trust(ObjectStoreSettings()) is True
    monkeypatch.setenv("AWS_CA_BUNDLE", certifi.where())
    context = trust(https)
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert context.cert_store_stats()["x509_ca"] > 0
    assert trust(ObjectStoreSettings()) is True  # http: nothing to verify
    monkeypatch.setenv("AWS_CA_BUNDLE", "/nonexistent/ca.pem")
    with pytest.raises(ConfigError, match="AWS_CA_BUNDLE='/nonexistent/ca\\.pem': not a readable"):
        trust(https)  # at start, not on every put
