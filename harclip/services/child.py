"""One way to run a child process for a while: start it, keep its merged output (in memory and in
a log file), wait for a log line or a `/ready` URL, stop it (SIGTERM, then SIGKILL) and keep the
log. The demo, the benchmarks and the tests' harness start the API, workers and the events app
through it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from harclip.errors import ServiceError

_POLL_S = 0.2


class Child:
    """A running child process whose stdout and stderr (merged) are read by a thread: each line is
    kept in `lines`, appended to `log` (when given) and copied to `echo` (when given). With
    `new_session` it does not get the terminal's Ctrl-C (its parent stops it)."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
        echo: TextIO | None = None,
        name: str | None = None,
        new_session: bool = False,
    ) -> None:
        self.name = name or " ".join(cmd[:3])
        self.log = log
        self.lines: list[str] = []
        self._echo = echo
        self._changed = threading.Condition()
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", start_new_session=new_session,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"log {self.name}")
        self._reader.start()

    @classmethod
    def python(cls, module: str, *args: str, **kwargs: object) -> Child:
        """`python -m module ARGS` with this interpreter (keyword arguments as for `Child`)."""
        return cls([sys.executable, "-m", module, *args], **kwargs)  # type: ignore[arg-type]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        out = self.log.open("a") if self.log is not None else None
        try:
            for line in self.proc.stdout:
                if out is not None:
                    out.write(line)
                    out.flush()
                if self._echo is not None:
                    self._echo.write(line)
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        finally:
            if out is not None:
                out.close()
            with self._changed:
                self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit status, or None while it runs."""
        return self.proc.poll()

    def tail(self, lines: int = 30) -> str:
        """The last `lines` lines of its output."""
        with self._changed:
            return "".join(self.lines[-lines:])

    def logged(self, text: str) -> bool:
        """True when some line so far contains `text`."""
        with self._changed:
            return any(text in line for line in self.lines)

    def wait_line(self, pattern: str, timeout_s: float = 120.0, since: int = 0) -> str:
        """The first line (from index `since` on) that matches the regex `pattern`; `ServiceError`
        when the process exits first or `timeout_s` seconds pass."""
        found = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            seen = since
            while True:
                for line in self.lines[seen:]:
                    if found.search(line):
                        return line
                seen = max(seen, len(self.lines))
                left = deadline - time.monotonic()
                if not self._reader.is_alive():  # its output ended: it exits (or has)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        code = self.proc.wait(timeout=max(0.0, left))
                        raise ServiceError(
                            self._ended(f"exited ({code}) before a line {pattern!r}")
                        )
                if left <= 0 or not self._reader.is_alive():
                    raise ServiceError(
                        self._ended(f"logged no line {pattern!r} within {timeout_s:g} s")
                    )
                self._changed.wait(left)

    async def await_line(self, pattern: str, timeout_s: float = 120.0, since: int = 0) -> str:
        """`wait_line` for a caller inside an event loop."""
        return await asyncio.to_thread(self.wait_line, pattern, timeout_s, since)

    def wait_ready(self, url: str, timeout_s: float = 120.0) -> None:
        """Until GET `url` answers 200 (e.g. a health server's `/ready`); `ServiceError` when the
        process exits first or `timeout_s` seconds pass."""
        deadline = time.monotonic() + timeout_s
        while not http_ok(url):
            if self.proc.poll() is not None:
                raise ServiceError(self._ended(f"exited ({self.proc.returncode}) before {url}"))
            if time.monotonic() > deadline:
                raise ServiceError(self._ended(f"{url} not ready within {timeout_s:g} s"))
            time.sleep(_POLL_S)  # polling a condition

    async def await_ready(self, url: str, timeout_s: float = 120.0) -> None:
        """`wait_ready` for a caller inside an event loop."""
        await asyncio.to_thread(self.wait_ready, url, timeout_s)

    def stop(self, timeout_s: float = 30.0, *, kill: bool = False) -> int:
        """SIGTERM (SIGKILL with `kill`), wait up to `timeout_s` seconds, then SIGKILL; its exit
        status. The output read so far stays in `lines` and the log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    async def astop(self, timeout_s: float = 30.0, *, kill: bool = False) -> int:
        """`stop` for a caller inside an event loop."""
        return await asyncio.to_thread(self.stop, timeout_s, kill=kill)

    def _ended(self, what: str) -> str:
        where = f"; log {self.log}" if self.log is not None else ""
        return f"{self.name} {what}{where}; its last lines:\n{self.tail() or '  (no output)'}"


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
