"""`harclip labels show|set`: new heads from new label sets, with torch never imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harclip.cli import main
from harclip.errors import MessageError
from harclip.model.bundle import Bundle
from harclip.model.relabel import load_label_set, validate_label_set


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def test_set_names_without_torch(bundle_copy: Path) -> None:
    before = Bundle.load(bundle_copy).load_head()
    script = textwrap.dedent(f"""
        import sys
        from harclip.cli import main
        code = main(["labels", "set", "--bundle", {str(bundle_copy)!r},
                     "--names", "juggling, using_laptop,skateboarding"])
        assert "torch" not in sys.modules, "torch was imported"
        assert "transformers" not in sys.modules, "transformers was imported"
        sys.exit(code)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    head = Bundle.load(bundle_copy).load_head()
    assert f"head version {head.version}" in proc.stdout
    assert head.labels == ("juggling", "using_laptop", "skateboarding")
    assert head.version > before.version and head.kind == "zero-shot"
    assert head.prompts["using_laptop"][0] == "a photo of a person using a laptop."
    assert head.logit_scale == pytest.approx(before.logit_scale)
    # the weights are the text encoder's class means, so an old class keeps its old column
    old = before.weight[:, before.labels.index("using_laptop")]
    np.testing.assert_allclose(head.weight[:, 1], old, atol=1e-5)


def test_set_from_yaml_and_json_files(bundle_copy: Path, tmp_path: Path) -> None:
    yml = tmp_path / "labels.yaml"
    yml.write_text("waving:\n  - a photo of a person waving.\n  - someone waving hello.\n"
                   "jumping: a photo of a person jumping.\n")  # fmt: skip
    assert main(["labels", "set", "--bundle", str(bundle_copy), "--file", str(yml)]) == 0
    head = Bundle.load(bundle_copy).load_head()
    assert head.labels == ("waving", "jumping") and len(head.prompts["waving"]) == 2
    js = tmp_path / "labels.json"
    js.write_text(json.dumps({"labels": ["a", "b"]}))
    assert main(["labels", "set", "--bundle", str(bundle_copy), "--file", str(js)]) == 0
    assert Bundle.load(bundle_copy).load_head().version > head.version


def test_show(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["labels", "show", "--bundle", str(bundle_copy), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["labels"]) == 15 and doc["kind"] == "zero-shot"
    assert main(["labels", "show", "--bundle", str(bundle_copy)]) == 0
    assert "using_laptop" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "invalid JSON"),
        ("{}", "label set is empty"),
        ('{"a": "x", "b": 5}', "non-empty list of prompts"),
        ('{"a": ["ok", ""]}', "prompts are 1-300 characters"),
        ("42", "expected {name"),
    ],
)
def test_bad_label_files(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "l.json"
    path.write_text(content)
    with pytest.raises(MessageError, match=match.replace("{", r"\{")):
        load_label_set(path)


def test_bad_label_set_via_cli_is_a_clear_error(
    bundle_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["labels", "set", "--bundle", str(bundle_copy), "--names", " , "]) == 2
    assert "label set is empty" in capsys.readouterr().err
    with pytest.raises(MessageError, match="appears twice"):
        validate_label_set({"a": ["x"], " a ": ["y"]})


def test_parse_label_set_forms() -> None:
    from harclip.labels import prompts_for
    from harclip.model.relabel import parse_label_set

    assert parse_label_set(["waving"]) == {"waving": prompts_for("waving")}
    assert parse_label_set({"a": ["p1"], "b": None}) == {"a": ["p1"], "b": prompts_for("b")}
    doc = {"version": 3, "labels": ["a", "b"], "prompts": {"a": ["p1"]}}
    assert parse_label_set(doc) == {"a": ["p1"], "b": prompts_for("b")}
    for bad in ([], {}, "a", [""], {"a": [1]}, [1]):
        with pytest.raises(MessageError):
            parse_label_set(bad)
