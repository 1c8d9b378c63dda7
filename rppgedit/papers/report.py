"""Experiment reports: tables (Markdown, CSV) computed from the JSON-lines records of a run.

`run.run_experiment` writes one JSON record per clip x setting x crop x estimator (`RECORD_FIELDS`)
with the raw readings; everything here is recomputed from those records only, so a table can be
rebuilt (or checked) from `records.jsonl` alone.

Definitions (heart rates in bpm; `target` the setting's target heart rate):

* input MAE  = mean |HR read on the original - target|, output MAE = mean |HR read on the edited
  video - target|, output MAPE = 100 mean |HR edited - target| / target (PhysioLatent's table,
  arXiv 2509.25348; Privacy-Phys' MAE is the output MAE);
* hit rate = fraction of readings with |HR edited - target| <= `TOLERANCE_BPM`;
* original visible = fraction of readings with |HR edited - original HR| <= `TOLERANCE_BPM`, the
  original HR being the clip's ground truth when it has one, else the same estimator's reading of
  the original clip;
* PSNR / SSIM: means over the clips of each clip's value (one value per clip x setting, shared by
  all its estimator records); ``psnr_face_db`` is over the face-box pixels, ``psnr_db`` over the
  whole frames;
* MAE before (truth) = mean |HR read on the original - ground truth|: how well the estimator reads
  the unedited clips (empty without ground truth).

Readings that failed (an attacker error, no HR) are left out of the means and counted in ``errors``.
Rows are grouped per setting x crop x family x surrogate (``per_family``; the white-box estimators
that the editor optimised against are kept apart from the rest, so transfer to unseen estimators
shows) and per setting x crop x estimator (``per_estimator``); with quarter crops, an extra crop ``quarters`` pools the four quarters (the
papers' "average of the four quarters").
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Iterable, Sequence

from rppgedit import safe_write
from rppgedit.errors import RppgEditError
from rppgedit.tables import csv_text, markdown_table

TOLERANCE_BPM = 3.0
QUARTERS = ("upper_left", "upper_right", "bottom_left", "bottom_right")

RECORD_FIELDS = {
    "experiment": "experiment name (run.EXPERIMENTS)",
    "dataset": "dataset name",
    "clip": "clip id '<sample>@<start frame>'",
    "clip_meta": "dataset, sample, start frame, synthetic variant",
    "frames": "frames in the clip",
    "fps": "frame rate, Hz",
    "height": "frame height, pixels",
    "width": "frame width, pixels",
    "method": "editor name",
    "setting": "setting label",
    "options": "editor config overrides of the setting",
    "sweep": "swept quantity or null",
    "sweep_value": "its value or null",
    "target_hr_bpm": "target heart rate, bpm",
    "hr_true_bpm": "ground-truth heart rate of the clip, bpm, or null",
    "skin_coverage": "fraction of the face crop in the skin mask",
    "edit_seconds": "editor time attributed to this clip x setting, s",
    "psnr_db": "PSNR of the whole output frames vs the input, dB",
    "psnr_face_db": "PSNR over the face-box pixels, dB",
    "ssim": "SSIM of the whole frames",
    "ssim_face": "SSIM of the rectangle holding every face box",
    "crop": "what the estimator read: full or a quarter of the face box",
    "estimator": "estimator name (open_rppg:<model> for attackers)",
    "family": "classical, deep or attacker",
    "surrogate": "true when the estimator was one of the editor's surrogates (white box)",
    "hr_before_bpm": "HR read on the original clip, bpm",
    "hr_after_bpm": "HR read on the edited clip, bpm",
    "snr_before_db": "pulse SNR at the HR read, original clip, dB",
    "snr_after_db": "pulse SNR at the HR read, edited clip, dB",
    "error": "attacker error message or null",
}

SETTING_KEYS = ("experiment", "method", "setting", "sweep", "sweep_value", "target_hr_bpm", "crop")
# (key, header, format) of the table columns.
COLUMNS = (
    ("setting", "setting", "s"),
    ("crop", "crop", "s"),
    ("family", "family", "s"),
    ("estimator", "estimator", "s"),
    ("surrogate", "surrogate", "b"),
    ("clips", "clips", "d"),
    ("readings", "n", "d"),
    ("psnr_face_db", "PSNR face dB", ".2f"),
    ("psnr_db", "PSNR frame dB", ".2f"),
    ("ssim_face", "SSIM face", ".4f"),
    ("mae_before_truth", "MAE orig-truth", ".2f"),
    ("input_mae", "input MAE", ".2f"),
    ("output_mae", "output MAE", ".2f"),
    ("output_rmse", "output RMSE", ".2f"),
    ("output_mape", "MAPE %", ".2f"),
    ("hit_rate", "hit rate", ".2f"),
    ("original_visible", "orig. visible", ".2f"),
    ("snr_after_db", "SNR after dB", ".2f"),
    ("errors", "errors", "d"),
)
CSV_EXTRA = ("experiment", "method", "sweep", "sweep_value", "target_hr_bpm")


def read_jsonl(path) -> list[dict]:
    """The records of a JSON-lines file (blank lines skipped).

    Raises:
      RppgEditError: missing file or a line that is not JSON (the message names file and line).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise RppgEditError(f"{path}: records file not found")
    records = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise RppgEditError(f"{path}:{i}: not a JSON record ({err.msg})") from None
    return records


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else None


