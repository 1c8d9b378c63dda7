"""Pulse removal, read losslessly and after the re-encodes a platform applies.

Each candidate (`--candidates`: `default`, or `field=value[+field=value...]` overriding fields of
the editor's config (`--method`, default Privacy-Phys), e.g. `removal_loss=flatness` or
`cancel_rate=surrogates+cancel_grid=True+cancel_excess=1.5`, or `window`,
`overlap` and `seed` (the stochastic rounding's) of the edit job) removes the pulse
(`--target=none`) from the synthetic clips of `benchmarks/ensemble_balance.py` (seeds x
light/medium/dark skin x still/moving, true rate 60-110 bpm, the tracker's crop; `--frames`
long, 256 by default: one removal window). The edit is
then decoded as written losslessly and after H.264 (yuv420p, `encode.reencode`) at CRF 23, CRF 28,
and CRF 23 then 28. On each decoded output the 10 in-house estimators read the face through the
skin mask of that output's own crop, as an observer who has only the output would
(``true_edit_mask``: the readings at the true rate through the mask of the unedited clip instead,
which the pulse modulates: pixels at the mask's edge enter and leave it with each beat, so reading
through it recovers the true rate even from a clip with no pulse at all):

    true      readings within 3 bpm of the true rate (the goal: none)
    harmonic  readings within 3 bpm of twice or half the true rate, which give it away as well
    group     the largest group of readings that agree on one rate (`report.consensus`: within
              3 bpm of the group's median), a new common "rate" an observer would read when it
              holds half the estimators or more
    snr_max   the highest SNR at the true rate (`signals.pulse_snr`) of any estimator, dB

and the same for the original clip encoded the same way ("before"). PSNR of the lossless edit.
`--readers` names other in-house readers instead of the 10 (e.g. `pbv_raw`, `efficientphys_pure`);
`--open_rppg` adds open-rppg's models (`all`: the 7 of `benchmarks/attack_outputs.py`), which read
each output's tracked crop at 128x128 after the in-house ones: `true`, `harmonic` and `group` then
count every reader (`snr_max` the in-house ones only).
The candidate `no_pulse` is the same clip rendered without a pulse (`pulse_amplitude=0`: what a
perfect removal that adds nothing would leave), read the same way: the chance level of `true` and
`group` for these estimators. Writes JSON.

Measured (2026-12-07, seeds 0-5, lossless, the 13 in-house readers of the last example and
open-rppg's 7): at the true rate 119, 8 and 1 of 120 readings before, without a pulse and after the
default removal; largest group 19.8, 5.2 (max 8) and 8.5 (max 14) of 20. The removal plants a rate
that open-rppg's models read: on seed 3 (true 64.3 bpm) 14 of 20 readers, all 7 of open-rppg's
among them, agree on 79-82 bpm; on seed 4 (107.2) 11 agree on 86-89 (each 7 of the 13 in-house).

    python benchmarks/removal_codec.py --seeds 0-15 --candidates default removal_loss=flatness
    python benchmarks/removal_codec.py --seeds 0-7 --outputs lossless --candidates no_pulse default
    python benchmarks/removal_codec.py --frames 600 --outputs lossless --candidates window=256
    python benchmarks/removal_codec.py --seeds 0-7 --outputs lossless --candidates no_pulse \
        --readers green,pos,chrom,lgi,pbv,omit,ica,pca,physnet_pure,physnet_rlap,pbv_raw,\
efficientphys_pure,efficientphys_rlap --open_rppg all
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

from rppgedit import metrics, open_rppg, pipeline, readings, report, signals, targets
from rppgedit.data import synthetic
from rppgedit.estimators import registry
from rppgedit.video import decode, encode

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from attack_outputs import attacker_crop  # noqa: E402
from ensemble_balance import FPS, FRAMES, SIZE, _number, _seeds  # noqa: E402

HIT_BPM = 3.0
ESTIMATORS = registry.DEFAULT_READERS
OUTPUTS = {
    "lossless": [],
    "crf23": [23],
    "crf28": [28],
    "crf23_then28": [23, 28],
}


# Candidate fields that set the edit job's, not the editor's.
JOB_FIELDS = ("window", "overlap", "seed")


def _pairs(candidate: str) -> list[tuple[str, str]]:
    """`field=value+...` as (field, value text) pairs; `default` has none."""
    if candidate == "default":
        return []
    return [(k, v) for k, _, v in (item.partition("=") for item in candidate.split("+"))]


def options(candidate: str) -> tuple[tuple[str, object], ...]:
    """`field=value+...` -> method options (`default` -> none; `JOB_FIELDS` left out)."""
    return tuple((k, _value(k, v)) for k, v in _pairs(candidate) if k not in JOB_FIELDS)


def job_fields(candidate: str) -> dict[str, int]:
    """The candidate's `JOB_FIELDS` (e.g. `window=256+overlap=0`), as `pipeline.EditJob` fields."""
    return {k: int(v) for k, v in _pairs(candidate) if k in JOB_FIELDS}


