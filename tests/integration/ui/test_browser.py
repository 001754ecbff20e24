"""The UI in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright) on
`streamlit run ui/app.py`, with the real API and worker behind it. Every page opens with real
content; an uploaded photo's label appears; a search lists hits; a live tile follows frames sent
to its stream; a webcam photo (Chromium's fake camera) comes back predicted. A screenshot of each
page goes to state/ui-screenshots/ (git-ignored); the test prints where."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from harclip.services.child import Child
from tests.support.api import ADMIN_KEY
from tests.support.processes import ROOT, env_of, free_port
from tests.support.ui import ACTS, System, drop_evidence, seed_evidence
from ui.cli import streamlit_command

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "state" / "ui-screenshots"
_WAIT_MS = 60_000  # a page's content on a busy 2-core machine


@pytest.fixture(scope="session")
def ui_url(ui_system: System) -> Iterator[str]:
    """`streamlit run ui/app.py` on a free port, pointed at the test system, holding no key
    (a visitor signs in with theirs)."""
    port = free_port()
    env = env_of(ui_system.ui_settings())
    del env["HARCLIP_UI__API_KEY"]
    ui = Child(streamlit_command(port, "127.0.0.1"), cwd=ROOT, env=env, echo=sys.stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        ui.wait_ready(f"{url}/_stcore/health")
        yield url
    finally:
        ui.stop()


@pytest.fixture(scope="module")  # Playwright's sync API runs an event loop on this thread: it
def browser() -> Iterator[Browser]:  # must end with this module, before tests that asyncio.run
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} missing: `make test` installs Debian's chromium (apt)")
    expect.set_options(timeout=_WAIT_MS)  # assertions wait as long as actions
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream"],
        )  # fmt: skip
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # Tall: Streamlit scrolls inside its main block, so a screenshot shows the viewport only.
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    context.grant_permissions(["camera"])
    p = context.new_page()
    p.set_default_timeout(_WAIT_MS)
    yield p
    context.close()


def settle(page: Page) -> None:
    """Until no script run is in progress, no element is a placeholder, every image has loaded
    and every chart is drawn."""
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0)
    page.wait_for_function(
        "() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        " && Array.from(document.querySelectorAll('[data-testid=stVegaLiteChart]'))"
        "      .every(e => e.querySelector('svg.marks, canvas.marks'))"
    )


def shot(page: Page, name: str) -> Path:
    settle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _open(page: Page, url: str, title: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    page.wait_for_load_state("networkidle")


def _no_failure(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("API unreachable")).to_have_count(0)


def test_every_page_opens_with_real_content(page: Page, ui_url: str, ui_system: System) -> None:
    with ui_system.client() as c:
        latest = c.latest(ACTS)
        action = c.stream_action(ACTS)
        labels = c.labels()
    checks: list[tuple[str, str, str]] = [
        ("", "Live streams", "ui-seed"),  # the default page, at the root
        (f"stream?stream={ACTS}", "Stream", "Score history of the top labels"),
        ("predict", "Predict", "Predict URL"),
        ("webcam", "Webcam", "stream id"),
        ("search", "Search & events", "Search"),
        ("labels", "Labels & rules", f"· {len(labels.labels)} labels"),
        ("performance", "Performance", "Inference worker"),
        ("settings", "Settings", "reachable: model"),
    ]
    for path, title, content in checks:
        _open(page, f"{ui_url}/{path}", title)
        expect(page.get_by_text(content).first).to_be_visible()
        if path.startswith("stream"):
            expect(page.get_by_text(latest.label).first).to_be_visible()
            expect(page.get_by_text(f"current action: {action.label} for")).to_be_visible()
            expect(page.locator(".vega-embed")).to_have_count(3)  # top-k, Gantt, scores
        if path == "":
            expect(page.get_by_text(f"seq {latest.seq} ·").first).to_be_visible()
            expect(page.get_by_text(f"action: {action.label} for").first).to_be_visible()
        if path == "performance":  # rates need a second read: wait for the first refresh
            expect(page.get_by_test_id("stMetricValue").first).not_to_have_text("–")
        _no_failure(page)
        shot(page, path.split("?")[0] or "live")


def test_an_uploaded_photo_shows_its_label(page: Page, ui_url: str, ui_system: System) -> None:
    photo = ui_system.photos[5]
    with ui_system.client() as c:
        expected = c.predict_from_image_path(photo, top_k=5)
    _open(page, f"{ui_url}/predict", "Predict")
    page.locator("input[type=file]").set_input_files(str(photo))
    expect(page.get_by_text(photo.name)).to_be_visible()
    result = page.get_by_role("heading", name=f"{expected.label} {expected.score:.3f}")
    expect(result).to_be_visible()
    _no_failure(page)
    shot(page, "predict-result")


def _watch(page: Page, ui_url: str, system: System, stream: str, photos: list[Path]) -> None:
    """Open the Live page on `stream` and send `photos` to it, each once the tile shows the
    previous one (by its seq): the tile follows without a reload, and the UI keeps each frame's
    thumbnail."""
    _open(page, ui_url, "Live streams")
    page.get_by_label("filter").fill(stream)
    page.get_by_label("filter").press("Enter")
    expect(page.get_by_text("No streams yet")).to_be_visible()

    def shown(i: int) -> None:
        if i:
            expect(page.get_by_text(f"seq {i - 1} ·")).to_be_visible()

    system.ingest(stream, photos, before_each=shown)
    expect(page.get_by_text(stream, exact=True)).to_be_visible()
    expect(page.get_by_text(f"seq {len(photos) - 1} ·")).to_be_visible()


def test_a_live_tile_follows_frames_sent_to_its_stream(
    page: Page, ui_url: str, ui_system: System
) -> None:
    _watch(page, ui_url, ui_system, f"ui-live-{uuid.uuid4().hex[:6]}", ui_system.photos[:4])
    _no_failure(page)
    shot(page, "live-tile-updated")


def test_a_search_lists_hits_with_thumbnails(page: Page, ui_url: str, ui_system: System) -> None:
    stream = f"ui-find-{uuid.uuid4().hex[:6]}"
    _watch(page, ui_url, ui_system, stream, ui_system.photos[4:10])
    _open(page, f"{ui_url}/search", "Search & events")
    page.get_by_label("text").fill("a photo of a person riding a bike.")
    page.get_by_label("stream").first.fill(stream)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("hits for").first).to_be_visible()
    expect(page.get_by_text(f"· {stream}").first).to_be_visible()
    main = page.get_by_test_id("stMain")
    expect(main.locator("img").first).to_be_visible()  # frames this UI saw have pictures
    page.get_by_role("button", name="similar").first.click()
    expect(page.get_by_role("heading", name="Similar to frame")).to_be_visible()
    _no_failure(page)
    shot(page, "search-results")


def _take_photo(page: Page, attempts: int = 5) -> None:
    """Click "Take Photo" until the widget holds a photo ("Clear photo"): the camera component
    can still be getting ready after the video plays, and a click then takes nothing (no error,
    the button stays), as a person would see and click again."""
    taken = page.get_by_role("button", name="Clear photo")
    for _ in range(attempts):
        if taken.is_visible():  # the last click took one after all
            return
        page.get_by_role("button", name="Take Photo").click()
        try:
            expect(taken).to_be_visible(timeout=10_000)
            return
        except AssertionError:
            continue
    expect(taken).to_be_visible()


def test_a_webcam_photo_is_sent_and_predicted(page: Page, ui_url: str, ui_system: System) -> None:
    stream = f"ui-cam-{uuid.uuid4().hex[:6]}"
    _open(page, f"{ui_url}/webcam", "Webcam")
    page.get_by_label("API key", exact=True).fill(ADMIN_KEY)  # ingest needs an admin key
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.get_by_label("stream id").fill(stream)
    page.get_by_label("stream id").press("Enter")
    # the page has rerun with the new stream id before the photo is taken
    expect(page.get_by_role("heading", name=f"Predictions for {stream}")).to_be_visible()
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    # a click before the (fake) camera streams takes no photo
    page.wait_for_function(
        "() => { const v = document.querySelector('video');"
        " return v !== null && v.readyState >= 2 && v.videoWidth > 0; }"
    )
    _take_photo(page)
    expect(page.get_by_text(f"sent to {stream}")).to_be_visible()
    expect(page.get_by_text("end to end · head v")).to_be_visible()
    _no_failure(page)
    shot(page, "webcam-predicted")


def test_events_tab_lists_the_segments(page: Page, ui_url: str) -> None:
    _open(page, f"{ui_url}/search", "Search & events")
    page.get_by_role("tab", name="Events").click()
    page.get_by_label("stream").nth(1).fill(ACTS)
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("events, newest first")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    _no_failure(page)
    shot(page, "events")


def test_chromium_is_debians() -> None:
    """Playwright's own browser download cannot work offline: the tests use Debian's."""
    assert shutil.which("chromium") == CHROMIUM
    out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("Chromium ")


def test_plain_streamlit_run_stays_on_the_machine_and_has_no_deploy_button(
    page: Page, ui_system: System
) -> None:
    """`streamlit run ui/app.py`, as the README offers it (no flags), from the repository root:
    the project's .streamlit/config.toml keeps every request of the page on this machine (no
    usage statistics) and the toolbar without a Deploy button."""
    port = free_port()
    env = env_of(ui_system.ui_settings())
    command = [sys.executable, "-m", "streamlit", "run", "ui/app.py", "--server.port", str(port)]
    ui = Child(command, cwd=ROOT, env=env, echo=sys.stderr)
    url = f"http://127.0.0.1:{port}"
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(urlsplit(r.url).hostname or r.url))
    try:
        ui.wait_ready(f"{url}/_stcore/health")
        _open(page, url, "Live streams")
        settle(page)
        expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
        expect(page.get_by_test_id("stAppDeployButton")).to_have_count(0)
        assert hosts == {"127.0.0.1"}, hosts
    finally:
        ui.stop()


def test_an_event_shows_its_snapshot_and_its_clip_plays(
    page: Page, ui_url: str, ui_system: System, sample_videos: list[Path]
) -> None:
    stream = f"ui-clip-{uuid.uuid4().hex[:6]}"
    clip = min(sample_videos, key=lambda p: p.stat().st_size).read_bytes()  # H.264 MP4
    seed = seed_evidence(ui_system.settings, stream, ui_system.photos[0], clip)
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs on this thread
        pool.submit(asyncio.run, seed).result()
    _open(page, f"{ui_url}/search", "Search & events")
    page.get_by_role("tab", name="Events").click()
    page.get_by_label("stream").nth(1).fill(stream)
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("heading", name="Evidence")).to_be_visible()
    main = page.get_by_test_id("stMain")
    expect(main.locator("img").first).to_be_visible()  # the event's thumbnail
    # the seeded event is the oldest with evidence (the events app adds its own): the last card
    page.get_by_role("button", name="play clip").last.click()
    video = main.locator("video")
    expect(video).to_have_count(1)
    # Chromium decodes the clip and plays it: its time moves on
    page.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=stMain] video');"
        " if (v === null || v.readyState < 2) return false;"
        " v.muted = true; v.play(); return v.currentTime > 0 && v.videoWidth > 0; }"
    )
    _no_failure(page)
    shot(page, "event-clip")
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, drop_evidence(ui_system.settings, stream)).result()


def test_a_segment_on_the_stream_page_shows_its_snapshot_and_its_clip_plays(
    page: Page, ui_url: str, ui_system: System, sample_videos: list[Path]
) -> None:
    stream = f"ui-seg-{uuid.uuid4().hex[:6]}"
    clip = min(sample_videos, key=lambda p: p.stat().st_size).read_bytes()  # H.264 MP4
    seed = seed_evidence(ui_system.settings, stream, ui_system.photos[0], clip)
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs on this thread
        pool.submit(asyncio.run, seed).result()
    try:
        _open(page, f"{ui_url}/stream?stream={stream}", "Stream")
        expect(page.get_by_role("heading", name="Segment evidence")).to_be_visible()
        main = page.get_by_test_id("stMain")
        expect(main.locator("img").first).to_be_visible()  # the segment's thumbnail
        expect(page.get_by_text(f"fighting on {stream} · 2 s")).to_be_visible()
        page.get_by_text("refresh live").click()  # off: no rerun while the clip plays
        page.get_by_role("button", name="play clip").click()
        page.wait_for_function(
            "() => { const v = document.querySelector('[data-testid=stMain] video');"
            " if (v === null || v.readyState < 2) return false;"
            " v.muted = true; v.play(); return v.currentTime > 0 && v.videoWidth > 0; }"
        )
        _no_failure(page)
        shot(page, "segment-clip")
    finally:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, drop_evidence(ui_system.settings, stream)).result()
