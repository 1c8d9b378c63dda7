"""What a recipient reads: one real video edited to several targets (and removal), then shared the
ways platforms share it, every output decoded and read by rppgedit's estimators and (optionally)
open-rppg's deep models, which are never surrogates.

For each target `pipeline.edit_frames` edits the video (the steps of `--mode=edit`, default
Privacy-Phys settings) and writes the lossless edit. A lossy output is edited as `run_edit` edits
for a lossy file (`pipeline.codec_job`'s settings) and pasted at `--strengths` times
(`pipeline.LOSSY_STRENGTH`); strength 1 is the lossless edit re-encoded, i.e. the tool before it
knew about codecs), then encoded with `encode.reencode`, as `--share` does. The original is encoded
the same way for the fidelity columns:

    lossless            the FFV1 edit itself
    h264_crfN           `--share --crf=N` (H.264 High yuv420p BT.709: the edited frames through
                        the same encoder as `encode.reencode`)
    h264_crf23_then28   the CRF 23 share file re-encoded at CRF 28 (a platform that re-encodes)
    h265_crf28, vp9     the other share codecs at their defaults

Columns: readers within 3 bpm of the target ("hits") and of the true HR ("true"), the largest group
of readers agreeing on one rate (`report.consensus`; after a removal, a rate an observer would
read when it holds half the readers or more), PSNR and SSIM
against the original encoded the same way and against the original itself, file size, seconds.

    python benchmarks/share_table.py VIDEO --true_hr 70.7 [--targets 60,80,100,120,none]
        [--outputs lossless,h264_crf18,...] [--attackers none|all|a,b] [--out results/share]
        [--options harmonic_weight=1]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

from rppgedit import metrics, open_rppg, pipeline, report, safe_write, targets
from rppgedit.papers.run import DEFAULT_ESTIMATORS
from rppgedit.readings import format_table, read_heart_rates
from rppgedit.video import decode, encode

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from attack_outputs import attacker_crop  # noqa: E402
from removal_codec import options  # noqa: E402

HIT_BPM = 3.0
# name -> list of (codec, crf) encodes applied one after the other to the lossless file
OUTPUTS = {
    "lossless": [],
    "h264_crf18": [("h264", 18)],
    "h264_crf23": [("h264", 23)],
    "h264_crf28": [("h264", 28)],
    "h264_crf23_then28": [("h264", 23), ("h264", 28)],
    "h265_crf28": [("h265", 28)],
    "vp9": [("vp9", None)],
}
_SUFFIX = {"h264": ".mp4", "h265": ".mp4", "vp9": ".webm"}


def encode_chain(src: str, chain, stem: pathlib.Path) -> str:
    """Applies the (codec, crf) encodes of `chain` to `src`; returns the last file."""
    path = src
    for i, (codec, crf) in enumerate(chain):
        dst = f"{stem}_{i}{_SUFFIX[codec]}"
        if not os.path.exists(dst):
            encode.reencode(path, dst, codec=codec, crf=crf)
        path = dst
    return path


def read_file(path, boxes, fps, names, params):
    """HR per estimator of the face crop of a decoded file, through that crop's own skin mask (as
    an observer of the file would; the edit's mask of the original beats with the pulse)."""
    frames = decode.read_video(path).frames
    clip, mask = pipeline.crop_and_mask(frames, boxes, pipeline.EditJob())
    readings = read_heart_rates(clip, mask, fps, names, params)
    return {n: r["hr_bpm"] for n, r in readings.items()}, frames, attacker_crop(frames, boxes)