def _value(field: str, text: str):
    """A field's value from its text: names stay strings, True, False and None are themselves,
    numbers as `ensemble_balance` reads them (an int where the text is one)."""
    if field in ("colour", "balance", "removal_loss", "cancel_rate"):
        return text
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    return _number(text)


def without_pulse(seed: int, frames: int) -> np.ndarray:
    """The clip of `seed` and `frames` frames rendered without a pulse (same face, motion, light
    and noise)."""
    return synthetic.grid_clip(seed, num_frames=frames, size=SIZE, pulse_amplitude=0.0).frames


def encoded(frames: np.ndarray, crfs: list[int], folder: pathlib.Path) -> np.ndarray:
    """`frames` written losslessly, then re-encoded with H.264 at each CRF in turn, decoded."""
    if not crfs:
        return frames
    path = encode.write_video(folder / "lossless.mkv", frames, FPS, overwrite=True)
    for i, crf in enumerate(crfs):
        path = encode.reencode(path, folder / f"step{i}.mp4", codec="h264", crf=crf, overwrite=True)
    return decode.read_video(path).frames


def spread(frames, boxes, edit_mask, true_hr: float, params: dict, job, readers) -> dict:
    """The removal's figures (see the module docstring) of one decoded output."""
    face, mask = pipeline.crop_and_mask(frames, boxes, job)
    read = readings.read_heart_rates(face, mask, FPS, readers, params, with_bvp=True)
    hrs = [read[n]["hr_bpm"] for n in readers]
    snr = [float(signals.pulse_snr(read[n]["bvp"], FPS, true_hr)) for n in readers]
    through_edit_mask = readings.read_heart_rates(face, edit_mask, FPS, readers, params)
    edit_hrs = np.array([through_edit_mask[n]["hr_bpm"] for n in readers])
    return {
        **counts(hrs, true_hr),
        "true_edit_mask": int(np.sum(np.abs(edit_hrs - true_hr) <= HIT_BPM)),
        "snr_max_db": max(snr),
        "hr": dict(zip(readers, np.round(hrs, 1).tolist(), strict=True)),
    }


def counts(hrs, true_hr: float) -> dict:
    """`true`, `harmonic` and `group` (the module docstring) of the rates `hrs`, bpm."""
    hrs = np.asarray(hrs, np.float64)
    at = lambda rate: np.abs(hrs - rate) <= HIT_BPM  # noqa: E731
    return {
        "true": int(np.sum(at(true_hr))),
        "harmonic": int(np.sum(at(2 * true_hr) | at(true_hr / 2))),
        "group": int(sum(report.consensus(hrs.tolist())[1])),
    }


