"""Signal processing for rPPG traces: detrending, band-pass, spectra, heart rate, SNR, Pearson.

The single source of truth for every 1-D signal operation in rppgedit: estimators, editors, losses
and evaluation all call these functions. Everything is pure JAX, works along ``axis`` (default the
last axis) with arbitrary leading batch axes, accepts NumPy or JAX arrays and returns JAX arrays.
Functions are ``jax.jit``-compatible when ``fps`` and band edges are static Python floats (the
signal length is static under jit anyway). Linear operations (detrend, band-pass) are
differentiable; so are Pearson, the periodogram and the soft spectral peak.

Filter and transform constants (Butterworth response, detrending matrix, windows) are computed in
float64 with NumPy/SciPy at trace time from static shapes and parameters; nothing is cached
globally. The Butterworth response has a closed form, so ``scipy.signal`` (0.7 s of every
command's start-up: it parses its docstrings on import) is not imported; the tests compare it
with ``scipy.signal``'s design. Matrix products use ``Precision.HIGHEST`` so that GPUs do not
silently use TF32, whose ~1e-3 relative error is as large as the pulse in a raw RGB trace.

References:
  - M. P. Tarvainen, P. O. Ranta-aho, P. A. Karjalainen, "An advanced detrending method with
    application to HRV analysis", IEEE TBME 49(2), 2002 (smoothness-priors detrending).
  - G. de Haan, V. Jeanne, "Robust pulse rate from chrominance-based rPPG", IEEE TBME 60(10), 2013
    (pulse SNR).
  - P. D. Welch, "The use of fast Fourier transform for the estimation of power spectra", IEEE
    Trans. Audio Electroacoustics 15(2), 1967.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

_HIGHEST = jax.lax.Precision.HIGHEST


def _float_array(x) -> jax.Array:
    """`x` as a floating JAX array (integers become float32; float64 stays when x64 is on)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x


def _const(v: np.ndarray, like: jax.Array) -> jax.Array:
    """1-D constant `v` as an array of `like`'s dtype and rank (leading singleton axes)."""
    return jnp.asarray(v, dtype=like.dtype).reshape((1,) * (like.ndim - 1) + (-1,))


def _to_last(x: jax.Array, axis: int) -> jax.Array:
    return jnp.moveaxis(x, axis, -1)


def _from_last(x: jax.Array, axis: int) -> jax.Array:
    return jnp.moveaxis(x, -1, axis)


# ---------------------------------------------------------------------------------------------
# Detrending and filtering
# ---------------------------------------------------------------------------------------------


def _detrend_matrix(n: int, lam: float) -> np.ndarray:
    """float64 (n, n) matrix M = I - (I + lam^2 D2^T D2)^{-1} of the smoothness-priors detrender.

    ``I + lam^2 D2^T D2`` is symmetric positive-definite and pentadiagonal, so its inverse is
    obtained with a banded Cholesky solve (O(n^2), not O(n^3)).
    """
    # second-difference stencil [1, -2, 1]; D2^T D2 has diagonals (0: 1,5,6,...,6,5,1), (1: -2,-4,
    # ...,-4,-2), (2: 1,...,1)
    main = np.zeros(n)
    off1 = np.zeros(n - 1)
    off2 = np.zeros(n - 2)
    for i, ci in enumerate((1.0, -2.0, 1.0)):
        main[i : n - 2 + i] += ci * ci
        for j, cj in enumerate((1.0, -2.0, 1.0)):
            if j == i + 1:
                off1[i : n - 2 + i] += ci * cj
            elif j == i + 2:
                off2[i : n - 2 + i] += ci * cj
    ab = np.zeros((3, n))  # upper banded storage for solveh_banded
    ab[2] = 1.0 + lam**2 * main
    ab[1, 1:] = lam**2 * off1
    ab[0, 2:] = lam**2 * off2
    inv = scipy.linalg.solveh_banded(ab, np.eye(n))
    return np.eye(n) - inv