def fidelity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = a.astype(np.float32) / 255, b.astype(np.float32) / 255
    return float(metrics.psnr(a, b)), float(metrics.ssim(a, b))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument(
        "--true_hr",
        default="median",
        help="bpm, or 'median': the median reading of the unedited clip by the estimators",
    )
    parser.add_argument("--targets", default="60,80,100,120,none")
    parser.add_argument("--outputs", default=",".join(OUTPUTS))
    parser.add_argument("--attackers", default="none", help="none, all, or open-rppg model names")
    parser.add_argument("--out", default="results/share")
    parser.add_argument("--record_name", default="share_table", help="name of the .md/.json")
    parser.add_argument(
        "--strengths",
        default=f"1,{pipeline.LOSSY_STRENGTH:g}",
        help="multiples of the edit in lossy outputs (1: the lossless edit re-encoded)",
    )
    parser.add_argument(
        "--options",
        default="default",
        help="editor options, `field=value[+field=value...]` (removal_codec.py's candidates)",
    )
    args = parser.parse_args()
    out_dir = pathlib.Path(args.out) / pathlib.Path(args.video).stem
    strengths = [float(x) for x in args.strengths.split(",")]
    record_name = args.record_name
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = args.outputs.split(",")
    models = {"all": list(open_rppg.OPEN_RPPG_MODELS), "none": []}.get(
        args.attackers, args.attackers.split(",")
    )
    names = list(DEFAULT_ESTIMATORS)
    original = decode.read_video(args.video)
    boxes = pipeline.find_boxes(original.frames)
    params, faces = {}, {}
    # the unedited clip read through its own crop and skin mask (target-independent)
    original_hr = read_file(args.video, boxes, original.fps, names, params)[0]
    print(f"original: {json.dumps(safe_write.json_safe(original_hr))}", flush=True)
    if args.true_hr == "median":
        valid = [v for v in original_hr.values() if v is not None and np.isfinite(v)]
        true_hr, true_hr_source = float(np.median(valid)), "median reading of the unedited clip"
    else:
        true_hr, true_hr_source = float(args.true_hr), "given"
    print(f"true HR {true_hr:.2f} bpm ({true_hr_source})", flush=True)
    record = {
        "video": args.video,
        "true_hr": true_hr,
        "true_hr_source": true_hr_source,
        "original_hr": original_hr,
        "rows": [],
    }
    reference = {}  # output kind -> decoded original encoded the same way
    for kind in outputs:
        if OUTPUTS[kind]:
            path = encode_chain(args.video, OUTPUTS[kind], out_dir / f"original_{kind}")
            reference[kind] = decode.read_video(path).frames
    rows = []
    for target in args.targets.split(","):
        spec = (
            targets.TargetSpec(kind="none")
            if target == "none"
            else targets.TargetSpec(kind="sinusoid", hr_bpm=float(target))
        )
        job = pipeline.EditJob(
            target=spec, estimators=tuple(names), method_options=options(args.options)
        )
        tic = time.perf_counter()
        result = pipeline.edit_frames(original.frames, original.fps, boxes, job)
        edit_s = time.perf_counter() - tic
        lossless = out_dir / f"edit_{target}.mkv"
        encode.write_video(lossless, result.frames, original.fps, overwrite=True)
        lossy_job, lossy_result, lossy_edit_s = pipeline.codec_job(job, lossy=True), None, 0.0
        if lossy_job == job:
            lossy_result = result
        plan = [(k, x) for k in outputs for x in strengths if OUTPUTS[k] and target != "none"]
        plan = [(k, 1.0) for k in outputs if not OUTPUTS[k] or target == "none"] + plan
        for kind, strength in plan:
            tic = time.perf_counter()
            source = lossless
            if strength != 1.0:  # what `run_edit` pastes into a lossy output
                source = out_dir / f"edit_{target}_x{strength:g}.mkv"
                if not source.exists():
                    if lossy_result is None:  # `run_edit`'s settings for a lossy output
                        tic_lossy = time.perf_counter()
                        lossy_result = pipeline.edit_frames(
                            original.frames, original.fps, boxes, lossy_job
                        )
                        lossy_edit_s = time.perf_counter() - tic_lossy
                    frames, _ = pipeline.paste_frames(
                        original.frames, lossy_result.faces, lossy_job, np.float32(strength)
                    )
                    encode.write_video(source, frames, original.fps, overwrite=True)
            stem = out_dir / f"edit_{target}_x{strength:g}_{kind}"
            path = encode_chain(str(source), OUTPUTS[kind], stem)
            hrs, frames, face = read_file(path, boxes, original.fps, names, params)
            faces[(target, kind, strength)] = (face, original.fps)
            ref = reference.get(kind, original.frames)
            psnr_same, ssim_same = fidelity(ref, frames)
            psnr_orig, _ = fidelity(original.frames, frames)
            row = {
                "target": target,
                "output": kind,
                "strength": strength,
                "hr": hrs,
                "psnr_same_codec_db": psnr_same,
                "ssim_same_codec": ssim_same,
                "psnr_vs_original_db": psnr_orig,
                "psnr_codec_alone_db": fidelity(original.frames, ref)[0]
                if kind in reference
                else None,
                "kbytes": os.path.getsize(path) / 1e3,
                "seconds": (lossy_edit_s if strength != 1.0 else edit_s)
                + time.perf_counter()
                - tic,
            }
            rows.append(row)
            print(f"{target} {kind}: {json.dumps(safe_write.json_safe(row))}", flush=True)
        del result
    if models:
        keys = list(faces)
        readings = open_rppg.read_open_rppg_many([faces[k] for k in keys], models)
        by_key = dict(zip(keys, readings, strict=True))
        for row in rows:
            got = by_key[(row["target"], row["output"], row["strength"])]
            row["hr"] |= {f"{m} (open-rppg)": got[m]["hr_bpm"] for m in models}
    table = []
    for row in rows:
        values = [v for v in row["hr"].values() if v is not None and np.isfinite(v)]
        target = None if row["target"] == "none" else float(row["target"])
        table.append(
            {
                "target": row["target"],
                "output": row["output"],
                "strength": row["strength"],
                "hits": None if target is None else sum(abs(v - target) <= HIT_BPM for v in values),
                "true": sum(abs(v - true_hr) <= HIT_BPM for v in values),
                "group": sum(report.consensus(values)[1]),
                "readers": len(values),
                "psnr_same": row["psnr_same_codec_db"],
                "ssim_same": row["ssim_same_codec"],
                "psnr_orig": row["psnr_vs_original_db"],
                "psnr_codec": row["psnr_codec_alone_db"],
                "kB": row["kbytes"],
                "s": row["seconds"],
            }
        )
    text = format_table(
        table,
        [
            ("target", "target", "s"),
            ("output", "output", "s"),
            ("strength", "x", "g"),
            ("hits", "hit target", "d"),
            ("true", "at true HR", "d"),
            ("group", "largest group", "d"),
            ("readers", "readers", "d"),
            ("psnr_same", "PSNR vs orig same codec", ".2f"),
            ("ssim_same", "SSIM same codec", ".5f"),
            ("psnr_orig", "PSNR vs orig", ".2f"),
            ("psnr_codec", "codec alone PSNR", ".2f"),
            ("kB", "kB", ".0f"),
            ("s", "s", ".0f"),
        ],
    )
    print(text)
    record["rows"], record["table"] = rows, table
    safe_write.write_text_atomic(out_dir / f"{record_name}.md", text + "\n", overwrite=True)
    safe_write.write_text_atomic(
        out_dir / f"{record_name}.json",
        json.dumps(safe_write.json_safe(record), indent=1),
        overwrite=True,
    )
    print(f"wrote {out_dir}/{record_name}.md and .json")


if __name__ == "__main__":
    sys.exit(main())
