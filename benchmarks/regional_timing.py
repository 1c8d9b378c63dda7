"""Does an edit keep the face regions' own pulse timing? One real video edited to physiological
targets with Privacy-Phys's `regional_timing` on and off.

For each target (`--targets`, bpm; `kind="pulse"`) and setting, `pipeline.edit_frames` edits the
video (default settings otherwise) and POS reads each face region (forehead, left and right cheek,
`readings.regional_pulses`) of the original and of the edited crop: the regions' rates, and for
each pair of regions the correlation of their pulses and the lag (frames) at which it peaks. The
table gives both before and after, and the PSNR of the crop. Writes JSON.

    python benchmarks/regional_timing.py VIDEO [--targets 60,120] [--json results/regional.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib

from rppgedit import metrics, pipeline, readings, targets
from rppgedit.video import decode


def _pairs(coherence: dict) -> str:
    return " ".join(f"{r:.2f}/{lag:+d}" for r, lag in coherence.values())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("video")
    parser.add_argument("--targets", default="60,120")
    parser.add_argument("--json", default="results/regional_timing.json")
    args = parser.parse_args()
    video = decode.read_video(args.video)
    boxes = pipeline.find_boxes(video.frames)
    rows = []
    for hr in (float(t) for t in args.targets.split(",")):
        for timing in (True, False):
            job = pipeline.EditJob(
                target=targets.TargetSpec(kind="pulse", hr_bpm=hr),
                method_options=(("regional_timing", timing),),
                estimators=(),
            )
            result = pipeline.edit_frames(video.frames, video.fps, boxes, job)
            before, mask = pipeline.crop_and_mask(video.frames, boxes, job)
            after, _ = pipeline.crop_and_mask(result.frames, boxes, job)
            rows.append(
                {
                    "target_bpm": hr,
                    "regional_timing": timing,
                    "before": readings.regional_pulses(before, mask, video.fps),
                    "after": readings.regional_pulses(after, mask, video.fps),
                    "psnr_db": float(metrics.psnr(before, after)),
                }
            )
            r = rows[-1]
            print(
                f"target {hr:5.1f}  regional_timing {str(timing):5s}  rates "
                + " ".join(f"{v:.1f}" for v in r["after"]["hr_bpm"].values())
                + f"  r/lag (fh~lc fh~rc lc~rc) {_pairs(r['before']['coherence'])} -> "
                f"{_pairs(r['after']['coherence'])}  PSNR {r['psnr_db']:.2f} dB",
                flush=True,
            )
    out = pathlib.Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    tmp.replace(out)


if __name__ == "__main__":
    main()
