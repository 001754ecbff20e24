"""A local Redis from the system's `redis-server` (Debian package): loopback, no persistence."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from harclip.config import RedisSettings, ServicesSettings
from harclip.errors import ServiceError
from harclip.services import process
from harclip.services.base import State, Status

_HINT = "install it with `apt-get install -y redis-server` (`make services-up` does this)"


def render_config(redis: RedisSettings, home: Path) -> str:
    """`redis.conf` for a loopback-only Redis that keeps nothing on disk and logs to stdout.

    `harclip services up` starts it detached (its own session, output to redis.log), so Redis's own
    `daemonize` stays off: that way a server that dies at start-up is noticed at once.
    """
    host = urlsplit(redis.url).hostname or "127.0.0.1"
    settings = {
        "bind": host,
        "port": str(redis.port),
        "protected-mode": "yes",
        "daemonize": "no",
        "pidfile": str(home / "redis.pid"),
        "logfile": '""',
        "dir": str(home),
        "save": '""',
        "appendonly": "no",
    }
    head = "# Written by `harclip services up`; edits are overwritten on the next start.\n"
    return head + "".join(f"{k} {v}\n" for k, v in settings.items())


class RedisService:
    name = "redis"

    def __init__(self, redis: RedisSettings, services: ServicesSettings) -> None:
        self._redis = redis
        self._services = services
        self._dir = services.state_dir.resolve() / "redis"
        self._conf = self._dir / "redis.conf"
        self._pidfile = self._dir / "redis.pid"
        self._log = self._dir / "redis.log"
        self._host = urlsplit(redis.url).hostname or "127.0.0.1"
        if urlsplit(redis.url).scheme != "redis":
            raise ServiceError(f"`services up` runs a plain redis:// server, not {redis.url}")

    # -- Service ---------------------------------------------------------------------------

    def status(self) -> Status:
        pid = process.running_pid(self._pidfile, "redis-server")
        if pid is None:
            return self._status(State.STOPPED, None)
        return self._status(State.RUNNING if self._ready() else State.UNHEALTHY, pid)

    def up(self) -> Status:
        t0 = time.monotonic()
        pid = process.running_pid(self._pidfile, "redis-server")
        state = State.RUNNING
        if pid is None:
            process.require_free(self.name, self._host, [self._redis.port])
            server = process.require_tool("redis-server", _HINT)
            self._dir.mkdir(parents=True, exist_ok=True)
            self._conf.write_text(render_config(self._redis, self._dir))
            pid = process.spawn([server, str(self._conf)], self._log, cwd=self._dir)
            process.write_pid(self._pidfile, pid)
            state = State.STARTED
        started = pid
        try:
            process.wait_ready(
                self.name,
                self._ready,
                lambda: process.pid_alive(started),
                self._services.start_timeout_s,
                self._log,
            )
        except ServiceError:
            if state is State.STARTED:
                self.down()  # leave no half-started server behind
            raise
        return self._status(state, pid, time.monotonic() - t0)

    def down(self) -> Status:
        pid = process.running_pid(self._pidfile, "redis-server")
        if pid is not None:
            process.stop_pid(pid, timeout_s=30)
        self._pidfile.unlink(missing_ok=True)
        return self._status(State.STOPPED, None)

    # -- checks ----------------------------------------------------------------------------

    def _ready(self) -> bool:
        return answers(self._redis)

    def _status(self, state: State, pid: int | None, seconds: float | None = None) -> Status:
        info = _server_info(self._redis) if state in (State.STARTED, State.RUNNING) else None
        return Status(
            name=self.name,
            state=state,
            address=self._redis.url,
            version=str(info["redis_version"]) if info else "",
            pid=pid,
            log=self._log,
            seconds=seconds,
        )


def answers(redis: RedisSettings) -> bool:
    """True when the Redis at `redis.url` answers PING."""
    return _server_info(redis) is not None


def _server_info(settings: RedisSettings) -> dict[str, object] | None:
    """Redis's INFO server section, or None when it does not answer PING."""
    import redis  # lazy: `harclip --help` stays fast

    client = redis.Redis.from_url(settings.url, socket_timeout=2, socket_connect_timeout=2)
    try:
        if not client.ping():
            return None
        info: dict[str, object] = client.info("server")
        return info
    except redis.RedisError:
        return None
    finally:
        client.close()
