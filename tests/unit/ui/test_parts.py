"""The UI's pure parts: label and rule editors, training reports, thumbnails, text, command."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ui import cli, frames, report, text
from ui.editors import parse_label_lines, parse_rules


def test_label_lines_with_and_without_prompts() -> None:
    names, prompts = parse_label_lines("cycling\n\n juggling : a person juggling. | juggler \n")
    assert names == ["cycling", "juggling"]
    assert prompts == {"juggling": ["a person juggling.", "juggler"]}


def test_rules_yaml_as_a_list_or_a_file() -> None:
    rule = {"name": "fight", "label": "fighting", "min_score": 0.6}
    assert parse_rules("- name: fight\n  label: fighting\n  min_score: 0.6\n") == [rule]
    assert parse_rules("rules:\n  - name: fight\n    label: fighting\n    min_score: 0.6\n") == [
        rule
    ]
    assert parse_rules("") == []
    for bad in ("a: [", "just text", "- 1\n- 2"):
        with pytest.raises(ValueError):
            parse_rules(bad)


def test_report_from_a_report_folder_and_from_a_bundle(tmp_path: Path) -> None:
    doc = {"title": "Evaluation", "n": 3, "accuracy": 2 / 3, "macro_f1": 0.5, "top5_accuracy": 1.0,
           "classes": ["a", "b"], "confusion": [[1, 0], [1, 1]],
           "per_class": {"a": {"recall": 1.0}, "b": {"recall": 0.5}}}  # fmt: skip
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    r = report.load(tmp_path)
    assert r.confusion == [[1, 0], [1, 1]] and r.recall == {"a": 1.0, "b": 0.5}
    assert r.headline["accuracy"] == pytest.approx(2 / 3)

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    manifest = {"name": "m", "metrics": {"eval": {"accuracy": 0.9, "n": 10}}}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    b = report.load(bundle)
    assert b.headline == {"accuracy": 0.9, "n": 10} and not b.confusion

    (bundle / "manifest.json").write_text(json.dumps({"name": "m", "metrics": {}}))
    with pytest.raises(ValueError, match="no evaluation report"):
        report.load(bundle)
    with pytest.raises(ValueError, match="no readable report"):
        report.load(tmp_path / "missing")


def test_thumbnails_are_small_jpegs_and_the_store_is_bounded() -> None:
    img = np.zeros((600, 900, 3), np.uint8)
    ok, jpeg = cv2.imencode(".jpg", img)
    assert ok
    thumb = frames.thumbnail(jpeg.tobytes())
    assert thumb is not None
    small = cv2.imdecode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_COLOR)
    assert small.shape[:2] == (160, 240)
    assert frames.thumbnail(b"not an image") is None
    store = frames.ThumbStore(capacity=2)
    for i in range(3):
        store.put(f"f{i}", jpeg.tobytes())
    assert len(store) == 2 and store.get("f0") is None and store.get("f2") is not None


def test_a_large_frame_is_decoded_reduced_and_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """An 8000×5000 JPEG (under every limit) on a live tile refreshed 5 times: one decode for
    its thumbnail and one for its view, each at a reduced scale, not two full decodes a time."""
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (500, 800, 3), np.uint8), (8000, 5000))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    big = buf.tobytes()
    flags: list[int] = []
    decode = cv2.imdecode

    def counting(data: np.ndarray, flag: int) -> np.ndarray | None:
        flags.append(flag)
        return decode(data, flag)

    monkeypatch.setattr(frames.cv2, "imdecode", counting)
    store = frames.ThumbStore()
    for _ in range(5):
        store.put("big", big)
        view = store.view("big", big)
    assert flags == [cv2.IMREAD_REDUCED_COLOR_8] * 2  # 1/8: 1000 px, enough for either
    thumb = store.get("big")
    assert thumb is not None and view is not None
    assert decode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (150, 240)
    assert decode(np.frombuffer(view, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (600, 960)


def test_times_read_for_people() -> None:
    assert text.duration(850) == "850 ms"
    assert text.duration(12_340) == "12.3 s"
    assert text.duration(245_000) == "4 min 05 s"
    assert text.duration(7_380_000) == "2 h 03 min"
    assert text.ago(1_000, now=3_500) == "2.5 s ago"
    assert text.when(0) == "1970-01-01 00:00:00.000"


def test_the_command_runs_the_app_headless_from_the_root() -> None:
    cmd = cli.streamlit_command(8502, "127.0.0.1")
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("ui/app.py")
    assert "--server.headless" in cmd and cmd[cmd.index("--server.port") + 1] == "8502"


def test_ui_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from harclip.config import load_settings
    from harclip.errors import ConfigError

    monkeypatch.setenv("HARCLIP_UI__API_URL", "http://api.example:8000")
    monkeypatch.setenv("HARCLIP_UI__API_KEY", "hk_secret")
    ui = load_settings().ui
    assert ui.api_url == "http://api.example:8000" and ui.port == 8501
    assert ui.api_key is not None and ui.api_key.get_secret_value() == "hk_secret"
    assert "hk_secret" not in repr(ui)  # a SecretStr: never printed
    monkeypatch.setenv("HARCLIP_UI__API_URL", "api.example:8000")
    with pytest.raises(ConfigError, match="HARCLIP_UI__API_URL"):
        load_settings()


HOSTILE = [
    "lobby-![x](https:evil.example\\p.png)",
    ":red[**INTRUDER**]",
    "<img src=x onerror=alert(1)>",
    "a `code` $x^2$ _em_ ~~del~~ [link](http://evil.example) www.evil.example a@b.example",
    "# heading\n- item\r\n> quote | table |",
    "&amp; &#58; \\*",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_data_in_markdown_renders_as_its_own_text(value: str) -> None:
    import html

    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").enable("strikethrough").render(f"**{text.md(value)}**")
    flat = value.replace("\r", " ").replace("\n", " ")  # a value stays on its line
    assert rendered == f"<p><strong>{html.escape(flat, quote=False)}</strong></p>\n"
    for directive in (":", "[", "$", "@", "."):  # Streamlit's colours, maths and autolinks
        assert f"\\{directive}" in text.md(directive)
