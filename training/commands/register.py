"""`register`: a bundle into the MLflow model registry, promoted only if it wins.

The bundle is evaluated on the test split (as it serves: engine + head), logged as the artifact of
an MLflow run and registered as a new version of `registry.model_name`. It gets the alias
`champion` when there is none yet or when it beats the current champion on the same test split
(same fingerprint: same images, same labels; the champion's own figure is reused when it was
measured on that split, else its bundle is downloaded and evaluated on it). Otherwise it gets
`candidate`, with the reason as a tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training import progress
from training.config import Config
from training.data.split import Manifest
from training.errors import TrackingError
from training.evaluation.metrics import classification_metrics
from training.evaluation.predict import predict_bundle
from training.fit.tracking import mlflow_experiment, mlflow_uri

CHAMPION, CANDIDATE = "champion", "candidate"


@dataclass(frozen=True)
class Decision:
    model_name: str
    version: str
    alias: str  # champion | candidate
    reason: str
    metric: str
    value: float
    champion_value: float | None
    run_id: str


def register(
    bundle_dir: Path, manifest: Manifest, split: str, cfg: Config, *, show: bool = True
) -> Decision:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    metric = cfg.registry.metric
    fingerprint = manifest.fingerprint(split)
    value = _evaluate(bundle_dir, manifest, split, metric, show)
    experiment = mlflow_experiment(cfg.tracking)
    client = MlflowClient(tracking_uri=mlflow_uri(cfg.tracking))
    name = cfg.registry.model_name
    try:
        with mlflow.start_run(
            experiment_id=experiment, run_name=f"register {bundle_dir.name}"
        ) as run:
            mlflow.log_metric(f"{split}/{metric}", value)
            mlflow.set_tags({"split_fingerprint": fingerprint, "bundle": str(bundle_dir.resolve())})
            with progress.step("log the bundle to MLflow", enabled=show):
                mlflow.log_artifacts(str(bundle_dir), "bundle")
            source = f"{run.info.artifact_uri}/bundle"
        _ensure_registered_model(client, name)
        champion = _alias(client, name, CHAMPION)
        version = client.create_model_version(
            name, source, run_id=run.info.run_id,
            tags={"split_fingerprint": fingerprint, "split": split, metric: repr(value)},
        ).version  # fmt: skip
        champ_value = None
        if champion is None:
            alias, reason = CHAMPION, "the first registered version"
        else:
            champ_value = _champion_value(champion, fingerprint, manifest, split, metric, show)
            better = value > champ_value
            alias = CHAMPION if better else CANDIDATE
            rel = ">" if better else "<="
            reason = (
                f"{metric} {value:.4f} {rel} champion v{champion.version}'s "
                f"{champ_value:.4f} on the same {split} split ({fingerprint[:12]})"
            )
            if not better:
                reason = "not promoted: " + reason
        client.set_registered_model_alias(name, alias, version)
        client.set_model_version_tag(name, version, "decision", reason)
    except MlflowException as e:
        raise TrackingError(f"MLflow registry at {mlflow_uri(cfg.tracking)}: {e.message}") from None
    return Decision(name, str(version), alias, reason, metric, value, champ_value, run.info.run_id)


def _evaluate(bundle_dir: Path, manifest: Manifest, split: str, metric: str, show: bool) -> float:
    files = manifest.paths(split)
    with progress.bar(f"evaluate {bundle_dir.name} on {split}", len(files), enabled=show) as adv:
        preds = predict_bundle(bundle_dir, manifest, split, progress=adv)
    return float(classification_metrics(preds.probs, preds.labels, preds.classes)[metric])


def _ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="harclip model bundles (python -m training register)"
        )


def _alias(client: Any, name: str, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _champion_value(
    champion: Any, fingerprint: str, manifest: Manifest, split: str, metric: str, show: bool
) -> float:
    """The champion's `metric` on this split: its tag when it was measured on the same split,
    else measured now on its downloaded bundle."""
    tags = champion.tags or {}
    if tags.get("split_fingerprint") == fingerprint and metric in tags:
        return float(tags[metric])
    import mlflow

    with progress.step(f"download champion v{champion.version}", enabled=show):
        local = Path(mlflow.artifacts.download_artifacts(champion.source))
    return _evaluate(local, manifest, split, metric, show)
