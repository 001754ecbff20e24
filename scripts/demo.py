"""`make demo`: the streaming pipeline on this machine - a worker, the events app, a camera
producer, the API and the Streamlit UI against the local services, with a live terminal view of
the latest prediction and the current (smoothed) action per stream (from Redis). The API runs
with API keys on; the demo's admin key is made once into state/demo-api-key (printed: sign in to
the UI with it to write), and the UI holds only a read key (state/demo-read-key).

The camera is the webcam if /dev/video0 exists, else a video file (`--video`, default the shared
sample video), else a generated test pattern. The model bundle is a random tiny CLIP made once
into state/demo-bundle (the same code path real weights take). Stops on Ctrl-C or after
`--seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from harclip import events
from harclip.config import Settings, load_settings
from harclip.errors import HarclipError
from harclip.events import StreamAction
from harclip.io import store
from harclip.messages import Prediction

ROOT = Path(__file__).resolve().parents[1]
STREAM_ID = "demo-cam"
_REFRESH_S = 0.5
console = Console()


def ensure_bundle(state: Path) -> Path:
    """state/demo-bundle, made once (init-model tiny + export onnx) and reused."""
    bundle = state / "demo-bundle"
    if (bundle / "manifest.json").is_file():
        console.print(f"model bundle: {bundle} (cached)")
        return bundle
    model = state / "demo-model"
    harclip = [sys.executable, "-m", "harclip"]
    console.print("making the demo model bundle once (random tiny CLIP, ONNX) ...")
    if not (model / "config.json").is_file():
        subprocess.run([*harclip, "init-model", str(model), "--arch", "tiny"], check=True)
    subprocess.run([*harclip, "export", "--model", str(model), "--output", str(bundle),
                    "--format", "onnx"], check=True)  # fmt: skip
    return bundle


def pick_source(s: Settings, video: Path | None) -> tuple[str, str]:
    """(source argument, what it is) for the camera producer."""
    if Path("/dev/video0").exists():
        return "0", "webcam /dev/video0"
    candidates = [video] if video else []
    if s.sample_data is not None:
        candidates += sorted((s.sample_data / "video").glob("*.mp4"))
    for c in candidates:
        if c is not None and c.is_file():
            return str(c), f"video file {c} (looped; no webcam here)"
    return "pattern", "generated test pattern (no webcam, no video file)"


Row = tuple[str, Prediction | None, StreamAction | None]


def _action(a: StreamAction | None, p: Prediction | None) -> str:
    """The stream's current action from the events app, and for how long (capture time)."""
    if a is None:
        return "-"
    if a.state == "down":
        return "down"
    if a.label is None or a.since is None:
        return "starting"
    held = f" for {(p.captured_at - a.since) / 1000:.0f} s" if p is not None else ""
    return f"{a.label}{held}"


def table(rows: list[Row], elapsed_s: float) -> Table:
    t = Table(title=f"harclip demo - latest prediction and current action ({elapsed_s:.0f} s)")
    for col in ("stream", "seq", "label", "score", "action (smoothed)", "top 3",
                "latency ms (queue/infer/total)", "head"):  # fmt: skip
        t.add_column(col)
    for sid, p, a in rows:
        if p is None:
            t.add_row(sid, "-", "waiting", "", _action(a, p), "", "", "")
            continue
        top = ", ".join(f"{x.label} {x.score:.2f}" for x in p.top_k[:3])
        lat = p.latency_ms
        t.add_row(sid, str(p.seq), p.label, f"{p.score:.3f}", _action(a, p), top,
                  f"{lat.queue:.0f} / {lat.infer:.0f} / {lat.total:.0f}",
                  f"v{p.model.head_version}")  # fmt: skip
    return t


