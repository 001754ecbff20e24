"""The one child-process runner (`Child`) and `free_port`: lines waited for, a /ready URL, stop
with SIGTERM then SIGKILL, and the log kept."""

from __future__ import annotations

import http.server
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harclip.errors import ServiceError
from harclip.services.child import Child, http_ok
from harclip.services.process import free_port, port_in_use

# prints two lines, then waits for a line on stdin that never comes (until it is stopped)
_TALKER = "import sys, time\nprint('starting', flush=True)\nprint('up on 1234', flush=True)\n" \
          "sys.stdin.readline()\ntime.sleep(3600)\n"  # fmt: skip
# ignores SIGTERM: only SIGKILL ends it
_STUBBORN = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" \
            "print('ready', flush=True)\ntime.sleep(3600)\n"  # fmt: skip


def test_a_line_is_waited_for_and_the_log_is_kept_after_stop(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "talker.log"
    child = Child([sys.executable, "-c", _TALKER], log=log, name="talker")
    try:
        assert child.wait_line(r"up on (\d+)", timeout_s=60) == "up on 1234\n"
        assert child.logged("starting") and child.returncode is None
    finally:
        code = child.stop(timeout_s=30)
    assert code == -15  # SIGTERM
    assert log.read_text() == "starting\nup on 1234\n"
    assert child.lines == ["starting\n", "up on 1234\n"]


def test_a_child_that_exits_first_is_an_error_with_its_last_lines() -> None:
    child = Child([sys.executable, "-c", "print('no config'); raise SystemExit(2)"], name="bad")
    with pytest.raises(
        ServiceError, match=r"(?s)bad exited \(2\) before a line 'ready'.*no config"
    ):
        child.wait_line("ready", timeout_s=60)
    assert child.stop() == 2


def test_a_line_that_never_comes_times_out() -> None:
    child = Child([sys.executable, "-c", _TALKER], name="talker")
    try:
        with pytest.raises(ServiceError, match=r"logged no line .never. within 0\.2 s"):
            child.wait_line("never", timeout_s=0.2)
    finally:
        child.stop()


def test_stop_kills_a_child_that_ignores_sigterm() -> None:
    child = Child([sys.executable, "-c", _STUBBORN])
    child.wait_line("ready", timeout_s=60)
    assert child.stop(timeout_s=0.5) == -9


async def test_the_async_faces_wait_and_stop() -> None:
    child = Child.python("this_module_does_not_exist_here")
    with pytest.raises(ServiceError, match="No module named"):
        await child.await_line("never", timeout_s=60)
    assert await child.astop() == 1


@pytest.fixture
def ready_server() -> Iterator[str]:
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ready" else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_wait_ready_returns_once_the_url_answers_200(ready_server: str) -> None:
    child = Child([sys.executable, "-c", _TALKER])
    try:
        child.wait_ready(f"{ready_server}/ready", timeout_s=60)
        assert not http_ok(f"{ready_server}/health")
        with pytest.raises(ServiceError, match=r"not ready within 0\.2 s"):
            child.wait_ready(f"{ready_server}/health", timeout_s=0.2)
    finally:
        child.stop()


def test_free_port_is_free_and_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536 and not port_in_use("127.0.0.1", port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
