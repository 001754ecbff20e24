"""`python -m ui`: `streamlit run ui/app.py` on `HARCLIP_UI__PORT` (8501), headless, from the
repository root, printing the URL to open; Streamlit replaces this process."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harclip.argtypes import whole
from harclip.config import load_settings
from harclip.errors import HarclipError

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "ui" / "app.py"


def streamlit_command(port: int, host: str) -> list[str]:
    """The `streamlit run` command line of the UI (no browser opened, no usage statistics,
    no developer menu)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ui", description=__doc__)
    ap.add_argument("--port", type=whole(1, 65535), help="default HARCLIP_UI__PORT (8501)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on")
    args = ap.parse_args(argv)
    try:
        s = load_settings()
    except HarclipError as e:
        print(f"ui: {e}", file=sys.stderr)
        return 2
    port = args.port or s.ui.port
    print(f"harclip UI: http://{args.host}:{port}  (API {s.ui.api_url})", flush=True)
    # Replace this process, so that a signal to it (Ctrl-C, the demo's SIGTERM) reaches
    # Streamlit itself and no server is left behind.
    os.chdir(ROOT)
    cmd = streamlit_command(port, args.host)
    os.execv(cmd[0], cmd)
