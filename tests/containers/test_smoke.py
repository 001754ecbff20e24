"""The images run for real: the worker, API, events app and UI containers (Podman, host network)
against the services on this machine, a tiny random bundle mounted read-only. Frames sent by the
camera producer on the host go through the containerized worker; the predictions are read back
through the containerized API. Every name (topics, group, indices, keys, bucket, containers) is
unique to the run, and the containers are removed afterwards, passed or failed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from harclip.config import Settings
from harclip.messages import Prediction
from tests.support.processes import env_of, free_port, http_ok, run_python, wait_for
from tests.support.scoped import Unique

_START_S = 180.0  # a container's start on a busy 2-core machine (imports, model load)
_FRAMES = 12


@pytest.fixture(scope="session")
def bundle(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`init-model` tiny + `export` ONNX, readable by the images' user (uid 10001)."""
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.load import load_clip

    out = tmp_path_factory.mktemp("smoke-bundle") / "bundle"
    path = export_bundle(load_clip(tiny_model_dir), out, ExportOptions(formats=("onnx",))).path
    for d, _, files in os.walk(path):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    return path


@dataclass
class Pod:
    """The containers of one run (names unique to it) and how to reach them."""

    podman: list[str]
    suffix: str
    ports: dict[str, int] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    def run(self, role: str, image: str, env: dict[str, str], *args: str, mount: str = "") -> None:
        name = f"harclip-smoke-{role}-{self.suffix}"
        cmd = [*self.podman, "run", "--detach", "--name", name, "--network", "host"]
        if mount:
            cmd += ["--volume", mount]
        for k, v in sorted(env.items()):
            cmd += ["--env", f"{k}={v}"]
        subprocess.run([*cmd, image, *args], check=True, capture_output=True, timeout=120)
        self.names.append(name)

    def logs(self) -> str:
        out = []
        for name in self.names:
            r = subprocess.run([*self.podman, "logs", "--tail", "30", name],
                               capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
            out.append(f"--- {name}\n{r.stdout}{r.stderr}")
        return "\n".join(out)

    def wait_http(self, what: str, url: str) -> None:
        try:
            wait_for(what, lambda: http_ok(url), _START_S)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.logs()}") from None

    def remove(self) -> None:
        if self.names:
            subprocess.run([*self.podman, "rm", "--force", "--time", "10", *self.names],
                           capture_output=True, timeout=120, check=False)  # fmt: skip


def container_env(s: Settings, ports: dict[str, int]) -> dict[str, str]:
    """`s` for a container on the host network: this run's names and the host's services, the
    bundle at /models/current, ports of its own; the host's paths left out."""
    env = {k: v for k, v in s.to_env().items()
           if not k.startswith(("HARCLIP_SERVICES__", "HARCLIP_SAMPLE_DATA"))}  # fmt: skip
    api = f"http://127.0.0.1:{ports['api']}"
    return env | {
        "HARCLIP_MODEL__BUNDLE": "/models/current",
        "HARCLIP_STREAM__DATADIR": "/data/stream",
        "HARCLIP_API__PORT": str(ports["api"]),
        "HARCLIP_API__PUBLIC_URL": api,
        "HARCLIP_STREAM__PORT": str(ports["stream"]),
        "HARCLIP_UI__PORT": str(ports["ui"]),
        "HARCLIP_UI__API_URL": api,
        "HARCLIP_UI__WORKER_METRICS_URL": f"http://127.0.0.1:{ports['worker']}/metrics",
        "HARCLIP_UI__EVENTS_METRICS_URL": f"http://127.0.0.1:{ports['stream']}/metrics",
    }


@pytest.fixture
def pod(podman: list[str], image: dict[str, str], unique: Unique, bundle: Path) -> Iterator[Pod]:
    """The four containers started; each answers its health check (the API its /ready)."""
    p = Pod(podman, unique.suffix, {r: free_port() for r in ("worker", "api", "stream", "ui")})
    env = container_env(unique.settings, p.ports)
    model = f"{bundle}:/models/current:ro"
    metrics = {role: {"HARCLIP_METRICS__PORT": str(free_port())} for role in ("api", "stream")}
    try:
        p.run("worker", image["worker"], env | {"HARCLIP_METRICS__PORT": str(p.ports["worker"])},
              mount=model)  # fmt: skip
        p.run("api", image["api"], env | metrics["api"], mount=model)
        p.run("stream", image["stream"], env | metrics["stream"])
        p.run("ui", image["ui"], env, "streamlit", "run", "ui/app.py",
              f"--server.port={p.ports['ui']}", "--server.address=127.0.0.1",
              "--server.headless=true", "--browser.gatherUsageStats=false")  # fmt: skip
        p.wait_http("worker /health", f"http://127.0.0.1:{p.ports['worker']}/health")
        p.wait_http("API /ready", f"http://127.0.0.1:{p.ports['api']}/ready")
        p.wait_http("events app /health", f"http://127.0.0.1:{p.ports['stream']}/health")
        p.wait_http("UI /_stcore/health", f"http://127.0.0.1:{p.ports['ui']}/_stcore/health")
        yield p
    finally:
        p.remove()


def test_frames_go_through_the_worker_container_and_back_out_of_the_api_container(
    pod: Pod, unique: Unique
) -> None:
    stream = unique.name("smoke")
    sent = run_python(
        "producers", "camera", "--source", "pattern", "--stream-id", stream,
        "--fps", "10", "--max-frames", str(_FRAMES), env=env_of(unique.settings),
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr[-2000:]
    api = f"http://127.0.0.1:{pod.ports['api']}"

    def last() -> Prediction | None:
        r = httpx.get(f"{api}/streams/{stream}/latest", timeout=5)
        if r.status_code != 200:
            return None
        p = Prediction.model_validate_json(r.content)
        return p if p.seq == _FRAMES - 1 else None

    try:
        p = wait_for("the last frame's prediction through the API container", last, _START_S)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{pod.logs()}") from None
    assert p.stream_id == stream and p.top_k
    info = httpx.get(f"{api}/", timeout=5).json()
    assert info["random_weights"] is True  # the tiny bundle's manifest, as the UI shows it
    page = httpx.get(f"http://127.0.0.1:{pod.ports['ui']}/", timeout=10)
    assert page.status_code == 200 and "streamlit" in page.text.lower()