def detrend(x, lam: float = 100.0, axis: int = -1) -> jax.Array:
    """Smoothness-priors detrending (Tarvainen et al. 2002): ``x - (I + lam^2 D2^T D2)^{-1} x``.

    ``D2`` is the (T-2, T) second-difference matrix. The trend estimate is a penalised least-squares
    smoother, so away from the ends the result is a high-pass filter with amplitude response
    ``lam^2 w^4 / (1 + lam^2 w^4)`` (w in rad/sample, small-angle form): half amplitude at
    ``fps / (2 pi sqrt(lam))`` Hz. For ``lam=100`` at 30 fps that is 0.48 Hz; 0.7 Hz keeps 0.82 of
    its amplitude, 1 Hz 0.95, 1.5 Hz 0.99 (measured). Constants and linear ramps are removed exactly.

    The operator is linear, so it is applied as one dense T x T matrix computed in float64 at trace
    time (banded Cholesky solve, O(T^2) time and memory: ~0.3 s for T=1000, ~1.2 s and 52 MB for
    T=3600; window longer signals). Differentiable; the mean is removed first for float32 accuracy.

    Args:
      x: signal(s), shape (..., T, ...) with time on ``axis``; T >= 3.
      lam: smoothing parameter (dimensionless, in samples), > 0.
      axis: time axis.

    Returns:
      Detrended signal, same shape and float dtype as ``x``.
    """
    x = _to_last(_float_array(x), axis)
    n = x.shape[-1]
    if n < 3:
        raise ValueError(f"detrend needs at least 3 samples, got {n}")
    if lam <= 0:
        raise ValueError(f"detrend lam must be > 0, got {lam}")
    m = jnp.asarray(_detrend_matrix(n, float(lam)), dtype=x.dtype)
    xc = x - jnp.mean(x, axis=-1, keepdims=True)
    y = jnp.einsum("ts,...s->...t", m, xc, precision=_HIGHEST)
    return _from_last(y, axis)


def _odd_pad_len(n: int, requested: int | None) -> int:
    return n - 1 if requested is None else max(0, min(int(requested), n - 1))


def _odd_extend(x: jax.Array, pad: int) -> jax.Array:
    """Odd (point-symmetric) extension by ``pad`` samples on each end of the last axis."""
    if pad == 0:
        return x
    first, last = x[..., :1], x[..., -1:]
    left = 2.0 * first - jnp.flip(x[..., 1 : pad + 1], axis=-1)
    right = 2.0 * last - jnp.flip(x[..., -pad - 1 : -1], axis=-1)
    return jnp.concatenate([left, x, right], axis=-1)


def butterworth_power_response(
    n_fft: int, fps: float, low_hz: float, high_hz: float, order: int
) -> np.ndarray:
    """|H(f)|^2 of the digital Butterworth band-pass at the rFFT bins of length ``n_fft`` (float64).

    This is the magnitude response of ``scipy.signal.filtfilt`` with ``scipy.signal.butter(order,
    [low_hz, high_hz], btype='band', fs=fps)``, i.e. the filter applied forward and backward, in
    closed form: the analog prototype's ``1 / (1 + W^(2 order))`` with the band-pass mapping
    ``W = (w^2 - w_lo w_hi) / (w (w_hi - w_lo))``, where the bilinear transform (with the band
    edges pre-warped, as ``butter`` designs them) puts frequency ``f`` at ``w = tan(pi f / fps)``.
    It equals ``sosfreqz`` of that design to 2e-11 (``tests/signals_test.py``).
    """
    _check_band(fps, low_hz, high_hz)
    w = np.tan(np.pi * np.fft.rfftfreq(n_fft, d=1.0 / fps) / fps)
    w_lo, w_hi = math.tan(math.pi * low_hz / fps), math.tan(math.pi * high_hz / fps)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mapped = (w * w - w_lo * w_hi) / (w * (w_hi - w_lo))
        power = 1.0 / (1.0 + mapped ** (2 * order))
    return np.where(np.isfinite(mapped), power, 0.0)  # f = 0: W is -inf, the gain 0


def _check_band(fps: float, low_hz: float, high_hz: float) -> None:
    if not 0.0 < low_hz < high_hz < fps / 2.0:
        raise ValueError(
            f"band-pass needs 0 < low_hz < high_hz < fps/2, got low={low_hz} high={high_hz} "
            f"fps={fps}"
        )


