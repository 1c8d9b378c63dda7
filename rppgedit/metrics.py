"""Quality and heart-rate metrics: PSNR, SSIM (Wang et al. 2004), MAE, RMSE, MAPE, Pearson.

Video metrics take whole videos ``(T, H, W, 3)`` (or single frames ``(H, W, 3)``) as uint8 or float
arrays and return Python floats. Heart-rate metrics take lists/arrays of per-clip heart rates in bpm.
Pearson correlation is `rppgedit.signals.pearson` (one implementation for the whole library).

SSIM follows Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
error visibility to structural similarity", IEEE TIP 13(4), 2004, with the conventions of
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, channel_axis=-1)``: an 11-tap Gaussian window (truncated at 3.5 sigma),
population (co)variances, SSIM map averaged over the interior that the window reaches without
padding (a border of 5 pixels is excluded), then over channels and frames.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from rppgedit import program_cache, row_bands, signals

_CHUNK_FRAMES = 32  # frames per device call in ssim/psnr, bounds memory on long videos


# Integer frames span 0 .. peak; they are compared on [0, 1] by default.
_PEAKS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _check_pair(a: np.ndarray, b: np.ndarray, name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: shapes differ, {a.shape} vs {b.shape}")
    if a.dtype != b.dtype and (a.dtype in _PEAKS or b.dtype in _PEAKS):
        raise ValueError(
            f"{name}: mixed {a.dtype}/{b.dtype} inputs are ambiguous; convert both to the same "
            "scale"
        )


def _default_range(a: np.ndarray, data_range: float | None) -> float:
    if data_range is not None:
        return float(data_range)
    return _PEAKS.get(a.dtype, 1.0)


def psnr(a, b, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio over a whole video (or image), in dB.

    ``PSNR = 10 log10(data_range^2 / MSE)`` with the MSE over all pixels, channels and frames,
    accumulated in float64. uint8 inputs default to ``data_range = 255`` (uint16 to 65535), float
    inputs to 1.0, so ``psnr(u8a, u8b) == psnr(u8a / 255, u8b / 255)``.

    Args:
      a, b: arrays of the same shape, both uint8, both uint16 or both float (NumPy or JAX).
      data_range: peak-to-peak range of the data; default from the dtype.

    Returns:
      PSNR in dB; ``inf`` for identical inputs.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    _check_pair(a, b, "psnr")
    r = _default_range(a, data_range)
    a2 = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(1, -1)
    b2 = b.reshape(a2.shape)
    sse = 0.0
    for i in range(0, a2.shape[0], _CHUNK_FRAMES):
        d = a2[i : i + _CHUNK_FRAMES].astype(np.float64) - b2[i : i + _CHUNK_FRAMES]
        sse += float(np.sum(d * d))
    mse = sse / a.size
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(r * r / mse))


def _gaussian_taps(sigma: float, truncate: float) -> np.ndarray:
    """Normalised 1-D Gaussian of radius ``int(truncate * sigma + 0.5)`` (as scipy.ndimage)."""
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _valid_gaussian(x: jax.Array, taps: np.ndarray) -> jax.Array:
    """'valid' separable correlation of the last two axes of `x` (..., H, W) with `taps`, rows
    first: two single-channel convolutions (XLA's convolution kernel took 45% less CPU than
    the sum of shifted slices on 640x640 frames), exact float32 products (no TF32)."""
    k = taps.shape[0]
    lead, (height, width) = x.shape[:-2], x.shape[-2:]
    flat = x.reshape(-1, 1, height, width)
    column = jnp.asarray(taps, jnp.float32).reshape(1, 1, k, 1)
    row = column.reshape(1, 1, 1, k)
    exact = jax.lax.Precision.HIGHEST
    flat = jax.lax.conv_general_dilated(flat, column, (1, 1), "VALID", precision=exact)
    flat = jax.lax.conv_general_dilated(flat, row, (1, 1), "VALID", precision=exact)
    return flat.reshape(*lead, height - k + 1, width - k + 1)


def _ssim_deficit_map(a, b, data_range, sigma, truncate, k1, k2) -> jax.Array:
    """1 - SSIM map (N, C, H - 2r, W - 2r) of a, b (N, H, W, C): one value per window inside the
    frame.

    From the sum s = a + b and difference d = a - b, four filtered maps instead of the textbook
    five: with S, D, P, Q the windowed means of s, d, s^2, d^2, SSIM = (A - e1)(B - e2) /
    ((A + e1)(B + e2)) where A = S^2 / 2 + C1 and e1 = D^2 / 2 (the means' terms), B = (P - S^2) / 2
    + C2 and e2 = (Q - D^2) / 2 (the (co)variances'). Its deficit is then, without cancellation,
    1 - SSIM = 2 (A e2 + B e1) / ((A + e1)(B + e2)): where a and b barely differ (an edit) the
    small e1, e2 come from the differences themselves, not from subtracting nearly equal large
    terms. Filtered channels-first, where both passes run along contiguous rows (measured: 4x less
    CPU than channels-last on 300x280 crops)."""
    taps = _gaussian_taps(sigma, truncate)
    a = jnp.moveaxis(a, -1, 1)
    b = jnp.moveaxis(b, -1, 1)
    s, d = a + b, a - b
    stack = jnp.stack([s, d, s * s, d * d], axis=0)  # (4, N, C, H, W)
    f = _valid_gaussian(stack, taps)
    means_s, means_d = f[0] * f[0], f[1] * f[1]
    big_a = 0.5 * means_s + (k1 * data_range) ** 2
    big_b = 0.5 * (f[2] - means_s) + (k2 * data_range) ** 2
    e1 = 0.5 * means_d
    e2 = 0.5 * (f[3] - means_d)
    return 2.0 * (big_a * e2 + big_b * e1) / ((big_a + e1) * (big_b + e2))


_SSIM_STATIC = ("data_range", "sigma", "truncate", "k1", "k2")


@functools.partial(jax.jit, static_argnames=_SSIM_STATIC)
def _ssim_frame_sums(a, b, data_range, sigma, truncate, k1, k2) -> jax.Array:
    """Sum over frames of per-frame SSIM (mean over the cropped map and channels); a, b (N,H,W,C)."""
    deficit = _ssim_deficit_map(a, b, data_range, sigma, truncate, k1, k2)
    return jnp.sum(1.0 - jnp.mean(deficit, axis=(1, 2, 3)))


def _ssim_frame_deficits(
    a, b, scale, data_range, sigma, truncate, k1, k2, band_values
) -> jax.Array:
    """Per-frame sums (S*F,) of 1 - SSIM over the map of a, b (S, F, H, W, C), given as stored
    (integers are scaled here, on the device: a quarter of float32's transfer), F frames at a
    time: one program for the lot. Each step's map is computed in bands of rows of about
    `band_values` values (`rppgedit.row_bands`; each band reads its rows and the window's margin),
    so that the filtered maps stay in cache: on 704x704 face rectangles of 1080p frames, 21 ms of
    CPU a frame against 30-50 for the whole map at once (2 cores)."""
    radius = (_gaussian_taps(sigma, truncate).shape[0] - 1) // 2
    num, height, width, channels = a.shape[1:]
    out_rows = height - 2 * radius
    rows, bands = row_bands.plan(out_rows, num * width * channels, band_values)

    def frames(pair):
        x = pair[0].astype(jnp.float32) * scale
        y = pair[1].astype(jnp.float32) * scale

        def band(i, total):
            y0 = row_bands.start(i, rows, out_rows)
            xs, ys = (jax.lax.dynamic_slice_in_dim(v, y0, rows + 2 * radius, 1) for v in (x, y))
            deficit = _ssim_deficit_map(xs, ys, data_range, sigma, truncate, k1, k2)
            fresh = row_bands.fresh(i, rows, out_rows)[None, None, :, None]  # count rows once
            return total + jnp.sum(jnp.where(fresh, deficit, 0.0), axis=(1, 2, 3))

        return jax.lax.fori_loop(0, bands, band, jnp.zeros(num, jnp.float32))

    return jax.lax.map(frames, (a, b)).reshape(-1)


@functools.cache
def _ssim_program(scale, data_range, sigma, truncate, k1, k2, band_values):
    """`_ssim_frame_deficits(a, b)` with these settings, jitted (and stored: `program_cache`)."""
    statics = (scale, data_range, sigma, truncate, k1, k2, band_values)
    fn = jax.jit(lambda a, b: _ssim_frame_deficits(a, b, *statics))
    return program_cache.cached_program(fn, "metrics.ssim_frame_deficits", statics)


# Frame values per step of the SSIM program: its maps stay in cache (measured on 2 cores: 2 frames
# of 300x280x3 took half the time of 32); each frame is swept in bands of rows of about
# `_SSIM_BAND_VALUES` values (`row_bands`; a small frame is one band).
_SSIM_CHUNK_VALUES = 1 << 19
_SSIM_BAND_VALUES = 1 << 18


def _ssim_deficit(a, b, scale: float, args: tuple) -> list[jax.Array]:
    """Per-frame sums over windows of 1 - SSIM of a, b (T, H, W, C) (NumPy), as one device
    computation that is not waited for: XLA runs it after what it has queued (an edit). One, not
    one per step: the CPU client keeps at most 32 computations of a device in flight, and a
    caller that dispatches more waits there for the oldest ones (measured: a 320x320 edit's report
    sent three per frame, and the main thread waited 8.5 of 26 s behind the edit). T is padded to
    a multiple of the frames per step with equal frames, whose deficit is exactly 0."""
    num = a.shape[0]
    step = min(num, max(1, _SSIM_CHUNK_VALUES // int(np.prod(a.shape[1:]))))
    steps = -(-num // step)
    if steps * step > num:
        pad = np.zeros((steps * step - num,) + a.shape[1:], a.dtype)
        a, b = np.concatenate([a, pad]), np.concatenate([b, pad])
    shape = (steps, step) + a.shape[1:]
    a, b = np.ascontiguousarray(a).reshape(shape), np.ascontiguousarray(b).reshape(shape)
    return [_ssim_program(scale, *args, _SSIM_BAND_VALUES)(a, b)]


# A changed region's sides are rounded up to multiples of this many pixels, so few shapes compile.
_SSIM_ALIGN = 64


def _ssim_support(lo: int, hi: int, size: int, grow: int) -> tuple[int, int]:
    """Pixels [lo', hi') of an axis of `size` pixels that every window touching [lo, hi) lies in:
    grown by `grow` on each side and rounded up to a multiple of `_SSIM_ALIGN`, inside the axis."""
    lo, hi = max(lo - grow, 0), min(hi + grow, size)
    length = min(-(-(hi - lo) // _SSIM_ALIGN) * _SSIM_ALIGN, size)
    lo = min(lo, size - length)
    return lo, lo + length


def ssim(
    a,
    b,
    *,
    data_range: float | None = None,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    changed: tuple[int, int, int, int] | None = None,
) -> float:
    """Mean structural similarity (Wang et al. 2004) of a frame or a video, skimage-compatible.

    Gaussian window of standard deviation ``sigma`` truncated at 3.5 sigma (11 taps for 1.5),
    population (co)variances, ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2``. The SSIM map is evaluated only
    where the window fits inside the frame, which is exactly the region skimage keeps after cropping
    ``(win_size - 1) // 2`` pixels from each border; it is averaged per channel, then over channels
    and frames. Agrees with ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=R, channel_axis=-1)`` (averaged over frames)
    to ~1e-6 (computed in float32 in JAX, in chunks of frames).

    With `changed`, a and b are known to be equal outside that rectangle: the map is then exactly
    1 wherever the window sees no pixel of it, so only the windows that do are computed (on the
    rectangle grown by the window, 2 r pixels) and the others count as 1. The result is the
    whole frames' SSIM to float32 rounding (closer, in fact: it sums 1 - SSIM, which is small).

    Args:
      a, b: (H, W, C) frames or (T, H, W, C) videos, same shape, both uint8, both uint16 or both
        float.
      data_range: peak-to-peak range R; default 255 for uint8, 65535 for uint16, 1.0 for floats.
      sigma: Gaussian window standard deviation in pixels.
      k1, k2: SSIM stabilising constants.
      changed: None, or (y0, y1, x0, x1): rows y0..y1-1 and columns x0..x1-1 hold every pixel
        where a and b may differ.

    Returns:
      Mean SSIM (1.0 for identical inputs).
    """
    return ssim_terms(
        a, b, data_range=data_range, sigma=sigma, k1=k1, k2=k2, changed=changed
    ).value()


@dataclasses.dataclass
class SsimTerms:
    """`ssim`'s parts, dispatched to the device and not waited for: SSIM = 1 - (the sum of
    `deficits`) / `windows`. Terms of the chunks of a video add up (`+`) to the video's.

    Attributes:
      deficits: device arrays of per-frame sums of 1 - SSIM over windows (summed in float64).
      windows: the number of SSIM windows in all (per frame times frames).
    """

    deficits: list
    windows: int

    def __add__(self, other: SsimTerms) -> SsimTerms:
        return SsimTerms(self.deficits + other.deficits, self.windows + other.windows)

    def value(self) -> float:
        """The mean SSIM (waits for the device)."""
        deficit = sum(float(np.sum(np.asarray(d, np.float64))) for d in self.deficits)
        return 1.0 - deficit / self.windows if self.windows else 1.0


def ssim_terms(
    a,
    b,
    *,
    data_range: float | None = None,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    changed: tuple[int, int, int, int] | None = None,
) -> SsimTerms:
    """`ssim` (same arguments) as terms computed on the device without waiting for them: a caller
    that reads a video chunk by chunk while XLA runs an edit goes on with its next chunk."""
    a = np.asarray(a)
    b = np.asarray(b)
    _check_pair(a, b, "ssim")
    if a.ndim == 3:
        a, b = a[None], b[None]
    if a.ndim != 4:
        raise ValueError(f"ssim: expected (H,W,C) or (T,H,W,C), got shape {a.shape}")
    truncate = 3.5
    win = 2 * int(truncate * sigma + 0.5) + 1
    if a.shape[1] < win or a.shape[2] < win:
        raise ValueError(f"ssim: frames {a.shape[1:3]} smaller than the {win}x{win} window")
    r = _default_range(a, data_range)
    scale = 1.0  # integers are compared in [0, 1]; SSIM is invariant to scaling data and range
    if a.dtype in _PEAKS:
        scale = 1.0 / _PEAKS[a.dtype]
    args = (r * scale, float(sigma), truncate, k1, k2)
    if changed is None:
        windows = (a.shape[1] - win + 1) * (a.shape[2] - win + 1) * a.shape[3]
        return SsimTerms(_ssim_deficit(a, b, scale, args), windows * a.shape[0])
    return _ssim_changed(a, b, changed, scale, args)


def _ssim_changed(a, b, changed, scale: float, args: tuple) -> SsimTerms:
    """`ssim_terms` of a, b (T, H, W, C) that are equal outside the rectangle `changed`."""
    num, height, width, channels = a.shape
    radius = (_gaussian_taps(*args[1:3]).shape[0] - 1) // 2
    y0, y1, x0, x1 = (int(v) for v in changed)
    if not (0 <= y0 <= y1 <= height and 0 <= x0 <= x1 <= width):
        raise ValueError(f"ssim: changed rectangle {changed} is not inside {height}x{width}")
    windows = (height - 2 * radius) * (width - 2 * radius) * channels * num
    if y0 == y1 or x0 == x1:
        return SsimTerms([], windows)
    y0, y1 = _ssim_support(y0, y1, height, 2 * radius)
    x0, x1 = _ssim_support(x0, x1, width, 2 * radius)
    deficits = _ssim_deficit(a[:, y0:y1, x0:x1], b[:, y0:y1, x0:x1], scale, args)
    return SsimTerms(deficits, windows)


def _hr_pair(pred, true, name: str) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(true, dtype=np.float64).ravel()
    if p.shape != t.shape or p.size == 0:
        raise ValueError(
            f"{name}: need two non-empty lists of equal length, got {p.size}, {t.size}"
        )
    return p, t


def mae(pred, true) -> float:
    """Mean absolute error of heart rates, in bpm."""
    p, t = _hr_pair(pred, true, "mae")
    return float(np.mean(np.abs(p - t)))


def rmse(pred, true) -> float:
    """Root-mean-square error of heart rates, in bpm."""
    p, t = _hr_pair(pred, true, "rmse")
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mape(pred, true) -> float:
    """Mean absolute percentage error of heart rates, ``100 * mean(|pred - true| / |true|)``, in %."""
    p, t = _hr_pair(pred, true, "mape")
    return float(100.0 * np.mean(np.abs(p - t) / np.abs(t)))


def hr_pearson(pred, true) -> float:
    """Pearson correlation of predicted and true heart-rate lists (via `signals.pearson`)."""
    p, t = _hr_pair(pred, true, "hr_pearson")
    return float(signals.pearson(p, t))
