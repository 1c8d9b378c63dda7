"""PulseEdit: one colour perturbation per frame, optimised on detrended sub-region traces.

M. Chen, X. Liao, M. Wu, "PulseEdit: Editing Physiological Signals in Facial Videos for Privacy
Protection", IEEE Transactions on Information Forensics and Security 17:457-471 (2022).

The method, as published:

1. Skin pixels are chosen with a Gaussian skin-colour model, p(x) = exp(-1/2 (x-m)^T S^-1 (x-m)),
   thresholded at p_t; here they are also intersected with the editor's `mask`, so that every pixel
   outside `mask` stays bit-identical.
2. The face is divided into M = 6 x 6 sub-regions; R (M x 3 x N frames) holds the mean colour of the
   skin pixels of every region in every frame (0-255 scale).
3. Every region/channel trace is detrended with an l1 trend filter,
   S = argmin_S 1/2 ||S||^2 + mu ||D (R - S)||_1, D the second-difference operator
   (Kim, Koh, Boyd & Gorinevsky, "l1 trend filtering", SIAM Review 51(2), 2009). `l1_detrend` solves
   its box-constrained dual with a primal-dual interior-point method (fixed iteration count, banded
   Newton systems), so it jit-compiles and is exact to float32 precision.
4. One perturbation delta (3 x N, grey levels), shared by all regions, minimises
   -(1/M) sum_{i,c} Pearson(S_ic + delta_c, T_c) + lambda (1/N) ||delta||^2 with Adam (learning rate
   0.1, 200 iterations) through `rppgedit.optimize.optimize`; every skin pixel of frame n then gets
   + delta_c(n). The 8-bit output is produced by the pipeline's stochastic rounding, whose expected
   value is exactly the edited float value, so sub-level deltas survive.
5. Removal (`remove=True`): the target is seeded Gaussian white noise.

Choices where the paper leaves room (each a `PulseEditConfig` field):

- Skin model (`skin_threshold`): Gaussian in normalised rg chromaticity (r, g) = (R, G) / (R+G+B),
  the classic intensity-invariant skin space of Yang & Waibel ("A real-time face tracker", WACV 1996).
  m and S are not fixed constants but fitted to the clip: the mean and covariance of the chromaticity
  of the `mask` pixels, refitted once on the inliers (robust to hair, eyes or lips that the mask let
  through). Fitted per clip, the model follows the person's skin and the lighting instead of a
  population average. For a 2-D Gaussian the squared Mahalanobis distance is chi^2 with 2 degrees of
  freedom, so p(x) >= p_t keeps exactly a fraction 1 - p_t of Gaussian skin: p_t = 0.01 keeps 99 %.
- Regions (`grid`, `min_region_fraction`): a `grid` x `grid` split of the crop (the face box); a
  region enters the loss only when skin covers at least `min_region_fraction` of it in every frame
  (so a region's trace never jumps to an empty mean); with no such region the whole-skin mean is the
  one region. The average is over the regions used (the paper's 1/M).
- mu (`detrend_mu`, grey levels): the dual variable v of the trend filter is bounded by mu and a
  sinusoid of amplitude a at frequency f has |v| = a / (2 - 2 cos(2 pi f / fps)); the default mu
  lets a pulse of up to 2 grey levels at 0.7 Hz (the slowest heart rate of interest) through
  untouched, whatever the frame rate (about 93 at 30 fps), while slow drifts (illumination, motion
  below ~0.2 Hz) of more than about 1 level are cut.
- Three channels from a 1-D target (`signature`): T_c = -target for every channel (the skin gets
  darker when blood volume rises, the project's sign convention). Pearson is scale invariant, so a
  per-channel scale of T_c would change nothing; the per-channel pulse signature enters through the
  fidelity term instead: lambda (1/N) sum_c ||delta_c / k_c||^2 with k_c proportional to PBV_c times
  the clip's mean skin level of channel c (PBV = 0.33, 0.77, 0.53, de Haan & van Leest, Physiol.
  Meas. 35(9), 2014), normalised to a root-mean-square of 1 over the channels. At the optimum the
  per-channel amplitudes are then close to the ratio of k (exactly so when each channel's trace
  noise is proportional to k), the colour direction of a real blood-volume change, which
  chrominance estimators (POS, CHROM) are built to read. With identical weights the edit is close to
  the direction POS projects out: measured on the synthetic clips, POS and CHROM kept reading the
  true 72 bpm while GREEN read the target. `signature=None` gives the paper's plain
  lambda (1/N) ||delta||^2. Limit: the ratio is only approximate (sensor noise is the same in every
  channel, the pulse is not), and PBV, whose projection assumes the exact signature, reads the
  target weakly (synthetic clips: neither target nor truth; a real clip: the target at 0.8 dB SNR).
- lambda (`fidelity_weight`): 0.05 on the 0-255 scale. On the synthetic 64x64 test clips (pulse
  ~0.6 grey levels std on green) the delta is about 1 grey level rms per channel (PSNR ~56 dB) and
  GREEN, POS, CHROM, LGI, OMIT, ICA and PCA read the target (tests/pulseedit_test.py); on a real
  20 s webcam clip through the pipeline (64x64 crop, 128-frame windows) the PSNR was 51 dB. The
  delta grows with the noise of the region traces (the Pearson term saturates later), so noisier
  videos get larger edits.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from rppgedit import signals
from rppgedit.editors import contract
from rppgedit.editors.regions import PULSE_SIGNATURE, pulse_channel_weights, region_sums
from rppgedit.optimize import optimize

LEVELS = 255.0  # region traces, delta and the loss live on the 0-255 scale
PBV_SIGNATURE = PULSE_SIGNATURE  # de Haan & van Leest 2014, relative pulsatile strengths R:G:B
# Fields a sweep varies: traced in the compiled edit (one program for every value; vmap-able).
HYPERPARAMETERS = ("learning_rate", "fidelity_weight")
_COV_EPS = 1e-6  # added to the chromaticity covariance (a chroma std floor of 0.001)


@dataclasses.dataclass(frozen=True)
class PulseEditConfig:
    """Settings of one PulseEdit edit (hashable: a jit static argument, except the
    `HYPERPARAMETERS` fields, which reach the compiled edit as traced values).

    Attributes:
      fps: frame rate of the clip in Hz.
      remove: True to embed seeded Gaussian noise (removal) instead of the target waveform.
      steps: Adam iterations (paper: 200).
      learning_rate: Adam learning rate in grey levels per step (paper: 0.1).
      fidelity_weight: lambda, weight of (1/N) ||delta / k||^2 on the 0-255 scale.
      grid: the face is split into grid x grid sub-regions (paper: 6 x 6).
      min_region_fraction: a region is used when skin covers at least this fraction of it in every
        frame.
      skin_threshold: p_t of the Gaussian skin model (keeps a fraction 1 - p_t of Gaussian skin).
      detrend_mu: mu of the l1 trend filter in grey levels; None derives it from `fps` (module
        docstring).
      detrend_iters: interior-point iterations of the l1 trend filter.
      signature: per-channel pulse signature weighting the fidelity term; None weighs the channels
        equally (the paper's penalty).
      seed: seed of the removal noise target.
    """

    fps: float = 30.0
    remove: bool = False
    steps: int = 200
    learning_rate: float = 0.1
    fidelity_weight: float = 0.05
    grid: int = 6
    min_region_fraction: float = 0.1
    skin_threshold: float = 0.01
    detrend_mu: float | None = None
    detrend_iters: int = 30
    signature: tuple[float, float, float] | None = PBV_SIGNATURE
    seed: int = 0

    def __post_init__(self):
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.steps < 1 or self.learning_rate <= 0 or self.fidelity_weight < 0:
            raise ValueError("steps >= 1, learning_rate > 0 and fidelity_weight >= 0 are required")
        if self.grid < 1 or not 0.0 <= self.min_region_fraction <= 1.0:
            raise ValueError("grid >= 1 and min_region_fraction in [0, 1] are required")
        if not 0.0 < self.skin_threshold < 1.0:
            raise ValueError(f"skin_threshold must be in (0, 1), got {self.skin_threshold}")
        if self.detrend_mu is not None and self.detrend_mu <= 0:
            raise ValueError(f"detrend_mu must be > 0, got {self.detrend_mu}")
        if self.detrend_iters < 1:
            raise ValueError(f"detrend_iters must be >= 1, got {self.detrend_iters}")
        if self.signature is not None and (
            len(self.signature) != 3 or any(s <= 0 for s in self.signature)
        ):
            raise ValueError(f"signature must be three positive numbers, got {self.signature}")

    @property
    def mu(self) -> float:
        """mu of the trend filter: given, or such that 2 levels at 0.7 Hz pass untouched."""
        if self.detrend_mu is not None:
            return float(self.detrend_mu)
        return 2.0 / (2.0 - 2.0 * math.cos(2.0 * math.pi * 0.7 / self.fps))


def load_state(cfg: PulseEditConfig) -> None:
    """PulseEdit has no weights: the state is None."""
    del cfg
    return None


# --------------------------------------------------------------------------------------------------
# Skin model (the sub-region grid is `rppgedit.editors.regions`)


def skin_mask(clip, mask, threshold: float = 0.01) -> jax.Array:
    """Pixels of `mask` whose colour the clip's Gaussian skin model accepts.

    The model is a Gaussian in normalised rg chromaticity fitted to the `mask` pixels of the whole
    clip, refitted once on its inliers; a pixel is skin when exp(-1/2 d^2) >= threshold, d the
    Mahalanobis distance.

    Args:
      clip: float "t h w 3" in [0, 1].
      mask: bool "t h w", the pixels that may change.
      threshold: p_t in (0, 1).

    Returns:
      bool "t h w", a subset of `mask` (all False when `mask` is empty).
    """
    total = jnp.sum(clip, axis=-1)
    chroma = clip[..., :2] / jnp.maximum(total, 1e-6)[..., None]  # t h w 2
    limit = -2.0 * math.log(threshold)  # d^2 <= limit  <=>  p(x) >= threshold

    def accept(weights):
        w = weights.astype(jnp.float32)[..., None]
        count = jnp.maximum(jnp.sum(w), 1.0)
        mean = jnp.sum(chroma * w, axis=(0, 1, 2), keepdims=True) / count
        centred = chroma - mean
        cov = jnp.einsum("thwi,thwj->ij", centred * w, centred) / count
        cov = cov + _COV_EPS * jnp.eye(2, dtype=cov.dtype)
        d2 = jnp.einsum("thwi,ij,thwj->thw", centred, jnp.linalg.inv(cov), centred)
        return mask & (d2 <= limit)

    return accept(accept(mask))


# --------------------------------------------------------------------------------------------------
# l1 trend filter


def _second_diff(x):
    """D x along the last axis: x[i] - 2 x[i+1] + x[i+2], length t-2."""
    return x[..., :-2] - 2.0 * x[..., 1:-1] + x[..., 2:]


def _second_diff_t(v):
    """D^T v along the last axis (length m -> m+2)."""
    pad = [(0, 0)] * (v.ndim - 1)
    return (
        jnp.pad(v, pad + [(0, 2)]) - 2.0 * jnp.pad(v, pad + [(1, 1)]) + jnp.pad(v, pad + [(2, 0)])
    )


def _solve_pentadiagonal(diag, rhs):
    """Solves (D D^T + diag(extra)) x = rhs along the last axis by a banded LDL^T factorisation.

    D D^T has 6 on its diagonal (here `diag`, already including the extra term), -4 on the first
    and 1 on the second off-diagonals. One `lax.scan` factors and solves forward, a second one
    solves backward; leading axes are a batch.
    """
    off1 = jnp.full_like(diag, -4.0).at[..., -1].set(0.0)
    off2 = jnp.full_like(diag, 1.0).at[..., -2:].set(0.0)
    xs = tuple(jnp.moveaxis(a, -1, 0) for a in (diag, off1, off2, rhs))
    zero = jnp.zeros_like(xs[0][0])

    def forward(carry, inp):
        d1, d2, l1p, l2p, l2pp, y1, y2 = carry
        a, b, c, r = inp
        d = a - l1p * l1p * d1 - l2pp * l2pp * d2
        l1 = (b - l2p * d1 * l1p) / d
        l2 = c / d
        y = r - l1p * y1 - l2pp * y2
        return (d, d1, l1, l2, l2p, y, y1), (y / d, l1, l2)

    _, (z, l1, l2) = jax.lax.scan(forward, (zero,) * 7, xs)

    def backward(carry, inp):
        x1, x2 = carry
        zi, l1i, l2i = inp
        x = zi - l1i * x1 - l2i * x2
        return (x, x1), x

    _, x = jax.lax.scan(backward, (zero, zero), (z, l1, l2), reverse=True)
    return jnp.moveaxis(x, 0, -1)


def l1_detrend(x, mu: float, num_iter: int = 30) -> jax.Array:
    """l1 trend filtering: S = argmin_S 1/2 ||S||^2 + mu ||D (x - S)||_1 along the last axis.

    The trend x - S is piecewise linear (Kim et al., SIAM Review 2009). With the dual variable v
    (one per interior sample), S = D^T v where v solves the box-constrained least squares
    min_v 1/2 ||D^T v - x||^2 subject to |v_i| <= mu, solved here by a primal-dual interior-point
    method (central path with centring 0.1, fraction-to-boundary 0.99, slacks mu -/+ v carried
    explicitly); each Newton system is pentadiagonal and solved in O(t). A least-squares line is
    removed first and the signal is scaled to unit standard deviation (S is unchanged by a line in
    x, and mu scales with x). Not meant for gradients (`edit` treats S as data).

    Args:
      x: float "... t" signals, t >= 4.
      mu: trend penalty in the units of x, > 0.
      num_iter: interior-point iterations (20 reach a duality gap below 1e-8 on 300 samples in
        float64; float32 stalls near its precision).

    Returns:
      S "... t" (the detrended signals), same dtype as x.
    """
    x = jnp.asarray(x)
    num = x.shape[-1]
    if num < 4:
        raise ValueError(f"l1_detrend needs at least 4 samples, got {num}")
    t = jnp.linspace(-1.0, 1.0, num, dtype=x.dtype).reshape((1,) * (x.ndim - 1) + (num,))
    xc = x - jnp.mean(x, axis=-1, keepdims=True)
    slope = jnp.sum(xc * t, axis=-1, keepdims=True) / jnp.sum(t * t)
    xc = xc - slope * t
    scale = jnp.sqrt(jnp.mean(xc * xc, axis=-1, keepdims=True)) + 1e-12
    y = xc / scale
    bound = mu / scale  # "... 1"
    b = _second_diff(y)
    m = num - 2
    v = jnp.zeros_like(b)
    s1 = jnp.broadcast_to(bound, b.shape)  # bound - v
    s2 = s1  # bound + v
    lam1 = jnp.ones_like(b)
    lam2 = jnp.ones_like(b)

    def step(state, _):
        v, s1, s2, lam1, lam2 = state
        gap = jnp.sum(lam1 * s1 + lam2 * s2, axis=-1, keepdims=True)
        tau = 0.1 * gap / (2 * m)
        rd = _second_diff(_second_diff_t(v)) - b + lam1 - lam2
        rc1 = lam1 * s1 - tau
        rc2 = lam2 * s2 - tau
        dv = _solve_pentadiagonal(6.0 + lam1 / s1 + lam2 / s2, -rd + rc1 / s1 - rc2 / s2)
        dl1 = (lam1 * dv - rc1) / s1
        dl2 = -(rc2 + lam2 * dv) / s2

        def max_step(val, d):  # largest a with val + a d >= 0
            return jnp.min(jnp.where(d < 0, -val / jnp.where(d < 0, d, -1.0), jnp.inf), axis=-1)

        amax = jnp.minimum(
            jnp.minimum(max_step(lam1, dl1), max_step(lam2, dl2)),
            jnp.minimum(max_step(s1, -dv), max_step(s2, dv)),
        )
        a = jnp.minimum(1.0, 0.99 * amax)[..., None]
        a = jnp.where(gap > 0, a, 0.0)
        return (v + a * dv, s1 - a * dv, s2 + a * dv, lam1 + a * dl1, lam2 + a * dl2), None

    (v, *_), _ = jax.lax.scan(step, (v, s1, s2, lam1, lam2), None, length=num_iter)
    return (_second_diff_t(v) * scale).astype(x.dtype)


# --------------------------------------------------------------------------------------------------
# The edit


def _channel_weights(clip, skin, cfg: PulseEditConfig):
    """k "3": the fidelity weights (module docstring), root-mean-square 1."""
    if cfg.signature is None:
        return jnp.ones((3,), jnp.float32)
    return pulse_channel_weights(clip, skin, cfg.signature)


def region_traces(clip, skin, cfg: PulseEditConfig):
    """Region mean traces on the 0-255 scale and the regions' loss weights.

    Returns:
      (traces "m 3 t", weights "m"): the grid*grid regions followed by the whole-skin mean, which
      is used (weight 1) only when no region qualifies.
    """
    weights = skin.astype(jnp.float32)
    sums, totals = region_sums(clip * LEVELS, weights, cfg.grid)
    num, height, width = skin.shape
    cells = cfg.grid * cfg.grid
    sums = jnp.concatenate(
        [sums.reshape(num, cells, 3), jnp.sum(sums, axis=(1, 2))[:, None, :]], axis=1
    )
    totals = jnp.concatenate([totals.reshape(num, cells), jnp.sum(totals, axis=(1, 2))[:, None]], 1)
    means = sums / jnp.maximum(totals, 1.0)[..., None]
    area = height * width / cells
    used = jnp.min(totals[:, :cells], axis=0) >= max(cfg.min_region_fraction * area, 1.0)
    any_used = jnp.any(used)
    fallback = jnp.logical_and(~any_used, jnp.min(totals[:, cells]) >= 1.0)
    region_w = jnp.concatenate([used, fallback[None]]).astype(jnp.float32)
    return jnp.transpose(means, (1, 2, 0)), region_w


def _target(target, num: int, cfg: PulseEditConfig):
    if cfg.remove:
        return jax.random.normal(jax.random.PRNGKey(cfg.seed), (num,), jnp.float32)
    return jnp.asarray(target, jnp.float32)


@contract.editor_function(HYPERPARAMETERS)
def edit(state, clip, mask, target, cfg: PulseEditConfig):
    """Edits one clip so that its skin colour carries `target` (or noise, when removing).

    Args:
      state: unused (None from `load_state`).
      clip: float32 "t h w 3" in [0, 1] (the face crop).
      mask: bool "t h w": the pixels that may change.
      target: float32 "t" target waveform (ignored when `cfg.remove`).
      cfg: settings (`learning_rate` and `fidelity_weight` traced).

    Returns:
      (edited clip "t h w 3" in [0, 1], aux) with aux = {"history": {"loss", "rppg", "fidelity"}
      each (steps,), "delta": "t 3" the perturbation in grey levels, "skin": bool "t h w" the
      pixels that received it, "region_weights": "m" (grid*grid regions + the whole-skin
      fallback)}. Pixels outside `skin` (a subset of `mask`) are bit-identical to `clip`.
    """
    del state
    clip = jnp.asarray(clip, jnp.float32)
    mask = jnp.asarray(mask, bool)
    num = clip.shape[0]
    skin = skin_mask(clip, mask, cfg.skin_threshold)
    traces, region_w = region_traces(clip, skin, cfg)
    detrended = jax.lax.stop_gradient(l1_detrend(traces, cfg.mu, cfg.detrend_iters))
    wave = -_target(target, num, cfg)  # darker skin when the target (blood volume) rises
    k = _channel_weights(clip, skin, cfg)
    total_w = jnp.maximum(jnp.sum(region_w), 1.0)

    def loss_fn(delta):  # delta "3 t" in grey levels
        r = signals.pearson(detrended + delta[None], wave[None, None, :])  # m 3
        rppg = -jnp.sum(region_w[:, None] * r) / total_w
        fidelity = jnp.mean(jnp.sum(jnp.square(delta / k[:, None]), axis=0))
        return rppg + cfg.fidelity_weight * fidelity, {"rppg": rppg, "fidelity": fidelity}

    delta, history = optimize(
        jnp.zeros((3, num), jnp.float32), loss_fn, optax.adam(cfg.learning_rate), cfg.steps
    )
    delta = delta.T  # t 3
    edited = jnp.clip(clip + delta[:, None, None, :] / LEVELS, 0.0, 1.0)
    edited = jnp.where(skin[..., None], edited, clip)
    aux: dict[str, Any] = {
        "history": history,
        "delta": delta,
        "skin": skin,
        "region_weights": region_w,
    }
    return edited, aux


edit_batch = contract.vmapped(edit)


Config = PulseEditConfig