def _per_clip_mean(records: Sequence[dict], key: str) -> float | None:
    """Mean over distinct clips of a per-clip quantity (the same in all records of a clip)."""
    per_clip = {}
    for r in records:
        per_clip.setdefault(r["clip"], r.get(key))
    return _mean(per_clip.values())


def summarize(records: Sequence[dict]) -> dict:
    """The metrics of one group of records (see the module docstring for the definitions)."""
    valid = [r for r in records if r.get("hr_after_bpm") is not None]
    errs = [abs(r["hr_after_bpm"] - r["target_hr_bpm"]) for r in valid]

    def ref(r):
        return r["hr_true_bpm"] if r.get("hr_true_bpm") is not None else r.get("hr_before_bpm")

    visible = [
        abs(r["hr_after_bpm"] - ref(r)) <= TOLERANCE_BPM for r in valid if ref(r) is not None
    ]
    return {
        "clips": len({r["clip"] for r in records}),
        "readings": len(valid),
        "psnr_db": _per_clip_mean(records, "psnr_db"),
        "psnr_face_db": _per_clip_mean(records, "psnr_face_db"),
        "ssim": _per_clip_mean(records, "ssim"),
        "ssim_face": _per_clip_mean(records, "ssim_face"),
        "mae_before_truth": _mean(
            abs(r["hr_before_bpm"] - r["hr_true_bpm"])
            for r in records
            if r.get("hr_before_bpm") is not None and r.get("hr_true_bpm") is not None
        ),
        "input_mae": _mean(
            abs(r["hr_before_bpm"] - r["target_hr_bpm"])
            for r in records
            if r.get("hr_before_bpm") is not None
        ),
        "output_mae": _mean(errs),
        "output_rmse": math.sqrt(_mean(e * e for e in errs)) if errs else None,
        "output_mape": _mean(
            100.0 * abs(r["hr_after_bpm"] - r["target_hr_bpm"]) / r["target_hr_bpm"] for r in valid
        ),
        "hit_rate": _mean(float(e <= TOLERANCE_BPM) for e in errs),
        "original_visible": _mean(float(v) for v in visible),
        "snr_after_db": _mean(r.get("snr_after_db") for r in valid),
        "errors": len(records) - len(valid),
    }


def _grouped(records: Sequence[dict], keys: Sequence[str]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(_hashable(r.get(k)) for k in keys), []).append(r)
    rows = []
    for key, members in groups.items():
        row = dict(zip(keys, key, strict=True))
        row.update(summarize(members))
        rows.append(row)
    return rows


