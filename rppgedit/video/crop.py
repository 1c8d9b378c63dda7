"""Face crops in and out of full frames, and quantisation back to integers without losing the pulse.

- `crop_resize`: exact area averaging of a (sub-pixel) box onto an S x S grid: each output pixel is
  the mean of the frame over its footprint, with fractional pixel overlaps weighted by area (the
  continuous version of OpenCV's INTER_AREA). It is separable, so each frame costs two small matrix
  products. Parts of a box outside the frame read the nearest edge pixel (edge replication).
- `paste_residual`: bilinear upsampling of an S x S residual (edited crop minus original crop) to the
  box's pixels, added only where a full-frame mask is True. Interpolation is written as
  r0 + f (r1 - r0), so a constant residual is reproduced exactly (no block artefacts, no rounding
  ripple) and a smooth one stays smooth. Pixels outside the mask keep their input value exactly.
- `quantize`: back to integers. Stochastic rounding (round up with probability equal to the
  fraction) is unbiased, E[q(x)] = x, so a sub-level pulse survives in the average over pixels (the
  8-bit output step of the PulseEdit editor, and of the Privacy-Phys reproduction in this project's
  notes); plain rounding erases changes below half a level. "error_diffusion" is a first-order
  temporal error feedback (sigma-delta): each pixel carries its rounding error to the next frame,
  so the running sum of its output stays within half a level of the running sum of the input and
  the error moves to high temporal frequencies, above the pulse band. Exact integers come out
  unchanged under "stochastic" and "round"; under "error_diffusion" too while the pixel has been
  an integer in every earlier frame of the window (always true outside the edit mask), so
  untouched background stays bit-exact in every mode.

All functions are pure and work on one window of frames at a time, so a long video can be pasted and
quantised window by window (give each window its own PRNG key, e.g. `jax.random.fold_in(key, i)`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def _check_frames(frames: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    boxes = np.asarray(boxes, np.float64)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T,H,W,3), got {frames.shape}")
    if boxes.shape != (frames.shape[0], 4):
        raise ValueError(f"boxes must be (T,4) = ({frames.shape[0]},4), got {boxes.shape}")
    if not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2:] <= boxes[:, :2]):
        raise ValueError("boxes must be finite with x1 > x0 and y1 > y0")
    return frames, boxes


def _area_matrix(start: float, stop: float, size: int, n_in: int) -> tuple[np.ndarray, int]:
    """Area-averaging weights from the pixels of one axis onto `size` output cells.

    Output cell i covers [start + i s, start + (i + 1) s), s = (stop - start) / size; input pixel j
    covers [j, j + 1). Pixels outside [0, n_in) are replaced by the nearest edge pixel.

    Returns:
      (weights float64 (size, m), first): weights over input pixels first .. first + m - 1; every
      row sums to 1.
    """
    step = (stop - start) / size
    # Only pixels inside the frame get a column: the parts of the box before pixel 0 and after
    # pixel n_in - 1 read those edge pixels, so their overlaps are summed in closed form (memory
    # stays O(size x frame side) however far the box reaches out of the frame).
    lo = min(max(int(np.floor(start)), 0), n_in - 1)
    hi = max(min(int(np.ceil(stop)), n_in), lo + 1)
    edges = start + step * np.arange(size + 1)
    pix = np.arange(lo, hi)
    overlap = np.clip(
        np.minimum(edges[1:, None], pix[None, :] + 1.0)
        - np.maximum(edges[:-1, None], pix[None, :]),
        0.0,
        None,
    )
    before = np.clip(np.minimum(edges[1:], 0.0) - edges[:-1], 0.0, None)
    after = np.clip(edges[1:] - np.maximum(edges[:-1], float(n_in)), 0.0, None)
    overlap[:, 0] += before if lo == 0 else 0.0
    overlap[:, -1] += after if hi == n_in else 0.0
    return overlap / step, lo


def crop_resize(frames: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Cut each frame's box and area-resample it to size x size.

    Args:
      frames: uint8 (T, H, W, 3) RGB frames.
      boxes: (T, 4) boxes (x0, y0, x1, y1) in pixels (float, may extend past the frame; the outside
        part reads edge-replicated pixels). Pixel j spans [j, j+1), so (0, 0, W, H) is the frame.
      size: output side S.

    Returns:
      float32 (T, S, S, 3) in [0, 1]. For boxes larger than S pixels this is an exact area average
      (antialiased); for boxes smaller than S it is box (nearest-like) upsampling.
    """
    frames, boxes = _check_frames(frames, boxes)
    height, width = frames.shape[1:3]
    out = np.empty((frames.shape[0], size, size, 3), np.float32)
    for t, (x0, y0, x1, y1) in enumerate(boxes):
        wy, fy = _area_matrix(y0, y1, size, height)
        wx, fx = _area_matrix(x0, x1, size, width)
        region = frames[t, fy : fy + wy.shape[1], fx : fx + wx.shape[1]].astype(np.float32)
        n_w = region.shape[1]
        rows = wy.astype(np.float32) @ region.reshape(region.shape[0], n_w * 3)  # (S, w*3)
        rows = rows.reshape(size, n_w, 3).transpose(1, 0, 2).reshape(n_w, size * 3)
        cols = wx.astype(np.float32) @ rows  # (S_x, S_y*3)
        out[t] = cols.reshape(size, size, 3).transpose(1, 0, 2)
    return np.clip(out / np.float32(255.0), 0.0, 1.0)


