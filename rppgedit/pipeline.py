"""The edit pipeline around an editor: face crop, skin mask, windows, edit, paste, quantise, write.

    frames ──track/crop──► clip (T,S,S,3) ──skin──► mask ──windows──► editor.edit_batch ──► residual
    residual ──paste into the full frames, inside the full-resolution skin mask──► quantise ──► write

Only the residual (edited - original crop) goes back into the video, upsampled smoothly, inside the
skin mask; every other pixel of the output is bit-identical to the input. Paste, quantisation and
the report's PSNR/SSIM work only on the rectangles that the faces' boxes reach (`paste_chunk`,
`edit_report.Fidelity`); the rest of each frame is copied, and its zero error is counted exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import os
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from scipy import ndimage

from rppgedit import background, cpu_threads, editors, engine, heap, safe_write, targets, validate
from rppgedit import progress as progress_bars
from rppgedit.engine import MIN_FRAMES
from rppgedit.errors import RppgEditError
from rppgedit.video import crop, decode, encode, face, paste, probe, quantise, skin
from rppgedit.video import margin as ring
from rppgedit.windows import default_window, edit_plan

# Full frames are decoded, pasted, quantised and encoded in chunks of about this many bytes counted
# as float32 pixels (the paste program's inputs and outputs are a few times the chunk's uint8
# frames): 128 frames up to 208x208, 4 at 1080p.
CHUNK_BYTES = 64 * 2**20


def chunk_frames(height: int, width: int) -> int:
    """Frames per chunk for frames of this size (also the unit of the rounding seed)."""
    return int(np.clip(CHUNK_BYTES // (height * width * 3 * 4), 4, 128))


# Decoded input frames up to this many bytes (870 frames of 320x320) are kept from the first pass
# over a file and replayed to the later ones (the edit's crops, the paste) instead of decoding the
# file again: an FFV1 320x320 clip took 2.9 CPU seconds per pass, a third of its edit's wall time
# on 2 cores. Longer or larger videos are decoded once per pass, in O(chunk) memory.
HOLD_BYTES = 256 * 2**20


class Replay:
    """`chunks()` of a file: the first pass decodes (`decode_chunks()`, (start, frames) pairs) and,
    when the whole file fits in `limit` bytes, keeps the chunks, read-only, for every later pass."""

    def __init__(self, decode_chunks, limit: int):
        self._decode, self._limit, self._held = decode_chunks, limit, None

    def __call__(self) -> Iterator[tuple[int, np.ndarray]]:
        return iter(self._held) if self._held is not None else self._first_pass()

    def holds(self, nbytes: int) -> bool:
        """Whether a first pass of `nbytes` decoded bytes would be kept."""
        return nbytes <= self._limit

    def _first_pass(self) -> Iterator[tuple[int, np.ndarray]]:
        held, size = [], 0
        for start, frames in self._decode():
            size += frames.nbytes
            if held is not None and self.holds(size):
                frames.flags.writeable = False  # shared by every pass
                held.append((start, frames))
            else:
                held = None
            yield start, frames
        if held is not None:
            self._held = held


@dataclasses.dataclass(frozen=True)
class EditJob:
    """Everything that decides an edit, apart from the input and output paths.

    Attributes:
      method: editor name (see `rppgedit.editors.METHODS`).
      target: what to embed (or remove).
      work_size: side of the square face crop the editor works on, in pixels.
      window: frames per editing window (the surrogate's length); 0 (the default) is resolved
        when the job is made: `windows.default_window` of the target (256 for a removal, 128).
      overlap: minimum overlap of consecutive windows, blended with cross-fades.
      batch_windows: windows each device edits in one vmapped call; 0 (the default): the
        platform's (`engine.windows_per_device`: 1 per CPU device, 2 per accelerator).
      mask_method: skin-mask rule (see `rppgedit.video.skin`).
      margin: the ring around each face box that the edit also reaches, as a fraction of the box
        side on each side (`rppgedit.video.margin`, which measures what it gains and costs): its
        skin takes the face's mean change; 0 (the default) changes pixels inside the boxes only.
        Not with the "all" mask (the box is the region).
      quantize: "stochastic" (keeps sub-level edits in 8-bit output) or "round".
      bit_depth: 8 or 16 bits per channel in the output file.
      seed: seed of the stochastic rounding and of random target phases.
      method_options: (field, value) overrides of the editor's config.
      estimators: estimators read before and after for the report.
    """

    method: str = "privacy_phys"
    target: targets.TargetSpec = targets.TargetSpec()
    work_size: int = 64
    window: int = 0
    overlap: int = 32
    batch_windows: int = 0
    mask_method: str = "ycrcb_adaptive"
    margin: float = 0.0
    quantize: str = "stochastic"
    bit_depth: int = 8
    seed: int = 0
    method_options: tuple[tuple[str, Any], ...] = ()
    estimators: tuple[str, ...] = ("green", "pos", "chrom", "physnet_pure")

    def __post_init__(self):
        if not 0.0 <= self.margin <= 1.0:  # also NaN
            raise RppgEditError(f"the edit's margin must be in [0, 1], got {self.margin}")
        if self.window == 0:  # resolved once, so that every reader of the job sees frames
            object.__setattr__(self, "window", default_window(self.target.kind == "none"))


@dataclasses.dataclass
class FaceEdit:
    """One face's part of an edit: where it is, what the editor saw, and what changed.

    The arrays cover the frames `first .. stop - 1` where the face is in the video (its span); the
    face is not edited outside them.
    """

    boxes: np.ndarray  # (T,4) face boxes of every frame of the video
    first: int  # first frame of the span
    stop: int  # one past the last frame of the span
    clip: np.ndarray  # (N,S,S,3) original crop in [0,1], N = stop - first
    mask: np.ndarray  # (N,S,S) skin mask of the crop
    residual: np.ndarray | None = None  # (N,S,S,3) edited - clip; None when not edited or streamed
    edited: bool = False  # the editor changed this face (its residual may have been streamed)

    @property
    def span(self) -> slice:
        return slice(self.first, self.stop)


@dataclasses.dataclass
class EditResult:
    """The edited frames and what was computed on the way."""

    frames: np.ndarray  # uint8 or uint16 (T,H,W,3)
    faces: list[FaceEdit]
    mask_full: np.ndarray  # (T,H,W) pixels allowed to change (every face)
    target: np.ndarray | None
    seconds: dict[str, float]

    def _only_face(self) -> FaceEdit:
        if len(self.faces) != 1:
            raise ValueError(f"the edit has {len(self.faces)} faces; use .faces")
        return self.faces[0]

    @property
    def boxes(self) -> np.ndarray:
        return self._only_face().boxes

    @property
    def clip(self) -> np.ndarray:
        return self._only_face().clip

    @property
    def mask(self) -> np.ndarray:
        return self._only_face().mask

    @property
    def residual(self) -> np.ndarray:
        return self._only_face().residual


def editor_config(job: EditJob, fps: float):
    """The editor's static config for `job` at frame rate `fps`."""
    return editors.make_config(job.method, fps, job.target.kind == "none", job.method_options)


def crop_and_mask(frames: np.ndarray, boxes: np.ndarray, job: EditJob):
    """The working-size face crop (T,S,S,3) in [0,1] and its skin mask (T,S,S), frame by frame."""
    clip = crop.crop_resize(frames, boxes, job.work_size)
    return clip, skin.skin_mask(clip, method=job.mask_method)


def overlap(face_edit: FaceEdit, start: int, num: int) -> tuple[int, int]:
    """Frames [a, b) of the video that are both in `face_edit`'s span and in [start, start+num)."""
    return max(start, face_edit.first), min(start + num, face_edit.stop)


Rect = tuple[int, int, int, int]  # (y0, y1, x0, x1): frame rows y0..y1-1, columns x0..x1-1


def bounding_rect(rects) -> Rect | None:
    """The smallest rectangle that holds every one of `rects`; None when there are none."""
    if not len(rects):
        return None
    y0, y1, x0, x1 = np.array(rects).T
    return int(y0.min()), int(y1.max()), int(x0.min()), int(x1.max())


@dataclasses.dataclass(frozen=True)
class Changed:
    """Where a chunk of pasted frames may differ from its input: disjoint rectangles of pixels and,
    inside each, the pixels that the faces' masks let change. Every other pixel is the input's."""

    shape: tuple[int, int, int]  # (T, H, W) of the chunk
    rects: tuple[Rect, ...] = ()
    masks: tuple[np.ndarray, ...] = ()  # bool (T, y1 - y0, x1 - x0) for each rect
    sse: float = 0.0  # the sum of squared differences from the input, on the [0, 1] scale

    def full_mask(self) -> np.ndarray:
        """bool (T, H, W): the pixels allowed to change."""
        out = np.zeros(self.shape, bool)
        for (y0, y1, x0, x1), mask in zip(self.rects, self.masks, strict=True):
            out[:, y0:y1, x0:x1] = mask
        return out

    def bounds(self) -> Rect | None:
        """The smallest rectangle that holds every rect; None when nothing can change."""
        return bounding_rect(self.rects)


def _overlapping(a: Rect, b: Rect) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _ring_margin(job: EditJob) -> float:
    """The width of the ring a paste reaches around each box (`rppgedit.video.margin`)."""
    return 0.0 if job.mask_method == "all" else job.margin


def _face_rects(faces: list[FaceEdit], start: int, num: int, frame_shape, margin: float) -> list:
    """[(rect, indices of the faces pasted in it)]: each edited face's pixels over the chunk
    (frames start .. start + num - 1), its ring of `margin` included, overlapping rectangles
    merged into their bounding one.

    A rectangle is pasted into with its faces' boxes shifted to its corner; for boxes of float32
    values a shift by whole pixels is exact in float64, so the paste computes the bits of the
    whole frames. Boxes of other values keep their rectangle at the frame's corner (no shift)."""
    rects = []
    for i, f in enumerate(faces):
        a, b = overlap(f, start, num)
        if f.residual is None or a >= b:
            continue
        boxes = np.asarray(f.boxes[a:b])
        reach = boxes if margin <= 0 else ring.grown_boxes(boxes, f.mask.shape[1], margin)
        rect = crop.pixel_rect(reach, *frame_shape)
        if rect is None:
            continue
        if boxes.dtype != np.float32 and not np.all(boxes.astype(np.float32) == boxes):
            rect = (0, rect[1], 0, rect[3])
        rects.append((rect, [i]))
    merged = True
    while merged:
        merged = False
        for i, j in itertools.combinations(range(len(rects)), 2):
            (r, fr), (q, fq) = rects[i], rects[j]
            if _overlapping(r, q):
                both = (min(r[0], q[0]), max(r[1], q[1]), min(r[2], q[2]), max(r[3], q[3]))
                rects[i] = (both, sorted(fr + fq))
                del rects[j]
                merged = True
                break
    return rects


def _face_parts(frames, start: int, faces: list[FaceEdit], rect: Rect, job: EditJob):
    """What `paste.paste_rounded` pastes of each face (and of its ring, `_ring_margin(job)`,
    `rppgedit.video.margin`) into the rectangle `rect` of a chunk of `frames` (frames start ..
    start + T - 1), and the pixels the faces may change there, bool (T, h, w)."""
    num = len(frames)
    y0, y1, x0, x1 = rect
    parts, mask_rect = [], np.zeros((num, y1 - y0, x1 - x0), bool)
    corner = np.array([x0, y0, x0, y0], np.float64)
    margin = _ring_margin(job)
    for f in faces:
        a, b = overlap(f, start, num)
        inner, rows = slice(a - start, b - start), slice(a - f.first, b - f.first)
        boxes = np.asarray(f.boxes[a:b], np.float64) - corner
        mask = full_frame_mask(f.mask[rows], boxes, mask_rect.shape[1:])
        parts.append((boxes, f.residual[rows], mask, inner))
        mask_rect[inner] |= mask
        if margin > 0:
            part = ring.ring_part(
                frames[inner], f.boxes[a:b], f.residual[rows], f.mask[rows], (y0, x0),
                mask_rect.shape[1:], margin=margin, method=job.mask_method,
            )  # fmt: skip
            if part is not None:
                parts.append((*part, inner))
                mask_rect[inner] |= part[2]
    return parts, mask_rect


def paste_chunk(frames, start: int, faces: list[FaceEdit], job: EditJob, index: int):
    """Pastes every face's residual into a chunk of full frames and quantises them.

    Only the rectangles that the faces' boxes and their rings (`job.margin`) reach over the chunk
    are pasted and quantised; every other pixel is copied. The bits are those of pasting and
    quantising the whole frames: each rectangle's stochastic rounding draws the numbers that the
    whole frames would draw there.

    Args:
      frames: uint8 (T,H,W,3) original frames `start .. start + T - 1` of the video (chunk
        `index`, see `chunk_frames`).
      faces: the edited faces (a face whose residual is None is left as it is).
      job: quantisation and bit depth.
      index: chunk number; the stochastic rounding of chunk i is seeded by (job.seed, i), so a
        streamed edit and an in-memory one give the same bits.

    Returns:
      (output frames uint8 or uint16 (T,H,W,3), `Changed`: where they may differ from `frames`).
    """
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    num, height, width = frames.shape[:3]
    key = quantise.rounding_seed(job.seed, index)
    if job.bit_depth == 16:
        out = frames.astype(np.uint16) * np.uint16(257)  # 65535 / 255: exact for integers
    else:
        out = frames.copy()
    rects, masks, sse = [], [], 0.0
    mode = "stochastic" if job.bit_depth == 16 else job.quantize
    margin = _ring_margin(job)
    for rect, members in _face_rects(faces, start, num, (height, width), margin):
        parts, mask = _face_parts(frames, start, [faces[i] for i in members], rect, job)
        values, squares = paste.paste_rounded(
            frames, rect, parts, key, mode=mode, bit_depth=job.bit_depth
        )
        sse += squares / float(np.iinfo(values.dtype).max) ** 2
        y0, y1, x0, x1 = rect
        out[:, y0:y1, x0:x1] = values
        rects.append(rect)
        masks.append(mask)
    return out, Changed((num, height, width), tuple(rects), tuple(masks), sse)


def _tracks_of(boxes, num: int) -> list[face.FaceTrack]:
    """Face tracks from boxes (T,4) of one face in every frame, or a list of tracks as given."""
    if isinstance(boxes, (list, tuple)):
        return list(boxes)
    boxes = np.asarray(boxes, np.float32)
    return [face.FaceTrack(boxes, np.ones(num, bool))]


def _span(present: np.ndarray) -> tuple[int, int]:
    """(first, stop) of the frames where a face is present."""
    where = np.flatnonzero(present)
    return (int(where[0]), int(where[-1]) + 1) if len(where) else (0, 0)


def _new_face_edits(tracks: list[face.FaceTrack]) -> list[FaceEdit]:
    """Empty FaceEdits (no crop yet) for `tracks`."""
    empty = np.zeros((0, 0, 0, 3), np.float32)
    return [FaceEdit(t.boxes, *_span(t.present), empty, empty[..., 0] > 0) for t in tracks]


def _crop_faces(frames, start: int, faces: list[FaceEdit], job: EditJob, parts: list[list]):
    """Appends each face's crop and mask of the chunk `frames` (from frame `start`) to `parts`."""
    for f, part in zip(faces, parts, strict=True):
        a, b = overlap(f, start, len(frames))
        if a < b:
            part.append(crop_and_mask(frames[a - start : b - start], f.boxes[a:b], job))


def _set_crops(faces: list[FaceEdit], parts: list[list], job: EditJob) -> None:
    for f, part in zip(faces, parts, strict=True):
        if part:
            f.clip = np.concatenate([c for c, _ in part])
            f.mask = np.concatenate([m for _, m in part])
        else:
            f.clip = np.zeros((0, job.work_size, job.work_size, 3), np.float32)
            f.mask = np.zeros((0, job.work_size, job.work_size), bool)


def _short_faces(faces: list[FaceEdit]) -> list[str]:
    """A note for each face too briefly in the video to carry a pulse (it is left unedited)."""
    return [
        f"face {i} is in the video for {f.stop - f.first} frames (fewer than {MIN_FRAMES}): too "
        "short to carry a readable pulse, left unedited"
        for i, f in enumerate(faces)
        if f.stop - f.first < MIN_FRAMES
    ]


def _no_skin(i: int, job: EditJob) -> str:
    return f"face {i} has no skin pixels in its crop ({job.mask_method} mask), left unedited"


def _nothing_to_edit(notes: list[str]) -> RppgEditError:
    why = "; ".join(notes) or "no face to edit"
    return RppgEditError(f"nothing to edit ({why}); nothing was written")


def _num_windows(faces, job: EditJob) -> int:
    return sum(len(edit_plan(f.stop - f.first, job.window, job.overlap)[1]) for f in faces)


def job_editor(
    job: EditJob, state, cfg, devices: int | None = None
) -> tuple[engine.EditBatch, int]:
    """The engine's batch call for `job`'s editor on this process's devices (the first `devices`
    of them, when given), and its batch size (`engine.windows_per_device` of `job.batch_windows`
    windows per device)."""
    mesh = engine.local_mesh(devices)
    edit_batch = engine.device_editor(editors.get(job.method), state, cfg, mesh)
    return edit_batch, engine.windows_per_device(job.batch_windows, mesh) * mesh.devices.size


def edit_tasks(tasks, job: EditJob, state, cfg, progress=None) -> Iterator[engine.Edited]:
    """`engine.edit_windows` of in-memory `tasks` with `job`'s windows and editor (`job_editor`)."""
    edit_batch, batch_size = job_editor(job, state, cfg)
    return engine.edit_windows(
        tasks,
        edit_batch,
        window=job.window,
        overlap=job.overlap,
        batch_size=batch_size,
        progress=progress,
    )


def _edit_faces(faces, target, cfg, state, job: EditJob, progress: bool) -> list[str]:
    """Edits every face long enough to carry a pulse; returns a note for each face left as is."""
    notes, tasks = _short_faces(faces), []
    for i, f in enumerate(faces):
        if f.stop - f.first < MIN_FRAMES:
            continue
        if not f.mask.any():  # nothing may change: never report an edit that changed nothing
            notes.append(_no_skin(i, job))
            continue
        wave = None if target is None else target[f.span]
        tasks.append(engine.task(i, f.clip, f.mask, wave))
    if not tasks:
        raise _nothing_to_edit(notes)
    total = _num_windows([faces[t.key] for t in tasks], job)
    bar = progress_bars.bar(total, "edit windows", progress, unit="win")
    for done in edit_tasks(tasks, job, state, cfg, progress=bar.update):
        faces[done.task.key].residual = done.residual
        faces[done.task.key].edited = True
    bar.close()
    return notes


class _StreamedEdit:
    """The faces' residuals for the paste, chunk by chunk: a second decode of the video is cropped
    and streamed through the edit engine as the paste asks for frames, so memory holds about a
    window of each face's crop and residual, and each face's skin mask; each crop chunk also goes
    to `on_crop(face, crop, mask)` (the report's readers) when given, and `on_cropped()` is called
    once the last chunk is cropped.

    The residuals are those of `_edit_faces` on the whole crops (`engine.stream_windows`)."""

    def __init__(
        self,
        faces,
        target,
        cfg,
        state,
        job: EditJob,
        strength,
        chunks,
        progress,
        on_crop,
        on_cropped=None,
    ):
        self.faces, self.job, self.strength, self.on_crop = faces, job, strength, on_crop
        self.on_cropped = on_cropped
        self.editable = [i for i, f in enumerate(faces) if f.stop - f.first >= MIN_FRAMES]
        if not self.editable:
            raise _nothing_to_edit(_short_faces(faces))
        size = job.work_size
        for f in faces:
            n = f.stop - f.first
            f.mask = np.zeros((n, size, size), bool)
            f.clip = np.zeros((0, size, size, 3), np.float32)  # streamed, never held whole
        self.seconds = {"crop_mask": 0.0, "edit": 0.0}
        self.decoded = 0
        editable = [faces[i] for i in self.editable]
        self._bar = progress_bars.bar(
            _num_windows(editable, job), "edit windows", progress, unit="win"
        )
        edit_batch, batch_size = job_editor(job, state, cfg)
        self._results = engine.stream_windows(
            self._feed(chunks, target),
            {i: faces[i].stop - faces[i].first for i in self.editable},
            edit_batch,
            window=job.window,
            overlap=job.overlap,
            batch_size=batch_size,
            progress=self._bar.update,
        )
        self._ready = {i: (0, np.zeros((0, size, size, 3), np.float32)) for i in self.editable}

    def _feed(self, chunks, target):
        for start, frames in chunks:
            tic = time.perf_counter()
            items = []
            for i, f in enumerate(self.faces):
                a, b = overlap(f, start, len(frames))
                if a >= b:
                    continue
                clip, mask = crop_and_mask(frames[a - start : b - start], f.boxes[a:b], self.job)
                f.mask[a - f.first : b - f.first] = mask
                if self.on_crop is not None:
                    self.on_crop(i, clip, mask)
                if i in self.editable:
                    wave = np.zeros(b - a, np.float32) if target is None else target[a:b]
                    items.append((i, clip, mask, wave))
            self.decoded = start + len(frames)
            self.seconds["crop_mask"] += time.perf_counter() - tic
            yield items
        if self.on_cropped is not None:
            self.on_cropped()

    def _pull(self) -> None:
        tic, crop_s = time.perf_counter(), self.seconds["crop_mask"]
        try:
            i, first, residual, _ = next(self._results)
        except (engine.FrameCountError, StopIteration) as err:  # the second decode differed
            raise RppgEditError(f"the video decoded differently the second time ({err})") from None
        finally:
            self.seconds["edit"] += time.perf_counter() - tic - (self.seconds["crop_mask"] - crop_s)
        start, held = self._ready[i]
        if first != start + len(held):
            raise AssertionError(f"face {i}: residual frame {first} after {start + len(held)}")
        self._ready[i] = (start, np.concatenate([held, residual]))

    def _take(self, i: int, lo: int, hi: int) -> np.ndarray:
        """Face `i`'s residual frames lo..hi-1 (of its span); earlier frames are dropped."""
        while self._ready[i][0] + len(self._ready[i][1]) < hi:
            self._pull()
        start, held = self._ready[i]
        self._ready[i] = (lo, held[lo - start :])
        return held[lo - start : hi - start]

    def faces_of(self, start: int, num: int) -> list[FaceEdit]:
        """Each face's part of frames start .. start + num - 1, for `paste_chunk`."""
        parts = []
        for i, f in enumerate(self.faces):
            a, b = overlap(f, start, num)
            if i not in self.editable or a >= b:
                parts.append(dataclasses.replace(f, residual=None))
                continue
            residual = self._take(i, a - f.first, b - f.first)
            if self.strength != 1.0:
                residual = residual * self.strength
            rows = slice(a - f.first, b - f.first)
            parts.append(FaceEdit(f.boxes, a, b, f.clip[:0], f.mask[rows], residual, True))
        return parts

    def finish(self, num_frames: int) -> list[str]:
        """Checks that every frame went through; returns the notes of faces left unedited."""
        for _ in self._results:
            raise AssertionError("the engine returned residual frames nobody pasted")
        self._bar.close()
        if self.decoded != num_frames:
            raise RppgEditError(f"decoded {self.decoded} frames, expected {num_frames}")
        notes = []
        for i in self.editable:
            f = self.faces[i]
            f.edited = bool(f.mask.any())  # no skin: nothing may change, nothing changed
            if not f.edited:
                notes.append(_no_skin(i, self.job))
        if not any(f.edited for f in self.faces):
            raise _nothing_to_edit(_short_faces(self.faces) + notes)
        return notes


def edit_frames(
    frames: np.ndarray, fps: float, boxes, job: EditJob, state=None, progress=False
) -> EditResult:
    """Edits uint8 frames (T,H,W,3) whose faces are known, all in memory.

    Args:
      frames: uint8 (T,H,W,3).
      fps: frame rate.
      boxes: (T,4) boxes of one face in every frame, or a list of `face.FaceTrack` (every face).
      job: the edit's settings.
      state: the editor's weights (loaded when None).

    Same output bits as `run_edit`, which streams a file through the same steps."""
    seconds = {}
    num = frames.shape[0]
    faces = _new_face_edits(_tracks_of(boxes, num))
    tic = time.perf_counter()
    parts = [[] for _ in faces]
    _crop_faces(frames, 0, faces, job, parts)
    _set_crops(faces, parts, job)
    seconds["crop_mask"] = time.perf_counter() - tic
    target = targets.make_target(job.target, num, fps)
    cfg = editor_config(job, fps)
    tic = time.perf_counter()
    if state is None:
        state = editors.get(job.method).load_state(cfg)
    _edit_faces(faces, target, cfg, state, job, progress)
    seconds["edit"] = time.perf_counter() - tic
    tic = time.perf_counter()
    out, mask_full = paste_frames(frames, faces, job)
    seconds["paste"] = time.perf_counter() - tic
    return EditResult(out, faces, mask_full, target, seconds)


def scaled(faces: list[FaceEdit], strength: float) -> list[FaceEdit]:
    """The faces with their residuals times `strength` (the same list when it is 1)."""
    if strength == 1.0:
        return faces
    return [
        dataclasses.replace(f, residual=None if f.residual is None else f.residual * strength)
        for f in faces
    ]


def paste_frames(frames: np.ndarray, faces: list[FaceEdit], job: EditJob, strength: float = 1.0):
    """Pastes the faces' residuals (times `strength`) into all frames, chunk by chunk as `run_edit`
    does: returns (output frames, full-resolution mask of every face)."""
    faces = scaled(faces, strength)
    outs, masks_full = [], []
    size = chunk_frames(*frames.shape[1:3])
    for index, start in enumerate(range(0, frames.shape[0], size)):
        out, changed = paste_chunk(frames[start : start + size], start, faces, job, index)
        outs.append(out)
        masks_full.append(changed.full_mask())
    return np.concatenate(outs), np.concatenate(masks_full)


def full_frame_mask(mask: np.ndarray, boxes: np.ndarray, frame_shape) -> np.ndarray:
    """The full-resolution pixels allowed to change: the crop mask grown by one crop pixel, placed
    into the frames. The residual is zero outside the crop mask and fades over one crop pixel when
    upsampled; growing the mask by that pixel keeps the fade instead of cutting it on a staircase."""
    grown = ndimage.binary_dilation(mask, structure=np.ones((1, 3, 3), bool))
    return crop.mask_to_frame(grown, boxes, *frame_shape)


def find_faces(
    frames, *, face_box=None, allow_no_face=False, shape=None, name="video"
) -> list[face.FaceTrack]:
    """Every face of a video: a user's fixed box, the tracked faces, or (when allowed) a centred box.

    Args:
      frames: uint8 (T,H,W,3) frames, or an iterable of (H,W,3) frames (read once, not kept).
      face_box: (x0, y0, x1, y1) to use on every frame instead of tracking (one face).
      allow_no_face: fall back to a centred box when no face is found.
      shape: (T, H, W); needed when `frames` is not an array.
      name: the video's name in error messages.
    """
    return _located(frames, face.track_faces, face_box, allow_no_face, shape, name)


def find_boxes(frames, *, face_box=None, allow_no_face=False, shape=None, name="video"):
    """Face boxes (T,4) of one face: a user's fixed box, the tracked (followed) face, or (when
    allowed) a centred box. Arguments as `find_faces`."""

    def follow(stream, name):
        boxes = face.track_face(stream, name=name)
        return [face.FaceTrack(boxes, np.ones(len(boxes), bool))]

    return _located(frames, follow, face_box, allow_no_face, shape, name)[0].boxes


class _Counted:
    """An iterable of frames that counts what was taken from it (`count`)."""

    def __init__(self, frames):
        self._frames, self.count = iter(frames), 0

    def __iter__(self):
        for frame in self._frames:
            self.count += 1
            yield frame

    def drain(self) -> int:
        """Takes the frames nobody took; returns how many there were in all."""
        for _ in self:
            pass
        return self.count


def _located(frames, tracker, face_box, allow_no_face, shape, name) -> list[face.FaceTrack]:
    """`tracker(frames, name=)`'s tracks, or the user's box, or the centred fallback box.

    With a stream of frames (`shape` given) the tracks cover the frames it yields, whatever number
    `shape` claims (a container header can be wrong; the decoded frames are the truth)."""
    num, height, width = frames.shape[:3] if shape is None else shape
    stream = frames if shape is None else _Counted(frames)
    if face_box is not None:
        validate.check_face_box(face_box, width, height)
        box = np.asarray(face_box, np.float32)
    else:
        try:
            return tracker(stream, name=name)
        except RppgEditError:
            if not allow_no_face:
                raise
        box = face.fixed_box(height, width).astype(np.float32)
    if shape is not None:
        num = stream.drain()
    return [face.FaceTrack(np.tile(box, (num, 1)), np.ones(num, bool))]


def report_path_for(output_path) -> pathlib.Path:
    """Where `run_edit` writes the report of `output_path`: OUT.report.json beside OUT.mkv (only
    the last extension is dropped, so a.v1.mkv and a.v2.mkv get a.v1.report.json, a.v2...)."""
    output_path = pathlib.Path(os.fspath(output_path).rstrip("/" + os.sep))
    return output_path.with_name(output_path.stem + ".report.json")


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """How the output file is encoded and what the report measures on it.

    Attributes:
      codec: None (lossless, by extension), "ffv1", "libx264rgb", or a lossy share codec "h264",
        "h265", "vp9" (see `rppgedit.video.encode.VideoWriter`).
      crf: the lossy codec's constant rate factor (None: the codec's default).
      verify_reencode: also read the faces after one more re-encode of the output at this CRF
        (with the output's codec), as a platform that re-encodes again would; None: not.
      keep_streams: carry the input's audio, subtitles and metadata into the output.
      lossy_strength: a lossy output's edit is pasted at this multiple of the lossless edit (not
        for removal, where a stronger residual would plant the pulse back with its sign flipped);
        None: `LOSSY_STRENGTH`.
    """

    codec: str | None = None
    crf: int | None = None
    verify_reencode: int | None = None
    keep_streams: bool = True
    lossy_strength: float | None = None


# x264 keeps about 0.6 of an edit's pulse amplitude at CRF 23 and 0.35 at CRF 28 (synthetic clips,
# 256 px, the skin-mean green trace of the decoded edit minus the decoded original), and the
# deep readers lose the target after CRF 23 then 28 at 1x. 3x was chosen on 2 seeds; on 16
# (128 px, 300 frames, skin tones 0.1-0.6, still and moving: tests/share_edit_test.py's clip, seeds
# 0-15, target 110 bpm) POS, CHROM and PhysNet-RLAP read the target after CRF 23 on every seed at
# 3x, but after CRF 23 then 28 one reader fell back to the clip's own rate on 2 seeds (POS 70.7 on
# seed 6, CHROM 72.9 on seed 7). At 4x every reader read the target on every seed after both,
# at 0.1-0.2 dB of PSNR against the original and 0.2-1.1 dB against the original encoded the same
# way (seeds 0, 6, 9): the codec's own error (34-38 dB there) dominates the edit's.
LOSSY_STRENGTH = 4.0


def codec_strength(output: OutputSpec, lossy: bool, job: EditJob) -> float:
    """The multiple of the edit pasted into this output (1 for lossless files and removal)."""
    if not lossy or job.target.kind == "none":
        return 1.0
    strength = LOSSY_STRENGTH if output.lossy_strength is None else output.lossy_strength
    if not (np.isfinite(strength) and 0 < strength <= 10):
        raise RppgEditError(f"lossy strength must be in (0, 10], got {strength}")
    return np.float32(strength)


# Privacy-Phys settings for an edit that goes through a lossy codec: the paper's optimiser (weighted
# mean of the surrogates, free colour, learning rate 0.1) instead of the balanced default. Measured
# (tests/share_edit_test.py, H.264 CRF 23 then 28, seeds 0-2): the balanced default (soft maximum,
# pulse colour, 0.07) lost CHROM after the second re-encode on seed 0 and PhysNet-RLAP after CRF 23
# on seed 1; the soft maximum with free colour lost POS and CHROM on one seed; these settings kept
# all three on every seed. Every step runs (no `stop_pearson`) from zero (no `init_scale`): the codec
# takes its share of the edit whether or not the surrogates were already fooled. The user's own
# options still win.
LOSSY_METHOD_OPTIONS = {
    "privacy_phys": (
        ("balance", "mean"),
        ("colour", "free"),
        ("learning_rate", 0.1),
        ("stop_pearson", None),
        ("init_scale", 0.0),
    )
}


def codec_job(job: EditJob, lossy: bool) -> EditJob:
    """`job` with `LOSSY_METHOD_OPTIONS` under its own options when the output is lossy."""
    extra = LOSSY_METHOD_OPTIONS.get(job.method, ()) if lossy else ()
    if not extra or job.target.kind == "none":
        return job
    return dataclasses.replace(job, method_options=extra + tuple(job.method_options))


@cpu_threads.single_thread_blas()
def run_edit(
    input_path: str,
    output_path: str,
    job: EditJob,
    *,
    face_box=None,
    allow_no_face: bool = False,
    overwrite: bool = False,
    output: OutputSpec = OutputSpec(),
    report: bool = True,
    progress: bool = True,
    config: dict | None = None,
    plots: bool = True,
    started: float | None = None,
) -> dict:
    """Edits every face of a video file and writes the output (atomically) plus `report.json`
    (with `config`, the command line's resolved settings, when given) and, with `plots`, the
    report's picture `report.png` (`rppgedit.report.figure`).

    The file is streamed in chunks (`chunk_frames`): once to track the faces, then the paste pulls
    edited frames through the edit engine (`_StreamedEdit`: a second decode is cropped, masked and
    edited window by window as the paste needs it) and pastes, quantises and encodes them. The
    edit holds about one window of each face's crop and residual and a few chunks of full frames,
    and the report's readers a window of crops and the RGB traces (`readings.StreamReader`):
    what grows with the video is each face's boxes, skin mask (bool T x S x S) and traces. The
    output bits equal `edit_frames` on the decoded frames.

    The input's audio, subtitles and metadata are carried over (`output.keep_streams`). When the
    output is lossy, the report measures what a recipient gets: the readings, PSNR and SSIM are
    taken on the decoded output file, PSNR also against the original encoded with the same codec
    settings, and with `output.verify_reencode` the readings after one more re-encode.

    `started` (`time.perf_counter()` when the caller's command started, as the command line
    passes it): the time before the first decode is reported as ``seconds["start_up"]`` and the
    end-to-end rate counts from then; None counts from the first decode.

    Returns the report dict (also printed as a table by the command line).
    """
    from rppgedit import edit_report
    from rppgedit import report as reporting

    encode.check_output_path(output_path, inputs=(input_path,), overwrite=overwrite)
    if report:  # the report follows the same write policy, checked before any work
        safe_write.check_destination(
            report_path_for(output_path), inputs=(input_path, output_path), overwrite=overwrite
        )
        if plots:
            safe_write.check_destination(
                reporting.png_path_for(report_path_for(output_path)),
                inputs=(input_path, output_path),
                overwrite=overwrite,
            )
    name = pathlib.Path(input_path).name
    info = probe.probe(input_path)
    cfg = editor_config(job, info.fps)  # bad options fail before any decoding
    seconds = {}

    chunk = chunk_frames(info.height, info.width)

    def decoded(path):
        return decode.iter_chunks(path, chunk)

    input_chunks = Replay(functools.partial(decoded, input_path), HOLD_BYTES)

    def chunks(path=input_path):
        return input_chunks() if path == input_path else decoded(path)

    def frames_of(stream, bar):
        for _, frames in stream:
            yield from frames
            bar.update(len(frames))

    def frame_bar(desc: str):
        return progress_bars.bar(info.num_frames, desc, progress, unit="frame")

    with (
        safe_write.scratch_dir() as scratch,
        contextlib.ExitStack() as writers,
    ):
        # The writers open first, so that a codec, container or folder problem fails before any
        # decoding; on any error they are aborted and nothing is left behind.
        writer = writers.enter_context(
            _writer(output_path, info, job, output, input_path, overwrite)
        )
        lossy = writer.crf is not None
        strength = codec_strength(output, lossy, job)
        job = codec_job(job, lossy)
        cfg = editor_config(job, info.fps)
        ref_path = os.path.join(scratch, "original" + pathlib.Path(writer.path).suffix)
        reference = None
        if report and lossy:  # the original through the same encoder: what the edit adds to it
            reference = writers.enter_context(_writer(ref_path, info, job, output, None, True))

        tic = time.perf_counter()
        if started is not None:  # imports, settings, weights, probing, opening the outputs
            seconds["start_up"] = tic - started
        shape = (info.num_frames, info.height, info.width)
        with frame_bar("decode + track faces") as bar:
            if not input_chunks.holds(info.num_frames * info.height * info.width * 3):
                # not held for replay: the tracker gets RGB only where it looks
                sparse = decode.iter_sparse(input_path, face.DETECT_EVERY, chunk)
                stream = ((None, frames) for frames in sparse)
            else:
                stream = chunks()
            tracks = find_faces(
                frames_of(stream, bar),
                face_box=face_box,
                allow_no_face=allow_no_face,
                shape=shape,
                name=name,
            )
        header_notes = []
        if len(tracks[0].boxes) != info.num_frames:  # the header was wrong: trust the decoder
            header_notes.append(
                f"the header claims {info.num_frames} frames; {len(tracks[0].boxes)} were decoded "
                "and edited"
            )
            info = dataclasses.replace(info, num_frames=len(tracks[0].boxes))
        faces = _new_face_edits(tracks)
        seconds["read_track"] = time.perf_counter() - tic

        tic = time.perf_counter()
        target = targets.make_target(job.target, info.num_frames, info.fps)
        state = editors.get(job.method).load_state(cfg)
        notes = header_notes + _short_faces(faces)
        if strength != 1.0:
            notes.append(
                f"lossy output: the edit is pasted at {strength:g}x its lossless strength so that "
                "it survives this encode and one more platform re-encode"
            )
        readers = None
        if report:
            keys = ("before", "after") + (("reencoded",) if output.verify_reencode else ())
            readers = edit_report.Readers(job, faces, info.fps, keys)
        try:
            stream = _StreamedEdit(
                faces,
                target,
                cfg,
                state,
                job,
                strength,
                chunks(),
                progress,
                None if readers is None else functools.partial(readers.add_crop, "before"),
                # once the input is cropped, the edit's last windows leave the main thread idle
                reporting.import_plotting_soon if report and plots else None,
            )
        except RppgEditError as err:
            raise RppgEditError(f"{name}: {err}") from None
        fidelity = edit_report.Fidelity()
        pair, pair_at = None, edit_report.pair_index(faces) if report and plots else -1

        def measure(start, frames, out, changed):
            fidelity.add(frames, out, changed.bounds(), sse=changed.sse)
            readers.add_frames("after", start, out)

        trimmer = heap.Trimmer()  # a long video's heap would creep (`rppgedit.heap`)
        with background.InOrder("rppgedit-measure") as measuring:
            for index, (start, frames) in enumerate(chunks()):
                trimmer.maybe()
                out, changed = paste_chunk(
                    frames, start, stream.faces_of(start, len(frames)), job, index
                )
                writer.write(out, unchanging=True)  # a new array, only read from now on
                if start <= pair_at < start + len(frames):  # the report's difference map
                    pair = (pair_at, frames[pair_at - start].copy(), out[pair_at - start].copy())
                if reference is not None:
                    reference.write(frames, unchanging=True)  # decoded frames: only read
                elif report:  # on a thread: the next chunk's paste need not wait for it
                    measuring.submit(measure, start, frames, out, changed)
        try:
            notes += stream.finish(info.num_frames)
        except RppgEditError as err:  # name the input in the one-line error
            raise RppgEditError(f"{name}: {err}") from None
        writers.close()  # finish both files (an error here still removes them)
        seconds.update(stream.seconds)
        seconds["paste_write"] = time.perf_counter() - tic - sum(stream.seconds.values())
        summary = {
            "input": str(input_path),
            "output": str(output_path),
            "method": job.method,
            "target": dataclasses.asdict(job.target),
            "frames": int(info.num_frames),
            "fps": float(info.fps),
            "codec": writer.codec,
            "crf": writer.crf,
            "streams": list(writer.stream_notes),
            "notes": notes,
        }
        if report:
            tic = time.perf_counter()
            if lossy:
                fidelity = edit_report.Fidelity()
                same_codec = edit_report.Fidelity()
                with frame_bar("report: read the output") as bar:
                    for (s0, original), (_, ref), (_, out) in zip(
                        chunks(), chunks(ref_path), chunks(writer.path), strict=True
                    ):
                        fidelity.add(original, out)
                        same_codec.add(ref, out)
                        readers.add_frames("after", s0, out)
                        if s0 <= pair_at < s0 + len(out):  # the decoded output's difference
                            k = pair_at - s0
                            pair = (pair_at, original[k].copy(), out[k].copy())
                        bar.update(len(out))
                summary["psnr_vs_same_codec_db"] = same_codec.psnr_db()
                summary["ssim_vs_same_codec"] = same_codec.ssim()
                summary["measured_on"] = "the decoded output file"
            else:
                summary["measured_on"] = "the output frames (lossless: bit-exact in the file)"
            if output.verify_reencode is not None:
                again = os.path.join(scratch, "reencoded" + pathlib.Path(writer.path).suffix)
                codec = writer.codec if lossy else "h264"
                encode.reencode(writer.path, again, codec=codec, crf=output.verify_reencode)
                with frame_bar("report: read the re-encode") as bar:
                    for s0, frames in chunks(again):
                        readers.add_frames("reencoded", s0, frames)
                        bar.update(len(frames))
                summary["reencode"] = {"codec": codec, "crf": output.verify_reencode}
            summary.update(
                edit_report.readings_summary(job, faces, readers, info.fps, target, progress)
            )
            summary.update(psnr_db=fidelity.psnr_db(), ssim=fidelity.ssim())
            seconds["report"] = time.perf_counter() - tic
    summary["seconds"] = seconds
    summary["devices"] = [str(d) for d in jax.devices()]
    if config is not None:
        summary["config"] = config
    if report:
        reporting.finish(summary, job, cfg)
        report_path = report_path_for(output_path)
        if plots:
            tic = time.perf_counter()
            data = edit_report.plot_data(job, faces, readers, info.fps, target, pair, summary)
            png = reporting.write_png(
                reporting.png_path_for(report_path),
                reporting.figure(data),
                overwrite=overwrite,
                inputs=(input_path, output_path),
            )
            summary["report_png"] = png
            seconds["plots"] = time.perf_counter() - tic
    # from `started` (else the stages' sum) to now: all but the report's JSON below
    elapsed = sum(seconds.values()) if started is None else time.perf_counter() - started
    summary["fps_end_to_end"] = info.num_frames / max(elapsed, 1e-9)
    if report:
        safe_write.write_text_atomic(
            report_path,
            json.dumps(safe_write.json_safe(summary), indent=2, allow_nan=False),
            overwrite=overwrite,
            inputs=(input_path,),
        )
        summary["report_path"] = str(report_path)
    return summary


def _writer(path, info, job: EditJob, output: OutputSpec, streams_from, overwrite: bool):
    """The VideoWriter of an edit's output (or of its reference encode when `streams_from` is None)."""
    return encode.VideoWriter(
        path,
        info.fps,
        info.width,
        info.height,
        codec=output.codec,
        crf=output.crf,
        overwrite=overwrite,
        inputs=() if streams_from is None else (streams_from,),
        bit_depth=job.bit_depth,
        streams_from=streams_from if output.keep_streams else None,
    )