def bandpass(
    x,
    fps: float,
    low_hz: float = 0.7,
    high_hz: float = 3.0,
    order: int = 3,
    axis: int = -1,
    *,
    padlen: int | None = None,
) -> jax.Array:
    """Zero-phase Butterworth band-pass in the FFT domain, with the magnitude response of filtfilt.

    The signal is extended by odd reflection (``2*x[0] - x[k]``, as ``scipy.signal.filtfilt`` does
    with ``padtype='odd'``) by ``padlen`` samples on each end (default ``T - 1``), transformed with
    the rFFT, multiplied by ``|H(f)|^2`` of the digital Butterworth filter
    ``scipy.signal.butter(order, [low_hz, high_hz], btype='band', fs=fps)`` (computed at trace time
    with ``sosfreqz``) and transformed back; the extension is then cut off.

    How it differs from ``scipy.signal.filtfilt(b, a, x)``: same magnitude response and zero phase,
    so in the interior (farther than the impulse-response length, ~1-2 s for the default band, from
    either end) both agree to float32 precision. At the edges they differ: filtfilt pads only
    ``3 * (2 * order + 1)`` samples and starts the recursion from steady-state initial conditions,
    while here a long odd extension is filtered circularly (the wrap-around lands in the discarded
    extension). Neither is "right" at the edges; this one is linear, differentiable and jit-able.

    Args:
      x: signal(s), time on ``axis``; T >= 2.
      fps: sampling rate in Hz (static).
      low_hz, high_hz: pass-band edges in Hz (static), 0 < low < high < fps/2.
      order: Butterworth order of the one-way filter (the response is applied squared).
      axis: time axis.
      padlen: samples of odd extension per end, clipped to T-1 (default T-1).

    Returns:
      Filtered signal, same shape and float dtype as ``x``.
    """
    x = _to_last(_float_array(x), axis)
    n = x.shape[-1]
    if n < 2:
        raise ValueError(f"bandpass needs at least 2 samples, got {n}")
    pad = _odd_pad_len(n, padlen)
    xe = _odd_extend(x, pad)
    n_fft = xe.shape[-1]
    h2 = butterworth_power_response(n_fft, float(fps), float(low_hz), float(high_hz), int(order))
    spec = jnp.fft.rfft(xe, axis=-1)
    spec = spec * _const(h2, spec)
    y = jnp.fft.irfft(spec, n=n_fft, axis=-1)[..., pad : pad + n]
    return _from_last(y.astype(x.dtype), axis)


# ---------------------------------------------------------------------------------------------
# Correlation
# ---------------------------------------------------------------------------------------------


def pearson(x, y, axis: int = -1, eps: float = 1e-8) -> jax.Array:
    """Pearson correlation coefficient along ``axis`` (the one Pearson of rppgedit).

    ``r = sum(xc * yc) / (max(|xc|, eps) * max(|yc|, eps))`` with ``xc = x - mean(x)`` and ``|.|``
    the L2 norm along ``axis``. The ``eps`` floor only acts on (near-)constant signals, whose
    correlation is then ~0 with finite gradients; otherwise the result is exact and scale-invariant.

    Args:
      x, y: arrays broadcastable to the same shape (no rank promotion), time on ``axis``.
      axis: axis to correlate along.
      eps: floor of the centred L2 norms (same units as the inputs).

    Returns:
      Correlation in [-1, 1], the broadcast shape without ``axis``.
    """
    x = _float_array(x)
    y = _float_array(y)
    xc = x - jnp.mean(x, axis=axis, keepdims=True)
    yc = y - jnp.mean(y, axis=axis, keepdims=True)
    sxy = jnp.sum(xc * yc, axis=axis)
    sxx = jnp.sum(xc * xc, axis=axis)
    syy = jnp.sum(yc * yc, axis=axis)
    floor = eps * eps
    return sxy / (jnp.sqrt(jnp.maximum(sxx, floor)) * jnp.sqrt(jnp.maximum(syy, floor)))


def neg_pearson_loss(pred, target, axis: int = -1) -> jax.Array:
    """Negative Pearson loss, ``-pearson(pred, target)`` (PhysNet, Yu et al. BMVC 2019).

    We use ``-r`` (range [-1, 1], minimum -1 at perfect correlation) rather than ``1 - r``: the two
    differ by a constant and have identical gradients. No reduction over leading axes: take the
    mean yourself.

    Args:
      pred, target: signals, time on ``axis``.
      axis: time axis.

    Returns:
      ``-r``, the broadcast shape without ``axis``.
    """
    return -pearson(pred, target, axis=axis)


# ---------------------------------------------------------------------------------------------
# Spectra
# ---------------------------------------------------------------------------------------------