def _pixel_span(start: float, stop: float, n_in: int) -> tuple[int, int]:
    """In-frame pixels [a, b) whose centres j + 0.5 lie in [start, stop)."""
    a = max(int(np.ceil(start - 0.5)), 0)
    b = min(int(np.ceil(stop - 0.5)), n_in)
    return a, max(a, b)


def _bilinear_taps(start: float, stop: float, size: int, a: int, b: int):
    """Bilinear sample positions of pixels a..b-1 in an S-cell box: (i0, i1, frac) each (b - a,)."""
    step = (stop - start) / size
    pos = np.clip((np.arange(a, b) + 0.5 - start) / step - 0.5, 0.0, size - 1.0)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, size - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def upsample_residual(residual: np.ndarray, box: np.ndarray, height: int, width: int):
    """Bilinear upsampling of one S x S residual onto the in-frame pixels of its box.

    Args:
      residual: float (S, S, C).
      box: (4,) box (x0, y0, x1, y1) in pixels.
      height, width: frame size.

    Returns:
      (values float32 (h, w, C), (ya, yb, xa, xb)): the upsampled residual for frame rows ya..yb-1
      and columns xa..xb-1 (pixels whose centres lie inside the box and inside the frame).
    """
    residual = np.asarray(residual, np.float32)
    size = residual.shape[0]
    x0, y0, x1, y1 = (float(v) for v in box)
    ya, yb = _pixel_span(y0, y1, height)
    xa, xb = _pixel_span(x0, x1, width)
    r0, r1, fy = _bilinear_taps(y0, y1, size, ya, yb)
    c0, c1, fx = _bilinear_taps(x0, x1, size, xa, xb)
    rows = residual[r0] + fy[:, None, None] * (residual[r1] - residual[r0])
    values = rows[:, c0] + fx[None, :, None] * (rows[:, c1] - rows[:, c0])
    return values, (ya, yb, xa, xb)


