"""The edit pipeline around an editor: face crop, skin mask, windows, edit, paste, quantise, write.

    frames ──track/crop──► clip (T,S,S,3) ──skin──► mask ──windows──► editor.edit_batch ──► residual
    residual ──paste into the full frames, inside the full-resolution skin mask──► quantise ──► write

Only the residual (edited - original crop) goes back into the video, upsampled smoothly, inside the
skin mask; every other pixel of the output is bit-identical to the input.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
import time
from typing import Any

import jax
import numpy as np
from scipy import ndimage

from rppgedit import editors, evaluation, metrics, targets
from rppgedit.errors import RppgEditError
from rppgedit.video import crop, face, io, skin
from rppgedit.windows import overlap_add, window_starts

MIN_FRAMES = 32


@dataclasses.dataclass(frozen=True)
class EditJob:
    """Everything that decides an edit, apart from the input and output paths.

    Attributes:
      method: editor name (see `rppgedit.editors.METHODS`).
      target: what to embed (or remove).
      work_size: side of the square face crop the editor works on, in pixels.
      window: frames per editing window (the surrogate's length).
      overlap: minimum overlap of consecutive windows, blended with cross-fades.
      batch_windows: windows edited together in one vmapped call.
      mask_method: skin-mask rule (see `rppgedit.video.skin`).
      quantize: "stochastic" (keeps sub-level edits in 8-bit output) or "round".
      bit_depth: 8 or 16 bits per channel in the output file.
      seed: seed of the stochastic rounding and of random target phases.
      method_options: (field, value) overrides of the editor's config.
      estimators: estimators read before and after for the report.
    """

    method: str = "privacy_phys"
    target: targets.TargetSpec = targets.TargetSpec()
    work_size: int = 64
    window: int = 128
    overlap: int = 32
    batch_windows: int = 2
    mask_method: str = "ycrcb_adaptive"
    quantize: str = "stochastic"
    bit_depth: int = 8
    seed: int = 0
    method_options: tuple[tuple[str, Any], ...] = ()
    estimators: tuple[str, ...] = ("green", "pos", "chrom", "physnet_pure")


@dataclasses.dataclass
class EditResult:
    """The edited frames and what was computed on the way."""

    frames: np.ndarray  # uint8 or uint16 (T,H,W,3)
    boxes: np.ndarray  # (T,4) face boxes
    clip: np.ndarray  # (T,S,S,3) original crop in [0,1]
    mask: np.ndarray  # (T,S,S) skin mask of the crop
    mask_full: np.ndarray  # (T,H,W) pixels allowed to change
    residual: np.ndarray  # (T,S,S,3) edited - clip
    target: np.ndarray | None
    seconds: dict[str, float]


def editor_config(job: EditJob, fps: float):
    """The editor's static config for `job` at frame rate `fps`."""
    module = editors.get(job.method)
    options = dict(job.method_options)
    try:
        return module.Config(fps=float(fps), remove=job.target.kind == "none", **options)
    except (TypeError, ValueError) as err:
        raise RppgEditError(f"bad options for method {job.method!r}: {err}") from None


def edit_clip(clip, mask, target, cfg, state, job: EditJob, progress: bool = False) -> np.ndarray:
    """Edits a whole crop window by window; returns the blended residual (T,S,S,3) in [0,1] units."""
    module = editors.get(job.method)
    num = clip.shape[0]
    if num < MIN_FRAMES:
        raise RppgEditError(f"clip has {num} frames; at least {MIN_FRAMES} are needed")
    length = min(job.window, num - num % 4)
    starts = window_starts(num, length, min(job.overlap, length // 2))
    wave = np.zeros(num, np.float32) if target is None else np.asarray(target, np.float32)
    batches = [starts[i : i + job.batch_windows] for i in range(0, len(starts), job.batch_windows)]
    residuals = []
    bar = _progress(len(starts), "edit windows", progress)
    for batch in batches:
        padded = batch + [batch[-1]] * (job.batch_windows - len(batch))  # one compiled shape
        clips = np.stack([clip[s : s + length] for s in padded])
        masks = np.stack([mask[s : s + length] for s in padded])
        waves = np.stack([wave[s : s + length] for s in padded])
        edited, _ = module.edit_batch(state, clips, masks, waves, cfg)
        residuals.append(np.asarray(edited)[: len(batch)] - clips[: len(batch)])
        bar.update(len(batch))
    bar.close()
    return overlap_add(np.concatenate(residuals), starts, num)


def edit_frames(
    frames: np.ndarray, fps: float, boxes: np.ndarray, job: EditJob, state=None, progress=False
) -> EditResult:
    """Edits uint8 frames (T,H,W,3) whose face boxes (T,4) are known."""
    seconds = {}
    tic = time.perf_counter()
    clip = crop.crop_resize(frames, boxes, job.work_size)
    mask = skin.skin_mask(clip, method=job.mask_method)
    mask_full = full_frame_mask(mask, boxes, frames.shape[1:3])
    seconds["crop_mask"] = time.perf_counter() - tic
    target = targets.make_target(job.target, frames.shape[0], fps)
    cfg = editor_config(job, fps)
    tic = time.perf_counter()
    if state is None:
        state = editors.get(job.method).load_state(cfg)
    residual = edit_clip(clip, mask, target, cfg, state, job, progress)
    seconds["edit"] = time.perf_counter() - tic
    tic = time.perf_counter()
    pasted = crop.paste_residual(frames, boxes, residual, mask_full)
    if job.bit_depth == 16:
        out = crop.quantize_16bit(pasted * (65535.0 / 255.0), job.seed)
    else:
        out = crop.quantize(pasted, job.seed, mode=job.quantize)
    seconds["paste"] = time.perf_counter() - tic
    return EditResult(out, boxes, clip, mask, mask_full, residual, target, seconds)


def full_frame_mask(mask: np.ndarray, boxes: np.ndarray, frame_shape) -> np.ndarray:
    """The full-resolution pixels allowed to change: the crop mask grown by one crop pixel, placed
    into the frames. The residual is zero outside the crop mask and fades over one crop pixel when
    upsampled; growing the mask by that pixel keeps the fade instead of cutting it on a staircase."""
    grown = ndimage.binary_dilation(mask, structure=np.ones((1, 3, 3), bool))
    return crop.mask_to_frame(grown, boxes, *frame_shape)


def find_boxes(frames, *, face_box=None, allow_no_face=False) -> np.ndarray:
    """Face boxes (T,4): a user's fixed box, the tracked face, or (when allowed) a centred box."""
    num, height, width = frames.shape[:3]
    if face_box is not None:
        return np.tile(np.asarray(face_box, np.float32), (num, 1))
    try:
        return face.track_face(frames)
    except RppgEditError:
        if not allow_no_face:
            raise
        return np.tile(face.fixed_box(height, width), (num, 1)).astype(np.float32)


def report_rows(job: EditJob, result: EditResult, original: np.ndarray, fps: float) -> dict:
    """Before/after heart rates of `job.estimators`, PSNR and SSIM of the full frames."""
    scale = 257.0 if result.frames.dtype == np.uint16 else 1.0
    out8 = result.frames if scale == 1.0 else np.round(result.frames / scale).astype(np.uint8)
    after_clip = crop.crop_resize(out8, result.boxes, original_crop_size(result))
    params = {}
    before = evaluation.read_heart_rates(result.clip, result.mask, fps, job.estimators, params)
    after = evaluation.read_heart_rates(after_clip, result.mask, fps, job.estimators, params)
    target_hr = None if job.target.kind in ("none", "file") else job.target.hr_bpm
    rows = [
        {
            "estimator": n,
            "hr_before": before[n]["hr_bpm"],
            "hr_after": after[n]["hr_bpm"],
            "snr_before": before[n]["snr_db"],
            "snr_after": after[n]["snr_db"],
            "abs_err_to_target": None if target_hr is None else abs(after[n]["hr_bpm"] - target_hr),
        }
        for n in job.estimators
    ]
    return {
        "rows": rows,
        "psnr_db": float(metrics.psnr(original, out8)),
        "ssim": float(metrics.ssim(original, out8)),
        "skin_coverage": float(result.mask.mean()),
        "target_hr_bpm": target_hr,
    }


def original_crop_size(result: EditResult) -> int:
    return int(result.clip.shape[1])


def run_edit(
    input_path: str,
    output_path: str,
    job: EditJob,
    *,
    face_box=None,
    allow_no_face: bool = False,
    overwrite: bool = False,
    codec: str | None = None,
    allow_lossy: bool = False,
    report: bool = True,
    progress: bool = True,
) -> dict:
    """Edits a video file and writes the output (atomically) plus `report.json` beside it.

    Returns the report dict (also printed as a table by the command line).
    """
    io.check_output_path(output_path, inputs=(input_path,), overwrite=overwrite)
    tic = time.perf_counter()
    video = io.read_video(input_path)
    read_s = time.perf_counter() - tic
    tic = time.perf_counter()
    boxes = find_boxes(video.frames, face_box=face_box, allow_no_face=allow_no_face)
    track_s = time.perf_counter() - tic
    result = edit_frames(video.frames, video.fps, boxes, job, progress=progress)
    tic = time.perf_counter()
    io.write_video(
        output_path,
        result.frames,
        video.fps,
        codec=codec,
        overwrite=overwrite,
        inputs=(input_path,),
        allow_lossy=allow_lossy,
    )
    write_s = time.perf_counter() - tic
    seconds = {"read": read_s, "track": track_s, **result.seconds, "write": write_s}
    summary = {
        "input": str(input_path),
        "output": str(output_path),
        "method": job.method,
        "target": dataclasses.asdict(job.target),
        "frames": int(video.frames.shape[0]),
        "fps": float(video.fps),
        "seconds": seconds,
        "fps_end_to_end": video.frames.shape[0] / max(sum(seconds.values()), 1e-9),
        "devices": [str(d) for d in jax.devices()],
    }
    if report:
        summary.update(report_rows(job, result, video.frames, video.fps))
        report_path = pathlib.Path(output_path).with_name(
            pathlib.Path(output_path).name.split(".")[0] + ".report.json"
        )
        io.write_text_atomic(report_path, json.dumps(_clean(summary), indent=2))
        summary["report_path"] = str(report_path)
    return summary


def _clean(value):
    """JSON-safe copy: NaN/inf become None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _NoBar:
    def update(self, n):
        del n

    def close(self):
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="win", file=sys.stderr, dynamic_ncols=True)
