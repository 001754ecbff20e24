"""Where Elasticsearch's files go when its unprivileged user cannot reach the state folder."""

from __future__ import annotations

from pathlib import Path

from harclip.services.elasticsearch import _reachable


def test_a_private_parent_makes_a_folder_unreachable(tmp_path: Path) -> None:
    private = tmp_path / "private"
    (private / "state").mkdir(parents=True)
    open_ = tmp_path / "open"
    (open_ / "state").mkdir(parents=True)
    private.chmod(0o700)
    open_.chmod(0o755)
    tmp_path.chmod(0o755)
    try:
        assert not _reachable(private / "state" / "elasticsearch")
        assert _reachable(open_ / "state" / "elasticsearch") == all(
            p.stat().st_mode & 0o001 for p in tmp_path.parents
        )
    finally:
        private.chmod(0o755)
