"""`rppgedit evaluate`: read the heart rate of a video with a set of estimators."""

from __future__ import annotations

import json
import os

from rppgedit.errors import RppgEditError
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
    plots: bool = False,
    progress: bool = False,
) -> dict:
    """`rppgedit.read_heart_rate` of `input_path`: {"table": printable text, "json": results
    dict, "figure": the spectra per estimator family with `plots`, else None}. With
    `ground_truth`, the ground-truth HR over the video's duration and each estimator's absolute
    error are included. The video is decoded once, for the readings and the figure both;
    `progress` shows a bar per pass (decode and track, readings)."""
    from rppgedit import api

    readings = api.read_heart_rate(
        input_path,
        estimators=estimators,
        ground_truth=ground_truth,
        face_box=face_box,
        allow_no_face=allow_no_face,
        mask_method=mask_method,
        work_size=work_size,
        plots=plots,
        progress=progress,
    )
    return {"table": repr(readings), "json": readings.to_dict(), "figure": readings.figure}


def figure_path_for(json_out: str) -> str:
    """Where `--plots` draws the spectra: NAME.png beside NAME.json."""
    root, _ = os.path.splitext(json_out)
    return root + ".png"


def run(s) -> None:
    from rppgedit import safe_write

    common.require(s, "input")
    common.check_settings(s)
    face_box = common.face_box(s)
    if s.json_out:
        safe_write.check_destination(s.json_out, inputs=(s.input,), overwrite=s.overwrite)
    figure_path = None
    if common.plots(s):
        if not s.json_out:
            raise RppgEditError("--plots needs --json_out (the figure is written beside it)")
        figure_path = figure_path_for(s.json_out)
        safe_write.check_destination(
            figure_path, inputs=(s.input, s.json_out), overwrite=s.overwrite
        )
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
        plots=figure_path is not None,
        progress=s.progress,
    )
    print(result["table"])
    if figure_path is not None:  # the spectra of every estimator, by family
        from rppgedit import report as reporting

        reporting.write_png(figure_path, result["figure"], overwrite=s.overwrite, inputs=(s.input,))
        result["json"]["figure"] = figure_path
        print(f"figure: {figure_path}")
    if s.json_out:
        payload = dict(result["json"], config=s.tree())
        safe_write.write_text_atomic(
            s.json_out,
            json.dumps(safe_write.json_safe(payload), indent=2),
            overwrite=s.overwrite,
            inputs=(s.input,),
        )
