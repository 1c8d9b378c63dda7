"""Work taken off the calling thread, run in order on another one."""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Callable


class InOrder:
    """Calls run one after another on a worker thread, in the order they were submitted; a context
    manager. `submit` waits while `backlog` calls are queued or running (memory stays bounded by
    what they hold), and raises the error of a call that failed. Leaving the block waits for every
    call and raises the first error; leaving it on an error cancels what has not started.

    For measurements of an edit's output (PSNR/SSIM, the "after" readers) that the paste loop need
    not wait for: NumPy and XLA release the GIL for most of their time, so on two cores the paste
    and the measurement run side by side."""

    def __init__(self, name: str, backlog: int = 2):
        self._pool = concurrent.futures.ThreadPoolExecutor(1, name)
        self._pending: collections.deque = collections.deque()
        self._backlog = backlog

    def submit(self, fn: Callable, *args) -> None:
        while len(self._pending) >= self._backlog:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args))

    def __enter__(self) -> InOrder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                while self._pending:
                    self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
