"""The demo's live table shows each stream's current action from the events app."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rich.console import Console

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
