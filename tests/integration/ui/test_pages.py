"""Every page of the UI run by Streamlit's AppTest against the real API and worker: what each
shows comes from the system (streams, predictions, history, labels, metrics), and an API error or
an unreachable API is a message on the page, never an exception."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.support.api import ADMIN_KEY
from tests.support.processes import ROOT, free_port, wait_for
from tests.support.ui import ACTS, System, drop_evidence, seed_evidence
from ui.text import md

Open = Callable[..., AppTest]
_TIMEOUT_S = 90  # one page run on a busy 2-core machine


def _clear_caches() -> None:
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def open_page(ui_system: System, monkeypatch: pytest.MonkeyPatch) -> Iterator[Open]:
    """`open_page("predict.py", stream="x")` runs the app on that page (query params as
    keywords) with the UI pointed at the test system and no key held by the server; with
    `key=K` the session has signed in with K first. The run raised nothing."""
    for k, v in ui_system.ui_settings().to_env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HARCLIP_UI__API_KEY")  # a test that wants one sets it
    _clear_caches()

    def run(page: str | None = None, key: str | None = None, **query: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=_TIMEOUT_S)
        at.query_params.update(query)
        if key is not None:
            at.session_state["harclip_api_key"] = key  # as the sidebar's Sign in sets it
        at.run()
        if page is not None:
            at.switch_page(f"views/{page}").run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield run
    _clear_caches()


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def _charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def test_live_grid_shows_each_stream_with_its_latest_prediction(
    open_page: Open, ui_system: System
) -> None:
    at = open_page()  # the default page
    assert at.title[0].value == "Live streams"
    with ui_system.client() as c:
        latest = c.latest("ui-seed")
    text = _markdown(at)
    assert "**ui-seed**" in text
    assert f"### {md(latest.label)} `{latest.score:.2f}`" in text
    assert f"seq {latest.seq}" in _captions(at)
    assert len(at.image) >= 1  # the latest frame
    with ui_system.client() as c:
        action = c.stream_action(ACTS)
    assert f"action: **{md(action.label)} for " in text  # the events app's current action
    assert not at.error


def test_stream_page_shows_frame_prediction_segments_and_scores(
    open_page: Open, ui_system: System
) -> None:
    at = open_page("stream.py", stream="ui-seed")
    assert at.selectbox[0].value == "ui-seed"
    with ui_system.client() as c:
        latest = c.latest("ui-seed")
    assert at.metric[0].value == latest.label
    # top-k bars, the Gantt of segments and the score history
    assert _charts(at) == 3
    assert [h.value for h in at.subheader] == [
        "Action segments",
        "Score history of the top labels",
    ]
    assert not at.error


def test_stream_segments_come_from_the_events_app(open_page: Open, ui_system: System) -> None:
    at = open_page("stream.py", stream=ACTS)
    with ui_system.client() as c:
        action = c.stream_action(ACTS)
        ends = c.events(stream_id=ACTS, type="segment.end").items
    assert f"current action: **{md(action.label)}** for " in _markdown(at)
    assert "Runs of the raw top label" not in _captions(at)  # segments of the events app
    assert len(ends) >= 1 and _charts(at) == 3
    assert not at.error and not at.warning


def test_events_tab_lists_segments_with_filters(open_page: Open, ui_system: System) -> None:
    at = open_page("search.py")
    at.text_input(key="ev-stream").set_value(ACTS)
    at.selectbox(key="ev-type").set_value("segment.end")
    next(b for b in at.button if b.label == "Filter").click()
    at.run()
    assert not at.exception and not at.error
    with ui_system.client() as c:
        ends = c.events(stream_id=ACTS, type="segment.end", size=200).items
    table = at.dataframe[-1].value
    assert list(table["type"]) == ["segment.end"] * len(ends)
    assert list(table["label"]) == [e.label for e in ends]
    assert set(table["stream"]) == {ACTS}


def test_rules_are_shown_and_published(open_page: Open, ui_system: System) -> None:
    at = open_page("labels.py", key=ADMIN_KEY)
    with ui_system.client() as c:
        label = c.labels().labels[0]
    area = next(a for a in at.text_area if a.label.startswith("rules"))
    area.set_value(
        f"- name: ui-test\n  label: {label}\n"
        "  min_score: 0.9\n  for_seconds: 2\n  severity: warning\n"
    )
    next(b for b in at.button if b.label.startswith("Publish rules")).click()
    at.run()
    assert not at.exception and not at.error
    assert at.success[0].value.startswith("published 1 rules")
    with ui_system.client() as c:
        doc = c.rules()
    assert doc.published and doc.rules[0]["name"] == "ui-test"
    at.run()
    assert "ui-test" in set(at.dataframe[-1].value["name"])
    # A rule the events app would refuse is the API's message, not a traceback.
    area = next(a for a in at.text_area if a.label.startswith("rules"))
    area.set_value("- name: broken\n  min_score: 7\n")
    next(b for b in at.button if b.label.startswith("Publish rules")).click()
    at.run()
    assert not at.exception
    assert any(e.value.startswith("publish rules: ") and "422" in e.value for e in at.error)


def test_predict_shows_each_file_and_the_error_of_a_corrupt_one(
    open_page: Open, ui_system: System
) -> None:
    at = open_page("predict.py")
    photos = ui_system.photos[:2]
    files = [(p.name, p.read_bytes(), "image/jpeg") for p in photos]
    files.insert(1, ("broken.jpg", b"\xff\xd8\xff not really a jpeg", "image/jpeg"))
    at.file_uploader[0].set_value(files)
    at.run()
    assert not at.exception
    with ui_system.client() as c:
        expected = [c.predict_from_image_path(p, top_k=5) for p in photos]
    text = _markdown(at)
    for p, r in zip(photos, expected, strict=True):
        assert f"**{md(p.name)}**" in text
        assert f"### {md(r.label)} `{r.score:.3f}`" in text
    assert len(at.error) == 1 and at.error[0].value.startswith(f"{md('broken.jpg')}: ")
    assert "invalid_image" in at.error[0].value or "unsupported" in at.error[0].value
    assert "engine onnx" in _captions(at) and "head v" in _captions(at)


def test_webcam_photo_goes_through_ingest_and_its_prediction_shows(
    open_page: Open, ui_system: System
) -> None:
    stream = f"ui-webcam-{uuid.uuid4().hex[:6]}"
    at = open_page("webcam.py", key=ADMIN_KEY)
    at.text_input(key="webcam-stream").set_value(stream)
    at.run()
    photo = ui_system.photos[3]
    at.camera_input[0].set_value(("shot.jpg", photo.read_bytes(), "image/jpeg"))
    at.run()
    assert not at.exception and not at.error
    sent = at.success[0].value
    assert sent.startswith(f"sent to {md(stream)}: frame ")
    frame_id = sent.split("frame ")[1].split(" ")[0]
    with ui_system.client() as c:
        wait_for("the webcam frame's prediction", lambda: c.latest(stream).frame_id == frame_id)
        latest = c.latest(stream)
    at.run()
    assert f"### {md(latest.label)} `{latest.score:.3f}`" in _markdown(at)
    assert len(at.image) >= 1  # the photo sent, as the prediction's thumbnail


def test_search_finds_history_and_similar_frames(open_page: Open, ui_system: System) -> None:
    at = open_page("search.py")
    at.text_input(key="search-q").set_value("a photo of a person riding a bike.")
    at.text_input(key="search-stream").set_value("ui-seed")
    at.button[0].click()  # the form's Search button
    at.run()
    assert not at.exception and not at.error
    assert any(c.startswith("12 hits for") or " hits for " in c for c in
               (x.value for x in at.caption))  # fmt: skip
    assert any("· ui-seed" in t.value for t in at.text)  # data as text, not markup
    # every hit is a keyframe with its thumbnail (the worker stores them): a picture each
    assert len(at.image) >= 1 and "no picture (" not in _captions(at)  # a search card's
    similar = [b for b in at.button if b.key and b.key.startswith("hit-0-")]
    similar[0].click()
    at.run()
    assert not at.error
    assert any(h.value.startswith("Similar to frame ") for h in at.subheader)


def test_labels_page_shows_the_set_and_publishes_a_new_one(
    open_page: Open, ui_system: System
) -> None:
    at = open_page("labels.py", key=ADMIN_KEY)
    with ui_system.client() as c:
        before = c.labels()
    assert f"head v{before.version}" in _captions(at)
    assert len(at.dataframe) >= 1
    area = at.text_area[0]
    assert area.value.splitlines()[0].startswith(before.labels[0])
    area.set_value(area.value + "\njuggling: a photo of a person juggling balls.")
    next(b for b in at.button if b.label.startswith("Publish label set")).click()
    at.run()
    assert not at.exception and not at.error
    with ui_system.client() as c:
        after = c.labels()
    assert after.version > before.version
    assert at.success[0].value.startswith(f"published head v{after.version} with ")
    assert after.labels == [*before.labels, "juggling"]
    assert after.prompts["juggling"] == ["a photo of a person juggling balls."]


def test_a_refused_write_is_a_message_not_a_traceback(open_page: Open) -> None:
    at = open_page("labels.py")
    at.session_state["harclip_api_key"] = "hk_not-a-key"  # as the sidebar field sets it
    at.run()
    next(b for b in at.button if b.label.startswith("Publish label set")).click()
    at.run()
    assert not at.exception
    assert any("publish labels: " in e.value and "401" in e.value for e in at.error)


def test_performance_reads_worker_and_api_metrics(open_page: Open, ui_system: System) -> None:
    at = open_page("performance.py")
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["predicted"].replace(",", "")) >= len(ui_system.photos)
    assert "consumer lag" in metrics and "requests/s" in metrics
    text = _markdown(at)
    for title in ("queue (capture → batch)", "infer (engine + head)", "end to end"):
        assert f"**{title}" in text
    assert "p50" in text and _charts(at) >= 3
    assert "HARCLIP_UI__REPORT" in _captions(at)


def test_performance_shows_a_training_report(
    open_page: Open, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "metrics.json").write_text(
        '{"title": "Evaluation on the test split", "n": 4, "accuracy": 0.75, "macro_f1": 0.7,'
        ' "top5_accuracy": 1.0, "classes": ["a", "b"], "confusion": [[2, 0], [1, 1]],'
        ' "per_class": {"a": {"recall": 1.0}, "b": {"recall": 0.5}}}'
    )
    monkeypatch.setenv("HARCLIP_UI__REPORT", str(tmp_path))
    at = open_page("performance.py")
    assert "Evaluation on the test split" in _captions(at)
    assert {m.label: m.value for m in at.metric}["accuracy"] == "0.750"
    assert "**Confusion matrix**" in _markdown(at)


def test_settings_say_where_the_ui_looks_and_never_show_the_key(
    open_page: Open, ui_system: System
) -> None:
    at = open_page("settings.py", key=ADMIN_KEY)
    table = at.dataframe[0].value
    assert ui_system.api_url in set(table["value"])
    assert "this browser session (signed in)" in set(table["value"])
    assert at.success[0].value.startswith("reachable: model ")
    assert ADMIN_KEY not in table.to_string() and ADMIN_KEY not in _markdown(at) + _captions(at)


def test_an_admin_key_held_by_the_server_acts_for_nobody(
    open_page: Open, ui_system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HARCLIP_UI__API_KEY set to an admin key (as the demo once did): the UI says it does not
    use it, and a visitor who has not signed in cannot change the labels with it."""
    monkeypatch.setenv("HARCLIP_UI__API_KEY", ADMIN_KEY)
    at = open_page("labels.py")
    assert any("may write (an admin key)" in w.value for w in at.warning)
    with ui_system.client() as c:
        before = c.labels()
    next(b for b in at.button if b.label.startswith("Publish label set")).click()
    at.run()
    assert not at.exception
    assert any("publish labels: " in e.value and "401" in e.value for e in at.error)
    with ui_system.client() as c:
        assert c.labels().version == before.version
    at = open_page("settings.py")
    assert "HARCLIP_UI__API_KEY (refused)" in set(at.dataframe[0].value["value"])


