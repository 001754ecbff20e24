"""What every local service looks like to the `up|down|status` commands."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from harclip.config import ServicesSettings
from harclip.errors import ServiceError
from harclip.services import process


class State(Enum):
    STARTED = "started"  # this `up` started it
    RUNNING = "running"  # was already running (started by an earlier `up`)
    STOPPED = "stopped"  # not running (or `down` just stopped it)
    UNHEALTHY = "unhealthy"  # our process is alive but does not answer


@dataclass(frozen=True, slots=True)
class Status:
    """One service's state as reported to the user."""

    name: str
    state: State
    address: str
    version: str
    pid: int | None
    log: Path
    seconds: float | None = None  # how long `up` took for it (wall clock, s)


class Service(Protocol):
    """A local server that `harclip services` fetches, starts, checks and stops."""

    name: str

    def status(self) -> Status:
        """Current state, without starting or stopping anything."""
        ...

    def up(self) -> Status:
        """Fetch if needed, start unless already running, and wait until it answers."""
        ...

    def down(self) -> Status:
        """Stop the process a previous `up` started (by its pid file) and wait for it to exit."""
        ...


GENERATED = "# Written by `harclip services up`; edits are overwritten on the next start.\n"


def render(settings: Mapping[str, str], sep: str) -> str:
    """A generated config file: the `GENERATED` line, then `<key><sep><value>` per setting."""
    return GENERATED + "".join(f"{k}{sep}{v}\n" for k, v in settings.items())


class LocalServer:
    """`status`, `down` and `up` of a server that `harclip services up` runs from a pid file.

    A subclass sets the attributes below in `__init__` and gives `_ready` and `_status`.
    """

    name: str
    _services: ServicesSettings
    _pidfile: Path
    _marker: str  # in the server's command line: guards against a reused pid (`running_pid`)
    _log: Path
    _stop_timeout_s: float = 60.0

    def status(self) -> Status:
        pid = self._pid()
        if pid is None:
            return self._status(State.STOPPED, None)
        return self._status(State.RUNNING if self._ready() else State.UNHEALTHY, pid)

    def down(self) -> Status:
        pid = self._pid()
        if pid is not None:
            process.stop_pid(pid, timeout_s=self._stop_timeout_s)
        else:
            self._settle()
        self._pidfile.unlink(missing_ok=True)
        return self._status(State.STOPPED, None)

    def _up(self, spawn: Callable[[], int]) -> Status:
        """`up` of a server that `spawn()` starts (returning its pid) unless it already runs;
        waits until it answers. A server this call started that never does is stopped again."""
        t0 = time.monotonic()
        pid = self._pid()
        state = State.RUNNING
        if pid is None:
            self._settle()
            pid = spawn()
            process.write_pid(self._pidfile, pid)
            state = State.STARTED
        started = pid
        try:
            self._wait(lambda: process.pid_alive(started))
        except ServiceError:
            if state is State.STARTED:
                self.down()  # leave no half-started server behind
            raise
        return self._status(state, pid, time.monotonic() - t0)

    def _settle(self) -> None:
        """Wait until a server of the pid file that was killed or crashed a moment ago has
        exited: its command line is gone (so `_pid` no longer names it), but its threads still
        hold its ports, and a new one started now would find them taken."""
        process.wait_exited(process.read_pid(self._pidfile))

    def _pid(self) -> int | None:
        return process.running_pid(self._pidfile, self._marker)

    def _wait(self, alive: Callable[[], bool]) -> None:
        """Until the server answers; `ServiceError` if `alive()` turns False or time runs out."""
        process.wait_ready(self.name, self._ready, alive, self._services.start_timeout_s, self._log)

    def _ready(self) -> bool:
        raise NotImplementedError

    def _status(self, state: State, pid: int | None, seconds: float | None = None) -> Status:
        raise NotImplementedError
