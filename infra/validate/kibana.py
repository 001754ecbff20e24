"""stub"""

from pathlib import Path


def check(root: Path) -> list[str]:
    return []


def check_compose(root: Path) -> list[str]:
    return []


def check_dockerfiles(root: Path) -> list[str]:
    return []
