"""Which surrogate ensemble transfers best to estimators it never saw? (Privacy-Phys default.)

Edits seeded synthetic face clips (light to dark skin, with motion) to a target heart rate with each
candidate ensemble and counts, per ensemble, how many HELD-BACK estimators (those not in the ensemble)
read the target within 3 bpm, and the PSNR. Prints a table and writes results/surrogate_choice.json.

    python benchmarks/surrogate_choice.py [--seeds 3] [--targets 120,60]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from rppgedit import metrics, pipeline, readings, targets
from rppgedit.data import synthetic
from rppgedit.estimators import registry
from rppgedit.readings import format_table
from rppgedit.video import crop

ALL = registry.DEFAULT_READERS
PULSE = (("colour", "pulse"),)
CANDIDATES = {
    "physnet_pure": (("physnet_pure", 1.0),),
    "physnet_pure+pos+chrom": (("physnet_pure", 1.0), ("pos", 0.5), ("chrom", 0.5)),
    "physnet_pure+pos+chrom+pbv": (
        ("physnet_pure", 1.0),
        ("pos", 0.5),
        ("chrom", 0.5),
        ("pbv", 0.5),
    ),
    "physnet_rlap+pos+chrom": (("physnet_rlap", 1.0), ("pos", 0.5), ("chrom", 0.5)),
    "physnet_both+pos+chrom": (
        ("physnet_pure", 0.5),
        ("physnet_rlap", 0.5),
        ("pos", 0.5),
        ("chrom", 0.5),
    ),
}
VARIANTS = {  # extra method options per candidate name suffix
    "": (),
    "/pulse-colour": PULSE,
}


def union_box(clip):
    return clip.crop_boxes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--targets", default="120,60")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--out", default="results/surrogate_choice.json")
    args = parser.parse_args()
    records = []
    for seed in range(args.seeds):
        tone = [0.1, 0.5, 0.9][seed % 3]
        hr_true = 66.0 + 7.0 * seed
        src = synthetic.make_clip(
            100 + seed,
            hr_bpm=hr_true,
            num_frames=args.frames,
            height=48,
            width=48,
            skin_tone=tone,
            motion=True,
            illumination=True,
        )
        boxes = union_box(src)
        for target_hr in [float(t) for t in args.targets.split(",")]:
            for cand in args.candidates.split(","):
                name, _, variant = cand.partition("/")
                variant = "/" + variant if variant else ""
                job = pipeline.EditJob(
                    target=targets.TargetSpec(kind="sinusoid", hr_bpm=target_hr),
                    work_size=32,
                    window=128,
                    overlap=0,
                    batch_windows=2,
                    method_options=(("surrogates", CANDIDATES[name]),) + VARIANTS[variant],
                )
                tic = time.perf_counter()
                res = pipeline.edit_frames(src.frames, src.fps, boxes, job)
                seconds = time.perf_counter() - tic
                after = crop.crop_resize(res.frames, boxes, 32)
                reads = readings.read_heart_rates(after, res.mask, src.fps, ALL)
                used = {n for n, _ in CANDIDATES[name]}
                held = [n for n in ALL if n not in used]
                hits = {n: abs(reads[n]["hr_bpm"] - target_hr) <= 3 for n in ALL}
                records.append(
                    {
                        "seed": seed,
                        "skin_tone": tone,
                        "true_hr": hr_true,
                        "target_hr": target_hr,
                        "ensemble": cand,
                        "psnr_db": metrics.psnr(src.frames, res.frames),
                        "held_back_hits": sum(hits[n] for n in held),
                        "held_back": len(held),
                        "all_hits": sum(hits.values()),
                        "seconds": seconds,
                        "hr": {n: reads[n]["hr_bpm"] for n in ALL},
                    }
                )
                r = records[-1]
                print(
                    f"seed {seed} tone {tone} target {target_hr:.0f} {cand}: held-back "
                    f"{r['held_back_hits']}/{r['held_back']} all {r['all_hits']}/{len(ALL)} "
                    f"PSNR {r['psnr_db']:.1f} ({seconds:.0f} s)",
                    flush=True,
                )
    rows = []
    for name in args.candidates.split(","):
        sel = [r for r in records if r["ensemble"] == name]
        rows.append(
            {
                "ensemble": name,
                "held": f"{sum(r['held_back_hits'] for r in sel)}/{sum(r['held_back'] for r in sel)}",
                "all": f"{sum(r['all_hits'] for r in sel)}/{len(ALL) * len(sel)}",
                "psnr": float(np.mean([r["psnr_db"] for r in sel])),
            }
        )
    print(
        format_table(
            rows,
            [
                ("ensemble", "ensemble", "s"),
                ("held", "held-back hits", "s"),
                ("all", "all hits", "s"),
                ("psnr", "PSNR dB", ".1f"),
            ],
        )
    )
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
