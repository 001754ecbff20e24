"""A model bundle on disk (docs/internals.md): manifest, engine files, text encoder, head.

`Bundle.load` validates the manifest and that every file it names exists, so a broken bundle
fails at start-up with a message naming the file or field, not at the first frame.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from harclip.errors import ModelError
from harclip.model.head import Head, atomic_write

if TYPE_CHECKING:
    from harclip.model.text import TextEncoder

BUNDLE_FORMAT = "harclip.bundle/1"
MANIFEST = "manifest.json"
EngineFiles = dict[str, str | dict[str, str]]  # name -> file, or tensorrt: precision -> file


@dataclass(frozen=True)
class Manifest:
    """The contents of `manifest.json`; file names are relative to the bundle folder."""

    name: str
    version: str
    base_model: str
    created_at: int  # ms since epoch, UTC
    image_size: int  # pixels, square
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embed_dim: int
    context_length: int
    engines: EngineFiles
    text_encoder: str = "text_encoder.onnx"
    tokenizer: str = "tokenizer"
    head: str = "head.safetensors"
    labels: str = "labels.json"
    metrics: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    # the encoder is a random initialisation (`harclip init-model`): its labels mean nothing;
    # bundles written before this field read as False
    random_weights: bool = False
    format: str = BUNDLE_FORMAT

    def to_json(self) -> bytes:
        doc = {"format": self.format} | asdict(self)
        doc["mean"], doc["std"] = list(self.mean), list(self.std)
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def from_json(cls, raw: bytes, where: str = MANIFEST) -> Manifest:
        """Parse and validate; `ModelError` naming the field that is missing or invalid."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise ModelError(f"{where} is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ModelError(f"{where} must hold a JSON object")
        if doc.get("format") != BUNDLE_FORMAT:
            raise ModelError(
                f"{where}: format must be {BUNDLE_FORMAT!r}, got {doc.get('format')!r}"
            )
        get = _Getter(doc, where)
        return cls(
            name=get.text("name"),
            version=get.text("version"),
            base_model=get.text("base_model"),
            created_at=get.integer("created_at", minimum=0),
            image_size=get.integer("image_size", minimum=1),
            mean=get.triple("mean"),
            std=get.triple("std", positive=True),
            embed_dim=get.integer("embed_dim", minimum=1),
            context_length=get.integer("context_length", minimum=3),
            engines=get.engines("engines"),
            text_encoder=get.text("text_encoder"),
            tokenizer=get.text("tokenizer"),
            head=get.text("head"),
            labels=get.text("labels"),
            metrics=get.obj("metrics"),
            validation=get.obj("validation"),
            random_weights=get.flag("random_weights"),
        )


class _Getter:
    """Typed field access on a manifest document with errors that name the field."""

    def __init__(self, doc: dict[str, Any], where: str) -> None:
        self.doc, self.where = doc, where

    def _fail(self, key: str, what: str) -> ModelError:
        if key not in self.doc:
            return ModelError(f"{self.where}: missing field {key!r}")
        return ModelError(f"{self.where}: field {key!r} must be {what}, got {self.doc[key]!r}")

    def text(self, key: str) -> str:
        v = self.doc.get(key)
        if not isinstance(v, str) or not v:
            raise self._fail(key, "a non-empty string")
        return v

    def integer(self, key: str, minimum: int) -> int:
        v = self.doc.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise self._fail(key, f"an integer >= {minimum}")
        return v

    def triple(self, key: str, positive: bool = False) -> tuple[float, float, float]:
        v = self.doc.get(key)
        ok = (
            isinstance(v, list)
            and len(v) == 3
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            and all(math.isfinite(x) and (x > 0 or not positive) for x in v)
        )
        if not ok:
            raise self._fail(key, "three " + ("positive " if positive else "") + "numbers")
        assert isinstance(v, list)
        return (float(v[0]), float(v[1]), float(v[2]))

    def flag(self, key: str, default: bool = False) -> bool:
        v = self.doc.get(key, default)
        if not isinstance(v, bool):
            raise self._fail(key, "true or false")
        return v

    def obj(self, key: str) -> dict[str, Any]:
        v = self.doc.get(key, {})
        if not isinstance(v, dict):
            raise self._fail(key, "a JSON object")
        return v

    def engines(self, key: str) -> EngineFiles:
        v = self.doc.get(key)
        if not isinstance(v, dict) or not v:
            raise self._fail(key, "a non-empty object of engine name -> file")
        for name, f in v.items():
            ok = (isinstance(f, str) and f) or (
                isinstance(f, dict) and f and all(isinstance(p, str) and p for p in f.values())
            )
            if not ok:
                raise ModelError(f"{self.where}: engines.{name} must name a file, got {f!r}")
        return v


