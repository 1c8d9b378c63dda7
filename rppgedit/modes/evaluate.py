"""`rppgedit evaluate`: read the heart rate of a video with a set of estimators."""

from __future__ import annotations

import json

from rppgedit.modes import common


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
    from rppgedit.data import ground_truth as gt_files
    from rppgedit.pipeline import find_boxes
    from rppgedit.readings import format_table, read_heart_rates
    from rppgedit.video import crop, decode, skin

    video = decode.read_video(input_path)
    boxes = find_boxes(video.frames, face_box=face_box, allow_no_face=allow_no_face)
    clip = crop.crop_resize(video.frames, boxes, work_size)
    mask = skin.skin_mask(clip, method=mask_method)
    readings = read_heart_rates(clip, mask, video.fps, estimators)
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
    table = format_table(rows, columns)
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


def run(s) -> None:
    from rppgedit import safe_write

    common.require(s, "input")
    common.check_settings(s)
    face_box = common.face_box(s)
    if s.json_out:
        safe_write.check_destination(s.json_out, inputs=(s.input,), overwrite=s.overwrite)
    common.check_weights(s)
    common.check_input(s.input)
    result = run_evaluate(
        s.input,
        tuple(s.estimators),
        face_box=face_box,
        allow_no_face=s.allow_no_face,
        mask_method=s.mask_method,
        work_size=s.work_size,
        ground_truth=s.ground_truth,
    )
    print(result["table"])
    if s.json_out:
        payload = dict(result["json"], config=s.tree())
        safe_write.write_text_atomic(
            s.json_out,
            json.dumps(safe_write.json_safe(payload), indent=2),
            overwrite=s.overwrite,
            inputs=(s.input,),
        )
