"""`make demo`: the streaming pipeline on this machine - a worker, the events app, a camera
producer, the API and the Streamlit UI against the local services, with a live terminal view of
the latest prediction and the current (smoothed) action per stream (from Redis). The API runs
with API keys on; the demo's admin key is made once into state/demo-api-key (printed: sign in to
the UI with it to write), and the UI holds only a read key (state/demo-read-key).

The camera is the webcam if /dev/video0 exists, else a video file (`--video`, default the shared
sample video), else a generated test pattern. The model bundle is, by default, a random tiny CLIP
made once into state/demo-bundle (offline; the same code path real weights take): its labels
mean nothing, which the banner and every UI page say. `--model ID_OR_FOLDER` (`make demo
MODEL=...`) exports a hub model or a model folder once into state/demo-bundles/<key> and reuses
it; `--bundle FOLDER` (`make demo BUNDLE=...`) serves a bundle as it is. Stops on Ctrl-C or after
`--seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console
from rich.live import Live
from rich.table import Table

from harclip.clip.init import RANDOM_MARKER
from harclip.config import Settings, child_environ, load_settings
from harclip.errors import HarclipError, ServiceError
from harclip.io import events, store
from harclip.messages import Prediction, StreamAction
from harclip.model.bundle import MANIFEST, Manifest
from harclip.services.child import Child

ROOT = Path(__file__).resolve().parents[1]
STREAM_ID = "demo-cam"
_REFRESH_S = 0.5
console = Console()


_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def _export(model: str, bundle: Path) -> None:
    """`harclip export` of `model` into `bundle`, through a side folder renamed at the end, so an
    export that fails or is interrupted never leaves a bundle that the next run would reuse."""
    partial = bundle.with_name(bundle.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    subprocess.run([sys.executable, "-m", "harclip", "export", "--model", model,
                    "--output", str(partial), "--format", "onnx"], check=True)  # fmt: skip
    partial.rename(bundle)


def model_key(model: str) -> str:
    """The cache folder name of `--model`: a hub id as `org--name`; a folder as its name plus a
    hash of its absolute path and of its files' sizes and times (a changed folder is exported
    again). `HarclipError` for anything else."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        h = hashlib.sha256(str(folder).encode())
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name)[:60] or "model"
        return f"folder-{name}-{h.hexdigest()[:12]}"
    if _HUB_ID.fullmatch(model) and ".." not in model:
        return model.replace("/", "--")
    raise HarclipError(
        f"MODEL={model!r} is neither a model folder on this machine nor a hub id such as "
        "openai/clip-vit-base-patch32"
    )


def model_bundle(state: Path, model: str) -> Path:
    """state/demo-bundles/<model_key>: `model` exported once (ONNX), then reused."""
    bundle = state / "demo-bundles" / model_key(model)
    if (bundle / MANIFEST).is_file():
        console.print(f"model bundle: {bundle} (cached export of {model})")
        return bundle
    bundle.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"exporting {model} once into {bundle} (ONNX) ...")
    _export(model, bundle)
    return bundle


def given_bundle(folder: Path) -> Path:
    """`--bundle`: a folder holding a valid manifest.json, else `HarclipError` saying why."""
    if not (folder / MANIFEST).is_file():
        raise HarclipError(f"BUNDLE={folder}: no {MANIFEST} there (make one with harclip export)")
    Manifest.from_json((folder / MANIFEST).read_bytes(), str(folder / MANIFEST))
    console.print(f"model bundle: {folder} (given)")
    return folder


def choose_bundle(state: Path, model: str | None, bundle: Path | None) -> Path:
    """The bundle to serve: `--bundle`, else `--model`'s cached export, else the random tiny one."""
    if bundle is not None:
        return given_bundle(bundle)
    if model:
        return model_bundle(state, model)
    return ensure_bundle(state)


def banner(bundle: Path) -> str:
    """What the demo serves, and plainly whether its weights are random."""
    m = Manifest.from_json((bundle / MANIFEST).read_bytes(), str(bundle / MANIFEST))
    text = f"model: {m.name} {m.version} (base {m.base_model})"
    if m.random_weights:
        text += (
            "\nRANDOM WEIGHTS: this is a randomly initialised CLIP, so its labels and scores mean "
            "nothing. For real weights: make demo MODEL=openai/clip-vit-base-patch32 (or a model "
            "folder), or make demo BUNDLE=<bundle folder>."
        )
    return text