def _hann(n: int) -> np.ndarray:
    """Periodic (DFT-even) Hann window, as ``scipy.signal.get_window('hann', n)``."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def _one_sided_density(spec: jax.Array, n_fft: int, fps: float, win_sq_sum: float) -> jax.Array:
    """|X|^2 -> one-sided power spectral density in units^2/Hz (scipy 'density' scaling)."""
    psd = (jnp.real(spec) ** 2 + jnp.imag(spec) ** 2) / (fps * win_sq_sum)
    scale = np.full(n_fft // 2 + 1, 2.0)
    scale[0] = 1.0
    if n_fft % 2 == 0:
        scale[-1] = 1.0
    return psd * _const(scale, psd)


def periodogram(x, fps: float, *, nfft: int | None = None, axis: int = -1):
    """One-sided Hann-windowed periodogram (power spectral density), mean removed.

    Matches ``scipy.signal.periodogram(x, fps, window='hann', nfft=nfft, detrend='constant',
    scaling='density')``.

    Args:
      x: signal(s), time on ``axis`` (T samples).
      fps: sampling rate in Hz.
      nfft: FFT length (zero-padding), >= T; default T.
      axis: time axis.

    Returns:
      ``(freqs_hz, psd)``: freqs (nfft//2+1,) as a NumPy float64 array; psd with ``axis`` replaced
      by nfft//2+1 bins (moved back to ``axis``), units^2/Hz.
    """
    x = _to_last(_float_array(x), axis)
    n = x.shape[-1]
    n_fft = n if nfft is None else int(nfft)
    if n_fft < n:
        raise ValueError(f"periodogram nfft ({n_fft}) must be >= the signal length ({n})")
    w = _hann(n)
    xw = (x - jnp.mean(x, axis=-1, keepdims=True)) * _const(w, x)
    spec = jnp.fft.rfft(xw, n=n_fft, axis=-1)
    psd = _one_sided_density(spec, n_fft, float(fps), float(np.sum(w * w))).astype(x.dtype)
    return np.fft.rfftfreq(n_fft, d=1.0 / fps), _from_last(psd, axis)


def welch(
    x,
    fps: float,
    *,
    nperseg: int = 256,
    noverlap: int | None = None,
    nfft: int | None = None,
    axis: int = -1,
):
    """Welch's averaged Hann periodogram (1967), each segment's mean removed.

    Matches ``scipy.signal.welch(x, fps, window='hann', nperseg=nperseg, noverlap=noverlap,
    nfft=nfft, detrend='constant', scaling='density', average='mean')``; like SciPy, ``nperseg`` is
    reduced to T for short signals and trailing samples that do not fill a segment are dropped.

    Args:
      x: signal(s), time on ``axis``.
      fps: sampling rate in Hz.
      nperseg: segment length in samples.
      noverlap: overlap in samples, default ``nperseg // 2``.
      nfft: FFT length per segment, >= nperseg; default nperseg.
      axis: time axis.

    Returns:
      ``(freqs_hz, psd)`` as for `periodogram`.
    """
    x = _to_last(_float_array(x), axis)
    n = x.shape[-1]
    seg = min(int(nperseg), n)
    over = seg // 2 if noverlap is None else int(noverlap)
    if not 0 <= over < seg:
        raise ValueError(f"welch needs 0 <= noverlap < nperseg, got {over} and {seg}")
    n_fft = seg if nfft is None else int(nfft)
    if n_fft < seg:
        raise ValueError(f"welch nfft ({n_fft}) must be >= nperseg ({seg})")
    step = seg - over
    starts = np.arange(0, n - seg + 1, step)
    idx = starts[:, None] + np.arange(seg)[None, :]  # (S, seg), static
    segs = x[..., idx]  # (..., S, seg)
    w = _hann(seg)
    segs = (segs - jnp.mean(segs, axis=-1, keepdims=True)) * _const(w, segs)
    spec = jnp.fft.rfft(segs, n=n_fft, axis=-1)
    psd = _one_sided_density(spec, n_fft, float(fps), float(np.sum(w * w)))
    psd = jnp.mean(psd, axis=-2).astype(x.dtype)
    return np.fft.rfftfreq(n_fft, d=1.0 / fps), _from_last(psd, axis)


def _hr_spectrum(x: jax.Array, fps: float, nfft_min: int):
    """Zero-padded Hann periodogram along the last axis, nfft = max(nfft_min, next pow2 >= 2T)."""
    n_fft = _nfft(x.shape[-1], nfft_min)
    freqs, psd = periodogram(x, fps, nfft=n_fft, axis=-1)
    return freqs, psd


def _nfft(num_samples: int, nfft_min: int) -> int:
    """The FFT length of the heart-rate spectra: max(nfft_min, next power of 2 >= 2T)."""
    return max(int(nfft_min), 1 << max(0, math.ceil(math.log2(max(2 * num_samples, 2)))))


def _band_indices(freqs_hz: np.ndarray, band_bpm) -> np.ndarray:
    lo, hi = float(band_bpm[0]), float(band_bpm[1])
    if not 0.0 <= lo < hi:
        raise ValueError(f"band_bpm must satisfy 0 <= low < high, got {band_bpm}")
    bpm = freqs_hz * 60.0
    idx = np.nonzero((bpm >= lo) & (bpm <= hi))[0]
    if idx.size == 0:
        raise ValueError(f"no frequency bin inside band_bpm={band_bpm} (Nyquist too low?)")
    return idx


# ---------------------------------------------------------------------------------------------
# Heart rate
# ---------------------------------------------------------------------------------------------


def heart_rate(
    bvp, fps: float, *, band_bpm=(40.0, 180.0), nfft_min: int = 2048, axis: int = -1
) -> jax.Array:
    """Heart rate (bpm) as the spectral peak inside ``band_bpm``, with sub-bin accuracy.

    The Hann periodogram is zero-padded to ``nfft = max(nfft_min, next power of two >= 2T)``; the
    highest bin inside the band is refined by fitting a parabola to the log-power of the peak bin
    and its two neighbours (offset clipped to +/- half a bin). The Hann main lobe is close to a
    Gaussian, whose log is a parabola, so the refinement is nearly unbiased: a pure 73.3 bpm
    sinusoid, 10 s at 30 fps, reads 73.3 +/- 0.02.

    Args:
      bvp: pulse signal(s), time on ``axis``.
      fps: sampling rate in Hz.
      band_bpm: (low, high) search band in bpm.
      nfft_min: minimum FFT length.
      axis: time axis.

    Returns:
      Heart rate in bpm, shape of ``bvp`` without ``axis``.
    """
    x = _to_last(_float_array(bvp), axis)
    freqs, psd = _hr_spectrum(x, float(fps), nfft_min)
    idx = _band_indices(freqs, band_bpm)
    in_band = psd[..., idx]
    k = jnp.argmax(in_band, axis=-1)
    centre = jnp.asarray(idx)[k]  # global bin index of the peak
    last = psd.shape[-1] - 1
    nb = jnp.stack([jnp.maximum(centre - 1, 0), centre, jnp.minimum(centre + 1, last)], axis=-1)
    p = jnp.take_along_axis(psd, nb, axis=-1)
    tiny = jnp.finfo(psd.dtype).tiny
    logp = jnp.log(jnp.maximum(p, tiny))
    l0, l1, l2 = logp[..., 0], logp[..., 1], logp[..., 2]
    denom = l0 - 2.0 * l1 + l2
    safe = jnp.where(denom < 0, denom, -1.0)
    delta = jnp.where(denom < 0, 0.5 * (l0 - l2) / safe, 0.0)
    delta = jnp.clip(delta, -0.5, 0.5)
    df = float(freqs[1] - freqs[0])
    return (centre.astype(psd.dtype) + delta) * (df * 60.0)


def heart_rate_over_time(
    bvp,
    fps: float,
    *,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm=(40.0, 180.0),
    nfft_min: int = 2048,
    axis: int = -1,
):
    """Heart rate in sliding windows (`heart_rate` per window).

    Windows of ``round(window_s * fps)`` samples start every ``round(step_s * fps)`` samples; a
    signal shorter than one window is analysed as a single window.

    Args:
      bvp: pulse signal(s), time on ``axis``.
      fps: sampling rate in Hz.
      window_s: window length in seconds.
      step_s: hop in seconds.
      band_bpm: (low, high) search band in bpm.
      nfft_min: minimum FFT length per window.
      axis: time axis.

    Returns:
      ``(times_s, bpm)``: window centres in seconds, NumPy (W,); bpm with shape
      ``bvp.shape`` without ``axis`` plus a trailing W axis.
    """
    x = _to_last(_float_array(bvp), axis)
    n = x.shape[-1]
    win = min(max(int(round(window_s * fps)), 2), n)
    hop = max(int(round(step_s * fps)), 1)
    starts = np.arange(0, n - win + 1, hop)
    idx = starts[:, None] + np.arange(win)[None, :]
    windows = x[..., idx]  # (..., W, win)
    bpm = heart_rate(windows, fps, band_bpm=band_bpm, nfft_min=nfft_min, axis=-1)
    times = (starts + (win - 1) / 2.0) / fps
    return times, bpm


def pulse_snr(
    bvp,
    fps: float,
    hr_bpm=None,
    *,
    band_bpm=(40.0, 180.0),
    tol_bpm: float = 6.0,
    nfft_min: int = 2048,
    axis: int = -1,
) -> jax.Array:
    """Pulse signal-to-noise ratio in dB (de Haan & Jeanne 2013).

    On the zero-padded Hann periodogram (as in `heart_rate`), restricted to ``band_bpm``:
    ``SNR = 10 log10(P_signal / P_noise)`` where ``P_signal`` is the power of the band bins within
    ``+/- tol_bpm`` of the heart rate or of its first harmonic (2 x HR) and ``P_noise`` the power of
    all other band bins. A harmonic above the band is not counted (widen ``band_bpm``, e.g. to
    (40, 240) as in the paper, to include it).

    Args:
      bvp: pulse signal(s), time on ``axis``.
      fps: sampling rate in Hz.
      hr_bpm: heart rate(s) in bpm, broadcastable to the batch shape; None -> `heart_rate(bvp)`.
      band_bpm: (low, high) analysis band in bpm.
      tol_bpm: half-width of the signal windows in bpm.
      nfft_min: minimum FFT length.
      axis: time axis.

    Returns:
      SNR in dB, shape of ``bvp`` without ``axis``.
    """
    x = _to_last(_float_array(bvp), axis)
    if hr_bpm is None:
        hr = heart_rate(x, fps, band_bpm=band_bpm, nfft_min=nfft_min)
    else:
        hr = jnp.broadcast_to(jnp.asarray(hr_bpm, dtype=x.dtype), x.shape[:-1])
    freqs, psd = _hr_spectrum(x, float(fps), nfft_min)
    idx = _band_indices(freqs, band_bpm)
    p = psd[..., idx]
    bpm = _const(freqs[idx] * 60.0, p)
    hr = hr[..., None]
    sig = (jnp.abs(bpm - hr) <= tol_bpm) | (jnp.abs(bpm - 2.0 * hr) <= tol_bpm)
    ps = jnp.sum(jnp.where(sig, p, 0.0), axis=-1)
    pn = jnp.sum(jnp.where(sig, 0.0, p), axis=-1)
    tiny = jnp.finfo(p.dtype).tiny
    return 10.0 * (jnp.log10(jnp.maximum(ps, tiny)) - jnp.log10(jnp.maximum(pn, tiny)))


def _band_mask(freqs_hz: np.ndarray, band_hz) -> np.ndarray:
    """bool over `freqs_hz`: the bins inside `band_hz` (Hz)."""
    band = np.zeros(freqs_hz.shape, bool)
    band[_band_indices(freqs_hz, (60.0 * band_hz[0], 60.0 * band_hz[1]))] = True
    return band


def _pulse_bins(trace, fps: float, band_hz, half_width_hz: float, centre_hz=None):
    """(spectrum, power, near) of a trace "t": its mean-removed rfft, that squared, and the bins
    within `half_width_hz` (at least one bin) of its strongest frequency in `band_hz`, or of
    `centre_hz` when given (a rate read elsewhere, e.g. by pulse estimators)."""
    num = trace.shape[0]
    spectrum = jnp.fft.rfft(trace - jnp.mean(trace))
    power = jnp.square(jnp.abs(spectrum))
    freqs = np.fft.rfftfreq(num, 1.0 / fps)
    if centre_hz is None:
        peak = jnp.argmax(jnp.where(jnp.asarray(_band_mask(freqs, band_hz)), power, -1.0))
    else:
        peak = jnp.round(jnp.asarray(centre_hz, jnp.float32) * num / fps).astype(jnp.int32)
    width = max(1, int(round(half_width_hz * num / fps)))
    return spectrum, power, jnp.abs(jnp.arange(freqs.shape[0]) - peak) <= width


def pulse_strength(trace, fps: float, *, band_hz=(0.7, 3.0), half_width_hz: float = 0.1):
    """Standard deviation of the pulse in a detrended trace "t": the power (Parseval, one-sided
    spectrum) of the bins within `half_width_hz` (at least one bin) of its strongest frequency in
    `band_hz`, so that noise, motion and lighting elsewhere in the band do not count as pulse."""
    trace = _float_array(trace)
    _, power, near = _pulse_bins(trace, fps, band_hz, half_width_hz)
    return jnp.sqrt(2.0 * jnp.sum(jnp.where(near, power, 0.0))) / trace.shape[0]


def pulse_component(
    trace,
    fps: float,
    *,
    band_hz=(0.7, 3.0),
    half_width_hz: float = 0.1,
    reference=None,
    centre_hz=None,
    excess_over=None,
    floor_over=None,
):
    """The pulse of detrended traces "... t" as signals "... t": the bins that `pulse_strength`
    counts (within `half_width_hz` of the strongest frequency in `band_hz`) of `reference` "t"
    (default: the trace itself, which must then be "t"), or the bins within `half_width_hz` of
    `centre_hz` when given, transformed back. With `floor_over`, each of those bins keeps only the
    part of it whose magnitude exceeds `floor_over` times the median magnitude of the trace's band
    bins (in the bin's own phase), so that minus this leaves the band's noise floor at the pulse's
    rate instead of a hole. With `excess_over`, each other bin in `band_hz` adds the part of it
    above `excess_over` times that median the same way: with it, the pulse and every other rate
    that stands out of the band, so that minus this leaves no in-band peak."""
    trace = _float_array(trace)
    reference = trace if reference is None else _float_array(reference)
    _, _, near = _pulse_bins(reference, fps, band_hz, half_width_hz, centre_hz)
    spectrum = jnp.fft.rfft(trace - jnp.mean(trace, axis=-1, keepdims=True))
    near = jnp.reshape(near, (1,) * (spectrum.ndim - 1) + near.shape)
    band = _band_mask(np.fft.rfftfreq(trace.shape[-1], 1.0 / fps), band_hz)
    size = jnp.abs(spectrum)
    median = jnp.median(size[..., band], axis=-1, keepdims=True)

    def above(times):  # each bin's part above `times` the band's median magnitude
        return spectrum * jnp.maximum(0.0, 1.0 - times * median / jnp.maximum(size, 1e-12))

    pulse = spectrum if floor_over is None else above(floor_over)
    elsewhere = 0.0  # the bins away from the pulse
    if excess_over is not None:
        elsewhere = jnp.where(jnp.asarray(band), above(excess_over), 0.0)
    return jnp.fft.irfft(jnp.where(near, pulse, elsewhere), trace.shape[-1])


# The pulse reaches the face's regions within tens of ms of each other: a lag between their pulses
# is looked for within this many seconds.
MAX_REGION_LAG_S = 0.2


def pulse_lag(
    traces,
    reference,
    fps: float,
    *,
    band_hz=(0.7, 3.0),
    half_width_hz: float = 0.1,
    max_lag_s: float = MAX_REGION_LAG_S,
):
    """How the pulse in each detrended trace "... t" follows the pulse of `reference` "t".

    From the cross-spectrum over the bins that `pulse_strength` counts for `reference`: the lag
    is minus its phase over 2 pi f, f the power-weighted frequency of those bins (a pure delay by L
    seconds turns the phase by -2 pi f L), clipped to +-`max_lag_s`; the gain is its magnitude
    over the reference's power there (the trace's pulse projected on the reference's, so noise
    uncorrelated with the pulse adds little).

    Returns:
      (lag in seconds "...", positive when the trace trails; gain "...").
    """
    traces, reference = _float_array(traces), _float_array(reference)
    ref_spectrum, power, near = _pulse_bins(reference, fps, band_hz, half_width_hz)
    spectrum = jnp.fft.rfft(traces - jnp.mean(traces, axis=-1, keepdims=True))
    lead = (1,) * (spectrum.ndim - 1)
    cross = spectrum * jnp.reshape(jnp.conj(ref_spectrum), lead + ref_spectrum.shape)
    cross = jnp.sum(jnp.where(jnp.reshape(near, lead + near.shape), cross, 0.0), axis=-1)
    ref_power = jnp.maximum(jnp.sum(jnp.where(near, power, 0.0)), 1e-30)
    freqs = jnp.asarray(np.fft.rfftfreq(reference.shape[0], 1.0 / fps), power.dtype)
    frequency = jnp.sum(jnp.where(near, power * freqs, 0.0)) / ref_power
    lag = -jnp.angle(cross) / (2.0 * np.pi * jnp.maximum(frequency, 1e-3))
    return jnp.clip(lag, -max_lag_s, max_lag_s), jnp.abs(cross) / ref_power


def spectral_peak_soft(
    bvp,
    fps: float,
    *,
    band_bpm=(40.0, 180.0),
    temperature: float = 0.1,
    nfft_min: int = 2048,
    axis: int = -1,
) -> jax.Array:
    """Differentiable "soft-argmax" spectral peak frequency in bpm, for training losses.

    With ``P`` the zero-padded Hann periodogram (as in `heart_rate`) on the bins inside
    ``band_bpm``, normalised by its maximum, the weights are
    ``w = softmax(log(P) / temperature) = P^(1/temperature) / sum(P^(1/temperature))`` and the result
    is ``sum(w * f_bpm)``. ``temperature = 1`` gives the power-weighted spectral centroid of the
    band; ``temperature -> 0`` tends to the (bin-quantised) argmax; 0.05-0.2 is a useful range: the
    main lobe dominates while gradients still reach neighbouring bins. It is biased towards the band
    centre when the spectrum is broad or the temperature high, so use `heart_rate` for evaluation.

    Args:
      bvp: pulse signal(s), time on ``axis``.
      fps: sampling rate in Hz.
      band_bpm: (low, high) band in bpm.
      temperature: softmax temperature on log-power, > 0.
      nfft_min: minimum FFT length.
      axis: time axis.

    Returns:
      Soft peak frequency in bpm, shape of ``bvp`` without ``axis``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    x = _to_last(_float_array(bvp), axis)
    freqs, psd = _hr_spectrum(x, float(fps), nfft_min)
    idx = _band_indices(freqs, band_bpm)
    p = psd[..., idx]
    p = p / jnp.maximum(jax.lax.stop_gradient(jnp.max(p, axis=-1, keepdims=True)), 1e-30)
    logits = jnp.log(p + 1e-12) / temperature
    w = jax.nn.softmax(logits, axis=-1)
    return jnp.sum(w * _const(freqs[idx] * 60.0, w), axis=-1)


def spectral_flatness(
    bvp,
    fps: float,
    *,
    band_hz=(0.7, 3.0),
    nfft_min: int = 2048,
    eps: float = 1e-10,
    axis: int = -1,
) -> jax.Array:
    """Spectral flatness (Wiener entropy) of the pulse band: geometric / arithmetic mean of the PSD.

    On the zero-padded Hann periodogram (as in `heart_rate`), restricted to the bins inside
    ``band_hz``: ``exp(mean(log q))`` with ``q = P / mean(P)`` (plus ``eps`` inside the log). 1 for a
    perfectly flat band, -> 0 for a single spectral line; white noise gives about
    ``exp(-euler_gamma) = 0.56`` because periodogram bins are exponentially distributed.
    Scale-invariant and differentiable: maximising it removes a dominant pulse peak.

    Args:
      bvp: pulse signal(s), time on ``axis``.
      fps: sampling rate in Hz.
      band_hz: (low, high) band in Hz.
      nfft_min: minimum FFT length.
      eps: floor added to the normalised PSD inside the log.
      axis: time axis.

    Returns:
      Flatness in (0, 1], shape of ``bvp`` without ``axis``.
    """
    p = _band_psd(bvp, fps, band_hz, nfft_min, axis)
    q = p / (jnp.mean(p, axis=-1, keepdims=True) + jnp.finfo(p.dtype).tiny)
    return jnp.exp(jnp.mean(jnp.log(q + eps), axis=-1))


def band_frequencies(
    num_samples: int, fps: float, *, band_hz=(0.7, 3.0), nfft_min: int = 2048
) -> np.ndarray:
    """The frequencies in Hz of the bins of `band_share` (and `spectral_flatness`) for signals of
    `num_samples` samples."""
    freqs = np.fft.rfftfreq(_nfft(num_samples, nfft_min), d=1.0 / fps)
    return freqs[_band_indices(freqs, (60.0 * band_hz[0], 60.0 * band_hz[1]))]


def _band_psd(x, fps: float, band_hz, nfft_min: int, axis: int) -> jax.Array:
    """The zero-padded periodogram's bins inside `band_hz`, time axis replaced by the last."""
    x = _to_last(_float_array(x), axis)
    freqs, psd = _hr_spectrum(x, float(fps), nfft_min)
    return psd[..., _band_indices(freqs, (60.0 * band_hz[0], 60.0 * band_hz[1]))]


def band_share(
    x, fps: float, *, band_hz=(0.7, 3.0), nfft_min: int = 2048, axis: int = -1
) -> jax.Array:
    """Each pulse-band bin's share of the band's power (sums to 1 along the last axis).

    The zero-padded Hann periodogram of `spectral_flatness`, restricted to ``band_hz`` and divided by
    its sum: scale-free and differentiable. ``sum(band_share(a) * band_share(b))`` times the number of
    bins is 1 when either spectrum is flat and large when both peak at the same rate.

    Returns:
      float array of ``x``'s shape without ``axis`` plus one last axis of band bins.
    """
    p = _band_psd(x, fps, band_hz, nfft_min, axis)
    return p / (jnp.sum(p, axis=-1, keepdims=True) + jnp.finfo(p.dtype).tiny)
