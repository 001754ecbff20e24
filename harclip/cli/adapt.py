"""`harclip adapt build [--if-new N] [--streams GLOB]... [--dry-run] | status | promote [VERSION]
| rollback`: the feedback cache adapter (docs/feedback.md "Adapter")."""

from __future__ import annotations

import argparse
import asyncio
import json

from harclip.argtypes import POSITIVE
from harclip.config import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = sub.add_parser("build", help="build a candidate from the feedback index, gate, promote")
    b.add_argument("--if-new", type=POSITIVE, metavar="N", nargs="?", const=-1, default=None,
                   help="build only when N feedback items arrived since the last build "
                   "(no N: HARCLIP_ADAPT__IF_NEW)")  # fmt: skip
    b.add_argument("--streams", action="append", metavar="GLOB", type=_glob,
                   help="a scope: streams matching GLOB share a cache (repeat, most specific "
                   "first; default: one global scope '*')")  # fmt: skip
    b.add_argument("--dry-run", action="store_true", help="score only; keep and publish nothing")
    b.add_argument("--json", action="store_true", help="print the report as one JSON object")
    s = sub.add_parser("status", help="the adapter in force, promotions and versions kept")
    s.add_argument("--json", action="store_true")
    p = sub.add_parser("promote", help="publish a kept version, skipping the gate")
    p.add_argument("version", nargs="?", type=POSITIVE, help="default: the newest candidate")
    sub.add_parser("rollback", help="put back the adapter in force before the last promotion")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from harclip.adapt import gate

    if args.action == "build":
        if_new = settings.adapt.if_new if args.if_new == -1 else args.if_new
        scopes = tuple(args.streams or ("*",))
        report = asyncio.run(gate.build(settings, scopes, if_new=if_new, dry_run=args.dry_run))
        if args.json:
            print(json.dumps(report.to_dict()))
        elif report.skipped:
            print(f"not built: {report.skipped}")
        else:
            _print_build(report, args.dry_run)
        return 0
    if args.action == "status":
        st = asyncio.run(gate.status(settings))
        print(json.dumps(st) if args.json else _describe(st))
        return 0
    if args.action == "promote":
        a = asyncio.run(gate.promote(settings, args.version))
        print(f"adapter v{a.version} in force ({a.size} items, {len(a.labels)} labels)")
        return 0
    back = asyncio.run(gate.rollback(settings))
    print("no adapter in force" if back is None else f"adapter v{back.version} in force again")
    return 0


def _print_build(r: object, dry_run: bool) -> None:
    from harclip.adapt.gate import BuildReport

    assert isinstance(r, BuildReport)
    champion = "none" if r.champion is None else f"v{r.champion}"
    print(f"candidate v{r.candidate}: {r.items} labelled feedback items, alpha {r.alpha:g}, "
          f"beta {r.beta:g}")  # fmt: skip
    print(f"  held-out accuracy {r.candidate_score:.3f} vs {r.champion_score:.3f} ({champion})")
    print(f"  items per label: {', '.join(f'{k} {v}' for k, v in r.labels.items())}")
    if r.left_out:
        print(f"  left out: {', '.join(f'{k} {v}' for k, v in r.left_out.items())}")
    verdict = "promoted" if r.promoted else "not promoted (not better by the margin)"
    print(f"  {'would be ' if dry_run and r.promoted else ''}{verdict}"
          f"{' (dry run: nothing kept or published)' if dry_run else ''}")  # fmt: skip


def _describe(st: dict[str, object]) -> str:
    lines = []
    a = st["in_force"]
    if isinstance(a, dict):
        lines.append(f"in force: adapter v{a['version']} ({a['items']} items, scopes "
                     f"{', '.join(a['scopes'])}, alpha {a['alpha']:g}, beta {a['beta']:g}, "
                     f"cv {a['cv_score']})")  # fmt: skip
    else:
        lines.append("in force: no adapter")
    history = st["history"]
    assert isinstance(history, list)
    for e in history:
        lines.append(f"  {e['at']}: {e['action']} v{e['version']} (was v{e['previous']})"
                     f"{'' if e.get('event_sent', True) else ' (event not sent)'}")  # fmt: skip
    lines.append(f"kept versions: {st['kept']}")
    if st.get("event_failures"):
        lines.append(f"adapter.promoted events not sent: {st['event_failures']} (see the log)")
    return "\n".join(lines)


def _glob(raw: str) -> str:
    if not raw or len(raw) > 200 or not raw.isprintable():
        raise argparse.ArgumentTypeError("a stream glob is 1 to 200 printable characters")
    return raw
