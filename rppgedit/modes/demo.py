"""`rppgedit demo`: a complete edit on a generated face clip, needing no download.

A seeded synthetic face clip with a known 72 bpm pulse (`clips.demo_clip`) is written losslessly,
then edited with the job's method to the job's target, and the before/after table is printed. The
face is found by the same tracker as in any user's video (BlazeFace, the forehead-to-chin crop the
deep weights were trained on), not by the generator's ground truth.
"""

from __future__ import annotations

import pathlib

from rppgedit.modes import common


def run_demo(
    out_dir: str,
    job,
    *,
    progress: bool = True,
    plots: bool = True,
    config: dict | None = None,
    started: float | None = None,
) -> dict:
    """Generates `out_dir/demo_input.mkv`, edits it to `out_dir/demo_edited.mkv` with the
    `pipeline.EditJob` `job`, returns the report (`config`: the resolved settings written into it;
    `started`: as in `pipeline.run_edit`, the generated clip then counts in the start-up)."""
    from rppgedit import pipeline
    from rppgedit.data import clips
    from rppgedit.video import encode

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clip = clips.demo_clip()
    source = out / "demo_input.mkv"
    encode.write_video(source, clip.frames, clip.fps, overwrite=True)
    print(f"demo: synthetic face clip, true heart rate {clip.true_hr_bpm:.0f} bpm -> {source}")
    return pipeline.run_edit(
        str(source),
        str(out / "demo_edited.mkv"),
        job,
        overwrite=True,
        progress=progress,
        plots=plots,
        config=config,
        started=started,
    )


def run(s) -> None:
    common.check_settings(s)
    summary = run_demo(
        s.demo_dir,
        common.job(s),
        progress=s.progress,
        plots=common.plots(s),
        config=s.tree(),
        started=s.started,
    )
    common.print_report(summary)
