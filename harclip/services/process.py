"""Process plumbing shared by the local services: pid files, ports, log tails, tools, waiting."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harclip.errors import ServiceError

_POLL_S = 0.25


# Servers this process started (`spawn`), by pid: a running child's `Popen` must stay referenced.
_SPAWNED: dict[int, subprocess.Popen[bytes]] = {}


def read_pid(pidfile: Path) -> int | None:
    """The pid in `pidfile`, or None when the file is missing, empty or not a positive number."""
    try:
        text = pidfile.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def write_pid(pidfile: Path, pid: int) -> None:
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{pid}\n")


def pid_alive(pid: int) -> bool:
    """True when `pid` is a live process (a zombie counts as gone once all its threads are)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rpartition(")")[2].split()[0] != "Z" or exiting(pid)


def exiting(pid: int) -> bool:
    """True while `pid`'s main thread has exited (a zombie) but other threads of it have not: a
    killed or crashed server (a JVM unmapping its heap) that still holds its files and ports,
    and whose command line is already gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return (
            stat.rpartition(")")[2].split()[0] == "Z" and len(os.listdir(f"/proc/{pid}/task")) > 1
        )
    except OSError:
        return False


def wait_exited(pid: int | None, timeout_s: float = 30.0) -> None:
    """Wait while `pid` is `exiting` (at most `timeout_s` seconds); no signal is sent."""
    deadline = time.monotonic() + timeout_s
    while pid is not None and exiting(pid) and time.monotonic() < deadline:
        time.sleep(_POLL_S)


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def running_pid(pidfile: Path, marker: str) -> int | None:
    """The pid from `pidfile` if that process is alive and its command line contains `marker`.

    The marker (e.g. the service's own config path) guards against a stale pid file whose
    number the kernel has since given to an unrelated process.
    """
    pid = read_pid(pidfile)
    if pid is None or not pid_alive(pid):
        return None
    return pid if marker in _cmdline(pid) else None


def stop_pid(pid: int, timeout_s: float) -> None:
    """SIGTERM `pid`, wait up to `timeout_s` seconds for it to exit, then SIGKILL it."""
    try:
        _stop(pid, timeout_s)
    finally:
        proc = _SPAWNED.pop(pid, None)
        if proc is not None and proc.poll() is None:
            proc.wait(timeout=1.0)  # this process' own child: reap it


def _stop(pid: int, timeout_s: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(_POLL_S)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10.0
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(_POLL_S)


def port_in_use(host: str, port: int) -> bool:
    """True when another socket already holds `host:port` (so a server could not bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise ServiceError(f"cannot check port {host}:{port}: {e}") from e
    return False


def require_free(service: str, host: str, ports: Sequence[int]) -> None:
    """Raise `ServiceError` naming the first of `ports` that another process already holds."""
    for port in ports:
        if port_in_use(host, port):
            raise ServiceError(
                f"{service}: port {port} on {host} is already in use by another process "
                f"(not one that `harclip services up` started); stop it or choose another port"
            )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing holds right now (the kernel's pick), for a child server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when something accepts TCP connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 25) -> str:
    """The last `lines` lines of a text file ('' when it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def died(service: str, log: Path, detail: str = "") -> ServiceError:
    """The error for a service that exited during start-up, with the end of its log."""
    msg = f"{service} exited during start-up{': ' + detail if detail else ''}; end of {log}:\n"
    return ServiceError(msg + (tail(log) or "  (log is empty)"))


def wait_ready(
    service: str,
    ready: Callable[[], bool],
    alive: Callable[[], bool],
    timeout_s: float,
    log: Path,
) -> None:
    """Poll `ready()` until True; fail fast if `alive()` turns False or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if ready():
            return
        if not alive():
            raise died(service, log)
        if time.monotonic() > deadline:
            raise ServiceError(
                f"{service} did not become ready within {timeout_s:.0f} s; end of {log}:\n"
                + (tail(log) or "  (log is empty)")
            )
        time.sleep(_POLL_S)


def require_tool(name: str, install_hint: str) -> str:
    """The absolute path of command `name`, or `ServiceError` saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"`{name}` not found on PATH: {install_hint}")
    return path


def run_tool(cmd: Sequence[str], what: str, cwd: Path | None = None, timeout_s: float = 900) -> str:
    """Run a short tool (mvn, kafka-storage) to completion; its output, or `ServiceError`."""
    try:
        done = subprocess.run(
            list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise ServiceError(f"{what} took longer than {timeout_s:.0f} s: {' '.join(cmd)}") from e
    out = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        last = "\n".join(out.splitlines()[-25:])
        raise ServiceError(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{last}")
    return out


def spawn(cmd: Sequence[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Start a long-running server detached from this process; stdout+stderr go to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the `harclip` command and its Ctrl-C
        )
    _SPAWNED[proc.pid] = proc  # kept (not garbage-collected while it runs), reaped by stop_pid
    return proc.pid