def paste_residual(
    frames: np.ndarray,
    boxes: np.ndarray,
    residual: np.ndarray,
    mask_full: np.ndarray,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Add an upsampled crop residual to full frames, only inside a mask.

    Args:
      frames: uint8 (T, H, W, 3) (or uint16) original frames.
      boxes: (T, 4) the boxes the crops were cut from (see `crop_resize`).
      residual: float32 (T, S, S, 3), edited crop minus original crop, in [0, 1] units.
      mask_full: bool (T, H, W), where the frames may change (e.g. `mask_to_frame` of the crop mask).
      out: float32 (T, H, W, 3) frames already pasted into (another face of the same frames), added
        to in place and returned; None starts from `frames`.

    Returns:
      float32 (T, H, W, 3) on the 0-255 scale (0-65535 for uint16 frames): frames + scale *
      upsampled residual where `mask_full` (and inside the box), the exact input values elsewhere.
      Not clipped or rounded: pass it to `quantize`.
    """
    frames, boxes = _check_frames(frames, boxes)
    residual = np.asarray(residual, np.float32)
    mask_full = np.asarray(mask_full, bool)
    n, height, width = frames.shape[:3]
    if residual.ndim != 4 or residual.shape[0] != n or residual.shape[1] != residual.shape[2]:
        raise ValueError(f"residual must be (T,S,S,3) with T={n}, got {residual.shape}")
    if mask_full.shape != (n, height, width):
        raise ValueError(f"mask_full must be {(n, height, width)}, got {mask_full.shape}")
    scale = np.float32(np.iinfo(frames.dtype).max)
    if out is None:
        out = frames.astype(np.float32)
    elif out.shape != frames.shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {frames.shape}, got {out.dtype} {out.shape}")
    for t in range(n):
        values, (ya, yb, xa, xb) = upsample_residual(residual[t], boxes[t], height, width)
        inside = mask_full[t, ya:yb, xa:xb, None]
        patch = out[t, ya:yb, xa:xb]
        out[t, ya:yb, xa:xb] = np.where(inside, patch + scale * values, patch)
    return out


def pixel_rect(boxes: np.ndarray, height: int, width: int) -> tuple[int, int, int, int] | None:
    """The rectangle of frame pixels that `paste_residual` and `mask_to_frame` can touch for `boxes`.

    Args:
      boxes: (T, 4) boxes (x0, y0, x1, y1).
      height, width: frame size.

    Returns:
      (y0, y1, x0, x1): rows y0..y1-1 and columns x0..x1-1, the smallest rectangle that holds every
      frame's in-frame pixels whose centres lie inside its box; None when no box reaches a pixel.
    """
    spans = [
        (*_pixel_span(y0, y1, height), *_pixel_span(x0, x1, width))
        for x0, y0, x1, y1 in np.asarray(boxes, np.float64)
    ]
    spans = [s for s in spans if s[0] < s[1] and s[2] < s[3]]
    if not spans:
        return None
    ya, yb, xa, xb = np.array(spans).T
    return int(ya.min()), int(yb.max()), int(xa.min()), int(xb.max())


def mask_to_frame(mask: np.ndarray, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Place crop masks back into full frames (nearest neighbour); False outside the boxes.

    Args:
      mask: bool (T, S, S) crop masks (e.g. `skin.skin_mask` of the crop).
      boxes: (T, 4) boxes the crops were cut from.
      height, width: frame size.

    Returns:
      bool (T, H, W).
    """
    mask = np.asarray(mask, bool)
    boxes = np.asarray(boxes, np.float64)
    n, size = mask.shape[0], mask.shape[1]
    out = np.zeros((n, height, width), bool)
    for t in range(n):
        x0, y0, x1, y1 = boxes[t]
        ya, yb = _pixel_span(y0, y1, height)
        xa, xb = _pixel_span(x0, x1, width)
        rows = np.clip(((np.arange(ya, yb) + 0.5 - y0) * size / (y1 - y0)).astype(int), 0, size - 1)
        cols = np.clip(((np.arange(xa, xb) + 0.5 - x0) * size / (x1 - x0)).astype(int), 0, size - 1)
        out[t, ya:yb, xa:xb] = mask[t][np.ix_(rows, cols)]
    return out


def _rng(key_or_seed) -> np.random.Generator:
    """A NumPy generator seeded by an int or by the bits of a JAX PRNG key (raw or typed)."""
    if isinstance(key_or_seed, (int, np.integer)):
        return np.random.default_rng(int(key_or_seed))
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
      key_or_seed: a JAX PRNG key or an int seed (used by "stochastic" only; it seeds a NumPy
        PCG64 generator, which is ~7x faster than JAX's threefry on CPU). Use a different key per
        window of a long video, e.g. `jax.random.fold_in(key, window_index)`.
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


def enclosing_square(boxes: np.ndarray) -> np.ndarray:
    """The smallest square (x0, y0, x1, y1) centred on the union of `boxes` (T, 4) that holds them all.

    A fixed box for a clip whose face moves inside a known region (e.g. synthetic clips).
    """
    boxes = np.asarray(boxes, np.float64)
    x0, y0 = boxes[:, :2].min(axis=0)
    x1, y1 = boxes[:, 2:].max(axis=0)
    half = max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([cx - half, cy - half, cx + half, cy + half], np.float32)