@pytest.mark.parametrize(
    "page",
    ["live.py", "stream.py", "predict.py", "webcam.py", "search.py", "labels.py", "settings.py"],
)
def test_an_unreachable_api_is_a_banner_on_every_page(
    open_page: Open, monkeypatch: pytest.MonkeyPatch, page: str
) -> None:
    monkeypatch.setenv("HARCLIP_UI__API_URL", f"http://127.0.0.1:{free_port()}")
    _clear_caches()
    at = open_page(page)
    assert at.error[0].value.startswith("**API unreachable.**")
    assert "make demo" in at.error[0].value


@pytest.mark.parametrize("page", [None, "stream.py", "predict.py", "labels.py", "settings.py"])
def test_random_weights_are_a_plain_text_warning_on_every_page(
    open_page: Open, page: str | None
) -> None:
    """The test system serves `init-model`'s random tiny CLIP: its manifest says so, the API's
    GET / passes it on, and every page says it in plain text (st.text, not Markdown)."""
    at = open_page(page)
    notes = [t.value for t in at.text if "Random weights" in t.value]
    assert len(notes) == 1, [t.value for t in at.text]
    assert "labels and scores mean nothing" in notes[0] and "make demo MODEL=" in notes[0]


def test_a_stream_id_with_markup_shows_as_text(open_page: Open, ui_system: System) -> None:
    """A valid stream id full of Markdown (an image link, a Streamlit colour) is shown as its
    characters on the live grid and the stream page, never rendered."""
    sid = f"ui-![x](https:evil.example\\p.png) :red[**INTRUDER-{uuid.uuid4().hex[:4]}**]"
    ui_system.ingest(sid, ui_system.photos[:1])
    at = open_page()
    at.text_input(key="live-filter").set_value(sid).run()
    assert not at.exception
    assert f"**{md(sid)}**" in _markdown(at)
    assert sid not in _markdown(at)  # only the escaped form reaches Markdown
    at = open_page("stream.py", stream=sid)
    assert at.selectbox[0].value == sid
    assert not at.exception and not at.error


