"""Face detection and tracking: BlazeFace (short range) boxes, smoothed into a steady square crop.

The detector is the BlazeFace short-range model (Bazarevsky et al., "BlazeFace: Sub-millisecond
Neural Face Detection on Mobile GPUs", CVPR-W 2019), run in JAX (`rppgedit.video.blazeface`, the
network of the shipped `rppgedit/checkpoints/blaze_face.onnx` rebuilt in Flax) with the weights of
`rppgedit/checkpoints/blaze_face.npz` (converted from that .onnx file, checked against its sha256
record; the .onnx is a tf2onnx conversion of MediaPipe's short-range model, taken from the open-rppg
0.1.1 wheel: see `rppgedit/checkpoints/README.md` for its origin and licence). It gives ONNX
Runtime's outputs to float32 rounding (`tests/blazeface_test.py`). The frame is letterboxed into the
input with OpenCV's INTER_AREA resize rebuilt in NumPy (`area_resize_uint8`, the same per-axis
weights as `rppgedit.models.physnet.area_resize`). The network maps a 128x128 RGB image scaled to
[-1, 1] (NHWC float32) to two raw tensors: `regressors` (N, 896, 16) and logits (N, 896). The
anchor-relative decoding and the anchor grid are written here from the published model description
(MediaPipe's short-range anchor configuration): strides 8 and 16 on a 128x128 input, i.e. a 16x16
grid with 2 anchors per cell followed by an 8x8 grid with 6 anchors per cell (512 + 384 = 896
anchors), anchor centres at cell centres, unit anchor size; the first four regressor values are
(dx, dy, w, h) in input pixels, the next twelve are six (x, y) keypoints; the score is the
sigmoid of the logit. Overlapping detections are merged by weighted non-maximum suppression
(score-weighted average of every box overlapping the best one, as in the BlazeFace paper's "blending"
strategy) or by plain NMS.

Tracking (`track_face`) runs the detector every `detect_every` frames, turns each detection into a
square box that holds the face from forehead to chin, linearly interpolates centre and (log) size
between key frames, and smooths the result with a zero-phase Gaussian filter (a causal and an
anticausal pass, so the box neither lags nor jitters). Border policy: boxes are NOT clipped to the
frame. A face near an edge yields a box that extends past it; `crop.crop_resize` pads such boxes by
edge replication and `paste.paste_rounded` writes only the in-frame part.

`track_faces` follows every face of a video: detections on key frames are matched to live tracks
greedily (IoU, then centre distance), a track survives gaps of up to `max_gap` frames, and each
track gets boxes for every frame plus a `present` mask (`FaceTrack`).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np
from scipy import ndimage

from rppgedit.errors import RppgEditError
from rppgedit.video import blazeface

INPUT_SIZE = blazeface.INPUT_SIZE
# (stride, anchors per cell) of the short-range model; 16*16*2 + 8*8*6 = 896 anchors.
_ANCHOR_LAYERS = ((8, 2), (16, 6))


@dataclasses.dataclass(frozen=True)
class FaceDetector:
    """A loaded BlazeFace model: its parameters, the function that runs it, its anchor centres.

    Attributes:
      params: the network's parameters (`blazeface.load_params()`).
      anchors: float32 (896, 2) anchor centres (x, y) in [0, 1] input-image units.
      predict: `predict(params, images)` maps float32 (N, 128, 128, 3) letterboxed images in
        [-1, 1] to (regressors (N, 896, 16), logits (N, 896)); the jitted `blazeface.predict`.
    """

    params: Any
    anchors: np.ndarray
    predict: Callable[[Any, np.ndarray], tuple[Any, Any]] = blazeface.predict


def blazeface_path() -> pathlib.Path:
    """Path of the shipped `blaze_face.npz` (the detector's weights, rppgedit's package data),
    checked against its sha256 record.

    Raises:
      RppgEditError: the file is missing or differs from its record.
    """
    return blazeface.params_path()


def make_anchors() -> np.ndarray:
    """Anchor centres of the BlazeFace short-range model.

    Returns:
      float32 (896, 2): (x, y) centres in [0, 1] units of the 128x128 input, in the model's
      output order (row-major over each grid, anchors of one cell consecutive, stride 8 first).
    """
    centres = []
    for stride, per_cell in _ANCHOR_LAYERS:
        grid = INPUT_SIZE // stride
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cells = np.stack([(xs.ravel() + 0.5) / grid, (ys.ravel() + 0.5) / grid], axis=-1)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres, axis=0).astype(np.float32)


def load_detector(
    path: str | pathlib.Path | None = None, *, threads: int = 1, beside_jax: bool = False
) -> FaceDetector:
    """Load the BlazeFace short-range detector (a JAX model, on JAX's default device).

    Args:
      path: its weights: a converted .npz (`blazeface.load_params`), or a BlazeFace short-range
        .onnx file, converted on loading (needs the `onnx` package, the `[convert]` extra); None
        uses the shipped `blaze_face.npz` (`blazeface_path()`).
      threads: accepted for compatibility and ignored: the detector was run by ONNX Runtime with
        this many threads; XLA's CPU threads are set for the whole process (`XLA_FLAGS`).
      beside_jax: run the network in NumPy (`blazeface.predict_numpy`), for detection while JAX
        programs are in flight on the same device (the live mode), which a jitted detection
        would wait behind.

    Returns:
      A `FaceDetector` to pass to `detect_faces` / `track_face`.

    Raises:
      RppgEditError: the file is missing, unreadable or not BlazeFace short-range weights.
    """
    del threads
    path = pathlib.Path(path) if path is not None else None
    if path is not None and path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise RppgEditError(f"{path}: face detector model file not found")
        from rppgedit.checkpoints import blazeface_convert  # lazy: it needs onnx

        arrays = blazeface_convert.onnx_to_arrays(path)
        params = blazeface.params_from_arrays(arrays, str(path))
    else:
        params = blazeface.load_params(path)
    if beside_jax:  # host arrays, read by NumPy without a device transfer per call
        params = jax.tree.map(np.asarray, params)
        return FaceDetector(params=params, anchors=make_anchors(), predict=blazeface.predict_numpy)
    return FaceDetector(params=params, anchors=make_anchors())


@functools.lru_cache(maxsize=32)
def _area_band(src: int, dst: int, area_mode: bool) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's INTER_AREA weights along one axis as a band: (dst, k) source rows and weights."""
    # The one table of OpenCV's weights; imported here because its module loads jax and flax.
    from rppgedit.models.physnet import _area_matrix

    dense = _area_matrix(src, dst, area_mode)
    width = max(1, int(np.max(np.count_nonzero(dense, axis=1))))
    rows = np.zeros((dst, width), np.intp)
    weights = np.zeros((dst, width), np.float32)
    for d in range(dst):
        nonzero = np.flatnonzero(dense[d])
        rows[d, :] = nonzero[-1]
        rows[d, : nonzero.size] = nonzero
        weights[d, : nonzero.size] = dense[d, nonzero]
    return rows, weights


def area_resize_uint8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)` in NumPy.

    Shrinking averages each output pixel's footprint (exact box means for integer factors);
    enlarging interpolates linearly, both with OpenCV's per-axis weights (`physnet._area_matrix`),
    summed in float32 and rounded as OpenCV rounds (half to even; halves up on its 2x2 path).
    Against OpenCV 4.x (tests/face_test.py): identical for integer factors, otherwise at most one
    grey level apart on under 0.1% of the values.

    Args:
      image: uint8 (H, W, C).
      height, width: output size in pixels.

    Returns:
      uint8 (height, width, C).
    """
    src_h, src_w = image.shape[:2]
    if src_h % height == 0 and src_w % width == 0:  # integer factors: box means, summed exactly
        fy, fx = src_h // height, src_w // width
        # strided in-place adds: a third of the time of sum(axis=...) for 1080p -> 128x72; a
        # column of fy values sums to at most 255 fy, which uint16 holds for fy <= 257
        rows = image[0::fy].astype(np.uint16 if fy <= 257 else np.uint32)
        for k in range(1, fy):
            rows += image[k::fy]
        columns = rows.reshape(height, width, fx, -1)
        sums = columns[:, :, 0].astype(np.uint32)
        for k in range(1, fx):
            sums += columns[:, :, k]
        if fy == fx == 2:  # OpenCV's vectorised 2x2 path rounds halves up
            return ((sums + 2) // 4).astype(np.uint8)
        return np.rint(sums.astype(np.float32) * np.float32(1.0 / (fy * fx))).astype(np.uint8)
    area_mode = src_h >= height and src_w >= width
    rows, wy = _area_band(src_h, height, area_mode)
    cols, wx = _area_band(src_w, width, area_mode)
    out = np.einsum("ok,okwc->owc", wy, image[rows].astype(np.float32))
    out = np.einsum("pk,opkc->opc", wx, out[:, cols])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _letterbox(frame: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Fit a frame into the 128x128 input, centred, padded with black; scaled to [-1, 1].

    Returns:
      (image float32 (128,128,3), scale (input px per frame px), x offset, y offset) in input px.
    """
    height, width = frame.shape[:2]
    scale = INPUT_SIZE / max(height, width)
    new_h = max(1, min(INPUT_SIZE, round(height * scale)))
    new_w = max(1, min(INPUT_SIZE, round(width * scale)))
    resized = area_resize_uint8(frame, new_h, new_w)
    canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.float32)
    off_y, off_x = (INPUT_SIZE - new_h) // 2, (INPUT_SIZE - new_w) // 2
    canvas[off_y : off_y + new_h, off_x : off_x + new_w] = resized
    return canvas / 127.5 - 1.0, scale, float(off_x), float(off_y)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with boxes (N,4), (x0,y0,x1,y1)."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def _nms(dets: np.ndarray, threshold: float, merge: Callable) -> np.ndarray:
    """Greedy NMS over (N,5) detections sorted or not; `merge(cluster)` makes one row of a cluster."""
    order = np.argsort(-dets[:, 4], kind="stable")
    remaining = dets[order]
    kept = []
    while remaining.shape[0]:
        overlap = _iou(remaining[0, :4], remaining[:, :4]) > threshold
        overlap[0] = True
        kept.append(merge(remaining[overlap]))
        remaining = remaining[~overlap]
    return np.stack(kept) if kept else np.zeros((0, 5), np.float32)


def _merge_weighted(cluster: np.ndarray) -> np.ndarray:
    """Score-weighted mean box of a cluster, keeping the best score (BlazeFace "blending")."""
    weights = cluster[:, 4:5]
    box = np.sum(cluster[:, :4] * weights, axis=0) / np.sum(weights)
    return np.concatenate([box, cluster[:1, 4]])


def _merge_plain(cluster: np.ndarray) -> np.ndarray:
    """The best-scoring box of a cluster (plain NMS)."""
    return cluster[0]


NMS_METHODS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "weighted": _merge_weighted,
    "plain": _merge_plain,
}


def detect_faces(
    frame: np.ndarray,
    *,
    min_score: float = 0.5,
    nms: str = "weighted",
    iou_threshold: float = 0.3,
    detector: FaceDetector | None = None,
) -> np.ndarray:
    """Detect faces in one RGB frame with BlazeFace.

    Args:
      frame: uint8 (H, W, 3) RGB image, any size (letterboxed into 128x128).
      min_score: keep detections whose sigmoid score is at least this.
      nms: "weighted" (blend overlapping boxes) or "plain".
      iou_threshold: boxes overlapping the best box by more than this IoU are merged/suppressed.
      detector: a loaded model (`load_detector()`); None loads one for this call (slow: pass one
        when detecting in many frames).

    Returns:
      float32 (N, 5): [x0, y0, x1, y1, score] in frame pixels (x right, y down), best first.
      N = 0 when no face is found.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"detect_faces expects a uint8 (H,W,3) frame, got {frame.dtype} {frame.shape}"
        )
    if nms not in NMS_METHODS:
        raise ValueError(f"unknown nms {nms!r}; choose from {sorted(NMS_METHODS)}")
    detector = detector if detector is not None else load_detector()
    image, scale, off_x, off_y = _letterbox(frame)
    regressors, logits = detector.predict(detector.params, image[None])
    regressors = np.asarray(regressors, np.float64)[0]
    logits = np.asarray(logits, np.float64)[0]
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
    keep = scores >= min_score
    if not np.any(keep):
        return np.zeros((0, 5), np.float32)
    reg, anchors = regressors[keep], detector.anchors[keep].astype(np.float64)
    cx = reg[:, 0] + anchors[:, 0] * INPUT_SIZE
    cy = reg[:, 1] + anchors[:, 1] * INPUT_SIZE
    half_w, half_h = reg[:, 2] / 2, reg[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)
    boxes = (boxes - np.array([off_x, off_y, off_x, off_y])) / scale
    dets = np.concatenate([boxes, scores[keep, None]], axis=-1)
    return _nms(dets, iou_threshold, NMS_METHODS[nms]).astype(np.float32)


def face_square(det: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """(cx, cy, side) of the square crop for one detection (x0,y0,x1,y1,...)."""
    width, height = det[2] - det[0], det[3] - det[1]
    cx = (det[0] + det[2]) / 2
    cy = (det[1] + det[3]) / 2 + shift * height
    return np.array([cx, cy, scale * max(width, height)], np.float64)


def pick_detection(dets: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """The detection to follow: the one overlapping the previous pick most, else the best score."""
    if previous is not None and dets.shape[0] > 1:
        overlap = _iou(previous[:4], dets[:, :4])
        if overlap.max() > 0.3:
            return dets[int(np.argmax(overlap))]
    return dets[0]


def track_face(
    frames: Iterable[np.ndarray] | np.ndarray,
    *,
    detect_every: int = 5,
    scale: float = 1.1,
    shift: float = -0.05,
    smooth: float = 10.0,
    min_score: float = 0.5,
    detector: FaceDetector | None = None,
    name: str = "video",
) -> np.ndarray:
    """Square face boxes for every frame of a video, steady over time.

    The detector runs on frames 0, k, 2k, ... (k = `detect_every`); when it misses a face on a key
    frame it retries on the following frames until it finds one. Each detection becomes a square of
    side `scale * max(w, h)` centred at (cx, cy + shift * h): with the defaults it spans the detector
    box's vertical range from cy - 0.6 h to cy + 0.5 h (forehead to chin, as open-rppg's crop) and
    +-0.55 w horizontally (cheeks). Centre and log-side are linearly interpolated between detections
    (frames before the first / after the last detection take that detection's box), then smoothed
    by a zero-phase Gaussian of standard deviation `smooth` frames (the first and last values are
    extended past the ends). Boxes are not clipped to the frame (see module docstring for the border policy).

    Args:
      frames: uint8 RGB frames, an array (T, H, W, 3) or any iterable of (H, W, 3) arrays (consumed
        once; only key frames are kept in memory).
      detect_every: run the detector every this many frames (>= 1).
      scale: side of the square relative to the detector box.
      shift: vertical offset of the square's centre, as a fraction of the detector box height
        (negative = up).
      smooth: Gaussian smoothing sigma in frames; 0 disables smoothing.
      min_score: detector score threshold.
      detector: a loaded model; None loads one.
      name: what to call the video in error messages (e.g. its file name).

    Returns:
      float32 (T, 4) boxes (x0, y0, x1, y1) in frame pixels, x1 - x0 == y1 - y0.

    Raises:
      RppgEditError: no face is found in any frame (or the video has no frames).
    """
    if detect_every < 1:
        raise ValueError(f"detect_every must be >= 1, got {detect_every}")
    detector = detector if detector is not None else load_detector()
    key_t, key_box = [], []
    previous = None
    next_key = 0
    count = 0
    for t, frame in enumerate(frames):
        count += 1
        if t < next_key:
            continue
        dets = detect_faces(frame, min_score=min_score, detector=detector)
        if dets.shape[0] == 0:
            next_key = t + 1  # retry on the next frame
            continue
        previous = pick_detection(dets, previous)
        key_t.append(t)
        key_box.append(face_square(previous, scale, shift))
        next_key = t + detect_every
    if not key_t:
        raise _no_face_error(name, count)
    return _interpolate_squares(key_t, np.asarray(key_box), np.arange(count), smooth)


def _interpolate_squares(
    key_t: list[int] | np.ndarray, key_box: np.ndarray, times: np.ndarray, smooth: float
) -> np.ndarray:
    """Square boxes at `times` from key-frame squares: interpolated, then Gaussian-smoothed.

    Centre and log-side are linearly interpolated between the key frames (times outside them take
    the nearest key frame's square), then smoothed along `times` by a zero-phase Gaussian of
    standard deviation `smooth` frames (mode "nearest": the first and last values are extended).

    Args:
      key_t: increasing key-frame indices.
      key_box: float (K, 3) squares (cx, cy, side) at the key frames.
      times: increasing frame indices to return boxes for (consecutive for the smoothing to be in
        frames).
      smooth: Gaussian sigma in frames; 0 disables smoothing.

    Returns:
      float32 (len(times), 4) boxes (x0, y0, x1, y1).
    """
    times = np.asarray(times, dtype=np.float64)
    cx = np.interp(times, key_t, key_box[:, 0])
    cy = np.interp(times, key_t, key_box[:, 1])
    log_side = np.interp(times, key_t, np.log(key_box[:, 2]))
    if smooth > 0:
        cx, cy, log_side = (
            ndimage.gaussian_filter1d(v, smooth, mode="nearest") for v in (cx, cy, log_side)
        )
    half = np.exp(log_side) / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=-1).astype(np.float32)


def _no_face_error(name: str, count: int) -> RppgEditError:
    """The one-line error of `track_face` / `track_faces` for a video without a face."""
    return RppgEditError(
        f"{name}: no face found in {count} frames; pass --allow_no_face to edit a fixed box"
    )


@dataclasses.dataclass(frozen=True)
class FaceTrack:
    """One face followed through a video by `track_faces`.

    Attributes:
      boxes: float32 (T, 4) square boxes (x0, y0, x1, y1) in frame pixels for EVERY frame of the
        video; frames before the face's first detection hold its first box and frames after its
        last detection hold its last box, so any frame can be cropped.
      present: bool (T,), True from the face's first detection frame to its last one (gaps up to
        `max_gap` frames between detections included).
    """

    boxes: np.ndarray
    present: np.ndarray


@dataclasses.dataclass
class _Track:
    """A track being built: the key frames where it was detected and its raw detections."""

    key_t: list[int]
    dets: list[np.ndarray]


def _centres(boxes: np.ndarray) -> np.ndarray:
    """Centres (N, 2) of boxes (N, >=4) given as (x0, y0, x1, y1, ...)."""
    return (boxes[:, 0:2] + boxes[:, 2:4]) / 2


def _greedy(cost: np.ndarray, allowed: np.ndarray, pairs: list[tuple[int, int]]) -> None:
    """Append (row, col) pairs to `pairs` by increasing cost, each row and column used once."""
    used_rows = {i for i, _ in pairs}
    used_cols = {j for _, j in pairs}
    for flat in np.argsort(cost, axis=None, kind="stable"):
        i, j = divmod(int(flat), cost.shape[1])
        if allowed[i, j] and i not in used_rows and j not in used_cols:
            pairs.append((i, j))
            used_rows.add(i)
            used_cols.add(j)


def _associate(track_boxes: np.ndarray, dets: np.ndarray) -> list[tuple[int, int]]:
    """Greedy matching of live tracks to new detections.

    First by overlap (largest IoU first, IoU > 0.3), then the remaining ones by centre distance
    (nearest first, under half the track box's larger side).

    Args:
      track_boxes: float (M, 4) each live track's last detector box.
      dets: float (N, >=4) this key frame's detections.

    Returns:
      (track index, detection index) pairs.
    """
    pairs: list[tuple[int, int]] = []
    if track_boxes.shape[0] == 0 or dets.shape[0] == 0:
        return pairs
    iou = np.stack([_iou(box, dets[:, :4]) for box in track_boxes])
    _greedy(-iou, iou > 0.3, pairs)
    dist = np.linalg.norm(_centres(track_boxes)[:, None] - _centres(dets)[None], axis=-1)
    sides = np.maximum(track_boxes[:, 2] - track_boxes[:, 0], track_boxes[:, 3] - track_boxes[:, 1])
    _greedy(dist, dist < 0.5 * sides[:, None], pairs)
    return pairs


def _update_tracks(
    live: list[_Track], ended: list[_Track], t: int, dets: np.ndarray, max_gap: int
) -> list[_Track]:
    """Feed one key frame's detections to the tracks; returns the new list of live tracks.

    Tracks last detected more than `max_gap` frames before `t` are moved to `ended` first; the
    others are matched to `dets` (`_associate`); unmatched detections start new tracks.
    """
    for track in live:
        if t - track.key_t[-1] > max_gap:
            ended.append(track)
    live = [track for track in live if t - track.key_t[-1] <= max_gap]
    last_boxes = np.array([track.dets[-1][:4] for track in live]).reshape(-1, 4)
    matched = set()
    for i, j in _associate(last_boxes, dets):
        live[i].key_t.append(t)
        live[i].dets.append(dets[j])
        matched.add(j)
    new = [_Track([t], [dets[j]]) for j in range(dets.shape[0]) if j not in matched]
    return live + new


def _finish_track(
    track: _Track, count: int, scale: float, shift: float, smooth: float
) -> FaceTrack:
    """Boxes for every frame and the presence mask of one track (see `FaceTrack`)."""
    key_box = np.stack([face_square(det, scale, shift) for det in track.dets])
    start, stop = track.key_t[0], track.key_t[-1] + 1
    span = _interpolate_squares(track.key_t, key_box, np.arange(start, stop), smooth)
    boxes = np.empty((count, 4), np.float32)
    boxes[:start], boxes[start:stop], boxes[stop:] = span[0], span, span[-1]
    present = np.zeros(count, bool)
    present[start:stop] = True
    return FaceTrack(boxes=boxes, present=present)


DETECT_EVERY = 5  # `track_faces` detects on every this many frames (its key frames)


def track_faces(
    frames: Iterable[np.ndarray] | np.ndarray,
    *,
    detect_every: int = DETECT_EVERY,
    scale: float = 1.1,
    shift: float = -0.05,
    smooth: float = 10.0,
    min_score: float = 0.5,
    max_gap: int = 30,
    min_detections: int = 2,
    detector: FaceDetector | None = None,
    name: str = "video",
) -> list[FaceTrack]:
    """Every face of a video, each with steady square boxes and a stable identity.

    The detector runs on frames 0, k, 2k, ... (k = `detect_every`) and on the last frame; a key
    frame without detections does not change this cadence. On each key frame the detections are
    matched to the live tracks greedily: by IoU with the track's last detection (largest first,
    IoU > 0.3), then by centre distance (nearest first, under half that detection's larger side);
    unmatched detections start new tracks. A track with no detection for more than `max_gap` frames
    ends, so a face that comes back later starts a new track. Tracks with fewer than
    `min_detections` detections (at most the number of key frames) are dropped as spurious.

    Each detection becomes a square as in `track_face`. Per track, centre and log-side are linearly
    interpolated between its key frames over its span (first to last detection, gaps included) and
    smoothed there by a zero-phase Gaussian of standard deviation `smooth` frames (values extended
    past the span's ends); frames outside the span hold the first / last box. Boxes are not
    clipped to the frame.

    Args:
      frames: uint8 RGB frames, an array (T, H, W, 3) or any iterable of (H, W, 3) arrays (consumed
        once; only the current frame is kept in memory). Only the key frames and the last one
        are looked at: the others may be None (`decode.iter_sparse`).
      detect_every: run the detector every this many frames (>= 1).
      scale, shift: square side and vertical centre offset, as in `track_face`.
      smooth: Gaussian smoothing sigma in frames; 0 disables smoothing.
      min_score: detector score threshold.
      max_gap: a track ends when it goes more than this many frames between detections
        (>= detect_every; 30 is one second at 30 fps).
      min_detections: fewest key-frame detections a track needs to be kept (>= 1).
      detector: a loaded model; None loads one.
      name: what to call the video in error messages (e.g. its file name).

    Returns:
      `FaceTrack`s ordered by first detection frame, then by the first box's centre x (left first).

    Raises:
      RppgEditError: no face is kept in any frame (or the video has no frames).
    """
    if detect_every < 1 or max_gap < detect_every or min_detections < 1:
        raise ValueError(
            "need detect_every >= 1, max_gap >= detect_every and min_detections >= 1, got "
            f"{detect_every}, {max_gap}, {min_detections}"
        )
    detector = detector if detector is not None else load_detector()
    live: list[_Track] = []
    ended: list[_Track] = []
    count = num_keys = 0
    frame = None
    for t, frame in enumerate(frames):
        count += 1
        if t % detect_every == 0:
            if frame is None:
                raise ValueError(f"key frame {t} was not decoded (every {detect_every} is needed)")
            dets = detect_faces(frame, min_score=min_score, detector=detector)
            live = _update_tracks(live, ended, t, dets, max_gap)
            num_keys += 1
    if count > 1 and (count - 1) % detect_every:  # the last frame, so a face can last to the end
        if frame is None:
            raise ValueError(f"the last frame ({count - 1}) was not decoded")
        dets = detect_faces(frame, min_score=min_score, detector=detector)
        live = _update_tracks(live, ended, count - 1, dets, max_gap)
        num_keys += 1
    needed = min(min_detections, num_keys)
    kept = [track for track in ended + live if len(track.key_t) >= needed]
    if not kept:
        raise _no_face_error(name, count)
    kept.sort(key=lambda track: (track.key_t[0], (track.dets[0][0] + track.dets[0][2]) / 2))
    return [_finish_track(track, count, scale, shift, smooth) for track in kept]


def fixed_box(height: int, width: int, frac: float = 0.6) -> np.ndarray:
    """A centred square box for videos without a detectable face (--allow_no_face).

    Args:
      height, width: frame size in pixels.
      frac: side of the square as a fraction of min(height, width).

    Returns:
      float32 (4,) box (x0, y0, x1, y1) in pixels; tile it to (T, 4) for a whole video.
    """
    if not 0 < frac <= 1:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    side = frac * min(height, width)
    cx, cy = width / 2, height / 2
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)
