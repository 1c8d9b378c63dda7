"""Quantisation of float frames back to uint8 or uint16 without losing the pulse.

- `quantize` (to uint8) and `quantize_16bit` (to uint16): stochastic rounding (round up with
  probability equal to the fraction) is unbiased, E[q(x)] = x, so a sub-level pulse survives in the
  average over pixels (the 8-bit output step of the PulseEdit editor, and of the Privacy-Phys
  reproduction in this project's notes); plain rounding erases changes below half a level.
  "error_diffusion" is a first-order temporal error feedback (sigma-delta): each pixel carries its
  rounding error to the next frame, so the running sum of its output stays within half a level of
  the running sum of the input and the error moves to high temporal frequencies, above the pulse
  band. Exact integers come out unchanged under "stochastic" and "round"; under "error_diffusion"
  too while the pixel has been an integer in every earlier frame of the window (always true
  outside the edit mask), so untouched background stays bit-exact in every mode.
- ``window=``: a rectangle of whole frames is rounded with the random numbers the whole frames
  would draw there (`_WindowDraws`), so quantising only the pasted region gives the same bits.

The functions are pure and work on one window of frames at a time, so a long video can be
quantised window by window: chunk i of an edit seeded s draws from `rounding_seed(s, i)` (the one
rule, used by the file edit, the sweeps, the experiments and the live mode).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def rounding_seed(seed: int, index: int) -> tuple[int, int]:
    """The seed of the stochastic rounding of chunk `index` of an edit seeded `seed`.

    Plain integers (a NumPy `SeedSequence` entropy pair), not a JAX key: deriving a key on the host
    waits for every computation queued before it, so the paste would stall behind the editor."""
    return (int(seed), int(index))


def _rng(key_or_seed) -> np.random.Generator:
    """A NumPy generator seeded by an int, a tuple of ints (`rounding_seed`) or by the bits of a
    JAX PRNG key (raw or typed)."""
    if isinstance(key_or_seed, (int, np.integer)):
        return np.random.default_rng(int(key_or_seed))
    if isinstance(key_or_seed, tuple):
        return np.random.default_rng([int(v) for v in key_or_seed])
    key = jnp.asarray(key_or_seed)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key, np.uint32).ravel().tolist())


def _round_stochastic(frames, rng: np.random.Generator):
    """Yields each frame floored or ceiled, ceil with probability equal to its fraction."""
    for frame in frames:
        low = np.floor(frame)
        frac = frame - low  # exact in float32
        low += rng.random(frame.shape, dtype=np.float32) < frac
        yield low


def _round_nearest(frames, rng: np.random.Generator):
    """Yields each frame rounded to the nearest integer (ties to even)."""
    del rng
    for frame in frames:
        yield np.round(frame)


def _round_error_diffusion(frames, rng: np.random.Generator):
    """Yields each frame rounded after adding the rounding error carried from the previous one."""
    del rng
    error = np.float32(0.0)
    for frame in frames:
        target = frame + error
        out = np.round(target)
        error = target - out
        yield out


# Each quantiser maps an iterable of float frames (already clipped) and a generator to an
# iterable of integer-valued float frames.
QUANTIZERS: dict[str, Callable] = {
    "stochastic": _round_stochastic,
    "round": _round_nearest,
    "error_diffusion": _round_error_diffusion,
}


class _WindowDraws:
    """Stands in for the generator of whole frames when only a window of them is quantised.

    `random` returns, frame after frame, the float32 numbers that frames of `frame_shape`
    (H, W, C) would draw at the window's pixels (rows y0..y1-1, columns x0..x1-1, every channel,
    row-major). PCG64 hands out float32 numbers in pairs, the two halves of one 64-bit output, so
    number k of the stream is half k % 2 of output k // 2: the stream is advanced past the pixels
    outside the window (`advance`, O(log n)) instead of drawing them.
    """

    _GAP_DRAWN = 256  # numbers between two window rows drawn and dropped rather than skipped

    def __init__(self, rng: np.random.Generator, frame_shape, rect):
        height, width, channels = frame_shape
        y0, y1, x0, x1 = rect
        self._rng, self._pos, self._frame = rng, 0, 0  # _pos: numbers of the stream consumed
        self._row, self._cols, self._rows = width * channels, (x1 - x0) * channels, y1 - y0
        self._size = height * self._row  # numbers per frame
        self._first = y0 * self._row + x0 * channels  # the window's first number in a frame

    def _skip_to(self, pos: int) -> None:
        if pos == self._pos:
            return
        # ceil(_pos / 2) outputs are consumed (an odd _pos holds the second half in a buffer)
        self._rng.bit_generator.advance(pos // 2 - (self._pos + 1) // 2)  # clears the buffer
        if pos % 2:
            self._rng.random(1, dtype=np.float32)  # the first half of output pos // 2
        self._pos = pos

    def _draw(self, count: int) -> np.ndarray:
        self._pos += count
        return self._rng.random(count, dtype=np.float32)

    def random(self, shape, dtype=np.float32) -> np.ndarray:
        if dtype != np.float32:
            raise ValueError("window draws are float32")
        start = self._frame * self._size + self._first
        self._frame += 1
        self._skip_to(start)
        if self._row - self._cols <= self._GAP_DRAWN:  # one strip of whole rows
            strip = self._draw((self._rows - 1) * self._row + self._cols)
            strip = np.pad(strip, (0, self._row - self._cols))
            return strip.reshape(self._rows, self._row)[:, : self._cols].reshape(shape)
        out = np.empty((self._rows, self._cols), np.float32)
        for r in range(self._rows):
            self._skip_to(start + r * self._row)
            out[r] = self._draw(self._cols)
        return out.reshape(shape)


def _quantize(values, key_or_seed, mode: str, dtype, window=None) -> np.ndarray:
    if mode not in QUANTIZERS:
        raise ValueError(f"unknown quantisation mode {mode!r}; choose from {sorted(QUANTIZERS)}")
    values = np.asarray(values, np.float32)
    if not np.all(np.isfinite(values)):
        raise ValueError("quantize got non-finite values")
    top = np.float32(np.iinfo(dtype).max)
    frames = values.reshape((values.shape[0] if values.ndim else 1, -1))
    out = np.empty(frames.shape, dtype)
    clipped = (np.clip(frame, 0.0, top) for frame in frames)
    rng = _rng(key_or_seed)
    if window is not None:
        frame_shape, rect = window
        y0, y1, x0, x1 = rect
        if values.shape[1:] != (y1 - y0, x1 - x0, frame_shape[2]):
            raise ValueError(f"window {rect} of frames {frame_shape} does not fit {values.shape}")
        rng = _WindowDraws(rng, frame_shape, rect)
    stream = QUANTIZERS[mode](clipped, rng)
    for t, frame in enumerate(stream):
        out[t] = np.clip(frame, 0.0, top)
    return out.reshape(values.shape)


def quantize(frames_f32_255, key_or_seed, *, mode: str = "stochastic", window=None) -> np.ndarray:
    """Round 0-255 float frames to uint8.

    Values are clipped to [0, 255] first. Exact integers come out unchanged in every mode.

    Args:
      frames_f32_255: float (T, H, W, 3) on the 0-255 scale (any shape works; axis 0 is processed
        one slice at a time, so memory stays near one frame of temporaries, and "error_diffusion"
        carries its error along axis 0, which must be time).
      key_or_seed: an int, a tuple of ints (`rounding_seed`) or a JAX PRNG key (used by
        "stochastic" only; it seeds a NumPy PCG64 generator, which is ~7x faster than JAX's
        threefry on CPU). Use a different seed per window of a long video, `rounding_seed`.
      mode: "stochastic" (floor with probability ceil(x) - x, else ceil: unbiased, E[out] = x),
        "round" (nearest, ties to even) or "error_diffusion" (temporal error feedback).
      window: None, or ((H, W, C), (y0, y1, x0, x1)) when `frames_f32_255` (T, y1-y0, x1-x0, C)
        is that rectangle of whole frames (T, H, W, C): each pixel is then rounded with the
        number the whole frames would draw for it, so the rectangle comes out with the bits
        that quantising the whole frames gives there.

    Returns:
      uint8 array of the input's shape.
    """
    return _quantize(frames_f32_255, key_or_seed, mode, np.uint8, window)


def quantize_16bit(
    frames_f32_65535, key_or_seed, *, mode: str = "stochastic", window=None
) -> np.ndarray:
    """`quantize` for 16-bit output: float frames on the 0-65535 scale to uint16."""
    return _quantize(frames_f32_65535, key_or_seed, mode, np.uint16, window)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """uint16 frames (0-65535) rounded to the nearest 8-bit level; uint8 frames as they are."""
    if frames.dtype == np.uint8:
        return frames
    return ((frames.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
