"""Keyframe thumbnails go through the lean PutObject (`SignedPut`) where it is usable, else
through boto3 (`ObjectStore.put`); its failures keep the worker's policy: refused for good names
the frame, not now propagates (the flush is retried), and a written thumbnail is not written
again on a retry."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest

from consumers import thumbnails as mod
from consumers.thumbnails import Thumbnails, source
from harclip.config import ObjectStoreSettings
from harclip.errors import SinkRefused, SinkUnavailable
from producers.upload import image_jpeg


class _Store:
    def __init__(self, s: Any) -> None:
        self.puts: list[str] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        assert data[:2] == b"\xff\xd8" and content_type == "image/jpeg"
        self.puts.append(key)


class _Signed(_Store):
    fail: ClassVar[dict[str, Exception]] = {}

    @staticmethod
    def usable(s: ObjectStoreSettings) -> bool:
        return s.addressing == "path"

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        for part, error in self.fail.items():
            if part in key:
                raise error
        await super().put(key, data, content_type)


@pytest.fixture
def jpeg(sample_photos: list[Path]) -> bytes:
    return image_jpeg(sample_photos[0], 224, 40_000_000)


def _thumbs(monkeypatch: pytest.MonkeyPatch, addressing: str) -> Thumbnails:
    monkeypatch.setattr(mod, "ObjectStore", _Store)
    monkeypatch.setattr(mod, "SignedPut", _Signed)
    t = Thumbnails(ObjectStoreSettings(addressing=addressing), 40_000_000)  # type: ignore[arg-type]
    asyncio.run(t.start())
    return t


@pytest.mark.parametrize(("addressing", "lean"), [("path", True), ("virtual", False)])
def test_the_lean_put_where_usable(
    monkeypatch: pytest.MonkeyPatch, jpeg: bytes, addressing: str, lean: bool
) -> None:
    t = _thumbs(monkeypatch, addressing)
    srcs = [source("cam-1", 1_764_000_000_000 + i, f"f{i}", jpeg) for i in range(3)]
    assert asyncio.run(t.write(srcs)) == {}
    used = t._put if lean else t._store
    assert sorted(used.puts) == sorted(s.key for s in srcs)  # type: ignore[union-attr]
    assert (t._put is None) is not lean
    assert t.written == {s.frame_id: s.key for s in srcs}


def test_refused_names_the_frame_and_unavailable_propagates(
    monkeypatch: pytest.MonkeyPatch, jpeg: bytes
) -> None:
    t = _thumbs(monkeypatch, "path")
    srcs = [source("cam-1", 1_764_000_000_000, f"f{i}", jpeg) for i in range(3)]
    _Signed.fail = {"f1": SinkRefused("object store put: refused: AccessDenied (HTTP 403)")}
    try:
        refused = asyncio.run(t.write(srcs))
        assert list(refused) == ["f1"] and "AccessDenied" in refused["f1"]
        _Signed.fail = {"f2": SinkUnavailable("object store put: not now: SlowDown (HTTP 503)")}
        t.clear()
        t.written = {"f0": srcs[0].key}  # written by an earlier try of the same flush
        assert isinstance(t._put, _Signed)
        t._put.puts.clear()
        with pytest.raises(SinkUnavailable):
            asyncio.run(t.write(srcs))
        assert "f0" not in "".join(t._put.puts)  # not written twice
    finally:
        _Signed.fail = {}
