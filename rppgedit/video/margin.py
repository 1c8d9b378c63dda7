"""The skin just outside a face's box, and the change it takes from the edit.

The editor sees the tracked box (`rppgedit.video.face`); a reader that cuts the face with its own
detector and margin (the rPPG-Toolbox's crops are 1.5 times its detector's box) also reads skin that
the box leaves out: the top of the forehead, the temples, the jaw. There the true pulse still beats,
and a reader that averages it in finds the truth again. So the edit can also reach a ring around
the box (`EditJob.margin`): the box grown by `margin` of its side on every side is cropped, its
skin found as the face's is (`skin.skin_mask`, whose ellipse, grown with the crop, keeps the
corners out), and every skin pixel of the ring outside the box takes the face's mean skin change
of its frame (the editor's pulse, or for a removal its cancelling signal), rounded as every pasted
pixel is.

    boxes ──grown──► crop (S') ──skin mask──► ring: skin outside the box
    residual (T,S,S,3), mask ──mean over the skin──► (T,1,1,3) ──pasted on the ring

Pixels inside the box get what they got without the ring, bit for bit, so every reading of the
tracked crop is unchanged. Measured with `benchmarks/crop_transfer.py` (13 readers: the ten
in-house, the second PBV, EfficientPhys PURE and RLAP, each on its own crop and skin mask; default
edits, each pasted without and with the ring of 0.15), readings at the target, without -> with:
- the shared real clips (physrecorder 640x480 H.264, evm face, pyfeat; targets 60 and 120 bpm, 78
  readings a crop): the box grown 1.5 times (the rPPG-Toolbox's crop) 76 -> 78, grown 1.3 times at
  36 px 77 -> 78 (the one reading at the truth gone), every other crop 78 both; PSNR of the whole
  frames 59.34 -> 58.56 dB;
- synthetic clips (seeds 0-3, targets 60 and 120, 104 readings a crop): grown 1.3 times 100 -> 102
  (at the truth 3 -> 0), grown 1.3 times at 36 px 99 -> 100 (4 -> 2), the others unchanged; PSNR
  59.41 -> 58.97 dB.
Removals gain nothing: readings at the truth on the eight crops of the synthetic clips (seeds 0-3,
52 readings a crop) 7 -> 5 (grown 1.3 times at 36 px 3 -> 0, grown 1.3 times 0 -> 1), PSNR 59.51 ->
59.00 dB; on the real physrecorder and pyfeat clips (26 readings a crop) 6 -> 9 (10 with a ring of
0.25; the box grown 1.5 times 2 -> 3, grown 1.3 times 0 -> 1, at 36 px 0 -> 1), PSNR 60.99 -> 60.13
dB.

So the ring is an option (`EditJob.margin`, `--edit_margin`), off by default: on the real clips it
moved 2 of 624 target readings to the target (one of them from the truth), it did nothing for
removals, and it costs time where the frames are large. The grown boxes widen the rectangle that is
pasted and compared (1.7 times the pixels at 0.15), and the grown crop and its mask come on top:
the `rppgedit edit` command, measured one run after the other on this project's 2-core machine,
14.5-17.8 -> 16.4-19.2 s on the shared 320x320 clip (3 pairs; PSNR 59.38 -> 58.47 dB) and 40.2 ->
49.6 s on a 1080p recording (67 -> 82 s of CPU).
"""

from __future__ import annotations

import numpy as np

from rppgedit.video import crop, skin


def grown_size(size: int, margin: float) -> int:
    """Side of the grown crop: `size` cells plus round(margin * size) on each side."""
    return size + 2 * int(round(margin * size))


def grown_boxes(boxes: np.ndarray, size: int, margin: float) -> np.ndarray:
    """float32 (T, 4) boxes grown about their centres to `grown_size(size, margin) / size` times
    their side, so that a grown crop's cells are the box crop's."""
    boxes = np.asarray(boxes, np.float64)
    factor = grown_size(size, margin) / size
    centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) * factor / 2
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def box_footprint(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool (T, height, width): the pixels whose centres lie in each frame's box (the pixels a paste
    of the box's crop reaches): a one-cell mask of True placed by `crop.mask_to_frame`."""
    return crop.mask_to_frame(np.ones((len(boxes), 1, 1), bool), boxes, height, width)


def ring_part(frames, boxes, residual, mask, corner, shape, *, margin: float, method: str):
    """One face's ring, as a part of `paste.paste_rounded` over a rectangle of the frames.

    Args:
      frames: uint8 (T, H, W, 3) whole original frames of the face's frames in the chunk.
      boxes: (T, 4) the face's boxes in those frames (frame coordinates).
      residual: float32 (T, S, S, 3) the face's residual; mask: bool (T, S, S) its skin mask.
      corner: (y0, x0) of the rectangle; shape: its (height, width).
      margin, method: the ring's width as a fraction of the box side, the skin mask's method.

    Returns:
      (grown boxes (T, 4) relative to the corner, float32 (T, 1, 1, 3) the change, bool (T, h, w)
      the ring's skin in the rectangle), or None when the ring holds no pixel of the rectangle.
    """
    size = mask.shape[1]
    grown = grown_boxes(boxes, size, margin)
    skin_grown = skin.skin_mask(
        crop.crop_resize(frames, grown, grown_size(size, margin)), method=method
    )
    shift = np.array([corner[1], corner[0]] * 2, np.float64)
    relative = grown.astype(np.float64) - shift
    ring = crop.mask_to_frame(skin_grown, relative, *shape)
    ring &= ~box_footprint(np.asarray(boxes, np.float64) - shift, *shape)
    if not ring.any():
        return None
    weights = mask[..., None].astype(np.float32)
    total = np.maximum(np.sum(weights, axis=(1, 2)), 1.0)
    mean = np.sum(residual * weights, axis=(1, 2)) / total
    return relative, mean[:, None, None, :].astype(np.float32), ring
