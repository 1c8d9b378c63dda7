"""The edit pipeline around an editor: face crop, skin mask, windows, edit, paste, quantise, write.

    frames ──track/crop──► clip (T,S,S,3) ──skin──► mask ──windows──► editor.edit_batch ──► residual
    residual ──paste into the full frames, inside the full-resolution skin mask──► quantise ──► write

Only the residual (edited - original crop) goes back into the video, upsampled smoothly, inside the
skin mask; every other pixel of the output is bit-identical to the input.
"""

from __future__ import annotations

import dataclasses
import json
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
# Full frames are decoded, pasted, quantised and encoded in chunks of about this many bytes of
# float32 pixels (the paste works on the 0-255 float scale): 128 frames up to 208x208, 4 at 1080p.
CHUNK_BYTES = 64 * 2**20


def chunk_frames(height: int, width: int) -> int:
    """Frames per chunk for frames of this size (also the unit of the rounding seed)."""
    return int(np.clip(CHUNK_BYTES // (height * width * 3 * 4), 4, 128))


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
    if job.target.kind == "none":
        editors.check_removal(job.method)
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
    bar = progress_bar(len(starts), "edit windows", progress)
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


def crop_and_mask(frames: np.ndarray, boxes: np.ndarray, job: EditJob):
    """The working-size face crop (T,S,S,3) in [0,1] and its skin mask (T,S,S), frame by frame."""
    clip = crop.crop_resize(frames, boxes, job.work_size)
    return clip, skin.skin_mask(clip, method=job.mask_method)


def paste_chunk(frames, boxes, residual, mask, job: EditJob, index: int):
    """Pastes a chunk's residual into its full frames and quantises them.

    Args:
      frames: uint8 (T,H,W,3) original frames of chunk `index` (see `chunk_frames`).
      boxes, residual, mask: the chunk's boxes (T,4), crop residual (T,S,S,3), crop mask (T,S,S).
      job: quantisation and bit depth.
      index: chunk number; the stochastic rounding of chunk i is seeded by (job.seed, i), so a
        streamed edit and an in-memory one give the same bits.

    Returns:
      (output frames uint8 or uint16 (T,H,W,3), full-resolution mask (T,H,W)).
    """
    mask_full = full_frame_mask(mask, boxes, frames.shape[1:3])
    pasted = crop.paste_residual(frames, boxes, residual, mask_full)
    key = jax.random.fold_in(jax.random.key(job.seed), index)
    if job.bit_depth == 16:
        out = crop.quantize_16bit(pasted * (65535.0 / 255.0), key)
    else:
        out = crop.quantize(pasted, key, mode=job.quantize)
    return out, mask_full


def edit_frames(
    frames: np.ndarray, fps: float, boxes: np.ndarray, job: EditJob, state=None, progress=False
) -> EditResult:
    """Edits uint8 frames (T,H,W,3) whose face boxes (T,4) are known, all in memory.

    Same output bits as `run_edit`, which streams a file through the same steps."""
    seconds = {}
    tic = time.perf_counter()
    clip, mask = crop_and_mask(frames, boxes, job)
    seconds["crop_mask"] = time.perf_counter() - tic
    target = targets.make_target(job.target, frames.shape[0], fps)
    cfg = editor_config(job, fps)
    tic = time.perf_counter()
    if state is None:
        state = editors.get(job.method).load_state(cfg)
    residual = edit_clip(clip, mask, target, cfg, state, job, progress)
    seconds["edit"] = time.perf_counter() - tic
    tic = time.perf_counter()
    outs, masks_full = [], []
    size = chunk_frames(*frames.shape[1:3])
    for index, start in enumerate(range(0, frames.shape[0], size)):
        part = slice(start, start + size)
        out, mask_full = paste_chunk(
            frames[part], boxes[part], residual[part], mask[part], job, index
        )
        outs.append(out)
        masks_full.append(mask_full)
    seconds["paste"] = time.perf_counter() - tic
    out, mask_full = np.concatenate(outs), np.concatenate(masks_full)
    return EditResult(out, boxes, clip, mask, mask_full, residual, target, seconds)


def full_frame_mask(mask: np.ndarray, boxes: np.ndarray, frame_shape) -> np.ndarray:
    """The full-resolution pixels allowed to change: the crop mask grown by one crop pixel, placed
    into the frames. The residual is zero outside the crop mask and fades over one crop pixel when
    upsampled; growing the mask by that pixel keeps the fade instead of cutting it on a staircase."""
    grown = ndimage.binary_dilation(mask, structure=np.ones((1, 3, 3), bool))
    return crop.mask_to_frame(grown, boxes, *frame_shape)


def find_boxes(frames, *, face_box=None, allow_no_face=False, shape=None, name="video"):
    """Face boxes (T,4): a user's fixed box, the tracked face, or (when allowed) a centred box.

    Args:
      frames: uint8 (T,H,W,3) frames, or an iterable of (H,W,3) frames (read once, not kept).
      face_box: (x0, y0, x1, y1) to use on every frame instead of tracking.
      allow_no_face: fall back to a centred box when no face is found.
      shape: (T, H, W); needed when `frames` is not an array.
      name: the video's name in error messages.
    """
    num, height, width = frames.shape[:3] if shape is None else shape
    if face_box is not None:
        return np.tile(np.asarray(face_box, np.float32), (num, 1))
    try:
        boxes = face.track_face(frames, name=name)
    except RppgEditError:
        if not allow_no_face:
            raise
        return np.tile(face.fixed_box(height, width), (num, 1)).astype(np.float32)
    if len(boxes) != num:
        raise RppgEditError(f"{name}: decoded {len(boxes)} frames, expected {num}")
    return boxes


def report_rows(job: EditJob, result: EditResult, original: np.ndarray, fps: float) -> dict:
    """Before/after heart rates of `job.estimators`, PSNR and SSIM of the full frames."""
    after_clip = crop.crop_resize(result.frames, result.boxes, original_crop_size(result))
    original, out = _unit(original), _unit(result.frames)
    psnr_db, ssim = float(metrics.psnr(original, out)), float(metrics.ssim(original, out))
    return _report(job, result.clip, result.mask, after_clip, psnr_db, ssim, fps)


def _unit(frames: np.ndarray) -> np.ndarray:
    """uint8 or uint16 frames as float32 in [0, 1] (16-bit output is compared at full precision)."""
    return frames.astype(np.float32) / np.float32(np.iinfo(frames.dtype).max)


def _report(job: EditJob, clip, mask, after_clip, psnr_db: float, ssim: float, fps: float) -> dict:
    params = {}
    before = evaluation.read_heart_rates(clip, mask, fps, job.estimators, params)
    after = evaluation.read_heart_rates(after_clip, mask, fps, job.estimators, params)
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
        "psnr_db": psnr_db,
        "ssim": ssim,
        "skin_coverage": float(mask.mean()),
        "target_hr_bpm": target_hr,
    }


def original_crop_size(result: EditResult) -> int:
    return int(result.clip.shape[1])


def report_path_for(output_path) -> pathlib.Path:
    """Where `run_edit` writes the report of `output_path`: OUT.report.json beside OUT.mkv."""
    output_path = pathlib.Path(output_path)
    return output_path.with_name(output_path.name.split(".")[0] + ".report.json")


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

    The file is streamed in chunks (`chunk_frames`), three times: to track the face, to cut
    the working-size crop and its skin mask, and to paste, quantise and encode. Memory holds the
    crop of the whole video (float32 T x S x S x 3, its residual and the edited crop read for the
    report: 0.9 GB each for 10 minutes at 30 fps and S = 64) and a few chunks of full frames, never
    the whole video. The output bits equal
    `edit_frames` on the decoded frames.

    Returns the report dict (also printed as a table by the command line).
    """
    io.check_output_path(output_path, inputs=(input_path,), overwrite=overwrite)
    name = pathlib.Path(input_path).name
    info = io.probe(input_path)
    cfg = editor_config(job, info.fps)  # bad options fail before any decoding
    seconds = {}

    def chunks():
        return io.iter_windows(input_path, chunk_frames(info.height, info.width))

    def frames_of(stream):
        for _, frames in stream:
            yield from frames

    tic = time.perf_counter()
    shape = (info.num_frames, info.height, info.width)
    boxes = find_boxes(
        frames_of(chunks()),
        face_box=face_box,
        allow_no_face=allow_no_face,
        shape=shape,
        name=name,
    )
    seconds["read_track"] = time.perf_counter() - tic

    tic = time.perf_counter()
    parts = [crop_and_mask(frames, boxes[s : s + len(frames)], job) for s, frames in chunks()]
    clip = np.concatenate([c for c, _ in parts])
    mask = np.concatenate([m for _, m in parts])
    del parts
    if len(clip) != info.num_frames:
        raise RppgEditError(f"{name}: decoded {len(clip)} frames, expected {info.num_frames}")
    seconds["read_crop_mask"] = time.perf_counter() - tic

    tic = time.perf_counter()
    target = targets.make_target(job.target, info.num_frames, info.fps)
    state = editors.get(job.method).load_state(cfg)
    residual = edit_clip(clip, mask, target, cfg, state, job, progress)
    seconds["edit"] = time.perf_counter() - tic

    tic = time.perf_counter()
    sse, ssim_sum, after = 0.0, 0.0, []
    with io.VideoWriter(
        output_path,
        info.fps,
        info.width,
        info.height,
        codec=codec,
        overwrite=overwrite,
        inputs=(input_path,),
        bit_depth=job.bit_depth,
        allow_lossy=allow_lossy,
    ) as writer:
        for index, (start, frames) in enumerate(chunks()):
            part = slice(start, start + len(frames))
            out, _ = paste_chunk(frames, boxes[part], residual[part], mask[part], job, index)
            writer.write(out)
            if report:
                for i in range(0, len(frames), 4):  # 4 frames at a time bound the temporaries
                    original, edited = _unit(frames[i : i + 4]), _unit(out[i : i + 4])
                    sse += float(np.sum(np.square(edited - original), dtype=np.float64))
                    ssim_sum += float(metrics.ssim(original, edited)) * len(original)
                after.append(crop.crop_resize(out, boxes[part], clip.shape[1]))
    seconds["read_paste_write"] = time.perf_counter() - tic

    num = info.num_frames
    summary = {
        "input": str(input_path),
        "output": str(output_path),
        "method": job.method,
        "target": dataclasses.asdict(job.target),
        "frames": int(num),
        "fps": float(info.fps),
        "seconds": seconds,
        "fps_end_to_end": num / max(sum(seconds.values()), 1e-9),
        "devices": [str(d) for d in jax.devices()],
    }
    if report:
        mse = sse / (num * info.height * info.width * 3)
        psnr_db = float("inf") if mse == 0 else float(-10.0 * np.log10(mse))
        after_clip = np.concatenate(after)
        summary.update(_report(job, clip, mask, after_clip, psnr_db, ssim_sum / num, info.fps))
        report_path = report_path_for(output_path)
        io.write_text_atomic(
            report_path, json.dumps(io.json_safe(summary), indent=2, allow_nan=False)
        )
        summary["report_path"] = str(report_path)
    return summary


class _NoBar:
    def update(self, n):
        del n

    def close(self):
        pass


def progress_bar(total: int | None, desc: str, enabled: bool):
    """A tqdm bar on stderr (or a silent stand-in when disabled)."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="win", file=sys.stderr, dynamic_ncols=True)
