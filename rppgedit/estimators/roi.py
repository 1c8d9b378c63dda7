"""The shared region-of-interest step: skin-masked spatial mean of a clip -> RGB trace."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def spatial_mean(clip, mask=None):
    """Mean colour of the masked pixels in every frame.

    Args:
      clip: float video "... t h w c" (any leading batch axes), values in [0, 1].
      mask: optional bool or float weights "... t h w" (same leading axes); None averages all pixels.

    Returns:
      RGB trace "... t c". A frame with an empty mask gives zeros (never NaN), so the function stays
      differentiable everywhere. float32 NumPy inputs give a NumPy trace, computed on the host: a report
      reading a clip while the editor runs does not queue behind the editor's XLA computations.
    """
    host = isinstance(clip, np.ndarray) and clip.dtype == np.float32
    if host and (mask is None or isinstance(mask, np.ndarray)):
        if mask is None:
            return np.mean(clip, axis=(-3, -2))
        weights = mask.astype(clip.dtype)[..., None]
        total = np.sum(weights, axis=(-3, -2))
        return np.sum(clip * weights, axis=(-3, -2)) / np.maximum(total, clip.dtype.type(1.0))
    clip = jnp.asarray(clip)
    if mask is None:
        return jnp.mean(clip, axis=(-3, -2))
    weights = jnp.asarray(mask).astype(clip.dtype)[..., None]
    total = jnp.sum(weights, axis=(-3, -2))
    return jnp.sum(clip * weights, axis=(-3, -2)) / jnp.maximum(total, 1.0)
