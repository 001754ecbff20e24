"""harclip.model.fetch against the real object store: a bundle uploaded under a unique bucket and
prefix comes back byte for byte and verified; a missing prefix names the cause."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harclip.io.objects import ObjectStore
from harclip.model.bundle import Bundle
from harclip.model.fetch import FetchError, fetch
from tests.support.scoped import Unique


async def _upload(store: ObjectStore, folder: Path, prefix: str) -> int:
    await store.start()
    try:
        files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
        for p in files:
            key = f"{prefix}/{p.relative_to(folder).as_posix()}"
            await store.put(key, p.read_bytes(), "application/octet-stream")
        return len(files)
    finally:
        await store.close()


def test_fetch_from_s3(unique: Unique, tiny_bundle: Path, tmp_path: Path) -> None:
    objects = unique.settings.objects
    n = asyncio.run(_upload(ObjectStore(objects), tiny_bundle, "models/harclip-har/7"))
    assert n > 3
    dest = tmp_path / "current"
    manifest = fetch(f"s3://{objects.bucket}/models/harclip-har/7", dest, unique.settings)
    assert manifest == Bundle.load(tiny_bundle).manifest
    for p in tiny_bundle.rglob("*"):
        if p.is_file():
            assert (dest / p.relative_to(tiny_bundle)).read_bytes() == p.read_bytes()

    with pytest.raises(FetchError, match="no objects under that prefix"):
        fetch(f"s3://{objects.bucket}/models/harclip-har/8", tmp_path / "other", unique.settings)
