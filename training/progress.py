"""Progress display of the training commands (rich, on stderr, rank 0 only): bars for long
loops, and one line per finished step of work. Titles and bar infos are plain text (they name
files and classes from the data); only `say` takes Rich markup, so its callers escape data."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[..., None]  # advance(n=1, info="text shown after the bar")

console = Console(stderr=True, highlight=False)


@contextmanager
def bar(title: str, total: int | None, *, enabled: bool = True) -> Iterator[Advance]:
    """A progress bar of `total` units; yields `advance(n=1, info="...")`."""
    if not enabled:
        yield lambda n=1, info=None: None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task(escape(title), total=total, info="")

        def advance(n: int = 1, info: str | None = None) -> None:
            if info is None:
                progress.update(task, advance=n)
            else:
                progress.update(task, advance=n, info=escape(info))

        yield advance


@contextmanager
def step(title: str, *, enabled: bool = True) -> Iterator[None]:
    """A spinner while the step runs, then a tick with its duration (or a cross)."""
    if not enabled:
        yield
        return
    start = time.perf_counter()
    title = escape(title)
    try:
        with console.status(f"{title} ..."):
            yield
    except BaseException:
        console.print(f"[red]✗[/] {title}")
        raise
    console.print(f"[green]✓[/] {title} [dim]({time.perf_counter() - start:.1f} s)[/]")


def say(text: str, *, enabled: bool = True) -> None:
    if enabled:
        console.print(text)
