"""Find a Java runtime new enough for a service (Kafka: 17+, Elasticsearch 9: 21+)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from harclip.errors import ServiceError

_JVM_ROOT = Path("/usr/lib/jvm")
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_major(java: Path) -> int | None:
    """The major version of the `java` binary (8 for 1.8), or None when it does not run."""
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except OSError:
        return None
    m = _VERSION.search(out)
    if m is None:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def find_java(home: Path | None, min_major: int, who: str) -> Path:
    """A `java` binary of version >= `min_major`: from `home` if given, else PATH or /usr/lib/jvm.

    Raises `ServiceError` saying what to install (or which setting to fix) when there is none.
    """
    if home is not None:
        java = home / "bin" / "java"
        major = java_major(java)
        if major is None or major < min_major:
            found = "no runnable bin/java" if major is None else f"Java {major}"
            raise ServiceError(f"{who} needs Java {min_major}+, but {home} has {found}")
        return java
    on_path = shutil.which("java")
    candidates = [Path(on_path)] if on_path else []
    if _JVM_ROOT.is_dir():
        candidates += sorted(_JVM_ROOT.glob("*/bin/java"), reverse=True)
    for java in candidates:
        major = java_major(java)
        if major is not None and major >= min_major:
            return java
    raise ServiceError(
        f"{who} needs Java {min_major}+ and none was found on PATH or under {_JVM_ROOT}: install "
        f"one (e.g. apt-get install -y openjdk-{max(min_major, 17)}-jdk-headless or a Temurin JDK) "
        f"or point the HARCLIP_SERVICES__*JAVA_HOME setting at it"
    )


def java_home(java: Path) -> Path:
    """The JDK folder of a `java` binary (symlinks resolved): `<home>/bin/java` -> `<home>`."""
    return java.resolve().parent.parent
