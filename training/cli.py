"""`python -m training COMMAND`: prepare | zeroshot | finetune | evaluate | export | register |
push. Every command reads one config: defaults < `--preset` < `--config FILE.yaml` < its own
flags and `--set key.path=value`; a run folder (`--output`) ties the commands together
(`split.json`, `model/`, `eval/`, `bundle/`). Errors are one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harclip.argtypes import FRACTION, POSITIVE, RATE, whole
from harclip.errors import HarclipError
from training.config import Config, load_config, parse_override
from training.presets import PRESETS

Runner = Callable[[Config, argparse.Namespace], int]

_HELP = {
    "prepare": "verify and split a data source into OUTPUT/split.json",
    "zeroshot": "zero-shot accuracy of a model or bundle and a comparison of prompt sets",
    "finetune": "linear probe or full fine-tuning (single | ddp | fsdp) -> model, report, bundle",
    "evaluate": "the evaluation report of a trained model or of any bundle",
    "export": "a trained model -> a harclip bundle (ONNX, INT8, TorchScript, ...)",
    "register": "register a bundle in the MLflow registry (champion only if it wins)",
    "push": "upload a bundle with a model card to the Hugging Face hub",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (configure, _) in _COMMANDS.items():
        p = sub.add_parser(name, help=_HELP[name], description=_HELP[name])
        _common(p)
        configure(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)
    _, runner = _COMMANDS[args.command]
    try:
        cfg = load_config(args.config, preset=args.preset, overrides=_overrides(args))
        return runner(cfg, args)
    except HarclipError as e:
        print(f"training {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"training {args.command}: interrupted (rerun the same command to resume)",
              file=sys.stderr)  # fmt: skip
        return 130


# --- options ------------------------------------------------------------------------------------

# flag dest -> config key; a flag left unset does not override the config file
_KEYS: dict[str, str] = {
    "output": "output", "data": "data.source", "manifest": "data.manifest",
    "model": "model.name", "mode": "train.mode", "strategy": "train.strategy",
    "epochs": "train.epochs", "batch_size": "train.batch_size", "grad_accum": "train.grad_accum",
    "lr": "train.lr", "wise_alpha": "train.wise_alpha", "max_steps": "train.max_steps",
    "device": "train.device", "mlflow_uri": "tracking.mlflow_uri",
    "formats": "export.formats", "name": "export.name", "version": "export.version",
    "model_name": "registry.model_name", "repo_id": "hub.repo_id", "endpoint": "hub.endpoint",
}  # fmt: skip
_SWITCHES: dict[str, tuple[str, Any]] = {
    "mlflow": ("tracking.mlflow", True), "wandb": ("tracking.wandb", True),
    "no_export": ("export.after_train", False), "private": ("hub.private", True),
}  # fmt: skip


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dest, key in _KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            out[key] = str(value) if isinstance(value, Path) else value
    for dest, (key, value) in _SWITCHES.items():
        if getattr(args, dest, False):
            out[key] = value
    for text in args.set or []:
        key, value = parse_override(text)
        out[key] = value
    return out


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("config")
    g.add_argument("--config", type=Path, help="YAML config (e.g. params.yaml)")
    g.add_argument("--preset", choices=PRESETS, help="a named starting config")
    g.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set train.lr=3e-4 (repeatable)",
    )
    g.add_argument("--output", type=Path, help="the run folder (default runs/latest)")
    g.add_argument("--quiet", action="store_true", help="no progress display")


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="image folder (one folder per class), CSV file,label, or hf:ID")
    p.add_argument("--manifest", type=Path, help="a split.json from `prepare` (wins over --data)")


def _split(p: argparse.ArgumentParser, default: str = "test") -> None:
    p.add_argument("--split", default=default, choices=("train", "val", "test", "all"))


# --- commands -----------------------------------------------------------------------------------


def _prepare_opts(p: argparse.ArgumentParser) -> None:
    _data(p)
    g = p.add_argument_group("from feedback (docs/feedback.md)")
    g.add_argument(
        "--from-feedback",
        action="store_true",
        help="the feedback index as the data: written to --feedback-dir first",
    )
    g.add_argument(
        "--feedback-dir",
        type=Path,
        default=Path("data/feedback"),
        help="the dataset folder it writes (default data/feedback)",
    )
    g.add_argument("--stream", help="only this stream's feedback")
    g.add_argument("--since-ms", type=whole(0), help="only feedback given since (ms since epoch)")
    g.add_argument("--dvc", action="store_true", help="then `dvc add` the folder")  # fmt: skip


def _prepare(cfg: Config, args: argparse.Namespace) -> int:
    from training.data.prepare import SPLIT_FILE, write_split

    if args.from_feedback:
        cfg = _from_feedback(cfg, args)
    write_split(cfg, cfg.output / SPLIT_FILE, show=not args.quiet)
    return 0


def _from_feedback(cfg: Config, args: argparse.Namespace) -> Config:
    from harclip.config import load_settings
    from training import progress
    from training.data.feedback import dvc_add, export_feedback

    show = not args.quiet
    with progress.step(f"feedback -> {args.feedback_dir}", enabled=show):
        done = export_feedback(load_settings(), args.feedback_dir, args.stream, args.since_ms)
    progress.say(f"feedback: {done.images} images; left out: {done.none_of_these} none of "
                 f"these, {done.no_image + done.missing_objects} without an image",
                 enabled=show)  # fmt: skip
    if args.dvc:
        dvc_add(args.feedback_dir)
    data = cfg.data.model_copy(update={"source": str(done.csv), "manifest": None})
    return cfg.model_copy(update={"data": data})


def _zeroshot_opts(p: argparse.ArgumentParser) -> None:
    _data(p)
    p.add_argument("--model", help="hub id or local CLIP folder (default: model.name)")
    p.add_argument("--bundle", type=Path, help="evaluate this bundle instead (no torch)")
    _split(p)
    p.add_argument("--report", type=Path, help="report folder (default OUTPUT/zeroshot)")


def _zeroshot(cfg: Config, args: argparse.Namespace) -> int:
    from training.commands.zeroshot import run_zeroshot, table_text
    from training.data.prepare import prepared_manifest

    manifest, _ = prepared_manifest(cfg, show=not args.quiet)
    out = args.report or cfg.output / "zeroshot"
    results = run_zeroshot(manifest, args.split, out, model=cfg.model.name, bundle=args.bundle,
                           show=not args.quiet)  # fmt: skip
    print(table_text(results))
    print(f"report: {out / 'report.md'}, table: {out / 'prompt_sets.md'}")
    return 0


def _finetune_opts(p: argparse.ArgumentParser) -> None:
    _data(p)
    p.add_argument("--model", help="hub id or local CLIP folder to start from")
    p.add_argument("--mode", choices=("linear-probe", "full"))
    p.add_argument("--strategy", choices=("single", "ddp", "fsdp"))
    p.add_argument("--nproc", type=POSITIVE, help="start N processes with torchrun (ddp / fsdp)")
    p.add_argument("--epochs", type=POSITIVE)
    p.add_argument("--batch-size", type=POSITIVE, help="global images per optimizer step")
    p.add_argument("--grad-accum", type=POSITIVE, help="micro-batches per step and process")
    p.add_argument("--lr", type=RATE)
    p.add_argument("--wise-alpha", type=FRACTION, help="WiSE-FT mix with the zero-shot weights")
    p.add_argument("--max-steps", type=POSITIVE, help="stop after this many steps (resumable)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--mlflow", action="store_true", help="track in MLflow")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI (default: ./mlruns SQLite)")
    p.add_argument("--wandb", action="store_true", help="track in W&B (offline by default)")
    p.add_argument("--no-export", action="store_true", help="do not write OUTPUT/bundle")


def _finetune(cfg: Config, args: argparse.Namespace) -> int:
    from training.fit.distributed import launched_by_torchrun

    if args.nproc and not launched_by_torchrun():
        return _relaunch(args.nproc, sys.argv[1:] if args.argv is None else args.argv)
    from training.commands.finetune import finetune

    result = finetune(cfg, show=not args.quiet)
    if result.metrics is not None:
        m = result.metrics
        print(f"test accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f} "
              f"top-5 {m['top5_accuracy']:.4f} ({m['n']} images)")  # fmt: skip
    return 0


def _relaunch(nproc: int, argv: Sequence[str]) -> int:
    """Run this same command under torchrun with `nproc` processes on this machine."""
    import subprocess

    rest, skip = [], False
    for a in argv:  # the launcher's own option stays here
        if skip or a.startswith("--nproc="):
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "training", *rest]  # fmt: skip
    return subprocess.call(cmd)


def _evaluate_opts(p: argparse.ArgumentParser) -> None:
    _data(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--checkpoint", type=Path, help="a trained model folder (default OUTPUT/model)"
    )
    src.add_argument("--bundle", type=Path, help="any harclip bundle")
    p.add_argument("--engine", default="onnx", help="bundle engine (onnx, onnx-int8, ...)")
    _split(p)
    p.add_argument("--report", type=Path, help="report folder (default OUTPUT/eval)")


def _evaluate(cfg: Config, args: argparse.Namespace) -> int:
    from training.commands.evaluate import evaluate_command
    from training.data.prepare import prepared_manifest

    manifest, _ = prepared_manifest(cfg, show=not args.quiet)
    out = args.report or cfg.output / "eval"
    m = evaluate_command(cfg, manifest, args.split, out, checkpoint=args.checkpoint,
                         bundle=args.bundle, engine=args.engine, show=not args.quiet)  # fmt: skip
    print(f"{args.split}: accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f} "
          f"top-5 {m['top5_accuracy']:.4f} ({m['n']} images) -> {out / 'report.md'}")  # fmt: skip
    return 0


def _export_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, help="trained model folder (default OUTPUT/model)")
    p.add_argument("--bundle", type=Path, help="bundle folder to write (default OUTPUT/bundle)")
    p.add_argument("--format", nargs="+", dest="formats",
                   choices=("onnx", "int8", "torchscript", "torch", "tensorrt"))  # fmt: skip
    p.add_argument("--name", help="bundle name in the manifest")
    p.add_argument("--version", help="bundle version in the manifest")
    p.add_argument("--metrics", type=Path, help="metrics.json to put in the manifest "
                   "(default OUTPUT/eval/metrics.json when present)")  # fmt: skip
    p.add_argument("--no-validate", action="store_true", help="skip engines-vs-PyTorch checks")


def _export(cfg: Config, args: argparse.Namespace) -> int:
    from training.commands.evaluate import manifest_metrics
    from training.commands.export import export_trained

    model_dir = args.checkpoint or cfg.output / "model"
    out = args.bundle or cfg.output / "bundle"
    metrics_file = args.metrics or cfg.output / "eval" / "metrics.json"
    metrics = manifest_metrics(metrics_file) if metrics_file.is_file() else None
    bundle = export_trained(model_dir, out, cfg.export, metrics=metrics,
                            validate=not args.no_validate, show=not args.quiet)  # fmt: skip
    print(f"bundle written to {bundle.path} (engines: {', '.join(bundle.engine_names)})")
    return 0


def _register_opts(p: argparse.ArgumentParser) -> None:
    _data(p)
    p.add_argument("--bundle", type=Path, help="the bundle (default OUTPUT/bundle)")
    _split(p)
    p.add_argument("--model-name", help="registered model name (default registry.model_name)")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI (default: ./mlruns SQLite)")


def _register(cfg: Config, args: argparse.Namespace) -> int:
    from training.commands.register import register
    from training.data.prepare import prepared_manifest

    manifest, _ = prepared_manifest(cfg, show=not args.quiet)
    bundle = args.bundle or cfg.output / "bundle"
    d = register(bundle, manifest, args.split, cfg, show=not args.quiet)
    print(f"registered {d.model_name} v{d.version} as {d.alias}: {d.reason}")
    return 0


def _push_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, help="the bundle (default OUTPUT/bundle)")
    p.add_argument("--repo-id", help="ORG/NAME on the hub")
    p.add_argument("--private", action="store_true")
    p.add_argument("--endpoint", help="hub URL (default: HF_ENDPOINT or huggingface.co)")
    p.add_argument("--dry-run", action="store_true", help="write the card, list the files, stop")


def _push(cfg: Config, args: argparse.Namespace) -> int:
    from training.commands.push import push

    bundle = args.bundle or cfg.output / "bundle"
    plan = push(bundle, cfg.hub, dry_run=args.dry_run)
    total = sum(size for _, size in plan.files)
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"model card: {plan.card}")
    for name, size in plan.files:
        print(f"  {size:>12,}  {name}")
    print(f"{verb} {len(plan.files)} files ({total:,} bytes) to {plan.repo_id}"
          + (f": {plan.url}" if plan.url else ""))  # fmt: skip
    return 0


_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Runner]] = {
    "prepare": (_prepare_opts, _prepare),
    "zeroshot": (_zeroshot_opts, _zeroshot),
    "finetune": (_finetune_opts, _finetune),
    "evaluate": (_evaluate_opts, _evaluate),
    "export": (_export_opts, _export),
    "register": (_register_opts, _register),
    "push": (_push_opts, _push),
}