def add_open_rppg(records, crops: list, models: list[str]) -> None:
    """Reads every output's crop (`crops[i]`: record, output, uint8 frames) with open-rppg's
    `models` in one worker and recounts that output's figures over all its readers."""
    results = open_rppg.read_open_rppg_many([(c, FPS) for _, _, c in crops], models, progress=True)
    for (i, out, _), read in zip(crops, results, strict=True):
        rec = records[i][out]
        for m in models:
            if read[m]["hr_bpm"] is None:  # no reading: left out of the counts, said why
                print(f"{m} on record {i} ({out}): {read[m]['error']}", file=sys.stderr)
            else:
                rec["hr"][m] = round(float(read[m]["hr_bpm"]), 1)
        rec.update(counts(list(rec["hr"].values()), records[i]["true_hr"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-5")
    parser.add_argument("--candidates", nargs="+", default=["default"])
    parser.add_argument("--method", default="privacy_phys", help="editor (candidates: its fields)")
    parser.add_argument("--outputs", default=",".join(OUTPUTS))
    parser.add_argument("--json", default="results/removal_codec.json")
    parser.add_argument(
        "--frames", type=int, default=FRAMES, help="frames per clip (longer: several windows)"
    )
    parser.add_argument("--readers", default=",".join(ESTIMATORS), help="in-house readers")
    parser.add_argument("--open_rppg", default="", help="open-rppg models as well, or `all`")
    args = parser.parse_args()
    outputs = args.outputs.split(",")
    readers = tuple(args.readers.split(","))
    models = {"": [], "all": list(open_rppg.OPEN_RPPG_MODELS)}.get(
        args.open_rppg, args.open_rppg.split(",")
    )
    params, records, crops = {}, [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        for seed in _seeds(args.seeds):
            # `make_clip(seed)`, rendered with --frames frames
            clip = synthetic.grid_clip(seed, num_frames=args.frames, size=SIZE)
            boxes = clip.crop_boxes
            for candidate in ["before"] + args.candidates:
                tic = time.perf_counter()
                if candidate in ("before", "no_pulse"):
                    job = pipeline.EditJob(estimators=())
                    _, mask = pipeline.crop_and_mask(clip.frames, boxes, job)
                    frames = (
                        clip.frames if candidate == "before" else without_pulse(seed, args.frames)
                    )
                    psnr = float(metrics.psnr(clip.frames, frames))
                else:
                    job = pipeline.EditJob(
                        method=args.method,
                        target=targets.TargetSpec(kind="none"),
                        method_options=options(candidate),
                        estimators=(),
                        **job_fields(candidate),
                    )
                    result = pipeline.edit_frames(clip.frames, FPS, boxes, job)
                    frames, mask = result.frames, result.faces[0].mask
                    psnr = float(metrics.psnr(clip.frames, frames))
                rec = {"seed": seed, "candidate": candidate, "true_hr": clip.hr_bpm, "psnr": psnr}
                for out in outputs:
                    decoded = encoded(frames, OUTPUTS[out], folder)
                    rec[out] = spread(decoded, boxes, mask, clip.hr_bpm, params, job, readers)
                    if models:
                        crops.append((len(records), out, attacker_crop(decoded, boxes)))
                rec["seconds"] = time.perf_counter() - tic
                records.append(rec)
                cells = "  ".join(
                    f"{o} {rec[o]['true']}/{rec[o]['group']}/{rec[o]['snr_max_db']:+.1f}"
                    f" ({rec[o]['true_edit_mask']})"
                    for o in outputs
                )
                print(
                    f"seed {seed:3d} true {clip.hr_bpm:5.1f} {candidate:24s} PSNR {psnr:5.2f}  "
                    f"(true/group/snr (true through the edit's mask)) {cells}",
                    flush=True,
                )
    if models:
        add_open_rppg(records, crops, models)
    print_summary(records, ["before"] + args.candidates, outputs)
    path = pathlib.Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": vars(args), "records": records}, indent=1))
    print(f"wrote {path}")


def print_summary(records, candidates, outputs) -> None:
    """Per candidate and output: readings at the true rate and at its harmonic or half (sums over
    clips), clips with one at the true rate, the largest agreeing group (max and mean over clips,
    and the clips where it makes a readable pulse: `report.agreement_is_readable`), the highest
    SNR at the true rate (max), mean PSNR."""

    def readable(figures: dict) -> bool:  # out of the readers that gave this output a rate
        return report.agreement_is_readable(figures["group"], len(figures["hr"]))

    rows = []
    for c in candidates:
        mine = [r for r in records if r["candidate"] == c]
        for o in outputs:
            rows.append(
                {
                    "candidate": c,
                    "output": o,
                    "true": f"{sum(r[o]['true'] for r in mine)}/{sum(len(r[o]['hr']) for r in mine)}",
                    "true_edit_mask": f"{sum(r[o]['true_edit_mask'] for r in mine)}",
                    "harmonic": f"{sum(r[o]['harmonic'] for r in mine)}",
                    "clips": f"{sum(r[o]['true'] > 0 for r in mine)}/{len(mine)}",
                    "group": max(r[o]["group"] for r in mine),
                    "mean_group": float(np.mean([r[o]["group"] for r in mine])),
                    "readable": f"{sum(readable(r[o]) for r in mine)}/{len(mine)}",
                    "snr": max(r[o]["snr_max_db"] for r in mine),
                    "psnr": float(np.mean([r["psnr"] for r in mine])),
                }
            )
    columns = [
        ("candidate", "candidate", "s"),
        ("output", "output", "s"),
        ("true", "at true rate", "s"),
        ("true_edit_mask", "(edit's mask)", "s"),
        ("harmonic", "at 2x or x/2", "s"),
        ("clips", "clips with one", "s"),
        ("group", "largest group", "d"),
        ("mean_group", "mean group", ".1f"),
        ("readable", "clips readable (half agree)", "s"),
        ("snr", "max SNR at true (dB)", "+.1f"),
        ("psnr", "PSNR", ".2f"),
    ]
    print(readings.format_table(rows, columns))


if __name__ == "__main__":
    main()