class Bundle:
    """A validated bundle folder; engine files are opened by `harclip.engines.create_engine`."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def load(cls, path: Path | str) -> Bundle:
        """Read `path/manifest.json` and check every file it names; `ModelError` if not usable."""
        root = Path(path)
        if not root.is_dir():
            raise ModelError(
                f"model bundle {root} is not a folder; create one with "
                "`harclip export --model M --output BUNDLE`"
            )
        mpath = root / MANIFEST
        try:
            raw = mpath.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"{root} is not a model bundle: {MANIFEST} is missing") from None
        except OSError as e:
            raise ModelError(f"cannot read {mpath}: {e.strerror}") from None
        manifest = Manifest.from_json(raw, str(mpath))
        bundle = cls(root, manifest)
        for what, rel in bundle._named_files():
            if not (root / rel).exists():
                raise ModelError(f"model bundle {root}: {what} file {rel} is missing")
        tok = root / manifest.tokenizer / "tokenizer.json"
        if not tok.is_file():
            raise ModelError(
                f"model bundle {root}: tokenizer file {tok.relative_to(root)} is missing"
            )
        return bundle

    def _named_files(self) -> list[tuple[str, str]]:
        m = self.manifest
        files = [("text encoder", m.text_encoder), ("head", m.head), ("labels", m.labels)]
        for name, f in m.engines.items():
            if isinstance(f, str):
                files.append((f"engine {name!r}", f))
            else:
                files += [(f"engine {name!r} ({p})", pf) for p, pf in f.items()]
        return files

    @property
    def engine_names(self) -> tuple[str, ...]:
        return tuple(self.manifest.engines)

    def engine_file(self, name: str, precision: str | None = None) -> Path:
        """The file (or folder, for `torch`) of engine `name`; for engines exported per
        precision (tensorrt) the one of `precision`. `ModelError` if the bundle lacks it."""
        entry = self.manifest.engines.get(name)
        if entry is None:
            have = ", ".join(self.manifest.engines)
            raise ModelError(
                f"model bundle {self.path} has no {name!r} engine (it has: {have}); add it with "
                f"`harclip export --model M --output {self.path} --format {_format_of(name)}`"
            )
        if isinstance(entry, str):
            return self.path / entry
        if precision is None:
            if len(entry) != 1:
                raise ModelError(f"engine {name!r} needs a precision, one of {', '.join(entry)}")
            return self.path / next(iter(entry.values()))
        if precision not in entry:
            raise ModelError(
                f"model bundle {self.path} has no {name!r} engine for precision {precision!r} "
                f"(it has: {', '.join(entry)})"
            )
        return self.path / entry[precision]

    @property
    def head_paths(self) -> tuple[Path, Path]:
        return self.path / self.manifest.head, self.path / self.manifest.labels

    def load_head(self) -> Head:
        """The bundle's current head (`head.safetensors` + `labels.json`)."""
        head = Head.load(*self.head_paths)
        if head.embed_dim != self.manifest.embed_dim:
            raise ModelError(
                f"model bundle {self.path}: head is for {head.embed_dim}-d embeddings, "
                f"manifest says {self.manifest.embed_dim}"
            )
        return head

    def save_head(self, head: Head) -> None:
        """Replace the bundle's head; each file is written atomically (temp file + rename)."""
        if head.embed_dim != self.manifest.embed_dim:
            raise ModelError(
                f"head is for {head.embed_dim}-d embeddings, bundle {self.path} has "
                f"{self.manifest.embed_dim}"
            )
        head.save(*self.head_paths)

    def save_manifest(self, manifest: Manifest) -> None:
        """Replace manifest.json atomically."""
        atomic_write(self.path / MANIFEST, manifest.to_json())
        self.manifest = manifest

    def text_encoder(self, *, intra_op_threads: int = 0) -> TextEncoder:
        """The torch-free text tower of this bundle."""
        from harclip.model.text import TextEncoder

        return TextEncoder(
            self.path / self.manifest.text_encoder,
            self.path / self.manifest.tokenizer,
            context_length=self.manifest.context_length,
            intra_op_threads=intra_op_threads,
        )


def _format_of(engine: str) -> str:
    """The `harclip export --format` value that produces engine `engine`."""
    return {"onnx-int8": "int8"}.get(engine, engine)
