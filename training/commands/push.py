"""`push`: a bundle to the Hugging Face hub with a generated model card (`README.md`: metrics,
labels, data, training config, intended use, limits, how to serve it). `--dry-run` writes the
card and lists what would be uploaded; without a token or a reachable hub it fails at once with
one line, before any upload starts."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harclip.model.bundle import Bundle
from training.config import HubConfig
from training.errors import HubError

CARD = "README.md"


@dataclass(frozen=True)
class PushPlan:
    repo_id: str
    card: Path
    files: list[tuple[str, int]]  # (path in the repo, bytes)
    url: str | None = None  # the commit, once pushed


def push(bundle_dir: Path, cfg: HubConfig, *, dry_run: bool, token: str | None = None) -> PushPlan:
    """Write the model card into the bundle and upload the bundle folder (unless `dry_run`)."""
    if not cfg.repo_id or cfg.repo_id.count("/") != 1:
        raise HubError(f"--repo-id must be ORG/NAME, got {cfg.repo_id!r}")
    bundle = Bundle.load(bundle_dir)
    card = bundle_dir / CARD
    card.write_text(model_card(bundle, cfg.repo_id), encoding="utf-8")
    files = sorted(
        (p.relative_to(bundle_dir).as_posix(), p.stat().st_size)
        for p in bundle_dir.rglob("*") if p.is_file()
    )  # fmt: skip
    plan = PushPlan(cfg.repo_id, card, files)
    if dry_run:
        return plan
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = token or get_token()
    if not token:
        raise HubError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login` (or try --dry-run)"
        )
    endpoint = cfg.endpoint or constants.ENDPOINT
    _reachable(endpoint, cfg.timeout_s)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(cfg.repo_id, private=cfg.private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(bundle_dir), repo_id=cfg.repo_id,
            commit_message=f"harclip bundle {bundle.manifest.name} v{bundle.manifest.version}",
        )  # fmt: skip
    except HfHubHTTPError as e:
        raise HubError(f"the hub refused the upload to {cfg.repo_id}: {_first_line(e)}") from None
    except OSError as e:
        raise HubError(f"upload to {cfg.repo_id} failed: {_first_line(e)}") from None
    return PushPlan(cfg.repo_id, card, files, url=str(getattr(info, "commit_url", info)))


def _reachable(endpoint: str, timeout_s: float) -> None:
    """A TCP connect to the hub within `timeout_s` seconds, or `HubError` at once."""
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return
    except OSError as e:
        raise HubError(
            f"cannot reach the Hugging Face hub at {endpoint} ({e.strerror or e}); check the "
            "network or HF_ENDPOINT, or use --dry-run"
        ) from None


def model_card(bundle: Bundle, repo_id: str) -> str:
    """The hub model card of `bundle`."""
    m = bundle.manifest
    head = bundle.load_head()
    ev: dict[str, Any] = m.metrics.get("eval", {})
    tr: dict[str, Any] = m.metrics.get("training", {})
    front = [
        "---", "library_name: onnx", "pipeline_tag: image-classification",
        "tags: [harclip, clip, human-action-recognition, onnx]",
        f"base_model: {m.base_model}" if "/" in m.base_model else "", "---",
    ]  # fmt: skip
    lines = [ln for ln in front if ln] + [
        "", f"# {m.name} (v{m.version})", "",
        f"A harclip model bundle for human-action recognition from images: a CLIP image tower "
        f"(base: `{m.base_model}`) and a {head.kind} head over {len(head.labels)} actions. "
        "Engines: " + ", ".join(f"`{e}`" for e in m.engines) + ".", "",
        "## Metrics", "",
    ]  # fmt: skip
    if ev:
        lines += [
            f"On the held-out {ev.get('split', 'test')} split ({int(ev.get('n', 0))} images, "
            f"split fingerprint `{str(ev.get('split_fingerprint', ''))[:12]}`):", "",
            "| metric | value |", "|---|---|",
            f"| accuracy | {ev.get('accuracy', 0):.2%} |",
            f"| macro-F1 | {ev.get('macro_f1', 0):.4f} |",
            f"| top-5 accuracy | {ev.get('top5_accuracy', 0):.2%} |", "",
        ]  # fmt: skip
    else:
        lines += ["No evaluation is recorded in this bundle's manifest.", ""]
    lines += ["## Labels", "", ", ".join(f"`{label}`" for label in head.labels), ""]
    data = tr.get("data", {})
    lines += ["## Data", ""]
    if data:
        lines += [
            f"Source `{data.get('source')}`: {data.get('classes')} classes, train "
            f"{data.get('train')} / val {data.get('val')} / test {data.get('test')} images "
            "(stratified, seeded split; `python -m training prepare`).", "",
        ]  # fmt: skip
    else:
        lines += ["Not recorded.", ""]
    lines += ["## Training", ""]
    if tr:
        for k in ("mode", "strategy", "epochs_run", "steps", "wise_alpha"):
            if k in tr:
                lines.append(f"- {k}: `{tr[k]}`")
        lines.append("")
    else:
        lines += ["Zero-shot (no training).", ""]
    lines += [
        "## Intended use", "",
        "Recognising one of the listed everyday actions in photos or video frames of people, "
        "served by harclip (`python -m consumers --bundle .`, `python -m api --bundle .`) or "
        "any ONNX runtime: input `pixels` uint8 [N, 224, 224, 3] RGB (resized and centre-"
        "cropped), output `embedding`; logits = logit_scale · embedding @ W + b from "
        "`head.safetensors`.", "",
        "## Limits", "",
        "- Trained and evaluated on web photos of the HAR dataset, which has label noise and "
        "overlapping classes (sitting / using a laptop / texting, calling / texting); expect "
        "lower accuracy on other cameras, crops and populations.",
        "- One label per image; it cannot say that no listed action is happening.",
        "- Not for surveillance of individuals or decisions about people without human review.",
        "",
        "## Use", "",
        "```bash",
        f"huggingface-cli download {repo_id} --local-dir bundle",
        "harclip predict --bundle bundle photo.jpg",
        "```", "",
    ]  # fmt: skip
    return "\n".join(lines)


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__
