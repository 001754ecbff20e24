"""Fetch a model bundle into a folder and verify it: the `model-fetch` init container of every
worker and API pod (k8s/, docs/deploy.md "Models"), also `harclip model-fetch`.

`python -m harclip.model.fetch [SOURCE] [--dest DIR] [--expect-version V]`

SOURCE (default: the MODEL_URI environment variable) is one of
- `s3://BUCKET/PREFIX`: the objects under PREFIX in harclip's object store (`HARCLIP_OBJECTS__*`:
  endpoint, keys, region, addressing; any S3-compatible server), fetched in bounded ranges;
- `models:/NAME/VERSION`, `runs:/...` and other MLflow artifact URIs (needs `mlflow`, as in the
  training image; MLFLOW_TRACKING_URI);
- a local folder (or `file://` URI).

The bundle lands in a staging folder beside DEST (default HARCLIP_MODEL__BUNDLE), is verified
(`Bundle.load`: the manifest, every file it names, the tokenizer; `--expect-version` against
the manifest's version) and only then renamed to DEST, with a SOURCE file naming where it came
from; a failure exits non-zero with one line naming the cause and leaves DEST as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pydantic import ValidationError

from harclip.config import ObjectStoreSettings, Settings, load_settings
from harclip.errors import ModelError
from harclip.model.bundle import MANIFEST, Bundle, Manifest

MAX_FILES = 1000  # a bundle has about ten; more means the prefix is wrong
MAX_BYTES = 20 * 1024**3  # 20 GiB: the largest sensible bundle (ViT-L fp32 + TensorRT plans)
CHUNK = 64 * 1024**2  # bytes per ranged GET (bounded memory)
_HELP = "fetch a model bundle (S3, MLflow, folder), verify it, then move it into place"


class FetchError(Exception):
    """A bundle could not be fetched or is not valid; the message names the cause."""


def fetch(
    source: str, dest: Path, settings: Settings | None = None, expect_version: str | None = None
) -> Manifest:
    """Fetch `source` into `dest` (replacing it only once the new bundle is verified)."""
    source = source.strip()
    if not source:
        raise FetchError("no model source (set MODEL_URI, or pass SOURCE)")
    dest = dest.absolute()
    staging = dest.parent / f".{dest.name}.download"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        scheme = urlsplit(source).scheme
        if scheme == "s3":
            _from_s3(source, staging, (settings or load_settings()).objects)
            got = staging
        elif scheme in ("", "file"):
            folder = Path(urlsplit(source).path if scheme else source)
            if not folder.is_dir():
                raise FetchError(f"{source}: no such folder")
            got = staging / "bundle"
            shutil.copytree(folder, got)
        else:
            got = _from_mlflow(source, staging)
        root = next((p for p in (got, got / "bundle") if (p / MANIFEST).is_file()), None)
        if root is None:
            raise FetchError(f"{source} holds no {MANIFEST}")
        try:
            manifest = Bundle.load(root).manifest
        except ModelError as e:
            raise FetchError(f"{source} is not a valid bundle: {e}") from None
        if expect_version is not None and manifest.version != expect_version:
            raise FetchError(
                f"{source} holds version {manifest.version!r}, expected {expect_version!r}"
            )
        (root / "SOURCE").write_text(source + "\n")
        old = dest.parent / f".{dest.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            dest.rename(old)
        root.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _from_s3(source: str, into: Path, objects: ObjectStoreSettings) -> None:
    parts = urlsplit(source)
    bucket, prefix = parts.netloc, parts.path.lstrip("/")
    if not bucket:
        raise FetchError(f"{source}: expected s3://BUCKET/PREFIX")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    try:
        store_settings = ObjectStoreSettings.model_validate(
            objects.model_dump() | {"bucket": bucket}
        )
    except ValidationError as e:
        raise FetchError(f"{source}: bad bucket name {bucket!r}: {e.errors()[0]['msg']}") from None
    asyncio.run(_download(store_settings, prefix, into, source))


async def _download(settings: ObjectStoreSettings, prefix: str, into: Path, source: str) -> None:
    from harclip.io.objects import ObjectStore

    store = ObjectStore(settings)
    try:
        await store.start()
        found = await store.list(prefix)
        if not found:
            raise FetchError(f"{source}: no objects under that prefix")
        if len(found) > MAX_FILES:
            raise FetchError(f"{source}: {len(found)} objects (more than {MAX_FILES})")
        total = sum(o.size for o in found)
        if total > MAX_BYTES:
            raise FetchError(f"{source}: {total} bytes (more than {MAX_BYTES})")
        for info in found:
            rel = PurePosixPath(info.key[len(prefix) :])
            if not rel.parts or rel.is_absolute() or ".." in rel.parts:
                raise FetchError(f"{source}: object key {info.key!r} escapes the bundle folder")
            target = into.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as f:
                start = 0
                while start < info.size:
                    body = await store.get(info.key, start, min(start + CHUNK, info.size) - 1)
                    if body is None:
                        raise FetchError(f"{source}: {info.key} vanished while fetching")
                    f.write(body.data)
                    start += len(body.data)
    except FetchError:
        raise
    except Exception as e:  # the store's faults name the endpoint and the reason
        raise FetchError(f"{source}: {type(e).__name__}: {e}") from None
    finally:
        await store.close()


def _from_mlflow(source: str, into: Path) -> Path:
    try:
        import mlflow.artifacts  # the training image has it; the serving images do not
    except ImportError:
        raise FetchError(f"{source}: MLflow URIs need mlflow (the training image)") from None
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(into)))
    except Exception as e:  # MLflow raises many types (network, auth, not found)
        raise FetchError(f"cannot download {source}: {e}") from None


def configure(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("source", nargs="?", default=os.environ.get("MODEL_URI", ""),
                    help="s3://BUCKET/PREFIX, models:/NAME/VERSION, runs:/..., or a folder "
                    "(default: MODEL_URI)")  # fmt: skip
    ap.add_argument(
        "--dest",
        type=Path,
        default=Path(os.environ.get("HARCLIP_MODEL__BUNDLE", "/models/current")),
    )
    ap.add_argument(
        "--expect-version",
        default=os.environ.get("MODEL_VERSION") or None,
        help="fail unless the manifest's version is this (default: MODEL_VERSION)",
    )


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    try:
        m = fetch(args.source, args.dest, settings, expect_version=args.expect_version)
    except FetchError as e:
        print(f"model-fetch: {e}", file=sys.stderr)
        return 1
    print(f"model-fetch: {args.source} -> {args.dest} ({m.name} {m.version}, base {m.base_model})")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harclip.model.fetch", description=_HELP)
    configure(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
