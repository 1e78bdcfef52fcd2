"""The progress bar over videos of ``hdf predict`` and ``hdf data extract --faces``."""

from __future__ import annotations

from typing import Any

__all__ = ["video_progress"]


def video_progress(label: str, enabled: bool | None = None) -> Any:
    """A rich ``Progress`` on stderr: ``<label> ━━━━ 12/20 videos 0:01:10 ETA 0:00:48``.

    Args:
        label: what is being done (``face crops``, ``predict``).
        enabled: show it (None: only when stderr is a terminal, so logs and pipes stay clean).

    Returns:
        The ``rich.progress.Progress``; use it as a context manager and ``add_task(total=...)``.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("videos"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal if enabled is None else not enabled,
        transient=False,
    )
