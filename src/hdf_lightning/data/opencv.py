"""OpenCV in processes that fork: its thread pool is never inherited.

OpenCV's ``pthreads`` thread pool (the parallel framework of the ``opencv-python`` wheels) starts
worker threads in the first process that runs a parallel kernel. ``fork()`` copies the pool's
bookkeeping but not its threads, so a forked child that touches the pool (``cv2.setNumThreads``,
or any kernel large enough to run in parallel) waits forever for threads that do not exist. A
DataLoader forks its workers after the main process may well have used OpenCV (a loader at
``num_workers=0``, a notebook cell, face detection), so this module registers an at-fork hook:

* before every ``os.fork()`` (DataLoader workers, ``multiprocessing`` with the fork start
  method) the parent sets OpenCV to one thread, which stops and joins its pool threads, so the
  child starts with no pool and with OpenCV single-threaded (as torch is in DataLoader workers:
  the workers are the parallelism);
* after the fork the parent gets its previous thread count back (the pool restarts on its next
  parallel kernel).

The hook does nothing while ``cv2`` has not been imported, and it is registered once, when this
module is imported (``hdf_lightning.data`` imports it), so it covers OpenCV used by any code of the
process, not only this package's.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

__all__ = ["opencv"]

_saved_threads: int | None = None


def _before_fork() -> None:
    """Stop OpenCV's thread pool in the parent (one thread) and remember the thread count."""
    global _saved_threads
    cv2 = sys.modules.get("cv2")
    if cv2 is None or not hasattr(cv2, "getNumThreads"):
        return
    threads = int(cv2.getNumThreads())
    if threads != 1:
        cv2.setNumThreads(1)
        _saved_threads = threads


def _after_fork_in_parent() -> None:
    """Give the parent its OpenCV thread count back."""
    global _saved_threads
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and _saved_threads is not None:
        cv2.setNumThreads(_saved_threads)
    _saved_threads = None


def _after_fork_in_child() -> None:
    global _saved_threads
    _saved_threads = None  # the child keeps the single thread it was forked with


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


def opencv() -> ModuleType:
    """The ``cv2`` module (imported on first use: it is slow to import), single-threaded inside
    DataLoader workers, as torch is there: the workers are the parallelism, and threads of their
    own would only compete for the same cores."""
    import cv2
    from torch.utils.data import get_worker_info

    if get_worker_info() is not None and cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)  # safe: a forked worker starts without a pool (see above)
    return cv2
