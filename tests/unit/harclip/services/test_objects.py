"""The `objects` service's command line and refusals, without starting it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harclip.config import ObjectStoreSettings, ServicesSettings
from harclip.errors import ServiceError
from harclip.services.base import State
from harclip.services.objects import ObjectStoreService


def test_the_server_listens_on_the_url_and_keeps_its_secret_off_the_command_line(
    tmp_path: Path,
) -> None:
    objects = ObjectStoreSettings(url="http://127.0.0.1:19001", secret_key="s3cr3t-key")
    svc = ObjectStoreService(objects, ServicesSettings(state_dir=tmp_path))
    cmd = svc._command()
    assert cmd[0] == str(tmp_path.resolve() / "cache" / "versitygw-v1.8.0" / "bin" / "versitygw")
    assert cmd[cmd.index("--port") + 1] == "127.0.0.1:19001"
    assert cmd[-2:] == ["posix", str(tmp_path.resolve() / "objects" / "data")]
    assert not any("s3cr3t" in part for part in cmd)


@pytest.mark.parametrize("url", ["http://10.0.0.5:9000", "https://127.0.0.1:9000"])
def test_up_runs_plain_http_on_loopback_only(tmp_path: Path, url: str) -> None:
    svc = ObjectStoreService(ObjectStoreSettings(url=url), ServicesSettings(state_dir=tmp_path))
    assert svc.status().state is State.STOPPED  # status works for any address
    with pytest.raises(ServiceError, match="loopback"):
        svc.up()
    assert not (tmp_path / "cache").exists()  # nothing built