def _hashable(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def tables_from_jsonl(path) -> dict[str, list[dict]]:
    """The experiment tables computed from a records file.

    Args:
      path: a `records.jsonl` written by `run.run_experiment`.

    Returns:
      {"per_family": rows, "per_estimator": rows}; each row holds the setting keys
      (`SETTING_KEYS`), "family", "surrogate" (white box or not: a family is split in two when
      some of its estimators were the editor's surrogates) and, per estimator, "estimator", then
      the metrics of `summarize`, in the order the settings first appear in the file.
    """
    records = read_jsonl(path)
    if not records:
        raise RppgEditError(f"{path}: no records")
    pooled = [dict(r, crop="quarters") for r in records if r.get("crop") in QUARTERS]
    everything = records + pooled
    settings = {s: i for i, s in enumerate(dict.fromkeys(r.get("setting") for r in records))}
    crops = {c: i for i, c in enumerate(("full", *QUARTERS, "quarters"))}

    def order(row):  # settings in file order, then full face, the quarters, the pooled quarters
        return settings.get(row.get("setting"), 0), crops.get(row.get("crop"), len(crops))

    return {
        "per_family": sorted(
            _grouped(everything, (*SETTING_KEYS, "family", "surrogate")), key=order
        ),
        "per_estimator": sorted(
            _grouped(everything, (*SETTING_KEYS, "family", "estimator", "surrogate")), key=order
        ),
    }


def _columns(rows: Sequence[dict], with_estimator: bool) -> list[tuple[str, str, str]]:
    cols = [c for c in COLUMNS if with_estimator or c[0] != "estimator"]
    if len({r.get("crop") for r in rows}) <= 1:
        cols = [c for c in cols if c[0] != "crop"]
    if all(r.get("errors", 0) == 0 for r in rows):
        cols = [c for c in cols if c[0] != "errors"]
    return cols


def markdown_report(tables: dict[str, list[dict]], title: str = "") -> str:
    """Both tables as Markdown, per family first."""
    fam, est = tables["per_family"], tables["per_estimator"]
    parts = [f"# {title}\n" if title else ""]
    parts.append(
        f"Hit rate: |HR edited - target| <= {TOLERANCE_BPM:g} bpm. Original visible: |HR edited - "
        f"original HR| <= {TOLERANCE_BPM:g} bpm (ground truth, else the estimator's own reading "
        "of the original). Input/output MAE and MAPE are to the target HR.\n"
    )
    parts.append("## Per estimator family\n")
    parts.append(markdown_table(fam, _columns(fam, False)) + "\n")
    parts.append("## Per estimator\n")
    parts.append(markdown_table(est, _columns(est, True)) + "\n")
    return "\n".join(p for p in parts if p)


def write_reports(records_path, out_dir) -> dict:
    """Writes `tables.md`, `per_family.csv` and `per_estimator.csv` computed from the records.

    Returns:
      {"tables": `tables_from_jsonl` result, "markdown": text, "markdown_path": str,
      "csv_paths": [str, str]}.
    """
    out = pathlib.Path(out_dir)
    tables = tables_from_jsonl(records_path)
    kinds = {r["experiment"] for r in tables["per_family"]}
    md = markdown_report(tables, title=", ".join(sorted(kinds)))
    md_path = safe_write.write_text_atomic(out / "tables.md", md)
    csv_paths = []
    for name, rows in tables.items():
        keys = [*CSV_EXTRA] + [
            k for k, _, _ in COLUMNS if name == "per_estimator" or k != "estimator"
        ]
        keys = list(dict.fromkeys(keys)) + ["ssim"]
        csv_paths.append(safe_write.write_text_atomic(out / f"{name}.csv", csv_text(rows, keys)))
    return {
        "tables": tables,
        "markdown": md,
        "markdown_path": str(md_path),
        "csv_paths": [str(p) for p in csv_paths],
    }
