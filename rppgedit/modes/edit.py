"""`rppgedit edit`: edit one video's pulse to a target rate, or remove it, and print the report."""

from __future__ import annotations

from rppgedit.modes import common


def run(s) -> None:
    from rppgedit import pipeline, safe_write
    from rppgedit.video import encode

    common.require(s, "input", "output")
    common.check_settings(s)
    face_box = common.face_box(s)
    encode.check_output_path(s.output, inputs=(s.input,), overwrite=s.overwrite)
    safe_write.check_destination(
        pipeline.report_path_for(s.output), inputs=(s.input, s.output), overwrite=s.overwrite
    )
    common.check_weights(s)
    common.check_input(s.input)
    summary = pipeline.run_edit(
        s.input,
        s.output,
        common.job(s),
        face_box=face_box,
        allow_no_face=s.allow_no_face,
        overwrite=s.overwrite,
        output=common.output_spec(s),
        progress=s.progress,
        plots=common.plots(s),
        config=s.tree(),
        started=s.started,
    )
    common.print_report(summary)
