"""The Watches page against the real API, worker and events app (Streamlit's AppTest): it adds a
watch through the form, lists it, shows a refusal as a message and removes it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.support.api import ADMIN_KEY
from tests.support.processes import ROOT
from tests.support.ui import System

_TIMEOUT_S = 90


@pytest.fixture
def page(ui_system: System, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    for k, v in ui_system.ui_settings().to_env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HARCLIP_UI__API_KEY")
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=_TIMEOUT_S)
    at.session_state["harclip_api_key"] = ADMIN_KEY
    at.run()
    at.switch_page("views/watches.py").run()
    assert not at.exception, [e.value for e in at.exception]
    yield at
    with ui_system.client() as c:
        for w in c.list_watches().watches:
            c.delete_watch(w.spec.name)
    st.cache_resource.clear()
    st.cache_data.clear()


def _button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if label in b.label)


def test_add_list_refuse_and_remove_a_watch(page: AppTest, ui_system: System) -> None:
    at = page
    at.text_input[0].input("ui-climb")
    at.text_area[0].input("someone climbing a fence")
    at.text_area[3].input("ui-*")
    at.number_input[0].set_value(3)
    _button(at, "Publish watch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("published watch ui-climb v1" in s.value for s in at.success), at.error
    with ui_system.client() as c:
        spec = c.get_watch("ui-climb").spec
    assert spec.prompts == ["someone climbing a fence"] and spec.streams == ["ui-*"]
    assert spec.window == 3

    at.run()
    at.selectbox(key="watch-pick").set_value("(new watch)").run()
    at.text_input[0].input("ui-bad")
    at.text_area[0].input("x")
    at.number_input[1].set_value(-1.0)  # a negative false-alarm rate
    _button(at, "Publish watch").click().run()
    assert any("false\\_alarms\\_per\\_hour" in e.value for e in at.error), [
        e.value for e in at.error]  # fmt: skip

    at.run()
    _button(at, "Remove watch").click().run()
    assert any("removed ui-climb" in s.value for s in at.success), at.error
    with ui_system.client() as c:
        assert c.list_watches().watches == []
