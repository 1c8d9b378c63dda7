"""The live edit: a stream of frames in, the same frames out in order, the pulse edited, one window
later.

    source ──reader thread──► queue ──track (online)──► crop + skin mask ──► window buffer
    a full window ──editor (asynchronous, one window per call)──► residual, cross-faded
    frames no later window touches ──paste + quantise (`paste`)──► sink (+ skin trace)

Windows: `window` frames, starting every `window - overlap` frames from the first frame with a face
(the same regular grid and linear cross-fades as `windows.blend_weights`). `engine.stream_windows`
plans its windows from each clip's length, which a stream does not know, so this loop cuts them as
the frames come, and calls the same editor (`pipeline.job_editor`: `engine.device_editor`, one
window per call, on the first device). Frame i is final once the last window that covers it is
edited, so it leaves `window - 1` frames after it came in, plus the processing
(`LiveEdit.latency_frames`); while the editor runs behind (a pipe read faster than it edits) one
more window waits in its queue, so at most `window + hop - 1` frames
(`LiveEdit.latency_bound_frames`). At the end of the stream one more window, aligned to the last
frame, covers the tail (`windows.edit_plan`'s rule); a stream with a face in fewer than
`engine.MIN_FRAMES` frames goes out unedited.

The target is generated at each frame's absolute index in the source (`targets.sinusoid`'s values
at frame i), so its phase is continuous across windows, and a dropped frame does not shift it.

Face tracking is online (the file edit tracks the whole video first): BlazeFace runs every
`detect_every` frames (every frame until a face is found); each detection's square
(`face.face_square`, as `face.track_face`) is smoothed causally by an exponential moving average of
its centre and log side (`smooth`: weight of a new detection), and held between detections and
when the face is lost. Frames before the first detection are passed through unedited.

Frames are never repeated. A pipe (or a file read as fast as possible) is read only as fast as the
edit goes: nothing is dropped, the writer waits. A real-time source (a camera, a file paced at its
frame rate) that gets more than `max_lag` frames (one second) ahead of the edit loses its oldest
unread frames; each one is counted (`LiveStats.dropped`, logged as it happens). Paste and write run
in bursts of one window's hop, so `max_lag` must hold the frames that arrive during one burst.

Readings (`LiveEdit.readings`): the face's skin trace (mean RGB over the crop's skin mask) is kept
for every frame with a face, as cropped before the edit and re-cropped from the frame written
(pasted and rounded), 24 bytes per frame; at the end the trace estimators read both, and
`report.verdict` states what they read.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import numpy as np

from rppgedit import cpu_threads, editors, engine, heap, pipeline, safe_write
from rppgedit.errors import RppgEditError
from rppgedit.estimators.roi import spatial_mean
from rppgedit.video import crop, face

# Frames cropped together (crop_resize and the skin mask cost 3x more one frame at a time).
CROP_CHUNK = 8
# Frames pasted and quantised together.
PASTE_CHUNK = 16
MIN_SIDE = 16
MAX_SIDE = 8192


def parse_size(text: str) -> tuple[int, int]:
    """(width, height) of "WxH"; a one-line error otherwise."""
    parts = str(text).lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise RppgEditError(
            f"--live_size: want WIDTHxHEIGHT (e.g. 640x480), got {text!r}"
        ) from None
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise RppgEditError(
            f"--live_size: {width}x{height} is out of range ({MIN_SIDE}..{MAX_SIDE} per side)"
        )
    return width, height


# ------------------------------------------------------------------------------------------------
# Online face tracking.


class OnlineTracker:
    """Causal face boxes, one frame at a time (see the module docstring).

    Args:
      face_box: a fixed (x0, y0, x1, y1) used on every frame instead of tracking.
      detect_every: run the detector every this many frames once a face is found.
      smooth: weight of a new detection in the moving average (1: no smoothing).
      detector: a loaded `face.FaceDetector` (None: load the shipped one when first needed).
    """

    def __init__(self, face_box=None, *, detect_every=5, smooth=0.5, detector=None):
        self.fixed = None if face_box is None else np.asarray(face_box, np.float32)
        self.detect_every, self.smooth = int(detect_every), float(smooth)
        self.detector = detector
        self.square = None  # (cx, cy, log side)
        self.picked = None
        self.count = 0
        self.next_detect = 0
        self.detections = 0

    def box(self, frame: np.ndarray) -> np.ndarray | None:
        """float32 (4,) box of this frame, or None while no face has been found."""
        t = self.count
        self.count += 1
        if self.fixed is not None:
            return self.fixed
        if t >= self.next_detect:
            if self.detector is None:
                self.detector = face.load_detector(beside_jax=True)  # edits are in flight
            dets = face.detect_faces(frame, detector=self.detector)
            if dets.shape[0]:
                self.picked = face.pick_detection(dets, self.picked)
                cx, cy, side = face.face_square(self.picked, 1.1, -0.05)  # track_face's crop
                new = np.array([cx, cy, np.log(side)])
                if self.square is None:
                    self.square = new
                else:
                    self.square = self.smooth * new + (1 - self.smooth) * self.square
                self.detections += 1
                self.next_detect = t + self.detect_every
            else:
                self.next_detect = t + 1
        if self.square is None:
            return None
        cx, cy, log_side = self.square
        half = np.exp(log_side) / 2
        return np.array([cx - half, cy - half, cx + half, cy + half], np.float32)


# ------------------------------------------------------------------------------------------------
# The edit.


@dataclasses.dataclass
class LiveStats:
    """What a live run did (the summary line)."""

    frames_in: int = 0  # frames read from the source (dropped ones included)
    frames_out: int = 0
    dropped: int = 0
    repeated: int = 0  # always 0: a frame is never written twice
    unedited: int = 0  # frames written without an edit (no face yet, or too short a stream)
    windows: int = 0
    seconds: float = 0.0  # first frame read .. last frame written
    latency_s_mean: float = 0.0
    latency_s_max: float = 0.0
    latency_frames_max: int = 0  # frames read after frame i when frame i was written
    # Seconds of the edit loop's own work: face tracking, crop + skin mask, waiting for the
    # editor (its compute overlaps the rest), paste + quantise, writing to the sink.
    stages: dict = dataclasses.field(
        default_factory=lambda: dict.fromkeys(("track", "crop", "edit_wait", "paste", "write"), 0.0)
    )

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    def line(self, fps: float, latency_frames: int, bound_frames: int) -> str:
        return (
            f"live: {self.frames_in} frames in, {self.frames_out} out, {self.dropped} dropped, "
            f"{self.repeated} repeated, {self.unedited} unedited, {self.windows} windows; "
            f"{self.fps:.1f} frames/s sustained over {self.seconds:.1f} s; latency by design "
            f"{latency_frames} frames + processing ({latency_frames / fps:.2f} s at {fps:g} fps; "
            f"at most {bound_frames} frames while the edit runs behind a pipe), measured max "
            f"{self.latency_frames_max} frames, {self.latency_s_mean:.2f} s mean, "
            f"{self.latency_s_max:.2f} s max; loop seconds "
            + ", ".join(f"{k} {v:.1f}" for k, v in self.stages.items())
        )


@dataclasses.dataclass
class _Frame:
    index: int  # position in the output
    source: int  # index in the source (dropped frames counted): the target's time
    frame: np.ndarray
    box: np.ndarray | None
    read_at: float


class LiveEdit:
    """Edits frames pushed one by one; returns them, in order, as they become final.

    Args:
      job: the edit (`job.window`, `job.overlap`, the editor, the target: a sinusoid or none).
      fps: the stream's frame rate (the target's and the editor's time base).
      edit_batch: the engine's batch call (`engine.EditBatch`) and its batch size; None builds
        `job`'s editor on this process's first device, one window per call (`pipeline.job_editor`).
      tracker: an `OnlineTracker` (None: a tracking one).
    """

    def __init__(self, job, fps: float, *, edit_batch=None, batch_size=None, tracker=None):
        if job.target.kind not in ("sinusoid", "none"):
            raise RppgEditError(
                f"--target={job.target.kind} cannot be streamed live (use sinusoid or none)"
            )
        if job.bit_depth != 8:
            raise RppgEditError("live streams are 8-bit rgb24")
        self.job, self.fps = job, float(fps)
        self.length = job.window
        self.overlap = min(job.overlap, self.length // 2)
        self.hop = self.length - self.overlap
        if edit_batch is None:
            cfg = pipeline.editor_config(job, self.fps)
            state = editors.get(job.method).load_state(cfg)
            job1 = dataclasses.replace(job, batch_windows=1)
            edit_batch, batch_size = pipeline.job_editor(job1, state, cfg, devices=1)
        self.edit_batch, self.batch_size = edit_batch, int(batch_size or 1)
        self.tracker = tracker if tracker is not None else OnlineTracker()
        self.phase = 0.0 if job.target.phase is None else float(job.target.phase)
        if job.target.phase is None:
            self.phase = float(np.random.default_rng(job.target.seed).uniform(0.0, 2.0 * np.pi))
        self.stats = LiveStats()
        self.pending: collections.deque[_Frame] = collections.deque()  # not yet written
        self.count = 0  # frames pushed
        self.first = None  # index of the first frame with a face: the window grid's origin
        self.next_start = None  # start of the next window to cut
        self.last_start = None  # start of the last window cut
        self.raw: list[_Frame] = []  # frames with a face, not yet cropped
        size = job.work_size
        self.crops = np.zeros((0, size, size, 3), np.float32)  # frames buf_start ..
        self.masks = np.zeros((0, size, size), bool)
        self.waves = np.zeros(0, np.float32)
        self.buf_start = 0
        self.in_flight: collections.deque = collections.deque()
        self.acc = np.zeros((0, size, size, 3), np.float32)  # blended residual, frames acc_start..
        self.wsum = np.zeros(0, np.float32)
        self.acc_start = 0
        self.final = 0  # frames before this have their final residual (or none)
        self.residual = {}  # index -> final residual, until written
        self.mask_of = {}  # index -> skin mask of the crop, until written
        # The face's skin trace (mean RGB over the mask) of every frame with a face, before the
        # edit and in the frames written, for the readings at the end (`readings`).
        self.trace_of = {}  # index -> trace row before the edit, until written
        self.traces_before: list[np.ndarray] = []
        self.traces_after: list[np.ndarray] = []

    @property
    def latency_frames(self) -> int:
        """Frames that come in after frame i before it can go out (one window - 1), when the editor
        keeps up; the processing time comes on top."""
        return self.length - 1

    @property
    def latency_bound_frames(self) -> int:
        """The most frames that come in after frame i before it goes out, when the edit runs behind
        a pipe (one more window is queued behind the one being collected)."""
        return self.length + self.hop - 1

    def wave(self, sources: np.ndarray) -> np.ndarray:
        """The target at absolute source frame indices (`targets.sinusoid`'s values)."""
        if self.job.target.kind == "none":
            return np.zeros(len(sources), np.float32)
        omega = 2.0 * np.pi * self.job.target.hr_bpm / 60.0 / self.fps
        return np.cos(np.mod(omega * sources.astype(np.float64), 2.0 * np.pi) + self.phase).astype(
            np.float32
        )

    def warm_up(self) -> None:
        """Compiles the editor (one call on a dummy window) before the stream starts."""
        size = self.job.work_size
        clips = np.full((self.batch_size, self.length, size, size, 3), 0.5, np.float32)
        masks = np.ones(clips.shape[:-1], bool)
        waves = np.zeros((self.batch_size, self.length), np.float32)
        np.asarray(self.edit_batch(clips, masks, waves))

    # -- frames in ------------------------------------------------------------------------------

    def push(self, frame: np.ndarray, source: int | None = None, read_at: float | None = None):
        """Adds one uint8 (H,W,3) frame; returns the frames now final: [(frame, read_at)]."""
        read_at = time.perf_counter() if read_at is None else read_at
        item = _Frame(self.count, self.count if source is None else source, frame, None, read_at)
        self.count += 1
        tic = time.perf_counter()
        item.box = self.tracker.box(frame)
        self.stats.stages["track"] += time.perf_counter() - tic
        self.pending.append(item)
        if item.box is None and self.first is None:
            self.final = self.count  # before the first face: nothing to wait for
        else:
            if self.first is None:
                self.first = self.next_start = self.buf_start = self.acc_start = item.index
                self.final = item.index
            self.raw.append(item)
            if len(self.raw) >= CROP_CHUNK:
                self._crop()
            if self.count >= self.next_start + self.length:
                self._crop()
                self._dispatch(self.next_start, self.length)
                self.last_start = self.next_start
                self.next_start += self.hop
        return self.poll()

    def _crop(self) -> None:
        if not self.raw:
            return
        tic = time.perf_counter()
        frames = np.stack([f.frame for f in self.raw])
        boxes = np.stack([f.box for f in self.raw])
        clip, mask = pipeline.crop_and_mask(frames, boxes, self.job)
        wave = self.wave(np.array([f.source for f in self.raw]))
        self.crops = np.concatenate([self.crops, clip])
        self.masks = np.concatenate([self.masks, mask])
        self.waves = np.concatenate([self.waves, wave])
        before = spatial_mean(clip, mask)
        for f, m, row in zip(self.raw, mask, before, strict=True):
            self.mask_of[f.index] = m
            self.trace_of[f.index] = row
        self.raw = []
        self.stats.stages["crop"] += time.perf_counter() - tic

    def _dispatch(self, start: int, length: int, weights: np.ndarray | None = None) -> None:
        a = start - self.buf_start
        clip, mask = self.crops[a : a + length], self.masks[a : a + length]
        wave = self.waves[a : a + length]
        pad = self.batch_size
        edited = self.edit_batch(
            np.broadcast_to(clip, (pad, *clip.shape)).copy(),
            np.broadcast_to(mask, (pad, *mask.shape)).copy(),
            np.broadcast_to(wave, (pad, *wave.shape)).copy(),
        )
        if weights is None:
            weights = np.ones(length, np.float32)
            if start > self.first:  # rising over the overlap with the previous window
                weights[: self.overlap] = np.arange(1, self.overlap + 1) / (self.overlap + 1)
            weights[length - self.overlap :] = np.arange(self.overlap, 0, -1) / (self.overlap + 1)
        self.in_flight.append((start, length, clip, weights, edited))
        self.stats.windows += 1
        # Keep the crops the last window started from (the tail window may reach back to it).
        keep = start - self.buf_start
        self.crops, self.masks = self.crops[keep:], self.masks[keep:]
        self.waves, self.buf_start = self.waves[keep:], start
        while len(self.in_flight) > 1:  # one window queued behind the one being collected
            self._collect()

    def _collect(self) -> None:
        start, length, clip, weights, edited = self.in_flight.popleft()
        tic = time.perf_counter()
        edited = np.asarray(edited)[0]
        self.stats.stages["edit_wait"] += time.perf_counter() - tic
        end = start + length
        size = self.acc.shape[1:]
        grow = end - self.acc_start - len(self.acc)
        if grow > 0:
            self.acc = np.concatenate([self.acc, np.zeros((grow, *size), np.float32)])
            self.wsum = np.concatenate([self.wsum, np.zeros(grow, np.float32)])
        skip = max(0, self.acc_start - start)  # frames already written (weight 0)
        a = start + skip - self.acc_start
        residual = (edited[skip:] - clip[skip:]) * weights[skip:, None, None, None]
        self.acc[a : a + length - skip] += residual
        self.wsum[a : a + length - skip] += weights[skip:]
        self._finalise(min(start + self.hop, end) if weights[-1] < 1 else end)

    def _finalise(self, upto: int) -> None:
        """Frames acc_start .. upto - 1 have all their windows: their residual is final."""
        n = upto - self.acc_start
        if n <= 0:
            return
        have = self.wsum[:n]  # shorter than n where no window reached
        done = self.acc[:n] / np.where(have > 0, have, 1.0)[:, None, None, None]
        for k in np.flatnonzero(have > 0):
            self.residual[self.acc_start + int(k)] = done[k]
        self.acc, self.wsum = self.acc[n:], self.wsum[n:]
        self.acc_start = upto
        self.final = max(self.final, upto)

    # -- frames out -----------------------------------------------------------------------------

    def poll(self) -> list[tuple[np.ndarray, float]]:
        """Collects the windows the editor has finished; returns the frames now final."""
        while self.in_flight and _ready(self.in_flight[0][-1]):
            self._collect()
        return self._emit()

    def _emit(self) -> list[tuple[np.ndarray, float]]:
        out = []
        while self.pending and self.pending[0].index < self.final:
            edited = self.pending[0].index in self.residual
            items = []
            while (
                self.pending
                and self.pending[0].index < self.final
                and len(items) < PASTE_CHUNK
                and (self.pending[0].index in self.residual) == edited
            ):
                items.append(self.pending.popleft())
            masks = [self.mask_of.pop(f.index, None) for f in items]
            if edited:
                tic = time.perf_counter()
                frames = paste(
                    np.stack([f.frame for f in items]),
                    np.stack([f.box for f in items]),
                    np.stack(masks),
                    np.stack([self.residual.pop(f.index) for f in items]),
                    self.job,
                    items[0].index,
                )
                out += [(frames[k], f.read_at) for k, f in enumerate(items)]
                boxes = np.stack([f.box for f in items])
                written = crop.crop_resize(frames, boxes, self.job.work_size)
                self.traces_after.append(spatial_mean(written, np.stack(masks)))
                self.traces_before.append(np.stack([self.trace_of.pop(f.index) for f in items]))
                self.stats.stages["paste"] += time.perf_counter() - tic
            else:
                self.stats.unedited += len(items)
                out += [(f.frame, f.read_at) for f in items]
                rows = [self.trace_of.pop(f.index) for f in items if f.index in self.trace_of]
                if rows:  # a face too briefly in view to edit: written as it came
                    self.traces_before.append(np.stack(rows))
                    self.traces_after.append(np.stack(rows))
        return out

    def readings(self, estimators) -> dict:
        """The heart rates read from the face's skin trace in the frames written, before and after
        the edit: a report summary (`report.verdict` reads it) with one row per trace estimator
        of `estimators` (the deep ones read video windows and are listed under "not_read")."""
        from rppgedit import readings
        from rppgedit.estimators import registry

        names = [n for n in estimators if registry.get(n).input == "trace"]
        frames = sum(len(t) for t in self.traces_before)
        summary = {
            "frames_with_face": frames,
            "not_read": [n for n in estimators if n not in names],
            "target": {"kind": self.job.target.kind},
            "target_hr_bpm": self.job.target.hr_bpm if self.job.target.kind != "none" else None,
            "rows": [],
        }
        if frames < engine.MIN_FRAMES or not names:
            return summary
        before = readings.read_trace(names, np.concatenate(self.traces_before), self.fps)
        after = readings.read_trace(names, np.concatenate(self.traces_after), self.fps)
        for name in names:
            summary["rows"].append(
                {
                    "face": 0,
                    "estimator": name,
                    "hr_before": before[name]["hr_bpm"],
                    "hr_after": after[name]["hr_bpm"],
                    "snr_before": before[name]["snr_db"],
                    "snr_after": after[name]["snr_db"],
                }
            )
        return summary

    # -- the end ----------------------------------------------------------------------------------

    def finish(self) -> list[tuple[np.ndarray, float]]:
        """The end of the stream: edits the tail and returns every frame still held."""
        self._crop()
        while self.in_flight:
            self._collect()
        end = self.count
        if self.first is not None:
            if self.last_start is None:  # no full window: one short window, if long enough
                num = end - self.first
                length = num - num % 4
                if num >= engine.MIN_FRAMES:
                    start = end - length
                    self.acc_start = start
                    self.final = start
                    self._dispatch(start, length, np.ones(length, np.float32))
                    self._collect()
            elif end > self.last_start + self.length:  # the tail: one window aligned to the end
                start, length = end - self.length, self.length
                weights = np.ones(length, np.float32)
                weights[: self.acc_start - start] = 0.0  # frames already written
                lo = self.acc_start - start
                n = self.last_start + self.length - self.acc_start  # overlap with the last window
                weights[lo : lo + n] = np.arange(1, n + 1) / (n + 1)
                self._dispatch(start, length, weights)
                self._collect()
            self._finalise(end)
        self.final = end
        return self._emit()


def paste(frames, boxes, masks, residual, job, index: int) -> np.ndarray:
    """One face's residual pasted into consecutive uint8 frames `index ..` and quantised, inside
    the rectangle its boxes reach (the rest is copied): `pipeline.paste_chunk` on one face, its
    rounding seeded by (job.seed, index of the first frame)."""
    num = len(frames)
    face = pipeline.FaceEdit(boxes, 0, num, np.zeros((0, 0, 0, 3), np.float32), masks, residual)
    out, _ = pipeline.paste_chunk(frames, 0, [face], job, index)
    return out


def _ready(array) -> bool:
    is_ready = getattr(array, "is_ready", None)
    return True if is_ready is None else bool(is_ready())


# ------------------------------------------------------------------------------------------------
# Sources and sinks of raw rgb24 frames.


class RawFrames:
    """rgb24 frames of `width` x `height` read from a binary stream (a pipe, stdin, a file object).

    `read` returns one uint8 (H,W,3) frame, or None at the end; a stream that ends inside a frame
    is a one-line error saying how many bytes the torn frame had."""

    def __init__(self, stream, width: int, height: int, name: str = "the input pipe"):
        self.stream, self.width, self.height, self.name = stream, width, height, name
        self.frame_bytes = width * height * 3
        self.count = 0

    def read(self) -> np.ndarray | None:
        frame = np.empty((self.height, self.width, 3), np.uint8)
        view = memoryview(frame).cast("B")
        filled = 0
        while filled < self.frame_bytes:
            n = self.stream.readinto(view[filled:])
            if not n:
                break
            filled += n
        if filled == 0:
            return None
        if filled < self.frame_bytes:
            raise RppgEditError(
                f"{self.name} ended inside frame {self.count}: {filled} of its {self.frame_bytes} "
                f"bytes ({self.width}x{self.height} rgb24; check --live_size)"
            )
        self.count += 1
        return frame

    def close(self) -> None:
        pass


class FileFrames:
    """uint8 frames of a video file, decoded in-process (`rppgedit.video.decode`); with `pace`,
    handed out no faster than the file's frame rate, as a camera would (high-bit-depth files are
    rounded to 8 bits, as a camera's frames are)."""

    def __init__(self, path: str, fps: float, *, pace: bool = False):
        from rppgedit.video import decode, quantise

        self.name, self.fps, self.pace, self.count = path, fps, pace, 0
        self._chunks = decode.iter_chunks(path, _FILE_CHUNK, allow_16bit=True)
        self._to_uint8 = quantise.to_uint8
        self._frames, self._start = iter(()), None

    def read(self) -> np.ndarray | None:
        frame = next(self._frames, None)
        if frame is None:
            chunk = next(self._chunks, None)
            if chunk is None:
                return None
            self._frames = iter(self._to_uint8(chunk[1]))
            frame = next(self._frames)
        if self.pace:
            now = time.monotonic()
            if self._start is None:
                self._start = now
            wait = self._start + self.count / self.fps - now
            if wait > 0:
                time.sleep(wait)
        self.count += 1
        return frame

    def close(self) -> None:
        self._chunks.close()


# Frames decoded at a time by `FileFrames`.
_FILE_CHUNK = 8


class FfmpegFrames(RawFrames):
    """rgb24 frames from a capture device (`input_format` v4l2, avfoundation, dshow ...) read by
    an ffmpeg program (`rppgedit.video.ffmpeg.exe`: PyAV's libraries have no device input), never
    resampled in time (``-fps_mode passthrough``)."""

    def __init__(self, url: str, width, height, *, fps: float, input_format: str):
        from rppgedit.video import ffmpeg

        args = [ffmpeg.exe(), "-hide_banner", "-nostats", "-loglevel", "level+warning", "-nostdin"]
        args += ["-f", input_format, "-framerate", f"{fps:g}"]  # ask the device for size and rate
        args += ["-video_size", f"{width}x{height}", "-i", url]
        args += ["-map", "0:V:0", "-fps_mode", "passthrough", "-an", "-sn", "-dn"]
        args += ["-s", f"{width}x{height}", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        self.proc, self._stderr = _start_ffmpeg(args, url, stdout=subprocess.PIPE)
        ffmpeg.widen_pipe(self.proc.stdout)
        super().__init__(self.proc.stdout, width, height, name=url)
        self.url = url

    def read(self) -> np.ndarray | None:
        frame = super().read()
        if frame is None:
            self.close(check=True)
        return frame

    def check_started(self, seconds: float = 1.0) -> None:
        """A one-line error now if ffmpeg gives up within `seconds` (a device it cannot open)."""
        try:
            self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return
        if self.proc.returncode != 0:
            self.close(check=True)

    def close(self, check: bool = False) -> None:
        from rppgedit.video import ffmpeg

        if self.proc.poll() is None and not check:
            self.proc.kill()
        self.proc.stdout.close()
        rc = self.proc.wait()
        safe_write.release_process(self.proc)
        if self._stderr.closed:
            return
        self._stderr.seek(0)
        stderr = self._stderr.read().decode("utf-8", "replace")
        self._stderr.close()
        problem = ffmpeg.first_error(stderr)
        if check and (rc != 0 or problem):
            detail = problem or f"exit status {rc}"
            raise RppgEditError(f"{self.url}: cannot read it (ffmpeg: {detail})")


class RawSink:
    """Writes rgb24 frames to a binary stream (stdout, a pipe, a file object)."""

    def __init__(self, stream, name: str = "the output pipe"):
        self.stream, self.name, self.count = stream, name, 0

    def write(self, frame: np.ndarray) -> None:
        try:
            self.stream.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
        except (BrokenPipeError, OSError) as err:
            raise RppgEditError(
                f"{self.name} was closed after {self.count} frames ({err.strerror or err})"
            ) from None
        self.count += 1

    def write_all(self, frames: list[np.ndarray]) -> None:
        """Writes the frames of one burst, in order."""
        for frame in frames:
            self.write(frame)

    def close(self) -> None:
        try:
            self.stream.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def abort(self) -> None:
        self.close()


class FfmpegSink(RawSink):
    """Frames encoded by an ffmpeg program (`rppgedit.video.ffmpeg.exe`) to an output URL in
    `output_format` (``v4l2``: a v4l2loopback virtual camera such as /dev/video2, as yuv420p,
    which video-call apps accept)."""

    def __init__(self, url: str, output_format: str, width: int, height: int, fps: float):
        from rppgedit.video import ffmpeg

        args = [ffmpeg.exe(), "-hide_banner", "-nostats", "-loglevel", "level+warning"]
        args += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", f"{width}x{height}"]
        args += ["-framerate", f"{fps:g}", "-i", "pipe:0", "-f", output_format]
        args += ["-pix_fmt", "yuv420p"] if output_format == "v4l2" else []
        args += [url]
        self.proc, self._stderr = _start_ffmpeg(args, url, stdin=subprocess.PIPE)
        super().__init__(self.proc.stdin, name=url)

    def close(self) -> None:
        from rppgedit.video import ffmpeg

        try:
            self.proc.stdin.close()
        except OSError:
            pass
        rc = self.proc.wait()
        safe_write.release_process(self.proc)
        self._stderr.seek(0)
        stderr = self._stderr.read().decode("utf-8", "replace")
        self._stderr.close()
        problem = ffmpeg.first_error(stderr)
        if rc != 0 or problem:
            raise RppgEditError(f"{self.name}: cannot write to it (ffmpeg: {problem or rc})")

    def abort(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.close()
        except RppgEditError:
            pass


class FileSink:
    """Frames written to a video file (atomically, `encode.VideoWriter`)."""

    def __init__(self, path, width, height, fps, *, overwrite=False, inputs=()):
        from rppgedit.video import encode

        self.writer = encode.VideoWriter(
            path, fps, width, height, overwrite=overwrite, inputs=inputs
        )

    # Frames per encoder item are bounded by this many bytes (145 frames of 640x480).
    BURST_BYTES = 128 * 2**20

    def write_all(self, frames: list[np.ndarray]) -> None:
        """Hands the frames of one burst to the encoder's thread in a few large items: its queue
        holds two, and a burst handed over frame by frame kept the loop waiting on the encoder
        (FFV1 at 640x480, paced at 30 frames/s: 7.3 of 42.9 s, and 2 frames dropped)."""
        if not frames:
            return
        step = max(1, self.BURST_BYTES // frames[0].nbytes)
        for i in range(0, len(frames), step):
            self.writer.write(np.stack(frames[i : i + step]))

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


def _start_ffmpeg(args: list[str], url: str, **pipe):
    """ffmpeg with `pipe` (stdin= or stdout=), in its own session, stderr to a temporary file,
    stopped with this process (`safe_write.register_process`); a one-line error naming `url` when
    it cannot start. Returns (the process, its stderr file)."""
    stderr = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(args, stderr=stderr, start_new_session=True, **pipe)
    except OSError as err:
        stderr.close()
        raise RppgEditError(f"{url}: cannot start ffmpeg ({err.strerror})") from None
    safe_write.register_process(proc)
    return proc, stderr


# ------------------------------------------------------------------------------------------------
# The loop.


_END = object()


def run_live(
    source,
    sink,
    edit: LiveEdit,
    *,
    realtime: bool = False,
    max_lag: int | None = None,
    log: Callable[[str], None] | None = None,
) -> LiveStats:
    """Streams `source` through `edit` into `sink` until the source ends.

    A reader thread reads the source ahead of the edit; with `realtime` (a camera, a paced file)
    it never waits: when more than `max_lag` frames (default: one second of frames) are waiting,
    the oldest is dropped and counted, so a frame waits at most `max_lag` frames before the edit
    takes it. Otherwise (a pipe) the reader waits for the edit and nothing is lost.

    Returns the run's `LiveStats` (also in `edit.stats`); `log` gets the drop warnings.
    """
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    stats = edit.stats
    max_lag = max(1, round(edit.fps) if max_lag is None else int(max_lag))
    frames: queue.Queue = queue.Queue(maxsize=0 if realtime else 4)
    lock = threading.Lock()
    stop = threading.Event()
    waiting: collections.deque = collections.deque()

    def reader():
        try:
            source_index = 0
            while not stop.is_set():
                frame = source.read()
                if frame is None:
                    break
                item = (source_index, frame, time.perf_counter())
                source_index += 1
                with lock:
                    stats.frames_in += 1
                if realtime:
                    with lock:
                        waiting.append(item)
                        if len(waiting) > max_lag:
                            waiting.popleft()
                            stats.dropped += 1
                            if stats.dropped in (1, 10, 100) or stats.dropped % 1000 == 0:
                                log(
                                    f"live: {stats.dropped} frames dropped so far (the edit "
                                    f"runs behind the source by more than {max_lag} frames)"
                                )
                    frames.put(None)  # a wake-up
                else:
                    frames.put(item)
            frames.put(_END)
        except BaseException as err:  # noqa: BLE001 - handed to the edit loop, raised there
            frames.put(err)

    def next_item(timeout):
        while True:
            got = frames.get(timeout=timeout)
            if got is None:
                with lock:
                    if waiting:
                        return waiting.popleft()
                continue
            if got is _END and realtime:
                with lock:
                    if waiting:  # frames still waiting go first; the end mark comes back
                        frames.put(_END)
                        return waiting.popleft()
            return got

    latencies = []
    start = None

    trimmer = heap.Trimmer()  # a stream that runs for hours: its heap would creep

    def write(ready):
        if not ready:
            return
        trimmer.maybe()
        tic = time.perf_counter()
        sink.write_all([frame for frame, _ in ready])
        now = time.perf_counter()
        stats.stages["write"] += now - tic
        latencies.extend(now - read_at for _, read_at in ready)
        # the burst's first frame is the one furthest behind the edit
        stats.latency_frames_max = max(stats.latency_frames_max, edit.count - stats.frames_out - 1)
        stats.frames_out += len(ready)

    thread = threading.Thread(target=reader, name="rppgedit-live-reader", daemon=True)
    thread.start()
    blas = contextlib.ExitStack()
    blas.enter_context(cpu_threads.single_thread_blas())
    try:
        while True:
            try:
                item = next_item(0.005)
            except queue.Empty:
                write(edit.poll())
                continue
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            source_index, frame, read_at = item
            if start is None:
                start = read_at
            write(edit.push(frame, source_index, read_at))
        write(edit.finish())
        sink.close()
    except BaseException:
        stop.set()
        sink.abort()
        raise
    finally:
        stop.set()
        blas.close()
        source.close()
    if start is not None:
        stats.seconds = time.perf_counter() - start
    if latencies:
        stats.latency_s_mean = float(np.mean(latencies))
        stats.latency_s_max = float(np.max(latencies))
    return stats
