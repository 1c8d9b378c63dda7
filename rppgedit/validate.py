"""Checks done before any decoding: numbers finite and in range, consistent settings, face boxes
that cover enough of the frame, and the memory a frame size needs against a stated budget.

Every refusal is an `RppgEditError` with one line naming the flag (``--window``) or the file.
The command line (`rppgedit.main`) calls these on its flags; the library calls the file checks
(`check_frame_size`, `check_decode_total`, `check_face_box`) where it learns the sizes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from rppgedit.errors import RppgEditError

# Sides of a frame a decoder may produce (ffmpeg's own limit is 16384 for most codecs).
MAX_SIDE = 16384
# An edit holds about this many float32 copies of a frame at once (a chunk of at least 4 frames:
# decoded, pasted, quantised, the full-frame mask), so one frame of W x H costs W * H * 3 * 4 * 16.
EDIT_BYTES_PER_PIXEL = 3 * 4 * 16
# A face box must cover at least this many frame pixels on each side, and at least this fraction
# of its area must lie inside the frame (the rest reads edge-replicated pixels).
MIN_BOX_PX = 8
MIN_BOX_INSIDE = 0.5
MAX_STEPS = 1_000_000
MAX_WORK_SIZE = 512
MAX_WINDOW = 4096
MAX_BATCH_WINDOWS = 256


def memory_budget() -> int:
    """Bytes a run may use for frames: ``$RPPGEDIT_MEMORY_BUDGET_GB`` or half the machine's RAM."""
    env = os.environ.get("RPPGEDIT_MEMORY_BUDGET_GB")
    if env:
        try:
            value = float(env)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise RppgEditError(f"RPPGEDIT_MEMORY_BUDGET_GB={env!r} is not a positive number")
        return int(value * 2**30)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return int(total // 2)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def max_pixels() -> int:
    """The largest frame (in pixels) that fits the budget; also given to ffmpeg's decoders."""
    return int(min(MAX_SIDE * MAX_SIDE, memory_budget() // EDIT_BYTES_PER_PIXEL))


def check_frame_size(path, width: int, height: int) -> None:
    """Refuses a frame size (from a header, before decoding) whose edit would not fit the budget."""
    if width < 1 or height < 1:
        raise RppgEditError(f"{path}: frame size {width}x{height} is empty")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise RppgEditError(
            f"{path}: frame size {width}x{height} exceeds {MAX_SIDE} pixels per side"
        )
    need = width * height * EDIT_BYTES_PER_PIXEL
    budget = memory_budget()
    if need > budget:
        raise RppgEditError(
            f"{path}: frame size {width}x{height} needs about {_gib(need)} to edit, more than "
            f"the memory budget of {_gib(budget)} (RPPGEDIT_MEMORY_BUDGET_GB)"
        )


def check_decode_total(path, frames: int, width: int, height: int, itemsize: int = 1) -> None:
    """Refuses reading `frames` whole frames into memory when they exceed the budget."""
    need = frames * width * height * 3 * itemsize
    budget = memory_budget()
    if need > budget:
        raise RppgEditError(
            f"{path}: {frames} frames of {width}x{height} need {_gib(need)} in memory, more than "
            f"the budget of {_gib(budget)} (RPPGEDIT_MEMORY_BUDGET_GB); use a shorter clip"
        )


def check_face_box(box: Sequence[float], width: int, height: int, what: str = "--face_box"):
    """Refuses a fixed face box that is not finite, is inverted, or covers too little of the
    frame: an edit of edge-replicated pixels outside the frame would change nothing."""
    if len(box) != 4 or not all(math.isfinite(float(v)) for v in box):
        raise RppgEditError(f"{what}: want four finite numbers x0,y0,x1,y1; got {list(box)}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise RppgEditError(f"{what}: want x1 > x0 and y1 > y0; got {x0:g},{y0:g},{x1:g},{y1:g}")
    iw = min(x1, width) - max(x0, 0.0)
    ih = min(y1, height) - max(y0, 0.0)
    if iw < MIN_BOX_PX or ih < MIN_BOX_PX:
        raise RppgEditError(
            f"{what}: box {x0:g},{y0:g},{x1:g},{y1:g} covers {max(iw, 0):g}x{max(ih, 0):g} pixels "
            f"of the {width}x{height} frame; at least {MIN_BOX_PX}x{MIN_BOX_PX} are needed"
        )
    if iw * ih < MIN_BOX_INSIDE * (x1 - x0) * (y1 - y0):
        raise RppgEditError(
            f"{what}: box {x0:g},{y0:g},{x1:g},{y1:g} lies mostly outside the {width}x{height} "
            "frame"
        )


# --------------------------------------------------------------------------------------------
# Numbers.


def finite(name: str, value, *, low=None, high=None, low_open=False) -> None:
    """Refuses a non-finite number or one outside [low, high] ((low, high] with `low_open`)."""
    if value is None:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RppgEditError(f"{name}: not a number: {value!r}") from None
    if not math.isfinite(number):
        raise RppgEditError(f"{name}: must be a finite number, got {value}")
    if low is not None and (number <= low if low_open else number < low):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise RppgEditError(f"{name}: must be {bound}, got {value}")
    if high is not None and number > high:
        raise RppgEditError(f"{name}: must be <= {high:g}, got {value}")


def integer(name: str, value, low: int, high: int) -> None:
    """Refuses an integer outside [low, high]."""
    if value is None:
        return
    if not low <= int(value) <= high:
        raise RppgEditError(f"{name}: must be in {low}..{high}, got {value}")


def one_of(name: str, value, choices) -> None:
    if value is not None and value not in choices:
        raise RppgEditError(f"{name}: unknown value {value!r}; choose one of {', '.join(choices)}")


def windows(window: int, overlap: int, batch_windows: int, work_size: int) -> None:
    """The editing-window flags, once `settings.resolve` has turned `--window=0` (the default) into
    the target's window (`windows.default_window`): frames from here on."""
    if not 32 <= int(window) <= MAX_WINDOW:
        raise RppgEditError(
            f"--window: must be 0 (the default) or in 32..{MAX_WINDOW}, got {window}"
        )
    integer("--overlap", overlap, 0, window - 1)
    integer("--batch_windows", batch_windows, 0, MAX_BATCH_WINDOWS)
    integer("--work_size", work_size, 8, MAX_WORK_SIZE)
