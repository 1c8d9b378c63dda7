"""Edit one real video to several target heart rates with each editor; read every output with
rppgedit's estimators and open-rppg's deep models (black boxes, never surrogates).

For each method and target, `pipeline.run_edit` writes a lossless edit of VIDEO (the same command
as `--mode=edit`, default settings of each method); then the original and every output are read by
the open-rppg models in one worker. Prints one table per target (estimator x method: HR after the
edit; the original's reading beside it), PSNR / SSIM / seconds per edit, and the counts of
estimators within 3 bpm of the target and of the true HR. Writes JSON and Markdown under --out.

    python benchmarks/edit_table.py VIDEO --true_hr 70.7 [--targets 60,80,100,120]
        [--methods privacy_phys,pulseedit,physiolatent] [--attackers all|none|a,b]

The true HR is the contact ground truth (for shared/data/physrecorder: 70.7 bpm from BVP.csv).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from rppgedit import open_rppg, pipeline, safe_write, targets
from rppgedit.papers.run import DEFAULT_ESTIMATORS
from rppgedit.readings import format_table

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from attack_outputs import face_crops  # noqa: E402

HIT_BPM = 3.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--true_hr", type=float, required=True)
    parser.add_argument("--targets", default="60,80,100,120")
    parser.add_argument("--methods", default="privacy_phys,pulseedit,physiolatent")
    parser.add_argument("--attackers", default="all", help="all, none, or open-rppg model names")
    parser.add_argument("--out", default="results/edit_table")
    parser.add_argument(
        "--reuse", action="store_true", help="keep edits (and reports) an earlier run wrote"
    )
    args = parser.parse_args()

    out_dir = pathlib.Path(args.out) / pathlib.Path(args.video).stem
    out_dir.mkdir(parents=True, exist_ok=True)
    hrs = [float(t) for t in args.targets.split(",")]
    methods = args.methods.split(",")
    edits = {}  # (method, target) -> report summary
    for method in methods:
        for hr in hrs:
            output = out_dir / f"{method}_{hr:g}.mkv"
            job = pipeline.EditJob(
                method=method,
                target=targets.TargetSpec(kind="sinusoid", hr_bpm=hr),
                estimators=DEFAULT_ESTIMATORS,
            )
            report = pipeline.report_path_for(output)
            if args.reuse and output.exists() and report.exists():  # an earlier run's edit
                summary = json.loads(report.read_text())
                summary["wall_s"] = sum(summary["seconds"].values())
            else:
                tic = time.perf_counter()
                summary = pipeline.run_edit(
                    args.video, str(output), job, overwrite=True, progress=False
                )
                summary["wall_s"] = time.perf_counter() - tic
            edits[(method, hr)] = summary
            print(
                f"{method} -> {hr:g} bpm: PSNR {summary['psnr_db']:.2f} dB, "
                f"SSIM {summary['ssim']:.5f}, {summary['wall_s']:.0f} s",
                flush=True,
            )

    models = {"all": list(open_rppg.OPEN_RPPG_MODELS), "none": []}.get(
        args.attackers, args.attackers.split(",")
    )
    deep = {}
    if models:
        keys = [("original", 0.0)] + list(edits)
        paths = [args.video] + [edits[k]["output"] for k in edits]
        tic = time.perf_counter()
        readings = open_rppg.read_open_rppg_many([face_crops(p) for p in paths], models)
        print(f"open-rppg attackers: {time.perf_counter() - tic:.0f} s", flush=True)
        deep = {k: {m: r[m]["hr_bpm"] for m in models} for k, r in zip(keys, readings, strict=True)}
        safe_write.write_text_atomic(
            out_dir / "open_rppg.json",
            json.dumps(safe_write.json_safe({f"{k[0]}_{k[1]:g}": v for k, v in deep.items()})),
        )

    first = edits[(methods[0], hrs[0])]
    before = {r["estimator"]: r["hr_before"] for r in first["rows"]} | deep.get(
        ("original", 0.0), {}
    )
    names = list(DEFAULT_ESTIMATORS) + models
    markdown, record = [], {"video": args.video, "true_hr": args.true_hr, "targets": {}}
    for hr in hrs:
        rows, counts = [], {m: [0, 0] for m in methods}
        for name in names:
            row = {
                "estimator": name + (" (open-rppg)" if name in models else ""),
                "original": before[name],
            }
            for m in methods:
                after = {r["estimator"]: r["hr_after"] for r in edits[(m, hr)]["rows"]}
                after |= deep.get((m, hr), {})
                row[m] = after[name]
                if after[name] is None:  # no reading (a model that returned NaN)
                    continue
                counts[m][0] += abs(after[name] - hr) <= HIT_BPM
                counts[m][1] += abs(after[name] - args.true_hr) <= HIT_BPM
            rows.append(row)
        for label, fn in (
            ("PSNR dB", lambda s: s["psnr_db"]),
            ("SSIM", lambda s: s["ssim"]),
            ("seconds", lambda s: s["wall_s"]),
        ):
            rows.append(
                {"estimator": label, "original": None, **{m: fn(edits[(m, hr)]) for m in methods}}
            )
        rows.append(
            {
                "estimator": f"hit target (of {len(names)})",
                "original": None,
                **{m: counts[m][0] for m in methods},
            }
        )
        rows.append(
            {"estimator": "still true HR", "original": None, **{m: counts[m][1] for m in methods}}
        )
        table = format_table(
            rows,
            [("estimator", "estimator", "s"), ("original", "original", ".1f")]
            + [(m, m, ".2f") for m in methods],
        )
        text = f"### target {hr:g} bpm (true {args.true_hr:g} bpm)\n\n{table}\n"
        print(text, flush=True)
        markdown.append(text)
        record["targets"][f"{hr:g}"] = {"rows": rows}
    record["edits"] = {f"{m}_{h:g}": safe_write.json_safe(s) for (m, h), s in edits.items()}
    safe_write.write_text_atomic(out_dir / "table.md", "\n".join(markdown), overwrite=True)
    safe_write.write_text_atomic(
        out_dir / "table.json", json.dumps(safe_write.json_safe(record), indent=1), overwrite=True
    )
    print(f"wrote {out_dir}/table.md and table.json")


if __name__ == "__main__":
    main()
