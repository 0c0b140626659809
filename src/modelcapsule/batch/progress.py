"""A progress bar for batch scoring: rows done, rows per second, time left when the size is known.

It goes to standard error and only when asked (the command line asks when standard error is a
terminal), so piped output and logs stay clean. The bar counts rows when the file says how many it
holds (Parquet, NPY) and bytes read otherwise (CSV, JSON Lines).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from .table import ChunkReader

__all__ = ["Tracker", "track"]


class Tracker(Protocol):
    def __call__(self, rows_done: int) -> None: ...


@contextmanager
def track(reader: ChunkReader, enabled: bool) -> Iterator[Tracker]:
    """Yield a callback taking the number of rows done so far."""
    if not enabled:
        yield lambda rows_done: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    by_rows = reader.total_rows is not None
    total = reader.total_rows if by_rows else reader.total_bytes
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:>12,} rows"),
        TextColumn("{task.fields[rate]:>10,.0f} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    start = time.perf_counter()
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("scoring", total=total, rows=0, rate=0.0)

        def update(rows_done: int) -> None:
            rate = rows_done / max(time.perf_counter() - start, 1e-9)
            done = rows_done if by_rows else reader.bytes_read()
            bar.update(task, completed=done, rows=rows_done, rate=rate)

        yield update
        if total is not None:
            bar.update(task, completed=total)
