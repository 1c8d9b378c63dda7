"""Skin masks: which pixels of a face crop carry the pulse (and may be edited).

Methods, chosen by name from `SKIN_METHODS`:

- "ycrcb": the fixed rule of Chai & Ngan, "Face segmentation using skin-color map in videophone
  applications" (IEEE TCSVT 1999): Cr in [133, 173] and Cb in [77, 127] on the 0-255 scale
  (ITU-R BT.601 full-range YCbCr, as in JPEG). On this project's real face crop it covered only
  27% of the crop and left half the face unedited (see the Privacy-Phys notes).
- "ycrcb_adaptive" (default): the skin colour of THIS face. A central seed region of each image
  (the nose and cheeks of a face crop) gives a robust estimate of the skin chrominance: the median
  of (Cr, Cb) and a covariance from the median absolute deviations and a robust correlation, both
  taken over seed pixels that pass a loose, widened chrominance prior and are not dark. A pixel is
  skin when its Mahalanobis distance in (Cr, Cb) is at most `max_distance`, and its luma is above
  `dark_frac` times the seed's median luma (this removes eyes, brows, hair, nostrils, glasses
  frames and shadows). A morphological opening then closing with a disc of radius
  `cleanup_frac * min(H, W)` removes specks and fills pores, and components smaller than
  `min_component_frac` of the image are dropped. The skin-locus idea of adapting a colour model to
  the detected face follows e.g. Soriano et al., "Adaptive skin color modeling using the skin
  locus" (Pattern Recognition 2003); the details here are this project's own.
  Measured: 68-70% of the physrecorder face crop at 32, 64 and 128 px (the fixed rule: 34-37%);
  on synthetic faces (`rppgedit.data.synthetic`, 64 px head crops, seeds 0-4) recall 0.98-1.00 and
  precision 0.91-0.93 (tones 0.1, 0.45) or 0.82-0.85 (tone 0.85) when the hair differs from the
  skin. Its weak spot is hair of the same colour as the skin: precision 0.71-0.79, and 0.45 for
  dark skin with brown hair (tone 0.85), where the hair is taken as skin.
- "all": every pixel (the user's own box is the region to edit).

Temporal stability: with `temporal_window=k` (odd, >= 3) the per-frame masks are replaced by a
majority vote over the k frames centred on each frame (axis -3 is time; edges use the nearest
frame), which removes flicker of boundary pixels. The vote is an option because it lags a moving
face by up to k/2 frames.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

# ITU-R BT.601 full-range (JPEG) RGB -> YCbCr, inputs and outputs on the 0-255 scale.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def rgb_to_ycrcb(clip: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] -> (Y, Cr, Cb) on the 0-255 scale (BT.601 full range).

    Args:
      clip: float "... h w 3" RGB in [0, 1].

    Returns:
      float32 "... h w 3" with channels (Y, Cr, Cb).
    """
    rgb = np.asarray(clip, np.float32) * np.float32(255.0)
    y = rgb @ _LUMA
    cr = (rgb[..., 0] - y) * np.float32(0.713) + np.float32(128.0)
    cb = (rgb[..., 2] - y) * np.float32(0.564) + np.float32(128.0)
    return np.stack([y, cr, cb], axis=-1)


def _check_clip(clip) -> np.ndarray:
    clip = np.asarray(clip)
    if clip.ndim < 3 or clip.shape[-1] != 3:
        raise ValueError(f"skin_mask expects a float RGB clip '... h w 3', got shape {clip.shape}")
    if clip.dtype == np.uint8:
        raise ValueError("skin_mask expects float RGB in [0, 1], got uint8 (divide by 255)")
    return clip


def _mask_ycrcb(clip: np.ndarray, *, cr_range=(133.0, 173.0), cb_range=(77.0, 127.0)) -> np.ndarray:
    ycc = rgb_to_ycrcb(clip)
    cr, cb = ycc[..., 1], ycc[..., 2]
    return (cr >= cr_range[0]) & (cr <= cr_range[1]) & (cb >= cb_range[0]) & (cb <= cb_range[1])


def _mask_all(clip: np.ndarray) -> np.ndarray:
    return np.ones(clip.shape[:-1], bool)


