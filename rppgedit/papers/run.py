"""The papers' experiments: each one a declared grid, clip set, readers and plot, run by
`rppgedit.runner` (the sweeps' runner: content keys, resume, sharding over devices and hosts).

The experiments (`EXPERIMENTS`), each a grid of edit settings run on every clip of a dataset:

* ``lambda_sweep`` -- Privacy-Phys (Sun & Li, "Privacy-Phys: Facial Video-Based Physiological
  Modification for Privacy Protection", IEEE SPL 29, 2022), Fig. 3: PSNR and heart-rate MAE to the
  120 bpm target as the fidelity weight lambda varies.
* ``mae_vs_psnr`` -- Privacy-Phys Fig. 4: Privacy-Phys against PulseEdit (Chen, Liao & Wu, IEEE TIFS
  17, 2022) at several edit strengths, MAE against PSNR per estimator family. The strength of
  Privacy-Phys is its Adam learning rate (Adam moves a pixel by about lr per step, so lr x steps
  sets the edit size: about 6 dB of PSNR per doubling); that of PulseEdit is its fidelity weight.
* ``table1_crops`` -- Privacy-Phys Table I: per-estimator MAE and PSNR of both methods at their
  default settings, read on the full face and on each quarter of the face box (upper/bottom,
  left/right). The edit is always made on the full face; a quarter attacker sees only its quarter.
* ``target_hrs`` -- the main table of PhysioLatent (arXiv 2509.25348): targets of 60, 80, 100 and
  120 bpm; PSNR, SSIM, input MAE = mean |HR read on the original - target|, output MAE = mean
  |HR read on the edited video - target| and output MAPE = 100 mean |HR edited - target| / target.

An experiment is data (`Experiment`): its default editors, the option each editor sweeps (and the
grid of values it takes), the crops its readers see and its summary plot. `ExperimentPlan` is the
`runner.Plan` that runs one; how one clip x setting is computed (the path of `pipeline.edit_frames`,
batched with other clips' windows by the runner):

    frames ──face boxes──► crop S×S ──skin──► mask ──windows──► editor.edit_batch ──► residual
    residual ──paste into the full frames (skin mask only)──► stochastic 8-bit rounding ──► output
    output ──crop (full face or a quarter of it)──► estimators; PSNR/SSIM of output vs frames

Each clip x setting is the `pipeline.EditJob` of its setting: its output has the bits of
`--mode=edit` with those settings (same rounding seed, `seed`). Clips are prepared
`clips_per_chunk` at a time, so a dataset never has to fit in memory.

Clips (`rppgedit.data.clips`): ``synthetic`` (seeded faces cycling through light/medium/dark skin,
still/moving heads and steady/drifting light, heart rates drawn in 55-95 bpm; their own
`crop_boxes`), or a name of `rppgedit.data.datasets.DATASETS` (``folder`` points at any videos) cut
into consecutive `clip_seconds` clips (each recording decoded and listed once under
`out_dir/clips/`, then decoded again clip by clip), faces found by `pipeline.find_boxes`.

Estimators are reported by family: ``classical`` (trace methods), ``deep`` (rppgedit's Flax models)
and ``attacker`` (open-rppg's deep models run as black boxes in a subprocess, `rppgedit.open_rppg`;
never used for editing, so their columns show transfer to unseen estimators). A record marks an
estimator that is also one of the editor's surrogates (``surrogate: true``, white box).

Every record (one per clip x setting x crop x estimator, see `report.RECORD_FIELDS`) holds the raw
readings; every table and plot is computed from the JSON lines by `report.tables_from_jsonl`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rppgedit import editors, metrics, pipeline, readings, runner, safe_write, targets
from rppgedit.data import clips as clip_sources
from rppgedit.errors import RppgEditError
from rppgedit.estimators import registry
from rppgedit.papers import report
from rppgedit.report import family_of
from rppgedit.runner import Setting
from rppgedit.video import crop, paste

CROPS = ("full", "upper_left", "upper_right", "bottom_left", "bottom_right")
DEFAULT_ESTIMATORS = registry.DEFAULT_READERS
# lambda of Privacy-Phys (Fig. 3); the paper picks 0.1.
DEFAULT_LAMBDAS = (0.01, 0.1, 1.0, 10.0, 100.0)
# Edit strengths for Fig. 4: face PSNR measured 54-48 dB (Privacy-Phys), 58-48 dB (PulseEdit) on
# the synthetic clips; 55-52 dB and 57-41 dB on the real physrecorder webcam clip.
DEFAULT_LEARNING_RATES = (0.05, 0.1, 0.2, 0.4)
DEFAULT_PULSEEDIT_LAMBDAS = (2.0, 0.3, 0.05, 0.01)
DEFAULT_TARGET_HRS = (60.0, 80.0, 100.0, 120.0)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One of the papers' experiments as data.

    Attributes:
      name: its name (`--experiment`).
      source: the figure or table it reproduces.
      methods: the editors it runs by default.
      sweeps: per editor ("*": every editor), the swept quantity as (Config field or
        "target_hr_bpm", the name of its grid in `default_settings`' arguments, its short name in
        labels); an experiment with sweeps runs only the editors named there. Empty: one setting
        per editor at its defaults.
      crops: where the readers look: the full face crop, or it and its four quarters.
      plot: (function of `rppgedit.papers.plots` drawing the summary from the per-family table,
        file name).
    """

    name: str
    source: str
    methods: tuple[str, ...]
    sweeps: dict[str, tuple[str, str, str]]
    crops: tuple[str, ...]
    plot: tuple[str, str]


