"""ONNX Runtime's intra-op spinning: `intra_op_spinning` reaches the session's options, None
leaves ORT's default, and the worker opens its engine with spinning off unless told otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumers.scoring import engine_settings
from harclip.config import ModelSettings
from harclip.engines import create_engine
from harclip.model.bundle import Bundle


@pytest.mark.parametrize(("spinning", "entry"), [(None, None), (True, "1"), (False, "0")])
def test_setting_reaches_the_session(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch, spinning: bool | None, entry: str | None
) -> None:
    import onnxruntime as ort

    seen: list[Any] = []
    real = ort.InferenceSession

    def spy(path: str, sess_options: Any = None, **kw: Any) -> Any:
        seen.append(sess_options)
        return real(path, sess_options=sess_options, **kw)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    s = ModelSettings(device="cpu", intra_op_spinning=spinning)
    engine = create_engine(Bundle.load(tiny_bundle), "onnx", s)
    engine.close()
    (options,) = seen
    key = "session.intra_op.allow_spinning"
    if entry is None:
        with pytest.raises(Exception):  # noqa: B017 - ORT raises its own error for a missing key
            options.get_session_config_entry(key)
    else:
        assert options.get_session_config_entry(key) == entry


def test_worker_turns_spinning_off_unless_told() -> None:
    assert engine_settings(ModelSettings()).intra_op_spinning is False
    assert engine_settings(ModelSettings(intra_op_spinning=True)).intra_op_spinning is True
    assert engine_settings(ModelSettings(intra_op_spinning=False)).intra_op_spinning is False
    assert engine_settings(ModelSettings()).top_k == ModelSettings().top_k
