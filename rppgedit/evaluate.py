"""`--mode=evaluate`: read the heart rate of a video with a set of estimators."""

from __future__ import annotations

from rppgedit import evaluation
from rppgedit.data import ground_truth as gt_files
from rppgedit.pipeline import find_boxes
from rppgedit.video import crop, io, skin


def run_evaluate(
    input_path: str,
    estimators: tuple[str, ...],
    *,
    face_box=None,
    allow_no_face: bool = False,
    mask_method: str = "ycrcb_adaptive",
    work_size: int = 64,
    ground_truth: str | None = None,
) -> dict:
    """Reads `input_path`, finds the face, and reads every estimator's HR and SNR.

    Returns {"table": printable text, "json": results dict}. With `ground_truth`, the ground-truth
    HR over the video's duration and each estimator's absolute error are included.
    """
    video = io.read_video(input_path)
    boxes = find_boxes(video.frames, face_box=face_box, allow_no_face=allow_no_face)
    clip = crop.crop_resize(video.frames, boxes, work_size)
    mask = skin.skin_mask(clip, method=mask_method)
    readings = evaluation.read_heart_rates(clip, mask, video.fps, estimators)
    gt_hr = None
    if ground_truth:
        gt = gt_files.load(ground_truth)
        gt_hr = gt_files.heart_rate_of(gt, video.fps, duration_s=len(video.frames) / video.fps)
    rows = [
        {
            "estimator": name,
            "hr_bpm": r["hr_bpm"],
            "snr_db": r["snr_db"],
            "abs_err": None if gt_hr is None else abs(r["hr_bpm"] - gt_hr),
        }
        for name, r in readings.items()
    ]
    columns = [
        ("estimator", "estimator", "s"),
        ("hr_bpm", "HR bpm", ".1f"),
        ("snr_db", "SNR dB", ".1f"),
    ]
    if gt_hr is not None:
        columns.append(("abs_err", "|err| bpm", ".1f"))
    table = evaluation.format_table(rows, columns)
    if gt_hr is not None:
        table += f"\nground truth {gt_hr:.1f} bpm"
    return {
        "table": table,
        "json": {
            "input": str(input_path),
            "fps": video.fps,
            "frames": int(len(video.frames)),
            "ground_truth_hr_bpm": gt_hr,
            "skin_coverage": float(mask.mean()),
            "rows": rows,
        },
    }
