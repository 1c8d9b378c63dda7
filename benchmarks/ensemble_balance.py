"""How the Privacy-Phys surrogate ensemble is balanced: every surrogate fooled, at what cost?

Each candidate (`--candidates`, `balance[:temperature][+field=value...]`, e.g. `mean`,
`softmax:0.1`, `softmax:0.01+colour=pulse+learning_rate=0.07`; see `PrivacyPhysConfig`) edits the same
synthetic clips with the default ensemble (`DEFAULT_SURROGATES`) to each `--targets` rate. A clip is
one of `--seeds` x light/medium/dark skin (cycled by seed) x motion and lighting changes on/off
(alternating), 256 frames at 128x128, true rate 60-110 bpm drawn from the seed
(`synthetic.grid_clip`). The face is cropped
with `--crop`: `face` (the tracker's forehead-to-chin square, `SyntheticClip.crop_boxes`) or `head`
(the old, loose enclosing square of the head box, where PhysNet-PURE reads some clips far from the
truth before the edit: the case where a surrogate starts far off).

Per candidate the table gives: white-box success (surrogates reading the target within 3 bpm after
the edit, of all surrogate readings), clips where every surrogate was fooled, held-back estimators
(never surrogates) reading the target, face regions (forehead and cheeks, POS on each,
`readings.regional_pulses`) reading the target, the worst Pearson of a surrogate with the target,
and the crop's PSNR (mean and minimum). Writes JSON.

    python benchmarks/ensemble_balance.py --seeds 0-5 --targets 60,120 --crop face
    python benchmarks/ensemble_balance.py --seeds 0-5 --crop head --candidates mean softmax:0.1
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from rppgedit import metrics, pipeline, readings, signals, targets
from rppgedit.data import synthetic
from rppgedit.editors.privacy_phys import DEFAULT_SURROGATES
from rppgedit.video import crop

FPS, FRAMES, SIZE, HIT_BPM = 30.0, 256, 128, 3.0
SURROGATES = tuple(n for n, _ in DEFAULT_SURROGATES)
HELD_BACK = ("green", "lgi", "omit", "ica", "pca", "physnet_rlap")


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def make_clip(seed: int) -> synthetic.SyntheticClip:
    """The benchmark's clip for `seed` (see the module docstring)."""
    return synthetic.grid_clip(seed, num_frames=FRAMES, size=SIZE)


def boxes_for(clip: synthetic.SyntheticClip, kind: str) -> np.ndarray:
    if kind == "face":
        return clip.crop_boxes
    return np.tile(crop.enclosing_square(clip.face_boxes), (len(clip.frames), 1))


