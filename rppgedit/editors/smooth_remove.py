"""Pulse removal by temporal smoothing of skin sub-region colours: a fast, optimisation-free baseline.

In the spirit of W. Chen & R. W. Picard, "Eliminating Physiological Information from Facial Videos",
IEEE FG 2017, who removed the pulse by band-passing the coarse levels of a Laplacian pyramid in time
and subtracting the result (Eulerian video magnification run backwards), keeping the fine spatial
detail. Here the coarse level is a grid of skin sub-regions:

1. the crop is split into `grid` x `grid` cells and the mean colour of the `mask` pixels of every
   cell is taken in every frame ("t g g 3");
2. the pulse-band component of every cell/channel trace is isolated with the project's zero-phase
   Butterworth band-pass (`rppgedit.signals.bandpass`);
3. that component is spread smoothly over the pixels (bilinear weights centred on the cells,
   weighted by the cells' skin-pixel counts, so empty cells contribute nothing), plus a small
   per-cell constant that makes the mean change of every cell's skin pixels exactly its band
   component; the field is subtracted from the `mask` pixels. The per-pixel texture is untouched;
   only the cell-scale colour change in the pulse band goes.

Because the band-pass is linear and step 3 is exact per cell, the mean skin colour (what GREEN, POS,
CHROM and friends average) keeps (1 - |H(f)|^2) of its content at frequency f, up to the rounding of
the 8-bit output. Choice: the default removed band, 0.4-5.0 Hz with order 4, is wider than the usual
0.7-3.0 Hz analysis band so that the Butterworth roll-off lies outside it: 1 - |H|^2 < 0.3 % of the
amplitude everywhere in 0.7-3.0 Hz (with 0.7-3.0 Hz, order 3, half the amplitude at the band edges and
7 % at 2.4 Hz, the first harmonic of 72 bpm, stay; measured: the estimators then read that harmonic).
Everything in the band goes, noise included, not just the heart rate: the result is a pulse-free
skin colour, not a different pulse. One jit-compiled pass, no optimisation; removal only (`remove`
must be True).

Measured limits: since the in-band noise goes too, whatever pulse survives stands out against a
very low floor. Through the pipeline (crop resized, residual pasted into the full-resolution mask,
re-cropped for reading) about 6 % of the pulse amplitude leaks back at the mask borders with a 32x32
crop (1.4 % at 64x64), and the synthetic clips then read 0-2 dB SNR at the true HR instead of the
pulse-free level (-7 +/- 3 dB). On a real webcam clip all colour change of the cells in 0.4-5 Hz
goes, not only the pulse, so the PSNR was 44.5 dB (PulseEdit on the same clip: 51-52 dB).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from rppgedit import signals
from rppgedit.editors import contract
from rppgedit.editors.regions import cell_indicator, region_sums


@dataclasses.dataclass(frozen=True)
class SmoothRemoveConfig:
    """Static settings (hashable: a jit static argument).

    Attributes:
      fps: frame rate of the clip in Hz.
      remove: must be True: this editor only removes the pulse.
      grid: cells per side of the sub-region grid.
      band_hz: (low, high) pulse band in Hz that is removed.
      order: Butterworth order of the band-pass (applied forward and backward).
    """

    fps: float = 30.0
    remove: bool = True
    grid: int = 6
    band_hz: tuple[float, float] = (0.4, 5.0)
    order: int = 4

    def __post_init__(self):
        if not self.remove:
            raise ValueError(
                "smooth_remove only removes the pulse; use the target kind 'none' (remove=True)"
            )
        if self.grid < 1 or self.order < 1:
            raise ValueError(f"grid and order must be >= 1, got {self.grid} and {self.order}")
        low, high = self.band_hz
        if not 0.0 < low < high < self.fps / 2.0:
            raise ValueError(f"band_hz must satisfy 0 < low < high < fps/2, got {self.band_hz}")


HYPERPARAMETERS = ()  # nothing is optimised: no traced settings


def load_state(cfg: SmoothRemoveConfig) -> None:
    """No weights: the state is None."""
    del cfg
    return None


def _hat_matrix(size: int, grid: int) -> np.ndarray:
    """float32 (grid, size): bilinear (tent) weight of cell centre a at pixel y."""
    cell = size / grid
    centres = (np.arange(grid) + 0.5) * cell - 0.5
    dist = np.abs(np.arange(size)[None, :] - centres[:, None]) / cell
    return np.maximum(1.0 - dist, 0.0).astype(np.float32)


@contract.editor_function(HYPERPARAMETERS)
def edit(state, clip, mask, target, cfg: SmoothRemoveConfig):
    """Removes the pulse-band colour change of the skin sub-regions.

    Args:
      state: unused (None).
      clip: float32 "t h w 3" in [0, 1].
      mask: bool "t h w": the pixels that may change (skin).
      target: ignored (zeros from the pipeline: removal).
      cfg: static settings.

    Returns:
      (edited clip "t h w 3" in [0, 1], aux) with aux = {"cell_pulse": "t g g 3" the band-passed
      cell means in [0, 1] units}. Pixels outside `mask` are bit-identical to `clip`.
    """
    del state, target
    clip = jnp.asarray(clip, jnp.float32)
    mask = jnp.asarray(mask, bool)
    weights = mask.astype(jnp.float32)
    sums, counts = region_sums(clip, weights, cfg.grid)  # t g g 3, t g g
    means = sums / jnp.maximum(counts, 1.0)[..., None]
    # A cell that is empty in some frames holds its time-averaged mean there (no jump to zero).
    fill = (
        jnp.sum(sums, axis=0, keepdims=True)
        / jnp.maximum(jnp.sum(counts, axis=0, keepdims=True), 1.0)[..., None]
    )
    means = jnp.where((counts > 0)[..., None], means, fill)
    low, high = cfg.band_hz
    pulse = signals.bandpass(means, cfg.fps, low, high, cfg.order, axis=0)  # t g g 3
    rows = jnp.asarray(_hat_matrix(clip.shape[1], cfg.grid))
    cols = jnp.asarray(_hat_matrix(clip.shape[2], cfg.grid))
    hi = jax.lax.Precision.HIGHEST
    den = jnp.einsum("ay,tab,bx->tyx", rows, counts, cols, precision=hi)
    inv_den = jnp.where(den > 0, 1.0 / jnp.maximum(den, 1e-6), 0.0)[..., None]

    def spread(values):  # cell values "t g g 3" -> smooth field "t h w 3"
        num = jnp.einsum("ay,tabc,bx->tyxc", rows, values * counts[..., None], cols, precision=hi)
        return num * inv_den

    smooth = spread(pulse)
    # A per-cell constant makes every cell's mean change exactly its pulse (and so the whole-skin
    # mean exactly band-stopped); it is small, as the smooth field nearly matches already.
    smooth_sums, _ = region_sums(smooth, weights, cfg.grid)
    correction = pulse - smooth_sums / jnp.maximum(counts, 1.0)[..., None]
    cell_rows = jnp.asarray(cell_indicator(clip.shape[1], cfg.grid))
    cell_cols = jnp.asarray(cell_indicator(clip.shape[2], cfg.grid))
    field = smooth + jnp.einsum("ay,tabc,bx->tyxc", cell_rows, correction, cell_cols, precision=hi)
    edited = jnp.clip(clip - field, 0.0, 1.0)
    edited = jnp.where(mask[..., None], edited, clip)
    return edited, {"cell_pulse": pulse}


edit_batch = contract.vmapped(edit)


Config = SmoothRemoveConfig