_LAMBDA = ("fidelity_weight", "lambdas", "lambda")
EXPERIMENTS = {
    e.name: e
    for e in (
        Experiment(
            "lambda_sweep",
            "Privacy-Phys Fig. 3",
            ("privacy_phys",),
            {"privacy_phys": _LAMBDA, "pulseedit": _LAMBDA},
            ("full",),
            ("lambda_sweep", "fig3_lambda_sweep.png"),
        ),
        Experiment(
            "mae_vs_psnr",
            "Privacy-Phys Fig. 4",
            ("privacy_phys", "pulseedit"),
            {
                "privacy_phys": ("learning_rate", "learning_rates", "lr"),
                "pulseedit": ("fidelity_weight", "pulseedit_lambdas", "lambda"),
            },
            ("full",),
            ("mae_vs_psnr", "fig4_mae_vs_psnr.png"),
        ),
        Experiment(
            "table1_crops",
            "Privacy-Phys Table I",
            ("privacy_phys", "pulseedit"),
            {},
            CROPS,
            ("crops_bars", "table1_crops.png"),
        ),
        Experiment(
            "target_hrs",
            "PhysioLatent main table",
            ("privacy_phys",),
            {"*": ("target_hr_bpm", "target_hrs", "target")},
            ("full",),
            ("target_hrs", "target_hrs.png"),
        ),
    )
}
KINDS = tuple(EXPERIMENTS)


def experiment(kind: str) -> Experiment:
    """The experiment named `kind`, or a one-line error listing them."""
    if kind not in EXPERIMENTS:
        raise RppgEditError(f"unknown experiment {kind!r}; choose one of {', '.join(KINDS)}")
    return EXPERIMENTS[kind]


# --------------------------------------------------------------------------------------------
# Settings.