def ensure_bundle(state: Path) -> Path:
    """state/demo-bundle, made once (init-model tiny + export onnx) and reused; one exported
    before manifests said whether weights are random is made again."""
    bundle = state / "demo-bundle"
    if (bundle / MANIFEST).is_file():
        if b"random_weights" in (bundle / MANIFEST).read_bytes():
            console.print(f"model bundle: {bundle} (cached)")
            return bundle
        shutil.rmtree(bundle)
    model = state / "demo-model"
    harclip = [sys.executable, "-m", "harclip"]
    console.print("making the demo model bundle once (random tiny CLIP, ONNX) ...")
    if not (model / RANDOM_MARKER).is_file():  # also a folder made before the marker existed
        subprocess.run([*harclip, "init-model", str(model), "--arch", "tiny"], check=True)
    _export(str(model), bundle)
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


async def watch(s: Settings, seconds: float | None, procs: list[Child]) -> int:
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
                dead = [p for p in procs if p.returncode is not None]
                if dead:
                    console.print(f"[red]{dead[0].name} exited with {dead[0].returncode}")
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


def spawn(module: str, *args: str, log: Path, settings: Settings) -> Child:
    """`python -m module ARGS` reading exactly `settings`, its output appended to `log`; out of
    the terminal's session, so Ctrl-C reaches the demo, which stops it."""
    return Child.python(module, *args, env=child_environ(settings, os.environ), cwd=ROOT,
                        log=log, name=module, new_session=True)  # fmt: skip


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


def api_settings(s: Settings, key: str, read_key: str) -> Settings:
    """`s` with API keys on: the demo key as admin, the UI's as read."""
    return s.model_copy(update={"auth": s.auth.model_copy(
        update={"enabled": True, "keys": {key: "admin", read_key: "read"}})})  # fmt: skip


def ui_settings(s: Settings, api_url: str, key: str) -> Settings:
    """`s` for the UI: the demo's API and its read key (never the admin key: the UI would act
    with it for every visitor), the worker's and events app's metrics."""
    return s.model_copy(update={"ui": s.ui.model_copy(update={
        "api_url": api_url, "api_key": SecretStr(key),
        "worker_metrics_url": f"http://{s.metrics.host}:{s.metrics.port}/metrics",
        "events_metrics_url": f"http://{s.stream.host}:{s.stream.port}/metrics"})})  # fmt: skip


def wait_api(url: str, timeout_s: float, api: Child) -> bool:
    """True once GET /ready answers 200 (the model is loaded, Redis and Elasticsearch answer)."""
    try:
        api.wait_ready(f"{url}/ready", timeout_s)
    except ServiceError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__)
    ap.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    ap.add_argument("--video", type=Path, help="video file when there is no webcam")
    ap.add_argument("--fps", type=float, default=5.0)
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--model", help="hub id or model folder: exported once, cached, served "
                       "(default: a random tiny CLIP, offline)")  # fmt: skip
    which.add_argument("--bundle", type=Path, help="a model bundle folder to serve as it is")
    args = ap.parse_args(argv)
    try:
        s = load_settings()
        logs = s.services.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        bundle = choose_bundle(s.services.state_dir, args.model, args.bundle)
        console.print(banner(bundle), markup=False, highlight=False)
        source, what = pick_source(s, args.video)
        console.print(f"camera source: {what}")
        worker = spawn("consumers", "--bundle", str(bundle), log=logs / "demo-worker.log",
                       settings=s)  # fmt: skip
        events_app = spawn("stream", log=logs / "demo-stream.log", settings=s)
        camera_args = ["camera", "--source", source, "--stream-id", STREAM_ID,
                       "--fps", str(args.fps)]  # fmt: skip
        if source not in ("0", "pattern"):
            camera_args.append("--loop")
        camera = spawn("producers", *camera_args, log=logs / "demo-camera.log", settings=s)
        key = demo_key(s.services.state_dir)
        read_key = demo_key(s.services.state_dir, "demo-read-key")
        api = spawn("api", "--bundle", str(bundle), log=logs / "demo-api.log",
                    settings=api_settings(s, key, read_key))  # fmt: skip
        url = f"http://{s.api.host}:{s.api.port}"
        ui = spawn("ui", log=logs / "demo-ui.log", settings=ui_settings(s, url, read_key))
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
            for child in (ui, camera, api, worker, events_app):
                child.stop(60.0)  # SIGTERM (flush, commit, leave the group); SIGKILL if it hangs
        return code
    except (HarclipError, subprocess.CalledProcessError) as e:
        console.print(f"[red]demo: error:[/red] {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
