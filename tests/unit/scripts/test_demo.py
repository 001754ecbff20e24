"""The demo's live table shows each stream's current action from the events app."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from harclip.errors import HarclipError
from harclip.messages import Prediction, StreamAction

_spec = importlib.util.spec_from_file_location(
    "demo", Path(__file__).resolve().parents[3] / "scripts" / "demo.py"
)
assert _spec is not None and _spec.loader is not None
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)


def _render(rows: list) -> str:  # type: ignore[type-arg]
    console = Console(width=200, record=True)
    console.print(demo.table(rows, 3.0))
    return console.export_text()


def test_the_table_shows_the_current_action_and_how_long_it_has_held() -> None:
    p = Prediction.model_validate({
        "frame_id": "f", "stream_id": "cam", "seq": 7, "captured_at": 15_000, "inferred_at": 0,
        "label": "running", "score": 0.9, "top_k": [{"label": "running", "score": 0.9}],
        "model": {"name": "m", "version": "1", "head_version": 2},
        "latency_ms": {"queue": 1, "infer": 2, "total": 3},
    })  # fmt: skip
    active = StreamAction(stream_id="cam", state="active", label="fighting", since=3_000,
                          event_id="x", updated_at=1)  # fmt: skip
    down = StreamAction(stream_id="gone", state="down", event_id="y", updated_at=1)
    text = _render([("cam", p, active), ("gone", None, down), ("new", None, None)])
    assert "fighting for 12 s" in text
    assert "down" in text and "waiting" in text


def test_the_demo_ui_holds_a_read_key_not_the_admin_key() -> None:
    from harclip.config import Settings

    api = demo.api_settings(Settings(), "hk_admin", "hk_read")
    assert api.auth.enabled
    assert {k: g.role for k, g in api.auth.grants().items()} == {"hk_admin": "admin",
                                                                 "hk_read": "read"}  # fmt: skip
    ui = demo.ui_settings(Settings(), "http://127.0.0.1:8000", "hk_read").to_env()
    assert ui["HARCLIP_UI__API_KEY"] == "hk_read" and "hk_admin" not in ui.values()


def _bundle(folder: Path, random_weights: bool | None) -> Path:
    """A folder with a minimal valid manifest.json (random_weights left out when None)."""
    doc: dict[str, object] = {
        "format": "harclip.bundle/1", "name": "m", "version": "1", "base_model": "org/base",
        "created_at": 1, "image_size": 224, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
        "embed_dim": 32, "context_length": 77, "engines": {"onnx": "encoder.onnx"},
        "text_encoder": "text_encoder.onnx", "tokenizer": "tokenizer", "head": "head.safetensors",
        "labels": "labels.json",
    }  # fmt: skip
    if random_weights is not None:
        doc["random_weights"] = random_weights
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_bytes(orjson.dumps(doc))
    return folder


def test_model_keys_name_hub_ids_and_folders_and_refuse_anything_else(tmp_path: Path) -> None:
    assert demo.model_key("openai/clip-vit-base-patch32") == "openai--clip-vit-base-patch32"
    folder = tmp_path / "my model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    key = demo.model_key(str(folder))
    assert key.startswith("folder-my-model-") and "/" not in key
    assert demo.model_key(str(folder)) == key  # the same folder, the same cache
    (folder / "model.safetensors").write_text("new weights")
    assert demo.model_key(str(folder)) != key  # a changed folder is exported again
    for bad in ("../x", "a/b/c", "no-such-folder", "org/..", "a b/c"):
        with pytest.raises(HarclipError, match="neither a model folder"):
            demo.model_key(bad)


def test_a_model_is_exported_once_then_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported: list[tuple[str, Path]] = []

    def fake_export(model: str, bundle: Path) -> None:
        exported.append((model, bundle))
        _bundle(bundle, False)

    monkeypatch.setattr(demo, "_export", fake_export)
    first = demo.choose_bundle(tmp_path, "openai/clip-vit-base-patch32", None)
    again = demo.choose_bundle(tmp_path, "openai/clip-vit-base-patch32", None)
    assert first == again == tmp_path / "demo-bundles" / "openai--clip-vit-base-patch32"
    assert exported == [("openai/clip-vit-base-patch32", first)]


def test_a_given_bundle_is_served_as_it_is_or_refused_with_why(tmp_path: Path) -> None:
    good = _bundle(tmp_path / "good", False)
    assert demo.choose_bundle(tmp_path / "state", None, good) == good
    with pytest.raises(HarclipError, match=r"BUNDLE=.*no manifest\.json"):
        demo.choose_bundle(tmp_path / "state", None, tmp_path / "empty")
    bad = _bundle(tmp_path / "bad", None)
    (bad / "manifest.json").write_text('{"format": "harclip.bundle/1"}')
    with pytest.raises(HarclipError, match="missing field 'name'"):
        demo.choose_bundle(tmp_path / "state", None, bad)


def test_model_and_bundle_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        demo.main(["--model", "org/m", "--bundle", "/tmp/b"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_banner_says_plainly_when_weights_are_random(tmp_path: Path) -> None:
    random = demo.banner(_bundle(tmp_path / "r", True))
    assert "RANDOM WEIGHTS" in random and "make demo MODEL=" in random
    assert "RANDOM" not in demo.banner(_bundle(tmp_path / "real", False))
    assert "RANDOM" not in demo.banner(_bundle(tmp_path / "old", None))