def _number(text: str) -> int | float:
    """An option's value: an int where it reads as one (e.g. `steps=40`), else a float."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _job(candidate: str, target_hr: float) -> pipeline.EditJob:
    name, *extras = candidate.split("+")
    balance, _, temperature = name.partition(":")
    options = [("balance", balance)]
    options += [("temperature", float(temperature))] if temperature else []
    for extra in extras:  # key=value: any other `PrivacyPhysConfig` field
        key, _, value = extra.partition("=")
        options.append((key, value if key == "colour" else _number(value)))
    return pipeline.EditJob(
        target=targets.TargetSpec(kind="sinusoid", hr_bpm=target_hr),
        method_options=tuple(options),
        estimators=(),
    )


def run_one(clip, boxes, candidate: str, target_hr: float, params: dict) -> dict:
    job = _job(candidate, target_hr)
    result = pipeline.edit_frames(clip.frames, FPS, boxes, job)
    face = result.faces[0]
    after = crop.crop_resize(result.frames, boxes, job.work_size)
    names = SURROGATES + HELD_BACK
    before = readings.read_heart_rates(face.clip, face.mask, FPS, names, params)
    read = readings.read_heart_rates(after, face.mask, FPS, names, params)
    pearson = {
        n: float(
            signals.pearson(
                readings.estimate_bvp(n, after, face.mask, FPS, params.get(n)), result.target
            )
        )
        for n in SURROGATES
    }
    regional = readings.regional_pulses(after, face.mask, FPS)
    coherence = readings.regional_pulses(face.clip, face.mask, FPS)["coherence"]
    return {
        "regions": regional["hr_bpm"],
        "coherence_before": coherence,
        "coherence_after": regional["coherence"],
        "before": {n: before[n]["hr_bpm"] for n in names},
        "after": {n: read[n]["hr_bpm"] for n in names},
        "pearson": pearson,
        "psnr_db": float(metrics.psnr(face.clip, after)),
        "edit_s": float(result.seconds["edit"]),
    }


def _mean_change(records: list[dict], item: int) -> float:
    """Mean absolute change, over the records and region pairs, of the regions' pulse agreement
    (`readings.regional_pulses` "coherence"): item 0 the correlation, 1 the lag in frames."""
    return float(
        np.mean(
            [
                abs(r["coherence_after"][pair][item] - r["coherence_before"][pair][item])
                for r in records
                for pair in r["coherence_before"]
            ]
        )
    )


def summarise(records: list[dict]) -> dict:
    def hit(r, n):
        return abs(r["after"][n] - r["target_hr"]) <= HIT_BPM

    return {
        "white_box": sum(hit(r, n) for r in records for n in SURROGATES),
        "white_box_of": len(records) * len(SURROGATES),
        "all_fooled": sum(all(hit(r, n) for n in SURROGATES) for r in records),
        "held_back": sum(hit(r, n) for r in records for n in HELD_BACK),
        "held_back_of": len(records) * len(HELD_BACK),
        "regions": sum(
            abs(v - r["target_hr"]) <= HIT_BPM for r in records for v in r["regions"].values()
        ),
        "regions_of": sum(len(r["regions"]) for r in records),
        "coherence_shift": _mean_change(records, 0),
        "lag_shift": _mean_change(records, 1),
        "worst_pearson": min(min(r["pearson"].values()) for r in records),
        "psnr_mean_db": float(np.mean([r["psnr_db"] for r in records])),
        "psnr_min_db": float(np.min([r["psnr_db"] for r in records])),
        "edit_s": float(np.sum([r["edit_s"] for r in records])),
        "misses": sorted(
            {f"{n}@{r['seed']}/{r['target_hr']:.0f}" for r in records for n in SURROGATES}
            - {
                f"{n}@{r['seed']}/{r['target_hr']:.0f}"
                for r in records
                for n in SURROGATES
                if hit(r, n)
            }
        ),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0-5")
    parser.add_argument("--targets", default="60,120")
    parser.add_argument("--crop", choices=("face", "head"), default="face")
    parser.add_argument("--candidates", nargs="+", default=["mean", "softmax:0.1"])
    parser.add_argument("--json", default="results/ensemble_balance.json")
    args = parser.parse_args()
    target_rates = [float(t) for t in args.targets.split(",")]
    params: dict = {}
    records = {c: [] for c in args.candidates}
    start = time.perf_counter()
    for seed in _seeds(args.seeds):
        clip = make_clip(seed)
        boxes = boxes_for(clip, args.crop)
        for target_hr in target_rates:
            for candidate in args.candidates:
                r = run_one(clip, boxes, candidate, target_hr, params)
                r.update(seed=seed, true_hr=clip.hr_bpm, target_hr=target_hr)
                records[candidate].append(r)
                missed = [n for n in SURROGATES if abs(r["after"][n] - target_hr) > HIT_BPM]
                print(
                    f"seed {seed} true {clip.hr_bpm:5.1f} target {target_hr:5.1f} {candidate:12s} "
                    f"PSNR {r['psnr_db']:.2f}  pure {r['before']['physnet_pure']:.1f}->"
                    f"{r['after']['physnet_pure']:.1f}  missed {missed}  regions "
                    + " ".join(f"{v:.0f}" for v in r["regions"].values()),
                    flush=True,
                )
    rows = []
    for candidate, recs in records.items():
        s = summarise(recs)
        rows.append({"candidate": candidate, **s})
    print(f"\ncrop {args.crop}, seeds {args.seeds}, targets {args.targets}")
    print(
        readings.format_table(
            [
                {
                    **r,
                    "wb": f"{r['white_box']}/{r['white_box_of']}",
                    "all": f"{r['all_fooled']}/{len(records[r['candidate']])}",
                    "hb": f"{r['held_back']}/{r['held_back_of']}",
                    "reg": f"{r['regions']}/{r['regions_of']}",
                }
                for r in rows
            ],
            [
                ("candidate", "candidate", "s"),
                ("wb", "surrogates fooled", "s"),
                ("all", "clips all fooled", "s"),
                ("hb", "held-back hits", "s"),
                ("reg", "regions at target", "s"),
                ("worst_pearson", "worst Pearson", ".2f"),
                ("coherence_shift", "|d region r|", ".3f"),
                ("lag_shift", "|d region lag|", ".2f"),
                ("psnr_mean_db", "PSNR mean", ".2f"),
                ("psnr_min_db", "PSNR min", ".2f"),
                ("edit_s", "editor s", ".1f"),
            ],
        )
    )
    for r in rows:
        if r["misses"]:
            print(f"{r['candidate']}: missed {', '.join(r['misses'])}")
    print(f"{time.perf_counter() - start:.0f} s")
    out = pathlib.Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"args": vars(args), "summary": rows, "records": records}, indent=1))
    tmp.replace(out)


if __name__ == "__main__":
    main()
