"""Pid files, ports, log tails and waiting: the plumbing under `harclip services`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harclip.config import ServicesSettings
from harclip.errors import ServiceError
from harclip.services import process
from harclip.services.base import LocalServer, State, Status


@pytest.fixture
def listener() -> Iterator[int]:
    """A port on 127.0.0.1 held by a socket this test owns."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_read_pid_missing_garbage_and_valid(tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    assert process.read_pid(pidfile) is None
    for junk in ("", "abc", "-5", "0", "12 34"):
        pidfile.write_text(junk)
        assert process.read_pid(pidfile) is None, junk
    process.write_pid(tmp_path / "sub" / "y.pid", 4321)
    assert process.read_pid(tmp_path / "sub" / "y.pid") == 4321


def test_running_pid_needs_live_process_and_marker(tmp_path: Path) -> None:
    pidfile = tmp_path / "me.pid"
    process.write_pid(pidfile, os.getpid())
    assert process.running_pid(pidfile, "pytest") == os.getpid()
    # a pid the kernel gave to an unrelated process does not count as ours
    assert process.running_pid(pidfile, "no-such-marker-in-cmdline") is None


def test_stop_pid_ends_a_spawned_process(tmp_path: Path) -> None:
    log = tmp_path / "sleep.log"
    pid = process.spawn(["sleep", "600"], log, cwd=tmp_path)
    assert process.pid_alive(pid)
    process.stop_pid(pid, timeout_s=10)
    assert not process.pid_alive(pid)  # exited (a not yet reaped zombie counts as gone)


def test_a_process_is_alive_until_its_last_thread_exits() -> None:
    """A killed multi-threaded server (a JVM) can show its main thread as a zombie while another
    thread still tears down and holds its sockets: it is not gone yet, or `up` right after a crash
    finds the port "in use by another process". Here the main thread exits on its own first."""
    code = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=time.sleep, args=(60,)).start()\n"
        "print('up', flush=True)\n"
        "ctypes.CDLL(None).pthread_exit(None)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        stat = Path(f"/proc/{proc.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":  # the main thread is gone
            assert time.monotonic() < deadline, "the main thread did not exit"
        assert process.pid_alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert not process.pid_alive(proc.pid)


class _Server(LocalServer):
    name = "test"

    def __init__(self, pidfile: Path) -> None:
        self._pidfile, self._marker, self._log = pidfile, "never-in-a-cmdline", pidfile
        self._services = ServicesSettings()

    def _status(self, state: State, pid: int | None, seconds: float | None = None) -> Status:
        return Status(self.name, state, "", "", pid, self._log, seconds)


def test_down_waits_for_a_killed_server_that_still_holds_its_port(tmp_path: Path) -> None:
    """Right after a SIGKILL, a server's command line is gone but its last threads still hold its
    port: `down` waits for them, so an `up` after it finds the port free."""
    code = (
        "import ctypes, socket, threading, time\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "threading.Thread(target=time.sleep, args=(1.5,)).start()\n"
        "print(s.getsockname()[1], flush=True)\n"
        "ctypes.CDLL(None).pthread_exit(None)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        process.write_pid(tmp_path / "s.pid", proc.pid)
        stat = Path(f"/proc/{proc.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":  # the main thread is gone
            assert time.monotonic() < deadline, "the main thread did not exit"
        _Server(tmp_path / "s.pid").down()
        assert not process.port_in_use("127.0.0.1", port)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_port_in_use_detects_a_held_port(listener: int) -> None:
    assert process.port_in_use("127.0.0.1", listener)
    assert process.port_open("127.0.0.1", listener)


def test_port_free_after_close() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert not process.port_in_use("127.0.0.1", port)
    assert not process.port_open("127.0.0.1", port)


def test_require_free_names_the_port(listener: int) -> None:
    with pytest.raises(ServiceError, match=rf"kafka: port {listener} on 127.0.0.1 is already in"):
        process.require_free("kafka", "127.0.0.1", [listener])


def test_tail_returns_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.tail(log, 3) == "line 97\nline 98\nline 99"
    assert process.tail(tmp_path / "missing.log") == ""


def test_wait_ready_returns_once_ready(tmp_path: Path) -> None:
    answers = iter([False, False, True])
    process.wait_ready("svc", lambda: next(answers), lambda: True, 60, tmp_path / "x.log")


def test_wait_ready_reports_death_with_log(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_text("starting\nFATAL: bad config\n")
    with pytest.raises(ServiceError, match=r"svc exited during start-up(.|\n)*FATAL: bad config"):
        process.wait_ready("svc", lambda: False, lambda: False, 60, log)


def test_wait_ready_times_out(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match=r"svc did not become ready within 0 s"):
        process.wait_ready("svc", lambda: False, lambda: True, 0, tmp_path / "x.log")


def test_require_tool_says_how_to_install() -> None:
    with pytest.raises(ServiceError, match=r"`no-such-tool-xyz` not found on PATH: apt-get it"):
        process.require_tool("no-such-tool-xyz", "apt-get it")


def test_run_tool_failure_shows_exit_and_output() -> None:
    with pytest.raises(ServiceError, match=r"doing it failed \(exit 3\)(.|\n)*oops"):
        process.run_tool(["sh", "-c", "echo oops; exit 3"], "doing it")
