"""Classical (unsupervised) rPPG estimators on the skin-masked mean RGB trace, in JAX.

Every method is a pure function `(rgb_trace "... t 3" float, fps) -> bvp "... t"` (leading batch
axes allowed), jit-compiled with `fps` and the other settings static, and registered by name:

- green (differentiable): Verkruysse, Svaasand & Nelson, "Remote plethysmographic imaging using
  ambient light", Optics Express 16(26), 2008.
- pos (differentiable): Wang, den Brinker, Stuijk & de Haan, "Algorithmic principles of remote
  PPG", IEEE TBME 64(7), 2017.
- chrom (differentiable): de Haan & Jeanne, "Robust pulse rate from chrominance-based rPPG",
  IEEE TBME 60(10), 2013.
- ica (not differentiable): Poh, McDuff & Picard, "Non-contact, automated cardiac pulse
  measurements using video imaging and blind source separation", Optics Express 18(10), 2010.
- pca (differentiable): Lewandowska, Ruminski, Kocejko & Nowak, "Measuring pulse rate with a
  webcam - a non-contact method for evaluating cardiac activity", FedCSIS 2011.
- lgi (differentiable): Pilz, Zaunseder, Krajewski & Blazek, "Local group invariance for heart
  rate estimation from face videos in the wild", CVPR Workshops 2018.
- pbv (differentiable): de Haan & van Leest, "Improved motion robustness of remote-PPG by using
  the blood volume pulse signature", Physiological Measurement 35(9), 2014.
- pbv_raw (differentiable): the same method as pyVHR (Boccignone et al., "An open framework for
  remote-PPG methods and their assessment", IEEE Access 8, 2020) and rPPG-Toolbox (Liu et al.,
  "rPPG-Toolbox: deep remote PPG toolbox", NeurIPS 2023) formulate it: a second PBV reader.
- omit (differentiable): Casado & Bordallo Lopez, "Face2PPG: an unsupervised pipeline for blood
  volume pulse extraction from faces", IEEE JBHI 27(11), 2023.

Sign convention (the project's): the output rises with blood volume, i.e. it is positively
correlated with the ground-truth `bvp` of `rppgedit.data.synthetic`, where more blood makes the skin
DARKER (all channels drop, green most, in the ratio R:G:B = 0.33:0.77:0.53 of de Haan & van Leest
2014). Methods whose published output has the opposite sign (GREEN, POS, LGI, PBV, OMIT) are
negated here; ICA and PCA, whose sign is arbitrary, are aligned with the negated band-passed green
channel.

Band-pass and detrending come from `rppgedit.signals` (the one implementation of each). The pass
band defaults to 0.7-3.0 Hz (42-180 bpm) and is a keyword argument of every method. Which pre- and
post-processing each method applies is stated in its docstring; where the paper leaves a choice
open, the docstring says what was chosen.

The scale of the output is the method's own (relative colour change for GREEN/POS/CHROM/PBV, input
intensity units for LGI/OMIT, unit variance for ICA/PCA); compare shapes with Pearson or spectra.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from rppgedit import signals
from rppgedit.errors import RppgEditError
from rppgedit.estimators.registry import Estimator, register

_EPS = 1e-12  # added to variances before a square root: keeps gradients finite at zero variance
_MEAN_EPS = 1e-8  # added to temporal means before dividing (a black trace gives zeros, not NaN)

# Relative pulsatile strengths R:G:B for a standard RGB camera, quoted from de Haan & van Leest 2014
# (and used as the PBV signature by Wang et al. 2017); the optional fixed signature of `pbv`.
PBV_SIGNATURE = (0.33, 0.77, 0.53)

_STATIC = ("fps", "low_hz", "high_hz", "order")


def _per_trace(core):
    """Lifts `core(trace "t 3") -> "t"` to any leading batch axes."""

    def lifted(rgb_trace, *args, **kwargs):
        x = jnp.asarray(rgb_trace)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        if x.ndim < 2 or x.shape[-1] != 3:
            raise ValueError(f"rgb_trace must have shape (..., t, 3), got {x.shape}")
        return jnp.vectorize(lambda t: core(t, *args, **kwargs), signature="(t,c)->(t)")(x)

    return lifted


def _std(x, axis=-1, keepdims=False):
    """Standard deviation with an epsilon inside the square root (finite gradient at zero)."""
    return jnp.sqrt(jnp.var(x, axis=axis, keepdims=keepdims) + _EPS)


def _normalise(x, axis=-2):
    """Divides by the temporal mean (C_n = C / mu(C)), the usual rPPG skin-tone normalisation."""
    return x / (jnp.mean(x, axis=axis, keepdims=True) + _MEAN_EPS)


def _bandpass(x, fps, low_hz, high_hz, order, axis=-1):
    return signals.bandpass(x, fps, low_hz=low_hz, high_hz=high_hz, order=order, axis=axis)


def _window_length(window_s: float, fps: float) -> int:
    """ceil(window_s * fps) frames, robust to float error (2.2 * 25 is 55.00000000000001)."""
    return max(2, math.ceil(round(window_s * fps, 6)))


def _sliding_windows(num_frames: int, length: int, hop: int):
    """Index array "n l" of the windows [s, s+l) for s = 0, hop, 2 hop, ... that fit in the clip."""
    if num_frames < length:
        raise RppgEditError(
            f"an RGB trace of {num_frames} frames is shorter than the method's window ({length})"
        )
    starts = jnp.arange(0, num_frames - length + 1, hop)
    return starts[:, None] + jnp.arange(length)[None, :]


def _overlap_add(segments, index, num_frames: int):
    """Sums window segments "n l" back into a signal "t" at the positions `index` "n l"."""
    return jnp.zeros((num_frames,), segments.dtype).at[index.reshape(-1)].add(segments.reshape(-1))


def _peak_fraction(components, fps: float, low_hz: float, high_hz: float):
    """Power of the largest in-band spectral peak over the total power, per row of "k t".

    Periodogram with zero padding to at least 4096 points; used to pick the pulse component of ICA
    and PCA (Poh et al. 2011 / Lewandowska et al. 2011: the component with the highest spectral
    peak).
    """
    num = components.shape[-1]
    nfft = max(4096, 1 << math.ceil(math.log2(num)))
    x = components - jnp.mean(components, axis=-1, keepdims=True)
    power = jnp.abs(jnp.fft.rfft(x, n=nfft, axis=-1)) ** 2
    freqs = jnp.fft.rfftfreq(nfft, 1.0 / fps)
    band = (freqs >= low_hz) & (freqs <= high_hz)
    band = band.reshape((1,) * (power.ndim - 1) + band.shape)
    peak = jnp.max(jnp.where(band, power, 0.0), axis=-1)
    return peak / (jnp.sum(power, axis=-1) + _EPS)


def _align_with_negated_green(component, trace, fps, low_hz, high_hz, order):
    """Flips `component` "t" so that it correlates positively with the negated band-passed green."""
    green = _bandpass(_normalise(trace)[:, 1], fps, low_hz, high_hz, order)
    corr = jnp.sum((component - jnp.mean(component)) * (jnp.mean(green) - green))
    return (
        jnp.where(jax.lax.stop_gradient(corr) >= 0, 1.0, -1.0).astype(component.dtype) * component
    )


# --------------------------------------------------------------------------------------------------
# GREEN


def _green_core(trace, fps, low_hz, high_hz, order):
    g = trace[:, 1] / (jnp.mean(trace[:, 1]) + _MEAN_EPS) - 1.0
    return _bandpass(-g, fps, low_hz, high_hz, order)


@functools.partial(jax.jit, static_argnames=_STATIC)
def green(rgb_trace, fps: float, *, low_hz: float = 0.7, high_hz: float = 3.0, order: int = 3):
    """GREEN: the band-passed green channel (Verkruysse et al. 2008, Opt. Express 16(26)).

    Verkruysse et al. showed the green channel carries the strongest plethysmographic signal. The
    green trace is divided by its temporal mean (relative change), negated (skin darkens as blood
    volume rises; see the module docstring) and band-passed (zero-phase Butterworth from
    `rppgedit.signals`; the paper inspected the spectrum of the raw channel, the band-pass is the
    usual choice of later implementations).

    Args:
      rgb_trace: float "... t 3", mean skin RGB per frame (any positive scale, e.g. [0, 1]).
      fps: frame rate in Hz (static under jit).
      low_hz, high_hz: pass band in Hz.
      order: Butterworth order of the band-pass.

    Returns:
      bvp "... t", relative green change (dimensionless), rising with blood volume.
    """
    return _per_trace(_green_core)(rgb_trace, fps, low_hz, high_hz, order)


# --------------------------------------------------------------------------------------------------
# POS


def _pos_core(trace, fps, window_s, low_hz, high_hz, order):
    num = trace.shape[0]
    length = _window_length(window_s, fps)
    index = _sliding_windows(num, length, 1)
    windows = trace[index]  # n l 3
    cn = windows / (jnp.mean(windows, axis=1, keepdims=True) + _MEAN_EPS)
    r, g, b = cn[..., 0], cn[..., 1], cn[..., 2]
    s1 = g - b  # projection P = [[0, 1, -1], [-2, 1, 1]] onto the plane orthogonal to the skin tone
    s2 = g + b - 2.0 * r
    alpha = _std(s1, keepdims=True) / _std(s2, keepdims=True)
    h = s1 + alpha * s2
    h = h - jnp.mean(h, axis=1, keepdims=True)
    pulse = _overlap_add(h, index, num)
    return _bandpass(-pulse, fps, low_hz, high_hz, order)


@functools.partial(jax.jit, static_argnames=(*_STATIC, "window_s"))
def pos(
    rgb_trace,
    fps: float,
    *,
    window_s: float = 1.6,
    low_hz: float = 0.7,
    high_hz: float = 3.0,
    order: int = 3,
):
    """POS, plane-orthogonal-to-skin (Wang et al. 2017, IEEE TBME 64(7), Algorithm 1).

    For every window of l = ceil(1.6 s * fps) frames, sliding by one frame: divide by the window's
    temporal mean, project with P = [[0, 1, -1], [-2, 1, 1]] to S1, S2, combine
    h = S1 + (std S1 / std S2) S2, remove its mean and overlap-add into the output. Then, as the
    paper's pulse is negatively correlated with blood volume (skin darkens), the result is negated,
    and band-passed (a post-filter, as in common implementations; the paper's Algorithm 1 has none).

    Args:
      rgb_trace: float "... t 3", mean skin RGB per frame; t >= window length.
      fps: frame rate in Hz (static under jit).
      window_s: window length in seconds (1.6 s in the paper).
      low_hz, high_hz: pass band in Hz.
      order: Butterworth order of the band-pass.

    Returns:
      bvp "... t" (relative colour units), rising with blood volume.
    """
    return _per_trace(_pos_core)(rgb_trace, fps, window_s, low_hz, high_hz, order)


# --------------------------------------------------------------------------------------------------
# CHROM


def _chrom_core(trace, fps, window_s, low_hz, high_hz, order):
    num = trace.shape[0]
    length = _window_length(window_s, fps)
    length += length % 2  # even, so that a half-window hop tiles exactly
    index = _sliding_windows(num, length, length // 2)
    # Band-pass of C / mu_w - 1 equals band-pass(C) / mu_w (linear filter, mu_w constant per
    # window); filtering the whole trace once avoids filtering short windows.
    filtered = _bandpass(trace.T, fps, low_hz, high_hz, order).T  # t 3
    means = jnp.mean(trace[index], axis=1, keepdims=True) + _MEAN_EPS  # n 1 3
    cf = filtered[index] / means  # n l 3
    r, g, b = cf[..., 0], cf[..., 1], cf[..., 2]
    xf = 3.0 * r - 2.0 * g
    yf = 1.5 * r + g - 1.5 * b
    alpha = _std(xf, keepdims=True) / _std(yf, keepdims=True)
    s = xf - alpha * yf
    hann = 0.5 - 0.5 * jnp.cos(2.0 * jnp.pi * jnp.arange(length) / length)  # periodic Hann
    return _overlap_add(s * hann.astype(s.dtype)[None, :], index, num)


@functools.partial(jax.jit, static_argnames=(*_STATIC, "window_s"))
def chrom(
    rgb_trace,
    fps: float,
    *,
    window_s: float = 1.6,
    low_hz: float = 0.7,
    high_hz: float = 3.0,
    order: int = 3,
):
    """CHROM, chrominance-based rPPG (de Haan & Jeanne 2013, IEEE TBME 60(10)).

    The trace is cut into windows of 1.6 s (rounded up to an even number of frames) with 50 %
    overlap. In each window the colours are normalised by the window mean, combined into the
    chrominance signals X = 3 Rn - 2 Gn and Y = 1.5 Rn + Gn - 1.5 Bn, band-passed, and combined as
    S = Xf - (std Xf / std Yf) Yf; the windows are weighted by a (periodic) Hann window and
    overlap-added. Choice: the band-pass is applied once to the whole trace before windowing
    (equivalent for the normalised signals up to filter edge effects, and avoids filtering
    48-sample segments). CHROM's output already rises with blood volume (no sign flip).

    Args:
      rgb_trace: float "... t 3", mean skin RGB per frame; t >= window length.
      fps: frame rate in Hz (static under jit).
      window_s: window length in seconds.
      low_hz, high_hz: pass band in Hz.
      order: Butterworth order of the band-pass.

    Returns:
      bvp "... t" (relative colour units), rising with blood volume; the first and last half window
      are tapered by the Hann window.
    """
    return _per_trace(_chrom_core)(rgb_trace, fps, window_s, low_hz, high_hz, order)


# --------------------------------------------------------------------------------------------------
# ICA


def _inv_sqrt_sym(m):
    """M^(-1/2) of a symmetric positive (semi)definite matrix, via eigh."""
    vals, vecs = jnp.linalg.eigh(m)
    return (vecs * jax.lax.rsqrt(jnp.maximum(vals, 1e-12))[None, :]) @ vecs.T


def _jade_rotation(z, num_sweeps: int):
    """JADE (Cardoso & Souloumiac 1993): the rotation V "k k" with sources = V^T z.

    Joint approximate diagonalisation of the fourth-order cumulant slices
    M_kl[i, j] = cum(z_i, z_j, z_k, z_l) of whitened rows z "k t" by Jacobi (Givens) rotations,
    starting from the identity; a fixed number of sweeps over all index pairs (three channels
    converge in a handful), so the result is deterministic and jit-able.
    """
    k, t = z.shape
    cov = z @ z.T / t
    m4 = jnp.einsum("it,jt,kt,lt->ijkl", z, z, z, z) / t
    cum = (
        m4
        - cov[:, :, None, None] * cov[None, None, :, :]
        - cov[:, None, :, None] * cov[None, :, None, :]
        - cov[:, None, None, :] * cov[None, :, :, None]
    )
    mats = jnp.moveaxis(cum.reshape(k, k, k * k), -1, 0)  # (k*k) x k x k slices
    eye = jnp.eye(k, dtype=z.dtype)

    def sweep(_, carry):
        mats, v = carry
        for p in range(k):
            for q in range(p + 1, k):
                g1 = mats[:, p, p] - mats[:, q, q]
                g2 = mats[:, p, q] + mats[:, q, p]
                ton = jnp.sum(g1 * g1) - jnp.sum(g2 * g2)
                toff = 2.0 * jnp.sum(g1 * g2)
                theta = 0.5 * jnp.arctan2(toff, ton + jnp.sqrt(ton * ton + toff * toff))
                c, s = jnp.cos(theta), jnp.sin(theta)
                g = eye.at[p, p].set(c).at[q, q].set(c).at[p, q].set(-s).at[q, p].set(s)
                mats = jnp.einsum("ji,njk,kl->nil", g, mats, g)
                v = v @ g
        return mats, v

    return jax.lax.fori_loop(0, num_sweeps, sweep, (mats, eye))[1]


def _ica_core(trace, fps, detrend_lambda, num_sweeps, low_hz, high_hz, order):
    x = signals.detrend(trace.T, lam=detrend_lambda, axis=-1)  # 3 t
    x = (x - jnp.mean(x, axis=1, keepdims=True)) / _std(x, keepdims=True)
    z = _inv_sqrt_sym(x @ x.T / x.shape[1]) @ x  # whitened
    sources = _jade_rotation(z, num_sweeps).T @ z  # 3 t, unit variance
    sources = _bandpass(sources, fps, low_hz, high_hz, order)
    best = jnp.argmax(_peak_fraction(sources, fps, low_hz, high_hz))
    pulse = sources[best]
    pulse = pulse / _std(pulse)
    return _align_with_negated_green(pulse, trace, fps, low_hz, high_hz, order)


@functools.partial(jax.jit, static_argnames=(*_STATIC, "detrend_lambda", "num_sweeps"))
def ica(
    rgb_trace,
    fps: float,
    *,
    detrend_lambda: float = 100.0,
    num_sweeps: int = 20,
    low_hz: float = 0.7,
    high_hz: float = 3.0,
    order: int = 3,
):
    """ICA: blind source separation of the RGB traces (Poh, McDuff & Picard 2010, Opt. Express).

    Steps: detrend each channel (smoothness priors, as in Poh et al., IEEE TBME 58(1), 2011),
    standardise to zero mean and unit variance, whiten, separate three sources with JADE (as in the
    paper; Jacobi sweeps from the identity, so the result is deterministic), band-pass the sources
    and pick the one whose largest in-band spectral peak holds the biggest share of its power (Poh
    et al. 2011; the 2010 paper always took the second). Its arbitrary sign is aligned with the
    negated green channel. Not meant for gradients (the component choice makes them meaningless).

    Args:
      rgb_trace: float "... t 3", mean skin RGB per frame.
      fps: frame rate in Hz (static under jit).
      detrend_lambda: smoothness-priors regularisation (larger removes less).
      num_sweeps: Jacobi sweeps of JADE over the three channel pairs.
      low_hz, high_hz: pass band in Hz.
      order: Butterworth order of the band-pass.

    Returns:
      bvp "... t", unit variance, rising with blood volume.
    """
    return _per_trace(_ica_core)(rgb_trace, fps, detrend_lambda, num_sweeps, low_hz, high_hz, order)


# --------------------------------------------------------------------------------------------------
# PCA


def _pca_core(trace, fps, low_hz, high_hz, order):
    x = _bandpass(_normalise(trace).T - 1.0, fps, low_hz, high_hz, order)  # 3 t
    x = x - jnp.mean(x, axis=1, keepdims=True)
    cov = x @ x.T / x.shape[1]
    # A tiny distinct diagonal separates equal eigenvalues (eigh's derivative divides by their
    # differences); it is far below the float32 resolution of any real trace's covariance.
    jitter = (1e-7 * jnp.trace(cov) + 1e-30) * jnp.diag(jnp.arange(1.0, 4.0, dtype=cov.dtype))
    _, vecs = jnp.linalg.eigh(cov + jitter)
    components = vecs.T @ x  # 3 t, ascending variance
    best = jnp.argmax(jax.lax.stop_gradient(_peak_fraction(components, fps, low_hz, high_hz)))
    pulse = components[best]
    pulse = pulse / _std(pulse)
    return _align_with_negated_green(pulse, trace, fps, low_hz, high_hz, order)


@functools.partial(jax.jit, static_argnames=_STATIC)
def pca(rgb_trace, fps: float, *, low_hz: float = 0.7, high_hz: float = 3.0, order: int = 3):
    """PCA of the RGB traces (Lewandowska et al. 2011, FedCSIS).

    Steps: normalise each channel by its temporal mean, band-pass, project on the principal axes of
    the 3x3 covariance (eigh) and pick the component whose largest in-band spectral peak holds the
    biggest share of its power (choice: the paper read the pulse off the principal components'
    spectra; the peak criterion makes that automatic). Its arbitrary sign is aligned with the
    negated green channel. Differentiable through eigh (the component index is held fixed); the
    gradient is finite as long as the chosen component's variance differs from the others'.

    Args:
      rgb_trace: float "... t 3", mean skin RGB per frame.
      fps: frame rate in Hz (static under jit).
      low_hz, high_hz: pass band in Hz.
      order: Butterworth order of the band-pass.

    Returns:
      bvp "... t", unit variance, rising with blood volume.
    """
    return _per_trace(_pca_core)(rgb_trace, fps, low_hz, high_hz, order)


# --------------------------------------------------------------------------------------------------
# LGI


def _top_left_singular_vector(c, num_iter):
    """Dominant left singular vector of c "3 t" by power iteration on c c^T, from the mean colour.

    For a colour trace the first singular value exceeds the second by orders of magnitude (the DC
    skin colour against sub-percent variations), so a few iterations reach float precision. Unlike
    the derivative of a full SVD/eigh, the derivative stays finite when the minor singular values
    are equal (e.g. a constant trace).
    """
    m = c @ c.T
    u = jnp.mean(c, axis=1) + _MEAN_EPS

    def step(_, u):
        v = m @ u
        return v / jnp.sqrt(jnp.sum(v**2) + _EPS)

    return jax.lax.fori_loop(0, num_iter, step, u / jnp.sqrt(jnp.sum(u**2) + _EPS))


def _lgi_core(trace, fps, low_hz, high_hz, order):
    c = trace.T  # 3 t, raw colours
    # Dominant direction (skin tone x illumination); its sign cancels in u u^T.
    u = _top_left_singular_vector(c, 16)
    projected = c - u[:, None] * (u @ c)[None, :]  # (I - u u^T) C
    return _bandpass(-projected[1], fps, low_hz, high_hz, order)


@functools.partial(jax.jit, static_argnames=_STATIC)
def lgi(rgb_trace, fps: float, *, low_hz: float = 0.7, high_hz: float = 3.0, order: int = 3):
    """LGI, local group invariance (Pilz et al. 2018, CVPR Workshops).

    The dominant left singular vector u of the raw colour matrix C "3 t" (the paper's SVD; computed
    here by power iteration on C C^T, which reaches the same vector to float precision and keeps a
    finite derivative) spans the skin-tone/illumination direction; the projection
    (I - u u^T) C removes it, and the pulse is the second (green) row of the projected signal. It is
    negated (so it rises with blood volume) and band-passed (post-filter, as usual). Choice: the
    whole trace is one window (the paper's formulation; the projection is intensity invariant, so no
    temporal normalisation is needed).

    Args:
      rgb_trace: float "... t 3", mean skin RGB per frame.
      fps: frame rate in Hz (static under jit).
      low_hz, high_hz: pass band in Hz.
      order: Butterworth order of the band-pass.

    Returns:
      bvp "... t" (units of the input intensities), rising with blood volume.
    """
    return _per_trace(_lgi_core)(rgb_trace, fps, low_hz, high_hz, order)


# --------------------------------------------------------------------------------------------------
# PBV


def _pbv_core(trace, fps, signature, ridge, low_hz, high_hz, order):
    cf = _bandpass(_normalise(trace).T - 1.0, fps, low_hz, high_hz, order)  # 3 t
    if signature is None:
        # Signature estimated from the data: relative pulsatile strength of each channel.
        k = _std(cf)
        k = k / jnp.sqrt(jnp.sum(k**2))
    else:
        k = jnp.asarray(signature, cf.dtype)
        k = k / jnp.linalg.norm(k)
    q = cf @ cf.T
    q = q + ridge * (jnp.trace(q) / 3.0 + _EPS) * jnp.eye(3, dtype=q.dtype)
    w = jnp.linalg.solve(q, k)  # W ~ k Q^-1, normalised below so that W . k = 1
    s = (w @ cf) / (w @ k)
    return -s


@functools.partial(jax.jit, static_argnames=(*_STATIC, "signature", "ridge"))
def pbv(
    rgb_trace,
    fps: float,
    *,
    signature: tuple[float, float, float] | None = PBV_SIGNATURE,
    ridge: float = 1e-6,
    low_hz: float = 0.7,
    high_hz: float = 3.0,
    order: int = 3,
):
    """PBV, blood-volume pulse signature (de Haan & van Leest 2014, Physiol. Meas. 35(9)).

    The mean-normalised, band-passed colour traces Cn "3 t" are combined with the weights
    W = k Pbv^T Q^-1, Q = Cn Cn^T, normalised so that W Pbv = 1: the linear combination that passes
    a colour change along the signature Pbv unchanged and minimises everything else. With Cn falling
    along Pbv as blood volume rises, the result is negated. Choices: the whole trace is one window;
    the default signature is the fixed standard-camera signature `PBV_SIGNATURE` (as in the paper,
    which uses a fixed, camera-specific Pbv); `signature=None` estimates it from the data instead
    (the relative standard deviations of the band-passed normalised channels, as some
    re-implementations do; motion then leaks into the estimate); a tiny ridge keeps Q invertible for
    degenerate (e.g. constant) traces.

    Args:
      rgb_trace: float "... t 3", mean skin RGB per frame.
      fps: frame rate in Hz (static under jit).
      signature: a fixed R, G, B signature (any scale), or None to estimate it from the data.
      ridge: relative Tikhonov term added to Q.
      low_hz, high_hz: pass band in Hz.
      order: Butterworth order of the band-pass.

    Returns:
      bvp "... t" (relative colour units), rising with blood volume.
    """
    return _per_trace(_pbv_core)(rgb_trace, fps, signature, ridge, low_hz, high_hz, order)


def _pbv_raw_core(trace, fps, low_hz, high_hz, order):
    cn = _normalise(trace).T  # 3 t, unfiltered and not centred
    var = jnp.var(cn, axis=-1)
    k = jnp.sqrt(var + _EPS) / jnp.sqrt(jnp.sum(var) + _EPS)
    # Q = Cn Cn^T = A + t m m^T with A the centred scatter and m the channel means (about 1): its
    # condition number is too large for float32, so Q^-1 k is taken exactly by Sherman-Morrison.
    m = jnp.mean(cn, axis=-1)
    centred = cn - m[:, None]
    a = centred @ centred.T
    a = a + (1e-6 * jnp.trace(a) / 3.0 + 1e-8) * jnp.eye(3, dtype=a.dtype)  # floor: constant traces
    solved = jnp.linalg.solve(a, jnp.stack([k, m], axis=-1))  # A^-1 [k m]
    ak, am = solved[:, 0], solved[:, 1]
    t = cn.shape[-1]
    w = ak - am * (t * (m @ ak) / (1.0 + t * (m @ am)))
    w = w / jnp.sqrt(jnp.sum(w * w) + _EPS)  # the scale cancels below; this keeps it finite
    norm = k @ w  # W . k = 1 after dividing; guarded for a degenerate (e.g. constant) trace
    s = (w @ cn) / jnp.where(jnp.abs(norm) > 1e-6, norm, 1e-6)
    return -_bandpass(s, fps, low_hz, high_hz, order)


@functools.partial(jax.jit, static_argnames=_STATIC)
def pbv_raw(rgb_trace, fps: float, *, low_hz: float = 0.7, high_hz: float = 3.0, order: int = 3):
    """PBV as the common open re-implementations formulate it (the pyVHR and rPPG-Toolbox
    descriptions of de Haan & van Leest 2014): a second minimum-variance reader, independent of
    `pbv`'s choices.

    The traces are only mean-normalised (Cn = C / mu(C), neither band-passed nor centred); the
    signature is estimated from them, k = std(Cn) / sqrt(sum var(Cn)) per channel (trend and motion
    included); Q = Cn Cn^T is the uncentred correlation, so its dominant direction is the grey
    (1, 1, 1) of the unit means, and the weights W = Q^-1 k are nearly orthogonal to it; the
    pulse is W Cn / (k . W), negated (so it rises with blood volume) and band-passed afterwards.
    A minimum-variance projection implemented this way weights the colour channels differently
    from `pbv` (fixed signature, band-passed and centred traces), so an edit that moves one need
    not move the other.

    Args:
      rgb_trace: float "... t 3", mean skin RGB per frame.
      fps: frame rate in Hz (static under jit).
      low_hz, high_hz: pass band in Hz of the post-filter.
      order: Butterworth order of the band-pass.

    Returns:
      bvp "... t" (relative colour units), rising with blood volume.
    """
    return _per_trace(_pbv_raw_core)(rgb_trace, fps, low_hz, high_hz, order)


# --------------------------------------------------------------------------------------------------
# OMIT


def _omit_core(trace, fps, low_hz, high_hz, order):
    c = trace.T  # 3 t, raw colours
    # First column of Q in C = Q R: the first column of C normalised (Gram-Schmidt), up to a sign
    # that cancels in u u^T. Written out because the derivative of a full QR divides by R's
    # diagonal, which is zero when C is rank deficient (e.g. a constant trace).
    u = c[:, 0] / jnp.sqrt(jnp.sum(c[:, 0] ** 2) + _EPS)
    projected = c - u[:, None] * (u @ c)[None, :]  # (I - u u^T) C
    return _bandpass(-projected[1], fps, low_hz, high_hz, order)


@functools.partial(jax.jit, static_argnames=_STATIC)
def omit(rgb_trace, fps: float, *, low_hz: float = 0.7, high_hz: float = 3.0, order: int = 3):
    """OMIT, orthogonal matrix image transformation (Casado & Bordallo Lopez 2023, IEEE JBHI).

    The raw colour matrix C "3 t" is decomposed as C = Q R (QR decomposition); the first column q of
    the orthogonal matrix Q gives the projection P = I - q q^T, and the pulse is the second (green)
    row of P C, like LGI but with QR in place of the SVD. It is negated (so it rises with blood
    volume) and band-passed (post-filter). Choice: the whole trace is one window.

    Args:
      rgb_trace: float "... t 3", mean skin RGB per frame.
      fps: frame rate in Hz (static under jit).
      low_hz, high_hz: pass band in Hz.
      order: Butterworth order of the band-pass.

    Returns:
      bvp "... t" (units of the input intensities), rising with blood volume.
    """
    return _per_trace(_omit_core)(rgb_trace, fps, low_hz, high_hz, order)


# --------------------------------------------------------------------------------------------------
# Registry

for _fn, _diff, _cite in (
    (green, True, "Verkruysse et al., Optics Express 16(26), 2008"),
    (pos, True, "Wang et al., IEEE TBME 64(7), 2017"),
    (chrom, True, "de Haan & Jeanne, IEEE TBME 60(10), 2013"),
    (ica, False, "Poh, McDuff & Picard, Optics Express 18(10), 2010"),
    (pca, True, "Lewandowska et al., FedCSIS 2011"),
    (lgi, True, "Pilz et al., CVPR Workshops 2018"),
    (pbv, True, "de Haan & van Leest, Physiological Measurement 35(9), 2014"),
    (
        pbv_raw,
        True,
        "de Haan & van Leest, Physiological Measurement 35(9), 2014, as formulated in pyVHR "
        "(Boccignone et al., IEEE Access 8, 2020) and rPPG-Toolbox (Liu et al., NeurIPS 2023)",
    ),
    (omit, True, "Casado & Bordallo Lopez, IEEE JBHI 27(11), 2023"),
):
    register(
        Estimator(name=_fn.__name__, fn=_fn, input="trace", differentiable=_diff, citation=_cite)
    )
