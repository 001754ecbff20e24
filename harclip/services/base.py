"""What every local service looks like to the `up|down|status` commands."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol


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
