"""The shared region-of-interest step: skin-masked spatial mean of a clip -> RGB trace; the face
regions (forehead, cheeks) of the face crop."""

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
    xp = np if host and (mask is None or isinstance(mask, np.ndarray)) else jnp
    clip = xp.asarray(clip)
    if mask is None:
        return xp.mean(clip, axis=(-3, -2))
    weights = xp.asarray(mask).astype(clip.dtype)[..., None]
    total = xp.sum(weights, axis=(-3, -2))
    return xp.sum(clip * weights, axis=(-3, -2)) / xp.maximum(total, clip.dtype.type(1.0))


# Face regions of the tracker's square forehead-to-chin crop, as (top, bottom, left, right)
# fractions of its side: where the pulse is strongest (forehead, cheeks), and the regions a
# spatial-coherence detector of fakes (FakeCatcher-style) or a forehead-only estimator reads.
FACE_REGIONS = {
    "forehead": (0.05, 0.28, 0.30, 0.70),
    "left_cheek": (0.48, 0.72, 0.12, 0.38),
    "right_cheek": (0.48, 0.72, 0.62, 0.88),
}


def region_masks(size: int) -> np.ndarray:
    """bool (K, size, size): the `FACE_REGIONS` of a size x size face crop, in their order."""
    y, x = (np.mgrid[:size, :size] + 0.5) / size
    return np.stack(
        [(y > t) & (y < b) & (x > left) & (x < r) for t, b, left, r in FACE_REGIONS.values()]
    )


def region_traces(clip, mask, fallback):
    """RGB traces "... k t c" of the face regions' skin pixels of a crop "... t h w c"; a frame
    where a region has no skin pixel takes `fallback` "... t c" (the whole face's trace), so every
    trace stays a skin colour (a zero trace would make the estimators' colour ratios undefined)."""
    regions = jnp.asarray(region_masks(clip.shape[-2]))
    masks = jnp.asarray(mask)[..., None, :, :, :] & regions[:, None]  # ... k t h w
    traces = spatial_mean(jnp.asarray(clip)[..., None, :, :, :, :], masks)
    present = jnp.any(masks, axis=(-2, -1))[..., None]  # ... k t 1
    return jnp.where(present, traces, jnp.asarray(fallback)[..., None, :, :])
