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


def region_masks(size: int, width: int | None = None) -> np.ndarray:
    """bool (K, size, width): the `FACE_REGIONS` of a size x width (default square) face crop, in
    their order."""
    width = size if width is None else width
    y, x = np.mgrid[:size, :width] + 0.5
    y, x = y / size, x / width
    return np.stack(
        [(y > t) & (y < b) & (x > left) & (x < r) for t, b, left, r in FACE_REGIONS.values()]
    )


def region_traces(clip, mask, fallback):
    """RGB traces "... k t c" of the face regions' skin pixels of a crop "... t h w c"; a frame
    where a region has no skin pixel takes `fallback` "... t c" (the whole face's trace), so every
    trace stays a skin colour (a zero trace would make the estimators' colour ratios undefined).
    NumPy float32 inputs give NumPy traces, computed on the host (as `spatial_mean`)."""
    host = all(isinstance(a, np.ndarray) for a in (clip, mask, fallback))
    xp = np if host and clip.dtype == np.float32 else jnp
    regions = xp.asarray(region_masks(clip.shape[-3], clip.shape[-2]))
    masks = xp.asarray(mask)[..., None, :, :, :] & regions[:, None]  # ... k t h w
    traces = spatial_mean(xp.asarray(clip)[..., None, :, :, :, :], masks)
    present = xp.any(masks, axis=(-2, -1))[..., None]  # ... k t 1
    return xp.where(present, traces, xp.asarray(fallback)[..., None, :, :])
