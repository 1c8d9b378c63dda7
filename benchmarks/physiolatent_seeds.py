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

from rppgedit import train
from rppgedit.editors import physiolatent
from rppgedit.readings import format_table

HIT_BPM, FRAMES = 3.0, 256


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="10000-10011", help="first-last, inclusive")
    parser.add_argument("--targets", default="60,80,100,120")
    parser.add_argument("--estimators", default="pos,chrom,physnet_rlap,physnet_pure")
    parser.add_argument("--out", default="results/physiolatent_seeds.json")
    args = parser.parse_args()
    first, last = (int(s) for s in args.seeds.split("-"))
    hrs = [float(t) for t in args.targets.split(",")]
    names = tuple(args.estimators.split(","))
    cfg = physiolatent.Config()
    result = train.validate_editor(
        physiolatent.load_state(cfg),
        cfg,
        hrs=hrs,
        seeds=range(first, last + 1),
        num_frames=FRAMES,
        estimators=names,
        phase_per_seed=0.3,
    )
    true_hr = result["true_hr"]
    rows = []
    for n in names:
        readable = [
            i for i, hr in enumerate(true_hr) if abs(result["before"][n][i] - hr) <= HIT_BPM
        ]

        def hits(clips, n=n):
            after = result["hr"][n]  # {str(target): [bpm per seed]}
            return sum(abs(after[str(h)][i] - h) <= HIT_BPM for h in hrs for i in clips)

        rows.append(
            {
                "estimator": n,
                "reads_original": f"{len(readable)}/{len(true_hr)}",
                "hits": f"{hits(range(len(true_hr)))}/{len(true_hr) * len(hrs)}",
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
    out.write_text(json.dumps({"summary": rows, "validation": result}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
