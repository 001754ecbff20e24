"""What GitHub would do with the workflows, beyond actionlint: runs that a trigger filter drops,
pushes to a protected branch, pull requests that start no checks (opened with GITHUB_TOKEN), and
a change of the served model that the model gate does not look at."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

WORKFLOWS = Path(".github/workflows")
# the file whose MODEL_URI names the bundle prod serves (the retrain workflow's pull request)
SERVED_MODEL = "k8s/overlays/prod/kustomization.yaml"
OPENS_PR = "peter-evans/create-pull-request"


def check(root: Path) -> list[str]:
    flows: dict[str, dict[str, Any]] = {}
    for f in sorted((root / WORKFLOWS).glob("*.y*ml")):
        flows[f.name] = yaml.load(f.read_text(), Loader=yaml.BaseLoader)  # `on` stays a string
    return policy(flows)


def policy(flows: dict[str, dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for name, flow in flows.items():
        problems += [f"{WORKFLOWS / name}: {p}" for p in _one(flow)]
    problems += _model_gate(flows)
    return problems


def _steps(flow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (job_name, step)
        for job_name, job in (flow.get("jobs") or {}).items()
        for step in job.get("steps") or []
    ]


def _one(flow: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    on = flow.get("on") or {}
    run_trigger = on.get("workflow_run") if isinstance(on, dict) else None
    if isinstance(run_trigger, dict) and run_trigger.get("branches"):
        for job_name, job in (flow.get("jobs") or {}).items():
            if "head_branch, 'v'" in str(job.get("if", "")):
                problems.append(
                    f"job {job_name} waits for a v* tag, but workflow_run.branches "
                    "drops tag runs (head_branch is the tag)"
                )
    for job_name, step in _steps(flow):
        script = str(step.get("run", ""))
        if re.search(r"\bgit push\b", script):
            problems.append(
                f"job {job_name}: `git push` from a workflow (a protected branch "
                "refuses it): open a pull request"
            )
        if str(step.get("uses", "")).startswith(OPENS_PR):
            token = str((step.get("with") or {}).get("token", ""))
            if not token or "GITHUB_TOKEN" in token or "github.token" in token:
                problems.append(
                    f"job {job_name}: a pull request opened with GITHUB_TOKEN starts "
                    "no workflows (no checks): use a GitHub App's or a PAT's token"
                )
    return problems


def _glob(pattern: str) -> re.Pattern[str]:
    """A GitHub `paths` pattern: `**` any path, `*` any name part."""
    out = re.escape(pattern).replace(r"\*\*", "\0").replace(r"\*", "[^/]*").replace("\0", ".*")
    return re.compile(out + "$")


def _model_gate(flows: dict[str, dict[str, Any]]) -> list[str]:
    """A pull request that changes the served model runs the model gate (`training evaluate`)."""
    gates = []
    for name, flow in flows.items():
        on = flow.get("on") or {}
        pr = on.get("pull_request") if isinstance(on, dict) else None
        if isinstance(pr, dict) and any(
            "training evaluate" in str(step.get("run", "")) for _, step in _steps(flow)
        ):
            gates.append((name, pr.get("paths") or ["**"]))
    if not gates:
        return ["no pull_request workflow runs `python -m training evaluate` (the model gate)"]
    if not any(_glob(p).match(SERVED_MODEL) for _, paths in gates for p in paths):
        names = ", ".join(n for n, _ in gates)
        return [
            f"{names}: pull_request.paths leave out {SERVED_MODEL}, so a change of the "
            "served model (MODEL_URI) is merged without the model gate"
        ]
    return []