async def watch(s: Settings, seconds: float | None, procs: list[subprocess.Popen[bytes]]) -> int:
    """Show the latest predictions until Ctrl-C, `seconds`, or a child process exits."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    r = store.make_redis(s.redis)
    start = time.monotonic()
    seen = 0
    try:
        with Live(table([], 0), console=console, refresh_per_second=4) as live:
            while not stop.is_set():
                elapsed = time.monotonic() - start
                if seconds is not None and elapsed >= seconds:
                    break
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    name = cast(list[str], dead[0].args)[2]
                    console.print(f"[red]{name} exited with {dead[0].returncode}")
                    return 1
                streams = [sid for sid, _ in await store.list_streams(r, s.redis, limit=20)]
                rows: list[Row] = [
                    (sid, await store.read_latest(r, s.redis, sid),
                     await events.read_action(r, s.redis, sid))
                    for sid in streams
                ]  # fmt: skip
                seen = max(seen, max((p.seq + 1 for _, p, _ in rows if p), default=0))
                live.update(table(rows or [(STREAM_ID, None, None)], elapsed))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _REFRESH_S)
    finally:
        await r.aclose()
    console.print(f"predictions seen: {seen} on stream {STREAM_ID}")
    return 0 if seen else 1


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=out, stderr=out,
                            start_new_session=True, env=env)  # fmt: skip


def demo_key(state: Path, name: str = "demo-api-key") -> str:
    """A demo API key in `state/name` (the admin key by default): made once by
    `python -m api --generate-key`, then reused."""
    path = state / name
    if path.is_file():
        return path.read_text().strip()
    made = subprocess.run([sys.executable, "-m", "api", "--generate-key"], cwd=ROOT, check=True,
                          capture_output=True, text=True)  # fmt: skip
    key = made.stdout.strip()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def api_env(key: str, read_key: str) -> dict[str, str]:
    """The children's settings plus API keys on: the demo key as admin, the UI's as read."""
    return {**os.environ, "HARCLIP_AUTH__ENABLED": "true",
            "HARCLIP_AUTH__KEYS": json.dumps({key: "admin", read_key: "read"})}  # fmt: skip


def ui_env(api_url: str, key: str, s: Settings) -> dict[str, str]:
    """The UI's settings: the demo's API and its read key (never the admin key: the UI would
    act with it for every visitor), the worker's and events app's metrics."""
    return {
        **os.environ,
        "HARCLIP_UI__API_URL": api_url,
        "HARCLIP_UI__API_KEY": key,
        "HARCLIP_UI__WORKER_METRICS_URL": f"http://{s.metrics.host}:{s.metrics.port}/metrics",
        "HARCLIP_UI__EVENTS_METRICS_URL": f"http://{s.stream.host}:{s.stream.port}/metrics",
    }


def wait_api(url: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> bool:
    """True once GET /ready answers 200 (the model is loaded, Redis and Elasticsearch answer)."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/ready").status_code == 200:
                    return True
            time.sleep(0.25)  # polling a starting server; not a test
    return False


def stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (flush, commit, leave the group), then wait; SIGKILL only if one hangs."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__)
    ap.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    ap.add_argument("--video", type=Path, help="video file when there is no webcam")
    ap.add_argument("--fps", type=float, default=5.0)
    args = ap.parse_args(argv)
    try:
        s = load_settings()
        logs = s.services.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        bundle = ensure_bundle(s.services.state_dir)
        source, what = pick_source(s, args.video)
        console.print(f"camera source: {what}")
        worker = spawn(["-m", "consumers", "--bundle", str(bundle)], logs / "demo-worker.log")
        events_app = spawn(["-m", "stream"], logs / "demo-stream.log")
        camera_args = ["-m", "producers", "camera", "--source", source, "--stream-id", STREAM_ID,
                       "--fps", str(args.fps)]  # fmt: skip
        if source not in ("0", "pattern"):
            camera_args.append("--loop")
        camera = spawn(camera_args, logs / "demo-camera.log")
        key = demo_key(s.services.state_dir)
        read_key = demo_key(s.services.state_dir, "demo-read-key")
        api = spawn(["-m", "api", "--bundle", str(bundle)], logs / "demo-api.log",
                    api_env(key, read_key))  # fmt: skip
        url = f"http://{s.api.host}:{s.api.port}"
        ui = spawn(["-m", "ui"], logs / "demo-ui.log", ui_env(url, read_key, s))
        console.print(
            f"worker pid {worker.pid} (log {logs / 'demo-worker.log'}, metrics "
            f"http://{s.metrics.host}:{s.metrics.port}/metrics), camera pid {camera.pid}, "
            f"API pid {api.pid} (log {logs / 'demo-api.log'}), events app pid {events_app.pid} "
            f"(log {logs / 'demo-stream.log'}, metrics "
            f"http://{s.stream.host}:{s.stream.port}/metrics)"
        )
        ready = wait_api(url, 60.0, api)
        console.print(
            f"API {'ready' if ready else 'NOT ready (see its log)'}: {url}  docs: {url}/docs\n"
            f"UI (Streamlit): http://127.0.0.1:{s.ui.port}  (log {logs / 'demo-ui.log'})\n"
            f"API key (admin; sign in to the UI with it to change labels or rules, or to use "
            f"the webcam): {key}\n"
            f"  curl -H 'X-API-Key: {key}' {url}/streams/{STREAM_ID}/latest"
        )
        try:
            code = asyncio.run(watch(s, args.seconds, [worker, camera, api, events_app, ui]))
        finally:
            console.print("stopping UI, camera, API, worker and events app ...")
            stop_all([ui, camera, api, worker, events_app])
        return code
    except (HarclipError, subprocess.CalledProcessError) as e:
        console.print(f"[red]demo: error:[/red] {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
