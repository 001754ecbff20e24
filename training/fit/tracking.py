"""Experiment tracking: MLflow and Weights & Biases side by side, each optional, rank 0 only.

MLflow writes to a local store by default (`sqlite:///mlruns/mlflow.db`, artifacts in
`mlruns/artifacts`; `mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db` shows it) or to a
tracking server given as `tracking.mlflow_uri`. W&B runs offline by default (no login; `wandb
sync` uploads later). A resumed run continues the same MLflow and W&B runs.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from training.config import TrackingConfig
from training.errors import TrackingError

DEFAULT_MLFLOW_DIR = Path("mlruns")


class Tracker(Protocol):
    name: str
    run_id: str

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def log_summary(self, metrics: Mapping[str, float]) -> None: ...
    def log_images(self, images: Sequence[Path], step: int) -> None: ...
    def log_artifacts(self, path: Path, name: str) -> None: ...
    def finish(self, ok: bool) -> None: ...


class Trackers:
    """Every enabled tracker behind one set of calls; empty on ranks other than 0."""

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = list(trackers)

    def ids(self) -> dict[str, str]:
        return {f"{t.name}_run_id": t.run_id for t in self.trackers}

    def log_params(self, params: Mapping[str, Any]) -> None:
        for t in self.trackers:
            t.log_params(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for t in self.trackers:
            t.log_metrics(metrics, step)

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        for t in self.trackers:
            t.log_summary(metrics)

    def log_images(self, images: Sequence[Path], step: int) -> None:
        for t in self.trackers:
            t.log_images(images, step)

    def log_artifacts(self, path: Path, name: str) -> None:
        for t in self.trackers:
            t.log_artifacts(path, name)

    def finish(self, ok: bool) -> None:
        for t in self.trackers:
            t.finish(ok)


def start_trackers(
    cfg: TrackingConfig,
    *,
    is_main: bool,
    output: Path,
    run_name: str,
    resume: Mapping[str, str],
    config: Mapping[str, Any],
) -> Trackers:
    """Start the enabled trackers on rank 0 (resuming the runs named in `resume`)."""
    if not is_main:
        return Trackers([])
    out: list[Tracker] = []
    try:
        if cfg.mlflow:
            out.append(MlflowTracker(cfg, run_name, resume.get("mlflow_run_id"), output))
        if cfg.wandb:
            out.append(WandbTracker(cfg, run_name, resume.get("wandb_run_id"), output, config))
    except BaseException:
        for t in out:
            t.finish(False)
        raise
    return Trackers(out)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} -> {"train.lr": 1}; lists become strings."""
    flat: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            flat |= flatten(v, key + ".")
        else:
            flat[key] = v if isinstance(v, int | float | str | bool) or v is None else str(v)
    return flat


def system_info() -> dict[str, str]:
    """Where the run ran: host, Python, torch, CUDA, cores."""
    import os

    import torch

    info = {
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": str(os.cpu_count()),
        "platform": platform.platform(),
        "cuda": str(torch.cuda.is_available()),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = str(torch.cuda.device_count())
    return info


def mlflow_uri(cfg: TrackingConfig) -> str:
    """The tracking URI: the configured one, or the local SQLite store under ./mlruns."""
    if cfg.mlflow_uri:
        return cfg.mlflow_uri
    DEFAULT_MLFLOW_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(DEFAULT_MLFLOW_DIR / 'mlflow.db').resolve()}"


def mlflow_experiment(cfg: TrackingConfig) -> str:
    """The experiment id of `cfg.experiment` (created, with its artifacts beside a local
    SQLite store, if missing)."""
    import mlflow

    uri = mlflow_uri(cfg)
    mlflow.set_tracking_uri(uri)
    try:
        exp = mlflow.get_experiment_by_name(cfg.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        if uri.startswith("sqlite:///"):
            location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        return str(mlflow.create_experiment(cfg.experiment, artifact_location=location))
    except mlflow.exceptions.MlflowException as e:
        raise TrackingError(f"MLflow at {uri}: {_first_line(e)}") from None


class MlflowTracker:
    name = "mlflow"

    def __init__(self, cfg: TrackingConfig, run_name: str, run_id: str | None, output: Path):
        import logging

        import mlflow

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        experiment = mlflow_experiment(cfg)
        self._mlflow = mlflow
        try:
            run = mlflow.start_run(
                run_id=run_id, experiment_id=None if run_id else experiment, run_name=run_name
            )
        except mlflow.exceptions.MlflowException as e:
            raise TrackingError(f"MLflow: cannot start the run: {_first_line(e)}") from None
        self.run_id = run.info.run_id
        mlflow.set_tags({f"system.{k}": v for k, v in system_info().items()}
                        | {"output": str(output.resolve())})  # fmt: skip

    def log_params(self, params: Mapping[str, Any]) -> None:
        flat = {k: ("" if v is None else str(v)[:500]) for k, v in flatten(params).items()}
        client = self._mlflow.tracking.MlflowClient()
        logged = client.get_run(self.run_id).data.params  # a resumed run has them already
        new = {k: v for k, v in flat.items() if k not in logged}
        if new:
            self._mlflow.log_params(new)
        self._mlflow.log_dict(dict(params), "config.json")

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()})

    def log_images(self, images: Sequence[Path], step: int) -> None:
        for p in images:
            self._mlflow.log_artifact(str(p), "plots")

    def log_artifacts(self, path: Path, name: str) -> None:
        if path.is_dir():
            self._mlflow.log_artifacts(str(path), name)
        else:
            self._mlflow.log_artifact(str(path), name)

    def finish(self, ok: bool) -> None:
        self._mlflow.end_run("FINISHED" if ok else "FAILED")


class WandbTracker:
    name = "wandb"

    def __init__(
        self,
        cfg: TrackingConfig,
        run_name: str,
        run_id: str | None,
        output: Path,
        config: Mapping[str, Any],
    ) -> None:
        import wandb

        self._wandb = wandb
        try:
            self._run = wandb.init(
                project=cfg.wandb_project,
                name=run_name,
                id=run_id,
                resume="allow" if run_id else None,
                mode=cfg.wandb_mode,
                dir=str(output),
                config=dict(config),
                settings=wandb.Settings(silent=True, console="off", x_disable_stats=False),
            )
        except Exception as e:  # wandb raises its own error types (CommError, UsageError...)
            raise TrackingError(f"W&B: cannot start the run: {_first_line(e)}") from None
        self.run_id = str(self._run.id)
        self._run.config.update(  # type: ignore[no-untyped-call]
            {"system": system_info()}, allow_val_change=True
        )

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._run.config.update(dict(params), allow_val_change=True)  # type: ignore[no-untyped-call]

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._run.log({k: float(v) for k, v in metrics.items()}, step=step)

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        for k, v in metrics.items():
            self._run.summary[k] = float(v)

    def log_images(self, images: Sequence[Path], step: int) -> None:
        self._run.log({p.stem: self._wandb.Image(str(p)) for p in images}, step=step)

    def log_artifacts(self, path: Path, name: str) -> None:
        kind = "model" if name == "bundle" else "evaluation"
        art = self._wandb.Artifact(f"{name}-{self.run_id}", type=kind)
        if path.is_dir():
            art.add_dir(str(path))
        else:
            art.add_file(str(path))
        self._run.log_artifact(art)

    def finish(self, ok: bool) -> None:
        self._run.finish(exit_code=0 if ok else 1)


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__