def test_events_with_evidence_show_a_picture_and_play_the_clip(
    open_page: Open, ui_system: System, sample_videos: list[Path]
) -> None:
    stream = f"ui-evidence-{uuid.uuid4().hex[:6]}"
    clip = min(sample_videos, key=lambda p: p.stat().st_size).read_bytes()
    ev = asyncio.run(seed_evidence(ui_system.settings, stream, ui_system.photos[0], clip))
    at = open_page("search.py")
    at.text_input(key="ev-stream").set_value(stream)
    next(b for b in at.button if b.label == "Filter").click()
    at.run()
    assert not at.exception and not at.error
    assert list(at.dataframe[-1].value["evidence"]) == ["snapshot + clip"]
    assert len(at.image) == 1
    assert any(t.value.startswith(f"fighting on {stream}") for t in at.text)
    next(b for b in at.button if b.key == f"events-playing-{ev}").click()  # ui/evidence.cards
    at.run()
    assert not at.exception and not at.error
    assert len(at.get("video")) == 1
    asyncio.run(drop_evidence(ui_system.settings, stream))


def test_feedback_buttons_send_a_verdict_and_show_a_refusal_as_text(
    open_page: Open, ui_system: System
) -> None:
    at = open_page("stream.py", stream="ui-seed")  # no key: a write is refused
    next(b for b in at.button if b.label == "right").click()
    at.run()
    assert not at.exception
    assert any(e.value.startswith("feedback: ") and "401" in e.value for e in at.error)
    at = open_page("stream.py", key=ADMIN_KEY, stream="ui-seed")
    next(b for b in at.button if b.label == "right").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("thanks") for s in at.success)
    with ui_system.client() as c:
        assert c.feedback_counts(stream_id="ui-seed").correct >= 1
    # wrong → a new label, typed (one no other test of the session puts in the label set)
    new_label = f"juggling {uuid.uuid4().hex[:6]}"
    at = open_page("stream.py", key=ADMIN_KEY, stream="ui-seed")
    at.selectbox(key="fb-pick-latest-ui-seed").set_value("(a new label…)").run()
    at.text_input(key="fb-new-latest-ui-seed").set_value(new_label).run()
    at.button(key="fb-send-latest-ui-seed").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with ui_system.client() as c:
        mine = c.list_feedback(stream_id="ui-seed", label=new_label).items
    assert [(f.verdict, f.new_label) for f in mine] == [("wrong", True)]
    at = open_page("performance.py")
    assert "Online accuracy (feedback)" in [h.value for h in at.subheader]
    assert "agreement" in {m.label for m in at.metric}
