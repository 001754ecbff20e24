"""A single-node Elasticsearch from Elastic's integ-test distribution on Maven Central.

That zip is the server with transport, x-pack core and security, and no bundled JDK: it runs on
a system Java 21+ (`ES_JAVA_HOME`). It has no `GET /` endpoint, so readiness is cluster health.
Elasticsearch refuses to run as root; as root we run it as the unprivileged user `harclip`.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import time
import zipfile
from pathlib import Path

from harclip.config import ElasticsearchSettings, ServicesSettings
from harclip.errors import ServiceError
from harclip.services import process
from harclip.services.base import LocalServer, State, Status, render
from harclip.services.java import find_java, java_home

RUN_AS = "harclip"
_FALLBACK_HOME = Path("/var/lib/harclip")
_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
_MVN_HINT = "install Maven (apt-get install -y maven); it fetches Elasticsearch from Maven Central"


def render_config(es: ElasticsearchSettings, services: ServicesSettings, home: Path) -> str:
    """`elasticsearch.yml` for one loopback node without security; data and logs under `home`."""
    settings = {
        "cluster.name": "harclip",
        "node.name": "harclip-local",
        "path.data": str(home / "data"),
        "path.logs": str(home / "logs"),
        "network.host": es.host,
        "http.port": str(es.port),
        "transport.port": str(services.elasticsearch_transport_port),
        "discovery.type": "single-node",
        "xpack.security.enabled": "false",
        # a nearly full dev disk must not turn every index read-only
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "action.destructive_requires_name": "false",
    }
    return render(settings, ": ")


class ElasticsearchService(LocalServer):
    name = "elasticsearch"

    def __init__(self, es: ElasticsearchSettings, services: ServicesSettings) -> None:
        self._es = es
        self._services = services
        self._dir = services.state_dir.resolve() / "elasticsearch"
        self._dist = (
            services.downloads.resolve() / f"elasticsearch-{services.elasticsearch_version}"
        )
        if os.geteuid() == 0 and not (_reachable(self._dir) and _reachable(self._dist)):
            # The service user cannot reach a state folder under, say, /root (mode 700): keep
            # Elasticsearch's files in a traversable folder of their own, one per state folder.
            base = _FALLBACK_HOME / hashlib.sha256(str(self._dir).encode()).hexdigest()[:12]
            self._dir = base / "elasticsearch"
            self._dist = base / self._dist.name
        self._conf = self._dir / "config"
        self._pidfile = self._dir / "elasticsearch.pid"
        self._log = self._dir / "logs" / "harclip.log"
        self._startup_log = self._dir / "logs" / "startup.log"
        # ES passes ES_TMPDIR as -Djava.io.tmpdir: a command-line mark unique to this state folder
        self._marker = f"-Djava.io.tmpdir={self._dir / 'tmp'}"

    # -- Service ---------------------------------------------------------------------------

    def up(self) -> Status:
        t0 = time.monotonic()
        pid = self._pid()
        if pid is not None:
            self._wait(lambda: process.pid_alive(pid))
            return self._status(State.RUNNING, pid, time.monotonic() - t0)
        self._settle()
        process.require_free(
            self.name, self._es.host, [self._es.port, self._services.elasticsearch_transport_port]
        )
        java = find_java(self._services.es_java_home, 21, "Elasticsearch 9")
        self._fetch()
        self._configure()
        self._pidfile.unlink(missing_ok=True)
        launcher = process.spawn(self._command(java), self._startup_log, cwd=self._dir)

        def alive() -> bool:
            server = process.read_pid(self._pidfile)
            return process.pid_alive(launcher) or (server is not None and process.pid_alive(server))

        try:
            self._wait(alive)
        except ServiceError as e:
            process.stop_pid(launcher, timeout_s=30)
            self.down()  # leave no half-started server behind
            startup = process.tail(self._startup_log, 15)
            raise ServiceError(f"{e}\nstart-up output ({self._startup_log}):\n{startup}") from None
        return self._status(State.STARTED, process.read_pid(self._pidfile), time.monotonic() - t0)

    # -- steps -----------------------------------------------------------------------------

    def _fetch(self) -> None:
        """Download and unpack the distribution once into `<cache>/elasticsearch-<v>`."""
        if (self._dist / ".complete").is_file():
            return
        mvn = process.require_tool("mvn", _MVN_HINT)
        version = self._services.elasticsearch_version
        work = self._dist.with_name(self._dist.name + ".partial")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        process.run_tool(
            [mvn, "-B", "-q", "dependency:copy", f"-Dartifact={_ARTIFACT.format(version=version)}",
             f"-DoutputDirectory={work}"],
            f"fetching Elasticsearch {version} (integ-test-zip) from Maven Central",
            cwd=work,
        )  # fmt: skip
        archive = work / f"elasticsearch-{version}.zip"
        _unzip(archive, work)
        archive.unlink()
        inner = work / f"elasticsearch-{version}"
        if not (inner / "bin" / "elasticsearch").is_file():
            raise ServiceError(f"{archive.name} has no elasticsearch-{version}/bin/elasticsearch")
        (inner / ".complete").write_text(version + "\n")
        shutil.rmtree(self._dist, ignore_errors=True)
        inner.rename(self._dist)
        shutil.rmtree(work)

    def _configure(self) -> None:
        """A private config folder (the distribution's defaults + our elasticsearch.yml)."""
        for sub in ("data", "logs", "tmp"):
            (self._dir / sub).mkdir(parents=True, exist_ok=True)
        shutil.copytree(self._dist / "config", self._conf, dirs_exist_ok=True)
        (self._conf / "elasticsearch.yml").write_text(
            render_config(self._es, self._services, self._dir)
        )
        if os.geteuid() == 0:
            _ensure_user(RUN_AS)
            _chown_tree(self._dir, RUN_AS)

    def _command(self, java: Path) -> list[str]:
        heap = self._services.elasticsearch_heap_mb
        env = [
            f"ES_JAVA_HOME={java_home(java)}",
            f"ES_JAVA_OPTS=-Xms{heap}m -Xmx{heap}m",
            f"ES_PATH_CONF={self._conf}",
            f"ES_TMPDIR={self._dir / 'tmp'}",
        ]
        cmd = [
            "env",
            *env,
            str(self._dist / "bin" / "elasticsearch"),
            "-d",
            "-p",
            str(self._pidfile),
        ]
        if os.geteuid() == 0:
            return ["runuser", "-u", RUN_AS, "--", *cmd]
        return cmd

    def _ready(self) -> bool:
        return answers(self._es)

    def _version(self) -> str:
        import httpx  # lazy: `harclip --help` stays fast

        try:
            nodes = httpx.get(
                f"{self._es.url}/_nodes/_local",
                params={"filter_path": "nodes.*.version"},
                timeout=5,
            ).json()["nodes"]
            return str(next(iter(nodes.values()))["version"])
        except (httpx.HTTPError, KeyError, ValueError, StopIteration):
            return self._services.elasticsearch_version

    def _status(self, state: State, pid: int | None, seconds: float | None = None) -> Status:
        running = state in (State.STARTED, State.RUNNING)
        return Status(
            name=self.name,
            state=state,
            address=self._es.url,
            version=self._version() if running else self._services.elasticsearch_version,
            pid=pid,
            log=self._log,
            seconds=seconds,
        )


def answers(es: ElasticsearchSettings) -> bool:
    """True when the cluster at `es.url` reports health yellow or green."""
    return _health(es.url) in ("yellow", "green")


def _health(url: str) -> str | None:
    """The cluster's health colour, or None when it does not answer."""
    import httpx

    try:
        r = httpx.get(
            f"{url}/_cluster/health",
            params={"wait_for_status": "yellow", "timeout": "1s"},
            timeout=5,
        )
        return str(r.json().get("status")) if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def _unzip(archive: Path, dest: Path) -> None:
    """Extract `archive` keeping the executable bits that `zipfile` alone would drop."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            path = Path(z.extract(info, dest))
            mode = info.external_attr >> 16
            if mode and not stat.S_ISLNK(mode):
                path.chmod(stat.S_IMODE(mode) | 0o444)  # readable by the service user


def _ensure_user(user: str) -> None:
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    process.run_tool(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", user],
        f"creating the unprivileged user {user!r} that runs Elasticsearch",
    )  # fmt: skip


def _reachable(path: Path) -> bool:
    """True when a user other than the owner may traverse every existing folder above `path`."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in path.parents if p.exists())


def _chown_tree(root: Path, user: str) -> None:
    subprocess.run(["chown", "-R", f"{user}:{user}", str(root)], check=True)
