"""A local Redis from the system's `redis-server` (Debian package): loopback, no persistence."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from harclip.config import RedisSettings, ServicesSettings
from harclip.errors import ServiceError
from harclip.services import process
from harclip.services.base import LocalServer, State, Status, render

_HINT = "install it with `apt-get install -y redis-server` (`make services-up` does this)"


def render_config(redis: RedisSettings, home: Path) -> str:
    """`redis.conf` for a loopback-only Redis that keeps nothing on disk and logs to stdout.

    `harclip services up` starts it detached (its own session, output to redis.log), so Redis's own
    `daemonize` stays off: that way a server that dies at start-up is noticed at once.
    """
    settings = {
        "bind": redis.host,
        "port": str(redis.port),
        "protected-mode": "yes",
        "daemonize": "no",
        "pidfile": str(home / "redis.pid"),
        "logfile": '""',
        "dir": str(home),
        "save": '""',
        "appendonly": "no",
    }
    return render(settings, " ")


class RedisService(LocalServer):
    name = "redis"
    _stop_timeout_s = 30.0

    def __init__(self, redis: RedisSettings, services: ServicesSettings) -> None:
        self._redis = redis
        self._services = services
        self._dir = services.state_dir.resolve() / "redis"
        self._conf = self._dir / "redis.conf"
        self._pidfile = self._dir / "redis.pid"
        self._marker = "redis-server"
        self._log = self._dir / "redis.log"
        if urlsplit(redis.url).scheme != "redis":
            raise ServiceError(f"`services up` runs a plain redis:// server, not {redis.url}")

    # -- Service ---------------------------------------------------------------------------

    def up(self) -> Status:
        return self._up(self._spawn)

    def _spawn(self) -> int:
        process.require_free(self.name, self._redis.host, [self._redis.port])
        server = process.require_tool("redis-server", _HINT)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._conf.write_text(render_config(self._redis, self._dir))
        return process.spawn([server, str(self._conf)], self._log, cwd=self._dir)

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