def default_settings(
    kind: str,
    *,
    methods: Sequence[str] | None = None,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    learning_rates: Sequence[float] = DEFAULT_LEARNING_RATES,
    pulseedit_lambdas: Sequence[float] = DEFAULT_PULSEEDIT_LAMBDAS,
    target_hrs: Sequence[float] = DEFAULT_TARGET_HRS,
    target_hr_bpm: float = 120.0,
    method_options: dict[str, tuple[tuple[str, Any], ...]] | None = None,
) -> list[Setting]:
    """The settings grid of an experiment (`EXPERIMENTS[kind]`).

    Args:
      kind: one of `KINDS`.
      methods: editors to run (default: the experiment's).
      lambdas: lambda_sweep's fidelity weights.
      learning_rates: mae_vs_psnr's Privacy-Phys Adam learning rates (grey levels per step).
      pulseedit_lambdas: mae_vs_psnr's PulseEdit fidelity weights.
      target_hrs: target_hrs' targets in bpm.
      target_hr_bpm: the target of the experiments that do not sweep it, bpm (the papers: 120).
      method_options: per method, fixed (field, value) overrides applied to every setting of that
        method (e.g. Privacy-Phys surrogates or steps); a swept field overrides them.

    Returns:
      list of `runner.Setting` with unique labels, editor by editor.
    """
    exp = experiment(kind)
    grids = {
        "lambdas": lambdas,
        "learning_rates": learning_rates,
        "pulseedit_lambdas": pulseedit_lambdas,
        "target_hrs": target_hrs,
    }
    fixed = dict(method_options or {})
    out: list[Setting] = []
    for method in tuple(methods) if methods else exp.methods:
        editors.get(method)  # a known editor
        options = tuple(dict(fixed.get(method, ())).items())
        sweep = exp.sweeps.get(method, exp.sweeps.get("*"))
        if sweep is None and exp.sweeps:
            swept = " or ".join(sorted(exp.sweeps))
            raise RppgEditError(f"experiment {kind} sweeps {swept}, not {method}")
        if sweep is None:
            target = targets.TargetSpec(kind="sinusoid", hr_bpm=float(target_hr_bpm))
            out.append(Setting(method, method, options, target))
            continue
        field, grid, short = sweep
        if not grids[grid]:
            raise RppgEditError(f"experiment {kind}: no {short} values for {method}")
        for v in grids[grid]:
            hr = float(v) if field == "target_hr_bpm" else float(target_hr_bpm)
            swept_options = options
            if field != "target_hr_bpm":
                swept_options = tuple({**dict(options), field: float(v)}.items())
            out.append(
                Setting(
                    f"{method} {short}={float(v):g}",
                    method,
                    swept_options,
                    targets.TargetSpec(kind="sinusoid", hr_bpm=hr),
                    field,
                    float(v),
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# Crops and readings.


def crop_slices(name: str, size: int) -> tuple[slice, slice]:
    """(rows, cols) of crop `name` (one of `CROPS`) inside an S x S face crop."""
    half = size // 2
    rows = {"full": slice(0, size), "upper": slice(0, half), "bottom": slice(half, size)}
    cols = {"full": slice(0, size), "left": slice(0, half), "right": slice(half, size)}
    if name == "full":
        return rows["full"], cols["full"]
    if name not in CROPS:
        raise ValueError(f"unknown crop {name!r}; choose from {CROPS}")
    vertical, horizontal = name.split("_")
    return rows[vertical], cols[horizontal]


def sub_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    """Face boxes (T,4) cut to crop `name`: the full box or one of its quarters."""
    boxes = np.asarray(boxes, np.float32)
    if name == "full":
        return boxes
    x0, y0, x1, y1 = boxes.T
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    vertical, horizontal = name.split("_")
    ys = (y0, ym) if vertical == "upper" else (ym, y1)
    xs = (x0, xm) if horizontal == "left" else (xm, x1)
    return np.stack([xs[0], ys[0], xs[1], ys[1]], axis=-1).astype(np.float32)


def _finite(value) -> float | None:
    value = None if value is None else float(value)
    return value if value is not None and math.isfinite(value) else None


def _attacker_crops(
    frames: np.ndarray, boxes: np.ndarray, crops: Sequence[str]
) -> list[np.ndarray]:
    """uint8 crops for open-rppg: each crop at about its native pixel size (median box side)."""
    out = []
    for name in crops:
        b = sub_boxes(boxes, name)
        side = int(
            np.clip(
                round(float(np.median(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))), 16, 256
            )
        )
        out.append(np.round(crop.crop_resize(frames, b, side) * 255.0).astype(np.uint8))
    return out


def _read_attackers(
    crops_u8: list[np.ndarray], fps: float, models: Sequence[str], progress: bool = False
) -> list[dict[str, dict]]:
    from rppgedit import open_rppg

    return open_rppg.read_open_rppg_many([(c, fps) for c in crops_u8], models, progress=progress)


def _readings(
    clip_s: np.ndarray,
    mask: np.ndarray,
    fps: float,
    crops: Sequence[str],
    estimators: Sequence[str],
    params: dict,
) -> dict[str, dict[str, dict[str, float]]]:
    """{crop: {estimator: {"hr_bpm", "snr_db"}}} read on the face crop and its quarters."""
    size = clip_s.shape[1]
    out = {}
    for name in crops:
        rows, cols = crop_slices(name, size)
        out[name] = readings.read_heart_rates(
            clip_s[:, rows, cols], mask[:, rows, cols], fps, estimators, params
        )
    return out


def _face_metrics(original: np.ndarray, output: np.ndarray, boxes: np.ndarray) -> dict:
    """PSNR of the full frames and of the face-box pixels; SSIM of the frames and the face area."""
    num, height, width = original.shape[:3]
    inside = crop.mask_to_frame(np.ones((num, 1, 1), bool), boxes, height, width)
    x0 = int(max(0, math.floor(boxes[:, 0].min())))
    y0 = int(max(0, math.floor(boxes[:, 1].min())))
    x1 = int(min(width, math.ceil(boxes[:, 2].max())))
    y1 = int(min(height, math.ceil(boxes[:, 3].max())))
    face_ssim = None
    if min(x1 - x0, y1 - y0) >= 11:
        face_ssim = metrics.ssim(original[:, y0:y1, x0:x1], output[:, y0:y1, x0:x1])
    return {
        "psnr_db": _finite(metrics.psnr(original, output)),
        "psnr_face_db": _finite(metrics.psnr(original[inside], output[inside])),
        "ssim": _finite(metrics.ssim(original, output)),
        "ssim_face": _finite(face_ssim),
    }


# --------------------------------------------------------------------------------------------
# The plan.


@dataclasses.dataclass
class _Clip:
    """A clip ready to edit: the clip, its full-frame mask and the readings before the edit."""

    clip: clip_sources.Clip
    mask_full: np.ndarray  # (T,H,W) bool
    before: dict  # {crop: {estimator: reading}}
    attackers_before: list[dict] | None  # one dict per crop


class ExperimentPlan:
    """One experiment as a `runner.Plan`: full-frame edits read by every estimator (and attacker)
    on the face crop and its quarters."""

    def __init__(self, exp: Experiment, settings, *, clips: dict, job, estimators, models, plots_on,
                 progress, out: pathlib.Path):  # fmt: skip
        self.name, self.exp, self.settings, self.job = exp.name, exp, settings, job
        self.clips, self.estimators, self.models = clips, tuple(estimators), tuple(models)
        self.plots_on, self.progress, self.out = plots_on, progress, out
        self.crops = exp.crops
        self.seconds = dict.fromkeys(("load", "read_before", "paste", "read_after"), 0.0)
        self.params = {n: registry.get(n).load_params() for n in estimators
                       if registry.get(n).input == "video"}  # fmt: skip
        self.first_clip = None

    def describe(self) -> dict:
        job = self.job
        return {
            "experiment": self.name,
            "work_size": job.work_size,
            "window": job.window,
            "overlap": job.overlap,
            "batch_windows": job.batch_windows,
            "mask_method": job.mask_method,
            "seed": job.seed,
            "estimators": list(self.estimators),
            "attackers": list(self.models),
            "crops": list(self.crops),
        }

    def clip_refs(self, out, pid, nproc, progress) -> list[runner.ClipRef]:
        c = self.clips
        if c["dataset"] == "synthetic":
            num = clip_sources.DEFAULT_SYNTHETIC_CLIPS if c["max_clips"] is None else c["max_clips"]
            frames = max(32, round(c["clip_seconds"] * 30.0))
            refs = [
                runner.ClipRef(
                    clip_sources.synthetic_variant_id(i),
                    frames,
                    30.0,
                    {
                        "dataset": "synthetic",
                        "variant": i,
                        "seed": c["seed"],
                        "clip_seconds": c["clip_seconds"],
                        "size": c["size"],
                        "fps": 30.0,
                    },
                )  # fmt: skip
                for i in range(num)
            ]
        else:
            refs = self._dataset_refs(out, pid, nproc, progress)
        self.first_clip = refs[0].id if refs else None
        return refs

    def _dataset_refs(self, out, pid, nproc, progress) -> list[runner.ClipRef]:
        c = self.clips
        entries = runner.list_dataset(
            self._listing(), out, pid, nproc, max_clips=c["max_clips"], progress=progress
        )
        return [
            runner.ClipRef(
                e["id"],
                e["num_frames"],
                e["fps"],
                {
                    "dataset": c["dataset"],
                    "clip_seconds": c["clip_seconds"],
                    "allow_no_face": c["allow_no_face"],
                    **e,
                },
            )  # fmt: skip
            for e in entries
        ]

    def _listing(self) -> clip_sources.Listing:
        c = self.clips
        return clip_sources.Listing(
            c["dataset"], c["data_dir"], c["clip_seconds"], None, c["allow_no_face"],
            {"for": "experiments"},
        )  # fmt: skip

    def _load(self, ref: runner.ClipRef) -> clip_sources.Clip:
        c = self.clips
        if c["dataset"] == "synthetic":
            return clip_sources.synthetic_variant(
                ref.desc["variant"], c["clip_seconds"], size=c["size"], seed=c["seed"]
            )
        return clip_sources.dataset_clip(self._listing(), ref.desc)

    def prepare(self, ref: runner.ClipRef) -> runner.Prepared:
        tic = time.perf_counter()
        clip = self._load(ref)
        crop_s, mask = pipeline.crop_and_mask(clip.frames, clip.boxes, self.job)
        mask_full = pipeline.full_frame_mask(mask, clip.boxes, clip.frames.shape[1:3])
        self.seconds["load"] += time.perf_counter() - tic
        tic = time.perf_counter()
        before = _readings(crop_s, mask, clip.fps, self.crops, self.estimators, self.params)
        attackers = None
        if self.models:
            attackers = _read_attackers(
                _attacker_crops(clip.frames, clip.boxes, self.crops), clip.fps, self.models,
                self.progress,
            )  # fmt: skip
        self.seconds["read_before"] += time.perf_counter() - tic
        return runner.Prepared(crop_s, mask, _Clip(clip, mask_full, before, attackers))

    def _item_job(self, setting: Setting) -> pipeline.EditJob:
        """The `pipeline.EditJob` of a setting: `--mode=edit` with it gives the same bits."""
        return dataclasses.replace(
            self.job, method=setting.method, target=setting.target, method_options=setting.options
        )

    def finish(self, item: runner.Item, prepared, residual, seconds) -> list[dict]:
        """Pastes a residual, quantises, reads every estimator; returns the records."""
        prep: _Clip = prepared.data
        clip, setting = prep.clip, item.setting
        tic = time.perf_counter()
        num = clip.frames.shape[0]
        edited = pipeline.FaceEdit(clip.boxes, 0, num, prepared.crop, prepared.mask, residual)
        output, _ = pipeline.paste_frames(clip.frames, [edited], self._item_job(setting))
        quality = _face_metrics(clip.frames, output, clip.boxes)
        self.seconds["paste"] += time.perf_counter() - tic

        tic = time.perf_counter()
        # Read through the output's own skin mask, as an observer of the output would
        # (`edit_report.Readers.add_frames`).
        after_s, after_mask = pipeline.crop_and_mask(output, clip.boxes, self._item_job(setting))
        after = _readings(after_s, after_mask, clip.fps, self.crops, self.estimators,
                          self.params)  # fmt: skip
        attackers_after = None
        if self.models:
            attackers_after = _read_attackers(
                _attacker_crops(output, clip.boxes, self.crops), clip.fps, self.models,
                self.progress,
            )  # fmt: skip
        self.seconds["read_after"] += time.perf_counter() - tic
        if self.plots_on and item.clip.id == self.first_clip:
            self._save_example(item, prepared, after_s, output, residual)

        surrogates = {n for n, _ in getattr(item.cfg, "surrogates", ())}
        base = {
            "experiment": self.name,
            "dataset": clip.meta.get("dataset"),
            "clip": clip.id,
            "clip_meta": clip.meta,
            "frames": int(clip.frames.shape[0]),
            "fps": clip.fps,
            "height": int(clip.frames.shape[1]),
            "width": int(clip.frames.shape[2]),
            "method": setting.method,
            "setting": setting.label,
            "options": dict(setting.options),
            "sweep": setting.sweep,
            "sweep_value": setting.value,
            "target_hr_bpm": setting.target_hr_bpm,
            "hr_true_bpm": clip.true_hr_bpm,
            "skin_coverage": float(prepared.mask.mean()),
            "edit_seconds": seconds,
            **quality,
        }
        records = []
        for c, name in enumerate(self.crops):
            for est in self.estimators:
                b, a = prep.before[name][est], after[name][est]
                records.append(
                    {
                        **base,
                        "crop": name,
                        "estimator": est,
                        "family": family_of(est),
                        "surrogate": est in surrogates,
                        "hr_before_bpm": _finite(b["hr_bpm"]),
                        "hr_after_bpm": _finite(a["hr_bpm"]),
                        "snr_before_db": _finite(b["snr_db"]),
                        "snr_after_db": _finite(a["snr_db"]),
                        "error": None,
                    }
                )
            for model in self.models:
                b = prep.attackers_before[c][model]
                a = attackers_after[c][model]
                records.append(
                    {
                        **base,
                        "crop": name,
                        "estimator": f"open_rppg:{model}",
                        "family": "attacker",
                        "surrogate": False,
                        "hr_before_bpm": _finite(b.get("hr_bpm")),
                        "hr_after_bpm": _finite(a.get("hr_bpm")),
                        "snr_before_db": _finite(b.get("snr_db")),
                        "snr_after_db": _finite(a.get("snr_db")),
                        "error": a.get("error") or b.get("error"),
                    }
                )
        return records

    def _plot_estimator(self) -> str | None:
        deep = [e for e in self.estimators if family_of(e) == "deep"]
        return deep[0] if deep else (self.estimators[0] if self.estimators else None)

    def _save_example(self, item, prepared, after_s, output, residual) -> None:
        """What Fig. 5 (PSD before/after) and Fig. 6 (difference maps) need of the first clip,
        saved as `examples/<key>.npz` (the plots are drawn when the grid is merged)."""
        name = self._plot_estimator()
        if name is None:
            return
        prep: _Clip = prepared.data
        clip, fps, mid = prep.clip, prep.clip.fps, prep.clip.frames.shape[0] // 2
        bvps = [
            readings.estimate_bvp(name, s, prepared.mask, fps, self.params.get(name))
            for s in (prepared.crop, after_s)
        ]
        x0, y0, x1, y1 = (int(round(v)) for v in clip.boxes[mid])
        height, width = clip.frames.shape[1:3]
        y0, x0, y1, x1 = max(0, y0), max(0, x0), min(height, y1), min(width, x1)
        edit = paste.paste_float(  # before rounding
            clip.frames[mid : mid + 1],
            clip.boxes[mid : mid + 1],
            residual[mid : mid + 1],
            prep.mask_full[mid : mid + 1],
        )[0]
        face = (slice(y0, y1), slice(x0, x1))
        arrays = {
            "bvp_before": bvps[0],
            "bvp_after": bvps[1],
            "frame_before": clip.frames[mid][face],
            "frame_after": output[mid][face],
            "frame_edit": edit[face],
        }
        meta = {
            "clip": clip.id,
            "setting": item.setting.label,
            "estimator": name,
            "fps": fps,
            "hr_true_bpm": clip.true_hr_bpm,
            "target_hr_bpm": item.setting.target_hr_bpm,
        }
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
        (self.out / "examples").mkdir(exist_ok=True)
        safe_write.write_bytes(self.out / "examples" / f"{item.key}.npz", buffer.getvalue())

    def merge(self, out, records, missing) -> dict:
        del missing
        tic = time.perf_counter()
        records_path = out / "records.jsonl"
        safe_write.write_text_atomic(
            records_path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
        )
        written = report.write_reports(records_path, out)
        plot_paths = []
        if self.plots_on:
            from rppgedit.papers import plots  # matplotlib: the plots extra

            function, file_name = self.exp.plot
            draw = getattr(plots, function)
            plot_paths.append(draw(written["tables"]["per_family"], out / file_name))
            keys = list(dict.fromkeys(r["key"] for r in records))
            plot_paths += _example_plots(out, keys)
        self.seconds["report"] = time.perf_counter() - tic
        return {
            "records": len(records),
            "records_path": str(records_path),
            "tables_path": written["markdown_path"],
            "csv_paths": written["csv_paths"],
            "plots": [str(p) for p in plot_paths],
            "markdown": written["markdown"],
        }


def _example_plots(out: pathlib.Path, keys: Sequence[str]) -> list[pathlib.Path]:
    """Fig. 5 (PSD before/after) per setting and Fig. 6 (difference maps) of the first clip, from
    the examples of the grid's `keys` saved by `ExperimentPlan._save_example`."""
    from rppgedit.papers import plots  # matplotlib: the plots extra

    examples = []
    for key in keys:
        path = out / "examples" / f"{key}.npz"
        if path.exists():
            with np.load(path) as data:
                examples.append({**json.loads(str(data["meta"])), **{k: data[k] for k in data}})
    paths = []
    for i, ex in enumerate(examples):
        path = out / f"fig5_psd_{i:02d}.png"
        plots.psd_before_after(
            ex["bvp_before"],
            ex["bvp_after"],
            ex["fps"],
            path,
            hr_original_bpm=ex["hr_true_bpm"],
            hr_target_bpm=ex["target_hr_bpm"],
            title=f"{ex['clip']}: {ex['setting']} ({ex['estimator']})",
        )
        paths.append(path)
    if not examples:
        return paths
    for key, name, what in (
        ("frame_edit", "fig6_abs_diff.png", "the edit before 8-bit rounding"),
        ("frame_after", "fig6_abs_diff_8bit.png", "the 8-bit output (stochastic rounding)"),
    ):
        path = out / name
        plots.abs_diff_maps(
            examples[0]["frame_before"],
            {ex["setting"]: ex[key] for ex in examples},
            path,
            title=f"{examples[0]['clip']}, middle frame, face box: |edited - original| of {what}",
        )
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# The entry point.


def items_path(out: pathlib.Path, process_index: int = 0) -> pathlib.Path:
    """A process's resumable store of finished (clip, setting) items (`runner.results_path`)."""
    return runner.results_path(out, process_index)


def run_experiment(
    kind: str,
    *,
    dataset: str = "synthetic",
    data_dir: str | None = None,
    clip_seconds: float = 15.0,
    out_dir: str,
    methods: Sequence[str] | None = None,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    learning_rates: Sequence[float] = DEFAULT_LEARNING_RATES,
    pulseedit_lambdas: Sequence[float] = DEFAULT_PULSEEDIT_LAMBDAS,
    target_hrs: Sequence[float] = DEFAULT_TARGET_HRS,
    target_hr_bpm: float = 120.0,
    method_options: dict[str, tuple[tuple[str, Any], ...]] | None = None,
    work_size: int = 64,
    window: int = 128,
    overlap: int = 32,
    batch_windows: int = 4,
    clips_per_chunk: int = 4,
    mask_method: str = "ycrcb_adaptive",
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    attackers: Sequence[str] = (),
    attacker_models: Sequence[str] | None = None,
    max_clips: int | None = None,
    seed: int = 0,
    synthetic_size: int = 128,
    allow_no_face: bool = False,
    make_plots: bool = True,
    progress: bool = False,
    config: dict | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> dict:
    """Runs (or resumes) one of the papers' experiments on `rppgedit.runner` and writes its
    records, tables and plots (and the command line's resolved `config`, when given, into
    `summary.json` and `grid.json`).

    Args:
      kind: one of `KINDS`.
      dataset: "synthetic" or a name of `rppgedit.data.datasets.DATASETS` ("folder" for any
        videos).
      data_dir: the dataset's root folder (not for synthetic).
      clip_seconds: clip length in s (the papers: 15).
      out_dir: folder for `records.jsonl`, `tables.md`, `per_estimator.csv`, `per_family.csv`,
        `summary.json` and the PNG plots (created; existing files of the same names are replaced),
        and `results.<process>.jsonl`, the resumable store: each finished (clip, setting) item is
        appended as it ends, keyed by its content, so running the same command again (after an
        interruption, or with more settings) edits only the items not yet in it.
      methods, lambdas, learning_rates, pulseedit_lambdas, target_hrs, target_hr_bpm,
        method_options: the settings grid, see `default_settings`.
      work_size: side S of the face crop the editor works on and the estimators read, in pixels.
      window, overlap: frames per editing window and their minimum overlap (cross-faded).
      batch_windows: windows each device edits per call (windows of several clips share a batch).
      clips_per_chunk: clips loaded and edited together (bounds memory).
      mask_method: skin-mask rule (`rppgedit.video.skin`).
      estimators: rppgedit estimator names read before and after every edit.
      attackers: () or ("open_rppg",): also read open-rppg's deep models (slow; a subprocess).
      attacker_models: open-rppg model names (default `open_rppg.OPEN_RPPG_MODELS`).
      max_clips: at most this many clips (synthetic default: 6).
      seed: seeds the synthetic clips and the stochastic rounding.
      synthetic_size: frame side of synthetic clips, in pixels.
      allow_no_face: dataset clips without a detected face get a centred box.
      make_plots: write the PNG plots.
      progress: show a bar of the finished clip x setting items (total, ETA) on stderr.
      process_index, process_count: this process among the processes sharing `out_dir` (default
        jax's): each edits its share of the items (`runner.shard_items`); under `jax.distributed`
        process 0 writes the records, tables and plots after a barrier, else the process that
        finds every item finished does (the others return with `complete` False).

    Returns:
      summary dict: kind, dataset, counts (clips, records, edited, skipped, missing), complete,
      paths of the outputs, seconds spent per stage and the Markdown tables.
    """
    tic_total = time.perf_counter()
    exp = experiment(kind)
    settings = default_settings(
        kind,
        methods=methods,
        lambdas=lambdas,
        learning_rates=learning_rates,
        pulseedit_lambdas=pulseedit_lambdas,
        target_hrs=target_hrs,
        target_hr_bpm=target_hr_bpm,
        method_options=method_options,
    )
    estimators = tuple(dict.fromkeys(estimators))
    for name in estimators:
        registry.get(name)
    if not estimators and not attackers:
        raise RppgEditError("experiment: no estimators and no attackers to read")
    for a in attackers:
        if a != "open_rppg":
            raise RppgEditError(f"unknown attacker set {a!r}; the one known is 'open_rppg'")
    models: tuple[str, ...] = ()
    if attackers:
        from rppgedit import open_rppg

        open_rppg.require_installed("attackers=open_rppg")
        models = tuple(attacker_models or open_rppg.OPEN_RPPG_MODELS)
        for m in models:
            try:
                open_rppg.resolve(m)
            except ValueError as err:
                raise RppgEditError(str(err)) from None
    if batch_windows < 1 or clips_per_chunk < 1:
        raise RppgEditError("batch_windows and clips_per_chunk must be >= 1")
    if dataset != "synthetic":
        from rppgedit.data import datasets

        if dataset not in datasets.DATASETS:
            known = ", ".join(("synthetic", *datasets.DATASETS))
            raise RppgEditError(f"unknown dataset {dataset!r}; choose one of {known}")
        if data_dir is None:
            raise RppgEditError(f"dataset {dataset!r} needs a data_dir")
    if work_size % 2 and len(exp.crops) > 1:
        raise RppgEditError(f"work_size must be even for quarter crops, got {work_size}")

    out = runner.open_folder(out_dir)
    job = pipeline.EditJob(
        work_size=work_size,
        window=window,
        overlap=overlap,
        batch_windows=batch_windows,
        mask_method=mask_method,
        seed=seed,
    )
    clips = {
        "dataset": dataset,
        "data_dir": data_dir,
        "clip_seconds": clip_seconds,
        "max_clips": max_clips,
        "seed": seed,
        "size": synthetic_size,
        "allow_no_face": allow_no_face,
    }
    plan = ExperimentPlan(exp, settings, clips=clips, job=job, estimators=estimators,
                          models=models, plots_on=make_plots, progress=progress, out=out)  # fmt: skip
    result = runner.run(
        plan,
        out,
        batch_per_device=batch_windows,
        clips_per_chunk=clips_per_chunk,
        progress=progress,
        process_index=process_index,
        process_count=process_count,
        config=config,
    )
    summary = {
        "kind": kind,
        "source": exp.source,
        "dataset": dataset,
        "data_dir": data_dir,
        "clips": result["clips"],
        "settings": [dataclasses.asdict(s) for s in settings],
        "estimators": list(estimators),
        "attackers": list(models),
        "crops": list(exp.crops),
        **{k: result[k] for k in ("complete", "missing", "edited", "skipped", "total_items")},
        "work_size": work_size,
        "window": job.window,
        "overlap": overlap,
        "batch_windows": batch_windows,
        "clip_seconds": clip_seconds,
    }
    if "merge" not in result:
        return summary
    merged = result["merge"]
    markdown = merged.pop("markdown")
    summary.update(merged)
    stages = plan.seconds
    edit = result["seconds"] - sum(
        stages[k] for k in ("load", "read_before", "paste", "read_after")
    )
    summary["seconds"] = {**stages, "edit": edit, "total": time.perf_counter() - tic_total}
    if config is not None:
        summary["config"] = config
    safe_write.write_text_atomic(
        out / "summary.json", json.dumps(safe_write.json_safe(summary), indent=2)
    )
    summary["markdown"] = markdown
    return summary
