"""The shipped PhysioLatent checkpoint on held-out synthetic clips: who reads each target?

For each seed (held-out seeds start at `train.HELD_OUT_SEED` = 10000), a randomised synthetic face
crop (`train.synthetic_face`, 256 frames, 32x32) is read before editing and after an edit to each
target (sinusoid, phase 0.3 x seed). Prints, per estimator, how many unedited clips it reads within
3 bpm of the true HR, how many edits hit the target within 3 bpm, and the hits on the clips it
reads; writes JSON under --out.

    python benchmarks/physiolatent_seeds.py --seeds 10000-10011 [--targets 60,80,100,120]
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from rppgedit import signals, targets, train
from rppgedit.editors import physiolatent
from rppgedit.estimators import registry
from rppgedit.evaluation import format_table

HIT_BPM, FPS, FRAMES = 3.0, 30.0, 256


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="10000-10011", help="first-last, inclusive")
    parser.add_argument("--targets", default="60,80,100,120")
    parser.add_argument("--estimators", default="pos,chrom,physnet_rlap,physnet_pure")
    parser.add_argument("--out", default="results/physiolatent_seeds.json")
    args = parser.parse_args()
    first, last = (int(s) for s in args.seeds.split("-"))
    hrs = [float(t) for t in args.targets.split(",")]
    names = args.estimators.split(",")
    cfg = physiolatent.Config()
    state = physiolatent.load_state(cfg)
    params = {n: registry.get(n).load_params() if n.startswith("physnet") else None for n in names}

    def read(name, frames, mask):
        bvp = registry.get(name).bvp(frames, FPS, mask=mask, params=params[name])
        return float(signals.heart_rate(bvp, FPS))

    records = []
    for seed in range(first, last + 1):
        frames, mask, true_hr = train.synthetic_face(seed, FRAMES)
        rec = {"seed": seed, "true_hr": float(true_hr), "before": {}, "after": {}}
        rec["before"] = {n: read(n, frames, mask) for n in names}
        for hr in hrs:
            wave = targets.sinusoid(hr, FRAMES, FPS, phase=0.3 * seed).astype(np.float32)
            edited = np.asarray(physiolatent.edit(state, frames, mask, wave, cfg)[0])
            rec["after"][f"{hr:g}"] = {n: read(n, edited, mask) for n in names}
        records.append(rec)
        print(
            f"seed {seed} (true {true_hr:.1f}): before "
            + ", ".join(f"{n} {v:.1f}" for n, v in rec["before"].items()),
            flush=True,
        )

    rows = []
    for n in names:
        readable = [r for r in records if abs(r["before"][n] - r["true_hr"]) <= HIT_BPM]

        def hits(recs, n=n):
            return sum(
                abs(r["after"][k][n] - float(k)) <= HIT_BPM for r in recs for k in r["after"]
            )

        rows.append(
            {
                "estimator": n,
                "reads_original": f"{len(readable)}/{len(records)}",
                "hits": f"{hits(records)}/{len(records) * len(hrs)}",
                "hits_on_readable": f"{hits(readable)}/{len(readable) * len(hrs)}",
            }
        )
    print(
        format_table(
            rows,
            [
                ("estimator", "estimator", "s"),
                ("reads_original", "reads original", "s"),
                ("hits", "edits hit", "s"),
                ("hits_on_readable", "hits on readable clips", "s"),
            ],
        )
    )
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": rows, "records": records}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
