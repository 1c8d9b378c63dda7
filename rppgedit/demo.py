"""`--mode=demo`: a complete edit on a generated face clip, needing no download.

A seeded synthetic face clip with a known 72 bpm pulse is written losslessly, then edited with the
job's method to the job's target, and the before/after table is printed. The face is found by the
same tracker as in any user's video (BlazeFace, the forehead-to-chin crop the deep weights were
trained on), not by the generator's ground truth.
"""

from __future__ import annotations

import pathlib

from rppgedit import pipeline
from rppgedit.data import synthetic
from rppgedit.video import io

DEMO_HR_BPM = 72.0


def run_demo(out_dir: str, job: pipeline.EditJob, *, progress: bool = True) -> dict:
    """Generates `out_dir/demo_input.mkv`, edits it to `out_dir/demo_edited.mkv`, returns the report."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clip = synthetic.make_clip(
        0, hr_bpm=DEMO_HR_BPM, num_frames=300, height=128, width=128, motion=True
    )
    source = out / "demo_input.mkv"
    io.write_video(source, clip.frames, clip.fps, overwrite=True)
    print(f"demo: synthetic face clip, true heart rate {DEMO_HR_BPM:.0f} bpm -> {source}")
    return pipeline.run_edit(
        str(source),
        str(out / "demo_edited.mkv"),
        job,
        overwrite=True,
        progress=progress,
    )
