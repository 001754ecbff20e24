"""Child processes for tests, on top of the library's runner (`harclip.services.child.Child`):
`python -m X` from the repository root with a test's settings, its output echoed to the test's
captured stderr; waiting on a condition; commands run to completion."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from harclip.config import Settings, child_environ
from harclip.services.child import Child, http_ok
from harclip.services.process import free_port

__all__ = ["ROOT", "Child", "env_of", "free_port", "http_ok", "run_python", "start", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def env_of(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child that reads exactly `settings` (`child_environ` of this
    process' environment), with a test's few `extra` variables on top."""
    return child_environ(settings, os.environ) | dict(extra or {})


def start(module: str, *args: str, env: Mapping[str, str], log: Path | None = None) -> Child:
    """`python -m module ARGS` from the repository root; its output goes to this test's stderr
    (and `log`)."""
    return Child.python(module, *args, env=env, cwd=ROOT, log=log, echo=sys.stderr, name=module)


def run_python(
    module: str, *args: str, env: Mapping[str, str], timeout_s: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """`python -m module ARGS` run to completion (output captured), for a test of its status."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=dict(env), capture_output=True,
        text=True, timeout=timeout_s, check=False,
    )  # fmt: skip


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float = 120.0) -> T:
    """Poll `check` until it returns something other than None (or False); its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.2)  # polling a condition, not waiting for time to pass