def _disc(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius + radius  # a rounded disc


def _nanmedian(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median over the last axis of the valid entries (rows with none give NaN): the values of
    ``np.nanmedian(np.where(valid, x, np.nan), axis=-1)``, which loops over the rows in Python for
    rows of 600 or more (a face crop's seed region): 10x the time on a chunk of crops."""
    ordered = np.sort(np.where(valid, x, np.nan), axis=-1)  # the valid values first, NaN last
    count = np.count_nonzero(valid, axis=-1)[..., None]
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0) // 2, axis=-1)[..., 0]
    high = np.take_along_axis(ordered, count // 2, axis=-1)[..., 0]
    return (low + high) / 2  # as np.median: the middle value, or the mean of the middle two


def _mask_ycrcb_adaptive(
    clip: np.ndarray,
    *,
    seed_box=(0.3, 0.7, 0.35, 0.75),
    prior_cr=(125.0, 185.0),
    prior_cb=(65.0, 135.0),
    max_distance: float = 3.5,
    min_sigma: float = 3.0,
    max_sigma: float = 12.0,
    dark_frac: float = 0.5,
    min_luma: float = 12.0,
    cleanup_frac: float = 0.02,
    min_component_frac: float = 0.01,
    ellipse: tuple[float, float] | None = (0.5, 0.55),
) -> np.ndarray:
    """Face-adaptive YCrCb skin mask (see the module docstring).

    Args:
      clip: float "... h w 3" RGB in [0, 1].
      seed_box: (x0, x1, y0, y1) of the seed region as fractions of the image width/height.
      prior_cr, prior_cb: loose chrominance ranges a seed pixel must be in to count (0-255 scale).
      max_distance: Mahalanobis radius in (Cr, Cb) accepted as skin.
      min_sigma, max_sigma: clamps of the robust Cr/Cb standard deviations (0-255 levels).
      dark_frac: a skin pixel's luma must be at least this times the seed's median luma.
      min_luma: and at least this absolute luma (0-255).
      cleanup_frac: radius of the opening/closing disc as a fraction of min(h, w); 0 skips it.
      min_component_frac: drop connected components smaller than this fraction of the image.
      ellipse: (a, b) semi-axes, as fractions of the width and height, of an ellipse centred on the
        image outside which nothing is skin (drops clothes and background in the crop's corners);
        None disables it.

    Returns:
      bool "... h w".
    """
    height, width = clip.shape[-3:-1]
    ycc = rgb_to_ycrcb(clip)
    x0, x1, y0, y1 = seed_box
    rows = slice(int(round(y0 * height)), max(int(round(y1 * height)), int(round(y0 * height)) + 1))
    cols = slice(int(round(x0 * width)), max(int(round(x1 * width)), int(round(x0 * width)) + 1))
    seed = ycc[..., rows, cols, :].reshape(ycc.shape[:-3] + (-1, 3))
    sy, scr, scb = seed[..., 0], seed[..., 1], seed[..., 2]
    in_prior = (
        (scr >= prior_cr[0]) & (scr <= prior_cr[1]) & (scb >= prior_cb[0]) & (scb <= prior_cb[1])
    )
    # Not dark relative to the seed: excludes eyes, nostrils and hair from the colour estimate.
    bright = sy >= dark_frac * np.median(sy, axis=-1, keepdims=True)
    valid = in_prior & bright
    # Fall back to the whole seed where too few pixels pass (e.g. an unusual white balance).
    few = np.sum(valid, axis=-1, keepdims=True) < max(8, valid.shape[-1] // 20)
    valid = np.where(few, True, valid)

    med_y = _nanmedian(sy, valid)
    med_cr = _nanmedian(scr, valid)
    med_cb = _nanmedian(scb, valid)
    dcr, dcb = scr - med_cr[..., None], scb - med_cb[..., None]
    s_cr = np.clip(1.4826 * _nanmedian(np.abs(dcr), valid), min_sigma, max_sigma)
    s_cb = np.clip(1.4826 * _nanmedian(np.abs(dcb), valid), min_sigma, max_sigma)
    # Robust correlation of the standardised deviations (from the MADs of their sum and difference).
    zs, zd = (
        dcr / s_cr[..., None] + dcb / s_cb[..., None],
        dcr / s_cr[..., None] - dcb / s_cb[..., None],
    )
    mad_s = 1.4826 * _nanmedian(np.abs(zs), valid)
    mad_d = 1.4826 * _nanmedian(np.abs(zd), valid)
    rho = np.clip((mad_s**2 - mad_d**2) / np.maximum(mad_s**2 + mad_d**2, 1e-6), -0.9, 0.9)

    expand = (Ellipsis, None, None)
    u = (ycc[..., 1] - med_cr[expand]) / s_cr[expand]
    v = (ycc[..., 2] - med_cb[expand]) / s_cb[expand]
    r = rho[expand]
    dist2 = (u * u - 2 * r * u * v + v * v) / (1 - r * r)
    luma_ok = ycc[..., 0] >= np.maximum(dark_frac * med_y[expand], min_luma)
    mask = (dist2 <= max_distance**2) & luma_ok
    if ellipse is not None:
        yy = ((np.arange(height) + 0.5) / height - 0.5) / ellipse[1]
        xx = ((np.arange(width) + 0.5) / width - 0.5) / ellipse[0]
        mask = mask & ((yy[:, None] ** 2 + xx[None, :] ** 2) <= 1.0)

    radius = int(round(cleanup_frac * min(height, width)))
    if radius >= 1:
        mask = _clean(mask, _disc(radius))
    min_size = int(min_component_frac * height * width)
    if min_size > 1:
        mask = _drop_small(mask, min_size)
    return mask


def _clean(mask: np.ndarray, disc: np.ndarray) -> np.ndarray:
    """Each image of `mask` ("... h w") opened, then closed with `disc` (edges extended), all
    images in one call (the same result as one image at a time: the element spans one image)."""
    radius = disc.shape[0] // 2
    structure = disc.reshape((1,) * (mask.ndim - 2) + disc.shape)  # one image at a time
    opened = ndimage.binary_opening(mask, structure)
    pad = ((0, 0),) * (mask.ndim - 2) + ((radius, radius), (radius, radius))
    closed = ndimage.binary_closing(np.pad(opened, pad, mode="edge"), structure)
    return closed[..., radius:-radius, radius:-radius]


def _drop_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """`mask` ("... h w") without its 4-connected components of fewer than `min_size` pixels,
    labelled in one call (the structure joins pixels of one image only)."""
    structure = np.zeros((3,) * mask.ndim, bool)  # `label` needs a side of 3 on every axis
    structure[(1,) * (mask.ndim - 2)] = ndimage.generate_binary_structure(2, 1)
    labels, count = ndimage.label(mask, structure)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


SKIN_METHODS: dict[str, Callable[..., np.ndarray]] = {
    "ycrcb": _mask_ycrcb,
    "ycrcb_adaptive": _mask_ycrcb_adaptive,
    "all": _mask_all,
}


def temporal_majority(mask: np.ndarray, window: int) -> np.ndarray:
    """Majority vote of a mask over `window` frames centred on each frame (time is axis -3).

    Args:
      mask: bool "... t h w".
      window: odd number of frames >= 1 (1 returns the mask unchanged).

    Returns:
      bool "... t h w": True where more than half of the window's frames are True (edge frames
      repeat the nearest frame).
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"temporal window must be odd and >= 1, got {window}")
    mask = np.asarray(mask, bool)
    if window == 1:
        return mask
    if mask.ndim < 3:
        raise ValueError(f"a temporal vote needs a mask '... t h w', got shape {mask.shape}")
    votes = ndimage.uniform_filter1d(mask.astype(np.float32), window, axis=-3, mode="nearest")
    return votes > 0.5


def skin_mask(
    clip: np.ndarray, *, method: str = "ycrcb_adaptive", temporal_window: int = 1, **options
) -> np.ndarray:
    """Skin pixels of face crops.

    Args:
      clip: float RGB "... h w 3" in [0, 1] (an image, a clip "t h w 3" or batches of them). The
        adaptive method assumes the face is centred (a crop from `face.track_face`).
      method: a key of `SKIN_METHODS`: "ycrcb_adaptive" (default), "ycrcb" or "all".
      temporal_window: odd; > 1 applies `temporal_majority` over axis -3 (needs "... t h w 3").
      **options: keyword options of the chosen method (see `_mask_ycrcb_adaptive`).

    Returns:
      bool "... h w".
    """
    if method not in SKIN_METHODS:
        raise ValueError(f"unknown skin mask method {method!r}; choose from {sorted(SKIN_METHODS)}")
    clip = _check_clip(clip)
    mask = SKIN_METHODS[method](clip, **options)
    return temporal_majority(mask, temporal_window) if temporal_window != 1 else mask


def mask_coverage(mask: np.ndarray) -> float:
    """Fraction of True pixels in a mask (over all axes), in [0, 1]."""
    mask = np.asarray(mask, bool)
    return float(mask.mean()) if mask.size else 0.0
