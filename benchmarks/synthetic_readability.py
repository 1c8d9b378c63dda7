"""How readable the synthetic faces are: which heart-rate readers find the true pulse of
`synthetic.make_clip` clips, cropped the old way (head) and the tracker's way (face).

Grid: seeds x skin tones (`synthetic.SKIN_TONES`) x motion off/on x illumination off/on, 300 frames
of 128x128 at 30 fps. The true HR of a clip is drawn from its seed alone,
`synthetic.grid_hr_bpm(seed)` (uniform in 60-110 bpm), so the clips of one seed (every tone, motion and
illumination) share it (`synthetic.grid_clip`). Crops:

    head    the old fixed square, `crop.enclosing_square(clip.face_boxes)` (the head box, hair
            included, over the whole clip) in every frame
    face    `clip.crop_boxes`, the tracker's per-frame square forehead-to-chin crop (what the deep
            models were trained on)

In-house readers (`--readers`) read the 64x64 crop and skin mask of `pipeline.crop_and_mask`;
open-rppg's attackers (`--attackers`) read the 128x128 uint8 crop (`crop.crop_resize`), in batches
of `--attacker_batch` clips per worker call. A clip is read when a reader is within 3 bpm of the true
HR. For each crop x reader the table prints the clips read out of all clips, and out of the clips POS
reads (POS is always read, as that reference); a second table breaks the read clips down per skin
tone, motion and illumination; a third splits them by `skin_contrast`. Every clip's readings go to
the JSON.

`skin_contrast` (per clip and crop, in the JSON) is the crop's mean skin green over the crop's green
standard deviation. PhysNet standardises each channel over the crop, so a pulse of relative amplitude
a on the skin reaches the network as a * skin_contrast standard deviations: light faces have
2.70-3.46, dark ones 0.93-3.35 (the skin is darker than the crop's bright background, sclera or shirt,
which set the deviation). Measured on the 32-seed grid (face crop): PhysNet-PURE misses 10 of the 52
clips below 1.5 (all dark) and 6 of the 332 above (4 of them its harmonic on light seed 30),
PhysNet-RLAP 10 and 2 (see `synthetic`'s module docstring).

    python benchmarks/synthetic_readability.py --seeds 0-31 --json results/synthetic_readability_inhouse.json
    python benchmarks/synthetic_readability.py --seeds 0-3 --crop face --readers pos --attackers all \
        --json results/synthetic_readability_attackers.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import numpy as np

from rppgedit import open_rppg, pipeline, safe_write
from rppgedit.data import synthetic
from rppgedit.readings import format_table, read_heart_rates
from rppgedit.video import crop

HIT_BPM = 3.0
CONTRAST_SPLIT = 1.5  # skin_contrast below which 10 of the 12 dark misses of each PhysNet lie
FRAMES, SIZE, FPS = 300, 128, 30.0
CROPS = ("head", "face")
READERS = ("pos", "chrom", "physnet_pure", "physnet_rlap")
REFERENCE = "pos"
ATTACKER_SUFFIX = " (open-rppg)"


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def boxes_for(clip, kind: str) -> np.ndarray:
    if kind == "head":
        return np.tile(crop.enclosing_square(clip.face_boxes), (clip.frames.shape[0], 1))
    if kind == "face":
        return np.asarray(clip.crop_boxes, np.float32)
    raise ValueError(f"crop must be one of {CROPS}, got {kind!r}")


def _hit(reading, truth: float) -> bool:
    hr = None if reading is None else reading.get("hr_bpm")
    return hr is not None and bool(np.isfinite(hr)) and abs(hr - truth) <= HIT_BPM


def _pct(k: int, n: int):
    return None if n == 0 else 100.0 * k / n


def _groups():
    """(label, {field: value}) of the breakdown columns: per tone, motion, illumination, and tone x motion."""
    tones = [(t, {"tone": t}) for t in synthetic.SKIN_TONES]
    single = tones + [
        ("still", {"motion": False}),
        ("moving", {"motion": True}),
        ("illum fixed", {"illumination": False}),
        ("illum var", {"illumination": True}),
    ]
    cross = [
        (f"{t} {'moving' if m else 'still'}", {"tone": t, "motion": m})
        for t in synthetic.SKIN_TONES
        for m in (False, True)
    ]
    return single, cross


def summarise(records: list[dict], crops: list[str], readers: list[str]):
    """(main rows, breakdown rows) over the records (one per clip x crop)."""
    single, cross = _groups()
    main, breakdown = [], []
    for kind in crops:
        recs = [r for r in records if r["crop"] == kind]
        ref_ok = [_hit(r["readings"].get(REFERENCE), r["hr_true"]) for r in recs]
        for reader in readers:
            hits = [_hit(r["readings"].get(reader), r["hr_true"]) for r in recs]
            k, n = sum(hits), len(hits)
            kc = sum(h and p for h, p in zip(hits, ref_ok, strict=True))
            nc = sum(ref_ok)
            main.append(
                {
                    "crop": kind,
                    "reader": reader,
                    "read": k,
                    "clips": n,
                    "pct": _pct(k, n),
                    "read_pos": kc,
                    "pos_read": nc,
                    "pct_pos": _pct(kc, nc),
                }
            )
            row = {"crop": kind, "reader": reader}
            for label, where in single + cross:
                sel = [
                    h
                    for h, r in zip(hits, recs, strict=True)
                    if all(r[f] == v for f, v in where.items())
                ]
                row[label] = {"read": sum(sel), "clips": len(sel)}
            breakdown.append(row)
    return main, breakdown


def _cells(breakdown, labels):
    cells = []
    for row in breakdown:
        cell = {"crop": row["crop"], "reader": row["reader"]}
        for label in labels:
            got = row[label]
            if got["clips"]:
                cell[label] = f"{got['read']}/{got['clips']} {_pct(got['read'], got['clips']):.0f}%"
        cells.append(cell)
    cols = [("crop", "crop", "s"), ("reader", "reader", "s")]
    return format_table(cells, cols + [(label, label, "s") for label in labels])


def tables(main, breakdown) -> str:
    text = format_table(
        main,
        [
            ("crop", "crop", "s"),
            ("reader", "reader", "s"),
            ("read", "read", "d"),
            ("clips", "clips", "d"),
            ("pct", "%", ".0f"),
            ("read_pos", f"read | {REFERENCE} reads", "d"),
            ("pos_read", f"{REFERENCE} reads", "d"),
            ("pct_pos", f"% | {REFERENCE}", ".0f"),
        ],
    )
    single, cross = _groups()
    text += "\n\nRead / clips per group (all clips):\n" + _cells(breakdown, [g for g, _ in single])
    text += "\n\nRead / clips per tone x motion (all clips):\n" + _cells(
        breakdown, [g for g, _ in cross]
    )
    return text


def contrast_table(records: list[dict], crops: list[str], readers: list[str]) -> str:
    """Read / clips of each crop x reader for clips below and above `CONTRAST_SPLIT`."""
    rows = []
    for kind in crops:
        recs = [r for r in records if r["crop"] == kind]
        for reader in readers:
            row = {"crop": kind, "reader": reader}
            for label, low in ((f"< {CONTRAST_SPLIT}", True), (f">= {CONTRAST_SPLIT}", False)):
                sel = [r for r in recs if (r["skin_contrast"] < CONTRAST_SPLIT) == low]
                k = sum(_hit(r["readings"].get(reader), r["hr_true"]) for r in sel)
                row[label] = f"{k}/{len(sel)}" if sel else "-"
            rows.append(row)
    labels = [f"< {CONTRAST_SPLIT}", f">= {CONTRAST_SPLIT}"]
    cols = [("crop", "crop", "s"), ("reader", "reader", "s")]
    return "Read / clips by skin_contrast (skin green mean / crop green std):\n" + format_table(
        rows, cols + [(c, f"skin_contrast {c}", "s") for c in labels]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-31", help="a-b or a comma list")
    parser.add_argument("--crop", default="head,face", help="head, face, or both (comma list)")
    parser.add_argument("--readers", default=",".join(READERS), help="in-house estimators; none")
    parser.add_argument("--attackers", default="none", help="none, all, or open-rppg model names")
    parser.add_argument("--attacker_batch", type=int, default=48, help="clips per open-rppg call")
    parser.add_argument("--tones", default=",".join(synthetic.SKIN_TONES))
    parser.add_argument("--json", default=None, help="write the record here")
    args = parser.parse_args()
    seeds = _seeds(args.seeds)
    crops = [c for c in args.crop.split(",") if c]
    for c in crops:
        if c not in CROPS:
            parser.error(f"--crop must be among {CROPS}, got {c!r}")
    tones = args.tones.split(",")
    readers = [] if args.readers == "none" else args.readers.split(",")
    names = list(dict.fromkeys([REFERENCE, *readers]))  # POS is the reference, always read
    models = {"all": list(open_rppg.OPEN_RPPG_MODELS), "none": []}.get(
        args.attackers, args.attackers.split(",")
    )
    params, records, pending = {}, [], []  # pending: (record, uint8 crop) awaiting attackers
    timing = {"render_s": 0.0, "inhouse_s": 0.0, "attackers_s": 0.0}
    tic_all = time.perf_counter()

    def flush():
        if not pending:
            return
        tic = time.perf_counter()
        got = open_rppg.read_open_rppg_many([(f, FPS) for _, f in pending], models)
        dt = time.perf_counter() - tic
        timing["attackers_s"] += dt
        for (rec, _), res in zip(pending, got, strict=True):
            rec["attackers"] = res
            rec["readings"] |= {
                m + ATTACKER_SUFFIX: {"hr_bpm": res[m]["hr_bpm"], "snr_db": res[m]["snr_db"]}
                for m in models
            }
        per_model = {  # load once per call + run time of every clip
            m: round(
                max((r[m].get("load_s") or 0.0) for r in got)
                + sum((r[m].get("run_s") or 0.0) for r in got),
                1,
            )
            for m in models
        }
        print(f"  attackers on {len(pending)} clips: {dt:.0f} s; per model {per_model}", flush=True)
        pending.clear()

    for seed in seeds:
        hr = synthetic.grid_hr_bpm(seed)
        for tone, motion, light in itertools.product(tones, (False, True), (False, True)):
            tic = time.perf_counter()
            clip = synthetic.grid_clip(
                seed, tone=tone, motion=motion, illumination=light, num_frames=FRAMES, size=SIZE
            )
            timing["render_s"] += time.perf_counter() - tic
            for kind in crops:
                boxes = boxes_for(clip, kind)
                tic = time.perf_counter()
                clip_crop, mask = pipeline.crop_and_mask(clip.frames, boxes, pipeline.EditJob())
                readings = read_heart_rates(clip_crop, mask, clip.fps, names, params)
                timing["inhouse_s"] += time.perf_counter() - tic
                green = clip_crop[..., 1]
                contrast = float(green[mask].mean() / green.std()) if mask.any() else float("nan")
                rec = {
                    "seed": seed,
                    "tone": tone,
                    "motion": motion,
                    "illumination": light,
                    "crop": kind,
                    "hr_true": float(clip.hr_bpm),
                    "hr_drawn": hr,
                    "skin_contrast": contrast,
                    "readings": readings,
                }
                records.append(rec)
                if models:
                    face = crop.crop_resize(clip.frames, boxes, SIZE)
                    pending.append((rec, np.clip(np.rint(face * 255), 0, 255).astype(np.uint8)))
                    if len(pending) >= args.attacker_batch:
                        flush()
                got = {n: round(r["hr_bpm"], 1) for n, r in readings.items()}
                print(
                    f"seed {seed:3d} {tone:6s} motion={int(motion)} light={int(light)} {kind:4s} "
                    f"true {clip.hr_bpm:5.1f} contrast {contrast:.2f}  {got}",
                    flush=True,
                )
    flush()
    timing["total_s"] = time.perf_counter() - tic_all
    shown = names + [m + ATTACKER_SUFFIX for m in models]
    main_rows, breakdown = summarise(records, crops, shown)
    text = tables(main_rows, breakdown) + "\n\n" + contrast_table(records, crops, shown)
    print(text)
    print(
        f"{len(records)} clip crops; render {timing['render_s']:.0f} s, in-house readers "
        f"{timing['inhouse_s']:.0f} s, attackers {timing['attackers_s']:.0f} s, "
        f"total {timing['total_s']:.0f} s"
    )
    if args.json:
        record = {
            "args": vars(args),
            "hr_rule": f"np.random.default_rng(seed).uniform{synthetic.GRID_HR_BPM} bpm",
            "hit_bpm": HIT_BPM,
            "frames": FRAMES,
            "size": SIZE,
            "fps": FPS,
            "timing": timing,
            "summary": main_rows,
            "breakdown": breakdown,
            "table": text,
            "records": records,
        }
        safe_write.write_text_atomic(args.json, json.dumps(safe_write.json_safe(record), indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
