"""Privacy-Phys over many synthetic clips: which estimators read the target, or lose the pulse.

For each seed, a 72 bpm synthetic clip (256 frames, 48x48, the face box as the crop) is edited with
the default settings (or `--surrogates`, `--channel_weight`) to `--target` bpm, or with the pulse
removed (`--target 0`), and every estimator is read before and after. Prints one row per clip and
the misses per estimator; writes JSON under results/.

    python benchmarks/privacy_phys_seeds.py --seeds 0-9 --target 120
    python benchmarks/privacy_phys_seeds.py --seeds 0-9 --target 60 --surrogates physnet_pure:1,pos:0.5,chrom:0.5,pbv:1
    python benchmarks/privacy_phys_seeds.py --seeds 0-5 --target 0 --channel_weight 3

A target is hit when an estimator reads it within 3 bpm; removal succeeds when the SNR at the true
HR (`signals.pulse_snr`) falls below 0 dB.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from rppgedit import metrics, pipeline, readings, signals, targets
from rppgedit.data import synthetic
from rppgedit.editors.privacy_phys import DEFAULT_SURROGATES
from rppgedit.video import crop

TRUE_HR, FPS, FRAMES, SIZE = 72.0, 30.0, 256, 48
ESTIMATORS = ("green", "pos", "chrom", "lgi", "pbv", "omit", "ica", "pca")
DEEP = ("physnet_pure", "physnet_rlap")


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def _surrogates(text: str | None):
    if not text:
        return DEFAULT_SURROGATES
    return tuple((n, float(w)) for n, w in (p.split(":") for p in text.split(",")))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--target", type=float, default=120.0, help="bpm; 0 removes the pulse")
    parser.add_argument("--surrogates", default=None)
    parser.add_argument("--channel_weight", type=float, default=None)
    parser.add_argument("--out", default="results/privacy_phys_seeds.json")
    args = parser.parse_args()
    remove = args.target == 0
    names = ESTIMATORS + DEEP
    options = [("surrogates", _surrogates(args.surrogates))]
    if args.channel_weight is not None:
        options.append(("channel_weight", args.channel_weight))
    spec = (
        targets.TargetSpec(kind="none")
        if remove
        else targets.TargetSpec(kind="sinusoid", hr_bpm=args.target)
    )
    job = pipeline.EditJob(
        target=spec,
        work_size=32,
        window=128,
        overlap=0,
        batch_windows=2,
        method_options=tuple(options),
        estimators=("pos",),
    )
    records, misses = [], dict.fromkeys(names, 0)
    for seed in _seeds(args.seeds):
        clip = synthetic.make_clip(seed, hr_bpm=TRUE_HR, num_frames=FRAMES, height=SIZE, width=SIZE)
        boxes = clip.crop_boxes
        result = pipeline.edit_frames(clip.frames, FPS, boxes, job)
        before_clip = crop.crop_resize(clip.frames, boxes, 32)
        after_clip = crop.crop_resize(result.frames, boxes, 32)
        row = {"seed": seed, "psnr_db": float(metrics.psnr(clip.frames, result.frames))}
        for name in names:
            before = readings.estimate_bvp(name, before_clip, result.mask, FPS)
            after = readings.estimate_bvp(name, after_clip, result.mask, FPS)
            if remove:
                value = float(signals.pulse_snr(after, FPS, TRUE_HR))
                ok = value < 0.0
            else:
                value = float(signals.heart_rate(after, FPS))
                ok = abs(value - args.target) <= 3.0
            row[name] = {
                "before_hr": float(signals.heart_rate(before, FPS)),
                "after": value,
                "ok": ok,
            }
            misses[name] += not ok
        records.append(row)
        failed = {n: round(row[n]["after"], 1) for n in names if not row[n]["ok"]}
        print(f"seed {seed:3d}  PSNR {row['psnr_db']:.1f} dB  misses {failed}", flush=True)
    total = len(records) * len(names)
    print(f"{total - sum(misses.values())}/{total} readings ok; misses per estimator: {misses}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "records": records, "misses": misses}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
