"""What the editors share about the skin: sub-region grids and the pulse's colour signature.

- Sub-regions: the crop split into `grid` x `grid` cells (boundaries at floor(k * size / grid)) and
  weighted sums over them (PulseEdit's region traces, smooth_remove's coarse level).
- Pulse colour: the blood-volume pulse colour signature of skin (de Haan & van Leest, "Improved
  motion robustness of remote-PPG by using the blood volume pulse signature", Physiol. Meas.
  35:1913, 2014): relative pulsatile strengths R:G:B = 0.33:0.77:0.53 for a standard camera. The
  pulse is a relative reflectance change, so its colour on a clip is the signature times the clip's
  mean skin colour (Privacy-Phys's `colour="pulse"` direction, PulseEdit's fidelity weights).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rppgedit.estimators.roi import spatial_mean

PULSE_SIGNATURE = (0.33, 0.77, 0.53)  # relative R, G, B pulse strengths (de Haan & van Leest 2014)


# --------------------------------------------------------------------------------------------------
# Sub-region grid


def cell_indicator(size: int, grid: int) -> np.ndarray:
    """float32 (grid, size): row a is the indicator of the pixels of cell band a."""
    band = np.minimum(np.arange(size) * grid // size, grid - 1)
    return (band[None, :] == np.arange(grid)[:, None]).astype(np.float32)


def region_sums(values, weights, grid: int):
    """Weighted sums of a clip over a grid x grid split of the frame.

    Args:
      values: float "t h w c".
      weights: float "t h w".
      grid: cells per side (cell boundaries at floor(k * size / grid)).

    Returns:
      (sums "t g g c", weight totals "t g g"), cell (a, b) is row band a, column band b.
    """
    rows = jnp.asarray(cell_indicator(values.shape[1], grid))
    cols = jnp.asarray(cell_indicator(values.shape[2], grid))
    hi = jax.lax.Precision.HIGHEST
    sums = jnp.einsum("ay,tyxc,bx->tabc", rows, values * weights[..., None], cols, precision=hi)
    totals = jnp.einsum("ay,tyx,bx->tab", rows, weights, cols, precision=hi)
    return sums, totals


# --------------------------------------------------------------------------------------------------
# Pulse colour


def pulse_direction(clip, mask, signature=PULSE_SIGNATURE):
    """Colour direction (3,) of a blood-volume pulse on this clip's skin, largest component 1.

    The skin colour is the time average of the per-frame mean colour of the `mask` pixels."""
    mean = spatial_mean(clip, mask).mean(axis=0)
    direction = jnp.asarray(signature, jnp.float32) * jnp.maximum(mean, 1e-3)
    return direction / jnp.max(direction)


def pulse_channel_weights(clip, skin, signature=PULSE_SIGNATURE):
    """The pulse's per-channel strengths k (3,) on this clip's skin, root-mean-square 1.

    The skin colour is the mean over every `skin` pixel of the clip (all frames pooled)."""
    w = skin.astype(jnp.float32)[..., None]
    level = jnp.sum(clip * w, axis=(0, 1, 2)) / jnp.maximum(jnp.sum(w), 1.0)
    k = jnp.asarray(signature, jnp.float32) * jnp.maximum(level, 1e-3)
    return k / jnp.sqrt(jnp.mean(k * k))
