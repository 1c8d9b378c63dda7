"""Progress bars: one bar per long pass, with a total and an ETA, on stderr.

Every long pass (decoding and tracking, edit windows, report readings, attackers, experiment
items, sweep items, training steps) shows its bar through `bar` or `wrap`. A bar is silent (a
stand-in that does nothing) when progress is disabled (`--noprogress`, `progress=False`) or when
its stream is not a terminal, so logs and pipes get no bar text, unless $RPPGEDIT_PROGRESS is
"always" (bars into a log file, e.g. a batch job's).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

PROGRESS_ENV = "RPPGEDIT_PROGRESS"


class NoBar:
    """The silent bar: the methods of a tqdm bar that callers use, doing nothing."""

    n = 0
    total = None

    def update(self, n: int = 1) -> None:
        del n

    def set_postfix(self, *args, **kwargs) -> None:
        del args, kwargs

    def set_description(self, *args, **kwargs) -> None:
        del args, kwargs

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def shown(enabled: bool, file: TextIO | None = None) -> bool:
    """Whether a bar would be drawn: enabled, and `file` (default stderr) is a terminal or
    $RPPGEDIT_PROGRESS is "always"."""
    if not enabled:
        return False
    if os.environ.get(PROGRESS_ENV, "").strip().lower() == "always":
        return True
    stream = sys.stderr if file is None else file
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def bar(
    total: int | None,
    desc: str,
    enabled: bool = True,
    *,
    unit: str = "it",
    initial: int = 0,
    file: TextIO | None = None,
) -> Any:
    """A tqdm bar `desc: n/total [elapsed<ETA, rate]` on `file` (stderr), or a silent `NoBar`.

    Args:
      total: the pass's size in `unit`s (None when unknown: then no ETA is shown).
      desc: what the pass does, e.g. "edit windows".
      enabled: False gives the silent bar (`--noprogress`).
      unit: what one step counts ("frame", "win", "item", "step", ...).
      initial: steps already done (a resumed pass).
      file: the stream (default stderr); a stream that is not a terminal gives the silent bar.
    """
    stream = sys.stderr if file is None else file
    if not shown(enabled, stream):
        return NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, dynamic_ncols=True)


def wrap(
    iterable: Iterable,
    desc: str,
    enabled: bool = True,
    *,
    total: int | None = None,
    unit: str = "it",
    file: TextIO | None = None,
) -> Iterator:
    """`iterable` with a bar advanced by one per item (total: `total`, else len(iterable) if any)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    b = bar(total, desc, enabled, unit=unit, file=file)
    if isinstance(b, NoBar):
        yield from iterable
        return
    try:
        for item in iterable:
            yield item
            b.update(1)
    finally:
        b.close()
