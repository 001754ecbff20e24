"""A local S3-compatible object store: Versity's S3 gateway (versitygw) over a folder, loopback
only, built once with Go into the cache (`<cache>/versitygw-<v>/bin/versitygw`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from harclip.config import ObjectStoreSettings, ServicesSettings
from harclip.errors import ServiceError
from harclip.services import process
from harclip.services.base import LocalServer, State, Status

MODULE = "github.com/versity/versitygw/cmd/versitygw"
# the official tarball's Go, when `go` is not on PATH (the Makefile looks in the same places)
_GO_TARBALL = Path("/usr/local/go/bin/go")
_GO_HINT = (
    "the object store (Versity's S3 gateway) is built with Go on the first `services up`: "
    "install it with `apt-get install -y golang` or put Go on PATH (a Go older than 1.25 "
    "fetches the 1.25 toolchain that versitygw asks for)"
)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def find_go() -> str:
    """`go` on PATH, else /usr/local/go/bin/go; `ServiceError` saying how to install it."""
    on_path = shutil.which("go")
    if on_path is not None:
        return on_path
    if _GO_TARBALL.is_file():
        return str(_GO_TARBALL)
    raise ServiceError(f"`go` not found on PATH or at {_GO_TARBALL}: {_GO_HINT}")


class ObjectStoreService(LocalServer):
    """`objects`: versitygw's posix backend over `<state_dir>/objects/data` (one folder per
    bucket, one file per object, metadata such as the content type in extended attributes)."""

    name = "objects"
    _stop_timeout_s = 30.0

    def __init__(self, objects: ObjectStoreSettings, services: ServicesSettings) -> None:
        self._objects = objects
        self._services = services
        self._dir = services.state_dir.resolve() / "objects"
        self._data = self._dir / "data"
        version = services.versitygw_version
        self._bin = services.downloads.resolve() / f"versitygw-{version}" / "bin" / "versitygw"
        self._pidfile = self._dir / "versitygw.pid"
        self._log = self._dir / "versitygw.log"
        self._marker = str(self._data)  # in the command line: this state dir's server only

    # -- Service ---------------------------------------------------------------------------

    def up(self) -> Status:
        return self._up(self._spawn)

    # -- steps -----------------------------------------------------------------------------

    def _spawn(self) -> int:
        if self._objects.host not in _LOOPBACK or self._objects.url.startswith("https:"):
            raise ServiceError(
                f"`services up` runs a plain http:// object store on loopback, not "
                f"{self._objects.url}: set HARCLIP_OBJECTS__URL=http://127.0.0.1:<port>"
            )
        process.require_free(self.name, self._objects.host, [self._objects.port])
        self._build()
        self._data.mkdir(parents=True, exist_ok=True)
        # the root credentials go in the environment, never on the command line (ps shows it)
        env = {
            "ROOT_ACCESS_KEY": self._objects.access_key,
            "ROOT_SECRET_KEY": self._objects.secret_key.get_secret_value(),
        }
        return process.spawn(self._command(), self._log, cwd=self._dir, env=env)

    def _build(self) -> None:
        """`go install` versitygw once into the cache (minutes, the first time only)."""
        if self._bin.is_file():
            return
        version = self._services.versitygw_version
        partial = self._bin.parent.parent.with_name(self._bin.parent.parent.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "bin").mkdir(parents=True)
        go = find_go()
        process.run_tool(
            # GOTOOLCHAIN=auto: an older Go (Debian's sets `local`) fetches the one go.mod asks for
            ["env", f"GOBIN={partial / 'bin'}", "GOTOOLCHAIN=auto", go, "install",
             f"{MODULE}@{version}"],
            f"building Versity's S3 gateway {version} with Go (a few minutes, once)",
            timeout_s=1800,
        )  # fmt: skip
        shutil.rmtree(self._bin.parent.parent, ignore_errors=True)
        partial.rename(self._bin.parent.parent)

    def _command(self) -> list[str]:
        o = self._objects
        return [
            str(self._bin),
            "--port", f"{o.host}:{o.port}",
            "--region", o.region,
            "--quiet",
            "posix", str(self._data),
        ]  # fmt: skip

    # -- checks ----------------------------------------------------------------------------

    def _ready(self) -> bool:
        return answers(self._objects)

    def _status(self, state: State, pid: int | None, seconds: float | None = None) -> Status:
        return Status(
            name=self.name,
            state=state,
            address=self._objects.url,
            version=f"versitygw {self._services.versitygw_version}",
            pid=pid,
            log=self._log,
            seconds=seconds,
        )


def answers(objects: ObjectStoreSettings) -> bool:
    """True when the S3 endpoint at `objects.url` answers HTTP (any reply but a 5xx: an
    unsigned request is refused with 403 by every S3 server, which still means it is up)."""
    import httpx  # lazy: `harclip --help` stays fast

    if not process.port_open(objects.host, objects.port):
        return False
    try:
        reply = httpx.get(objects.url + "/", timeout=2.0)
    except httpx.HTTPError:
        return False
    return reply.status_code < 500
