"""Small S3 PutObject requests without boto3, for the worker's hot path (keyframe thumbnails).

boto3's `put_object` costs 1.5–2.2 ms of CPU per call on the 2-core development machine (request
building, event hooks, signing, a worker thread), more than the thumbnail it writes; the worker
writes one per keyframe, and its CPU is the engine's. `SignedPut` sends the same request
(path-style URL, AWS Signature Version 4 over the headers and the payload's SHA-256) from the
event loop over one aiohttp session: 0.65–0.85 ms (docs/benchmarks.md). Everything else of the
object store (buckets, reads, deletes, large objects, virtual-host addressing) stays with
`harclip.io.objects.ObjectStore`. Failures map like boto3's (`s3_fault`): no answer, a timeout,
a 5xx, 408, 429 or a throttling code is transient (`SinkUnavailable`); any other refusal is
permanent (`SinkRefused`), with the S3 error code and message.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import importlib.util
import os
import re
import ssl
from typing import Any
from urllib.parse import quote, urlsplit

from harclip.config import ObjectStoreSettings
from harclip.errors import ConfigError
from harclip.io.errors import Fault, mapped
from harclip.io.objects import _TRANSIENT_CODES

MAX_BYTES = 1 << 20  # larger objects go through boto3 (hashing them would hold the loop)
_ALGORITHM = "AWS4-HMAC-SHA256"
_XML_FIELD = re.compile(rb"<(Code|Message)>([^<]*)</\1>")


class S3Refusal(Exception):
    """An S3 error reply: HTTP status, S3 error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code or 'error'} (HTTP {status}): {message}")
        self.status, self.code, self.message = status, code, message


def _fault(e: BaseException) -> tuple[Fault, str] | None:
    import aiohttp

    if isinstance(e, S3Refusal):
        if e.code in _TRANSIENT_CODES or e.status >= 500 or e.status in (408, 429):
            return "transient", f"not now: {e.code} (HTTP {e.status})"
        return "permanent", f"refused: {e}"
    if isinstance(e, aiohttp.ClientError | OSError):  # refused, reset, timed out
        return "transient", repr(e)
    return None


put_errors = mapped("object store", _fault)


def sign_put(
    s: ObjectStoreSettings, key: str, data: bytes, content_type: str, now: datetime.datetime
) -> tuple[str, dict[str, str]]:
    """(URL, headers) of a path-style PutObject of `data` at `key`, signed (SigV4) at `now`."""
    parts = urlsplit(s.url)
    path = f"{parts.path.rstrip('/')}/{quote(s.bucket, safe='')}/{quote(key, safe='/~')}"
    stamp = now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    payload = hashlib.sha256(data).hexdigest()
    headers = {  # sorted by name, as the canonical request needs them
        "content-type": content_type,
        "host": parts.netloc,
        "x-amz-content-sha256": payload,
        "x-amz-date": stamp,
    }
    signed = ";".join(headers)
    canonical = "\n".join(
        ["PUT", path, "", *(f"{k}:{v}" for k, v in headers.items()), "", signed, payload]
    )
    scope = f"{day}/{s.region}/s3/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"{_ALGORITHM}\n{stamp}\n{scope}\n{digest}"
    k = ("AWS4" + s.secret_key.get_secret_value()).encode()
    for part in (day, s.region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"{_ALGORITHM} Credential={s.access_key}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )
    del headers["host"]  # the client sends it
    return f"{parts.scheme}://{parts.netloc}{path}", headers


class SignedPut:
    """PutObject of small objects into the bucket of `s` (path-style addressing only:
    `usable(s)`); `start()` opens the session (in the event loop), `close()` ends it."""

    def __init__(self, s: ObjectStoreSettings) -> None:
        self._s = s
        self._session: Any = None  # aiohttp.ClientSession

    @staticmethod
    def usable(s: ObjectStoreSettings) -> bool:
        """Path-style addressing and aiohttp installed (a dependency of harclip; an
        environment without it writes through boto3)."""
        return s.addressing == "path" and importlib.util.find_spec("aiohttp") is not None

    async def start(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=2 * self._s.request_timeout_s)
        self._session = aiohttp.ClientSession(
            timeout=timeout,
            skip_auto_headers=("User-Agent",),
            connector=aiohttp.TCPConnector(ssl=trust(self._s)),
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @put_errors("write")
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` (at most `MAX_BYTES`) at `key`, replacing any object there."""
        if self._session is None:
            raise RuntimeError("SignedPut used before start()")
        if len(data) > MAX_BYTES:
            raise ValueError(f"SignedPut is for objects up to {MAX_BYTES} bytes")
        url, headers = sign_put(
            self._s, key, data, content_type, datetime.datetime.now(datetime.UTC)
        )
        import yarl

        async with self._session.put(yarl.URL(url, encoded=True), data=data, headers=headers) as r:
            if r.status >= 300:
                raise _refusal(r.status, await r.read())
            await r.read()


def trust(s: ObjectStoreSettings) -> ssl.SSLContext | bool:
    """The TLS trust boto3 gives the rest of the object store, so both paths accept the same
    servers: `AWS_CA_BUNDLE` (a private CA's bundle, as boto3 reads it) when set, else the
    system's default verification; True for a plain-HTTP endpoint (nothing to verify)."""
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if not s.url.startswith("https:") or not bundle:
        return True
    try:
        return ssl.create_default_context(cafile=bundle)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"AWS_CA_BUNDLE={bundle!r}: not a readable CA bundle ({e})") from None


def _refusal(status: int, body: bytes) -> S3Refusal:
    fields = {m.group(1).decode(): m.group(2).decode(errors="replace") for m in
              _XML_FIELD.finditer(body[:4096])}  # fmt: skip
    return S3Refusal(status, fields.get("Code", ""), fields.get("Message", "")[:500])
