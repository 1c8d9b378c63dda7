"""The papers' experiments as one runner: clips x settings x estimators -> JSON lines, tables, plots.

Four kinds (`KINDS`), each a grid of edit settings run on every clip of a dataset:

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

How one clip x setting is computed (the same path as `pipeline.edit_frames`, batched):

    frames ──face boxes──► crop S×S ──skin──► mask ──windows──► editor.edit_batch ──► residual
    residual ──paste into the full frames (skin mask only)──► stochastic 8-bit rounding ──► output
    output ──crop (full face or a quarter of it)──► estimators; PSNR/SSIM of output vs frames

Windows of all clips of a chunk (`clips_per_chunk` clips) that share an editor config are stacked
into batches of `batch_windows` by the edit engine (`rppgedit.engine`) and edited by one
`edit_batch` call each. Each clip x setting is the `pipeline.EditJob` of `_edit_job`: its output has
the bits of `--mode=edit` with those settings (same rounding seed, `seed`); a setting's config is
static (lambda, steps, lr ...) so settings form separate groups, while target heart rates vary
freely inside a group (the target is a traced array). Clips are loaded chunk by chunk, so a dataset
never has to fit in memory.

Datasets (`rppgedit.data.clips.source_clips`): ``synthetic`` (seeded `rppgedit.data.synthetic`
faces cycling through light/medium/dark skin, still/moving heads and steady/drifting light, heart
rates drawn in 55-95 bpm; their own `crop_boxes`), or a name of `rppgedit.data.datasets.DATASETS`
(``folder`` points at any videos) cut into consecutive `clip_seconds` clips, faces found by
`pipeline.find_boxes`.

Estimators are reported by family: ``classical`` (trace methods), ``deep`` (rppgedit's Flax models)
and ``attacker`` (open-rppg's deep models run as black boxes in a subprocess, `rppgedit.open_rppg`;
never used for editing, so their columns show transfer to unseen estimators). A record marks an
estimator that is also one of the editor's surrogates (``surrogate: true``, white box).

Every record (one per clip x setting x crop x estimator, see `report.RECORD_FIELDS`) holds the raw
readings; every table and plot is computed from the JSON lines by `report.tables_from_jsonl`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from rppgedit import (
    editors,
    engine,
    metrics,
    pipeline,
    readings,
    results_file,
    safe_write,
    targets,
)
from rppgedit import progress as progress_bars
from rppgedit.data import clips as clip_sources
from rppgedit.data.clips import Clip
from rppgedit.errors import RppgEditError
from rppgedit.estimators import registry
from rppgedit.papers import plots, report
from rppgedit.report import family_of
from rppgedit.video import crop
from rppgedit.windows import edit_plan

_log = logging.getLogger(__name__)

SCHEMA = 1  # part of every item key: bump when the meaning of a record changes


def items_path(out: pathlib.Path, process_index: int = 0) -> pathlib.Path:
    """A process's resumable store of finished (clip, setting) items."""
    return pathlib.Path(out) / f"items.{process_index}.jsonl"


KINDS = ("lambda_sweep", "mae_vs_psnr", "table1_crops", "target_hrs")
CROPS = ("full", "upper_left", "upper_right", "bottom_left", "bottom_right")
DEFAULT_ESTIMATORS = (
    "green",
    "pos",
    "chrom",
    "lgi",
    "pbv",
    "omit",
    "ica",
    "pca",
    "physnet_pure",
    "physnet_rlap",
)
# lambda of Privacy-Phys (Fig. 3); the paper picks 0.1.
DEFAULT_LAMBDAS = (0.01, 0.1, 1.0, 10.0, 100.0)
# Edit strengths for Fig. 4: face PSNR measured 54-48 dB (Privacy-Phys), 58-48 dB (PulseEdit) on
# the synthetic clips; 55-52 dB and 57-41 dB on the real physrecorder webcam clip.
DEFAULT_LEARNING_RATES = (0.05, 0.1, 0.2, 0.4)
DEFAULT_PULSEEDIT_LAMBDAS = (2.0, 0.3, 0.05, 0.01)
DEFAULT_TARGET_HRS = (60.0, 80.0, 100.0, 120.0)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One edit setting of an experiment grid.

    Attributes:
      label: short unique name, e.g. "privacy_phys lambda=0.1".
      method: editor name (`rppgedit.editors.METHODS`).
      options: (Config field, value) overrides of the editor's defaults.
      target_hr_bpm: heart rate of the sinusoidal target, bpm.
      sweep: name of the swept quantity ("fidelity_weight", "learning_rate", "target_hr_bpm") or
        None for a fixed setting.
      value: the swept quantity's value (None when `sweep` is None).
    """

    label: str
    method: str
    options: tuple[tuple[str, Any], ...]
    target_hr_bpm: float
    sweep: str | None = None
    value: float | None = None


# --------------------------------------------------------------------------------------------
# Settings.


def _fmt(value: float) -> str:
    return f"{value:g}"


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
    """The settings grid of an experiment kind.

    Args:
      kind: one of `KINDS`.
      methods: editors to run; default per kind: privacy_phys (lambda_sweep, target_hrs) or
        privacy_phys and pulseedit (mae_vs_psnr, table1_crops). lambda_sweep and mae_vs_psnr sweep
        privacy_phys and pulseedit only.
      lambdas: lambda_sweep's Privacy-Phys fidelity weights.
      learning_rates: mae_vs_psnr's Privacy-Phys Adam learning rates (grey levels per step).
      pulseedit_lambdas: mae_vs_psnr's PulseEdit fidelity weights.
      target_hrs: target_hrs' targets in bpm.
      target_hr_bpm: the target of the other kinds, bpm (the papers: 120).
      method_options: per method, fixed (field, value) overrides applied to every setting of that
        method (e.g. Privacy-Phys surrogates or steps); a swept field overrides them.

    Returns:
      list of `Setting` with unique labels.
    """
    if kind not in KINDS:
        raise RppgEditError(f"unknown experiment {kind!r}; choose one of {', '.join(KINDS)}")
    fixed = dict(method_options or {})
    defaults = {
        "lambda_sweep": ("privacy_phys",),
        "mae_vs_psnr": ("privacy_phys", "pulseedit"),
        "table1_crops": ("privacy_phys", "pulseedit"),
        "target_hrs": ("privacy_phys",),
    }
    methods = tuple(methods) if methods else defaults[kind]
    for method in methods:
        editors.get(method)

    def opts(method: str, **sweep) -> tuple[tuple[str, Any], ...]:
        merged = dict(fixed.get(method, ()))
        merged.update(sweep)
        return tuple(merged.items())

    out: list[Setting] = []
    if kind == "lambda_sweep":
        sweeps = {"privacy_phys": ("fidelity_weight", lambdas, "lambda")}
        sweeps["pulseedit"] = ("fidelity_weight", lambdas, "lambda")
    elif kind == "mae_vs_psnr":
        sweeps = {
            "privacy_phys": ("learning_rate", learning_rates, "lr"),
            "pulseedit": ("fidelity_weight", pulseedit_lambdas, "lambda"),
        }
    else:
        sweeps = {}
    for method in methods:
        if kind in ("lambda_sweep", "mae_vs_psnr"):
            if method not in sweeps:
                raise RppgEditError(
                    f"experiment {kind} sweeps privacy_phys or pulseedit, not {method}"
                )
            field, values, short = sweeps[method]
            if not values:
                raise RppgEditError(f"experiment {kind}: no {short} values for {method}")
            for v in values:
                out.append(
                    Setting(
                        f"{method} {short}={_fmt(v)}",
                        method,
                        opts(method, **{field: float(v)}),
                        float(target_hr_bpm),
                        field,
                        float(v),
                    )
                )
        elif kind == "table1_crops":
            out.append(Setting(method, method, opts(method), float(target_hr_bpm)))
        else:  # target_hrs
            if not target_hrs:
                raise RppgEditError("experiment target_hrs: no target heart rates")
            for hr in target_hrs:
                out.append(
                    Setting(
                        f"{method} target={_fmt(hr)}",
                        method,
                        opts(method),
                        float(hr),
                        "target_hr_bpm",
                        float(hr),
                    )
                )
    for s in out:
        targets.TargetSpec(kind="sinusoid", hr_bpm=s.target_hr_bpm)  # checks the range
    return out


# --------------------------------------------------------------------------------------------
# Clips.


# The experiments' synthetic clips (`clips.synthetic_variants`; `Clip` is `clips.Clip`).
synthetic_clips = clip_sources.synthetic_variants


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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


# --------------------------------------------------------------------------------------------
# Editing, batched over the windows of several clips.


@dataclasses.dataclass
class _Prepared:
    """A clip ready to edit: crop, mask and the original readings."""

    clip: Clip
    index: int  # position of the clip in the run (seeds the rounding)
    crop_s: np.ndarray  # (T,S,S,3) float32
    mask: np.ndarray  # (T,S,S) bool
    mask_full: np.ndarray  # (T,H,W) bool
    before: dict  # {crop: {estimator: reading}}
    attackers_before: list[dict] | None  # one dict per crop
    keys: dict = dataclasses.field(default_factory=dict)  # {setting label: item key}


def _prepare(clip: Clip, index: int, work_size: int, mask_method: str) -> _Prepared:
    job = pipeline.EditJob(work_size=work_size, mask_method=mask_method)
    crop_s, mask = pipeline.crop_and_mask(clip.frames, clip.boxes, job)
    mask_full = pipeline.full_frame_mask(mask, clip.boxes, clip.frames.shape[1:3])
    return _Prepared(clip, index, crop_s, mask, mask_full, {}, None)


def _item_key(clip: Clip, setting: Setting, run_key: dict) -> str:
    """The content key of one (clip, setting) item: a rerun skips the items already finished."""
    desc = {
        "id": clip.id,
        "meta": clip.meta,
        "shape": list(clip.frames.shape),
        "fps": clip.fps,
        "true_hr_bpm": clip.true_hr_bpm,
    }
    return results_file.content_key(
        SCHEMA, desc, {**run_key, "setting": dataclasses.asdict(setting)}
    )


def _edit_job(setting: Setting, *, work_size, window, overlap, batch_windows, mask_method, seed):
    """The `pipeline.EditJob` of a setting: `--mode=edit` with these settings gives the same bits."""
    return pipeline.EditJob(
        method=setting.method,
        target=targets.TargetSpec(kind="sinusoid", hr_bpm=setting.target_hr_bpm, phase=0.0),
        work_size=work_size,
        window=window,
        overlap=overlap,
        batch_windows=batch_windows,
        mask_method=mask_method,
        seed=seed,
        method_options=setting.options,
    )


_Pair = tuple[_Prepared, Setting, pipeline.EditJob]


def _edit_group(pairs: list[_Pair], cfg, state) -> Iterator[tuple[_Pair, np.ndarray, float]]:
    """Edits every (clip, setting, job) of one config group with the edit engine (windows of
    several pairs share a batch); yields (the pair, its residual (T,S,S,3), its edit seconds) as
    each pair finishes."""
    job = pairs[0][2]
    tasks = []
    for p, (prep, _, pair_job) in enumerate(pairs):
        wave = targets.make_target(pair_job.target, prep.crop_s.shape[0], prep.clip.fps)
        tasks.append(engine.task(p, prep.crop_s, prep.mask, wave))
    for done in pipeline.edit_tasks(tasks, job, state, cfg):
        yield pairs[done.task.key], done.residual, done.seconds


def _group_key(prep: _Prepared, job: pipeline.EditJob, cfg) -> tuple:
    return (job.method, cfg, edit_plan(prep.crop_s.shape[0], job.window, job.overlap)[0])


# --------------------------------------------------------------------------------------------
# The runner.


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
    process_index: int = 0,
    process_count: int = 1,
) -> dict:
    """Runs one of the papers' experiments and writes its records, tables and plots (and the
    command line's resolved `config`, when given, into `summary.json`).

    Args:
      kind: one of `KINDS`.
      dataset: "synthetic" or a name of `rppgedit.data.datasets.DATASETS` ("folder" for any
        videos).
      data_dir: the dataset's root folder (not for synthetic).
      clip_seconds: clip length in s (the papers: 15).
      out_dir: folder for `records.jsonl`, `tables.md`, `per_estimator.csv`, `per_family.csv`,
        `summary.json` and the PNG plots (created; existing files of the same names are replaced),
        and `items.<process>.jsonl`, the resumable store: each finished (clip, setting) item is
        appended as it ends, keyed by its content, so running the same command again (after an
        interruption, or with more settings) edits only the items not yet in it.
      methods, lambdas, learning_rates, pulseedit_lambdas, target_hrs, target_hr_bpm,
        method_options: the settings grid, see `default_settings`.
      work_size: side S of the face crop the editor works on and the estimators read, in pixels.
      window, overlap: frames per editing window and their minimum overlap (cross-faded).
      batch_windows: windows per `edit_batch` call (windows of several clips share a batch).
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
      process_index, process_count: this process among the processes sharing `out_dir` (e.g.
        hosts of a pod): each edits the clips whose index is its own modulo the count; the one
        that finds every item of the grid finished writes the records, tables and plots (the
        others return with `complete` False).

    Returns:
      summary dict: kind, dataset, counts, paths of the outputs, seconds spent per stage and the
      Markdown tables.
    """
    tic_total = time.perf_counter()
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
    crops = CROPS if kind == "table1_crops" else ("full",)
    if work_size % 2 and len(crops) > 1:
        raise RppgEditError(f"work_size must be even for quarter crops, got {work_size}")

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records_path = out / "records.jsonl"
    params = {
        n: registry.get(n).load_params() for n in estimators if registry.get(n).input == "video"
    }
    states: dict[tuple, Any] = {}
    job_settings = dict(
        work_size=work_size,
        window=window,
        overlap=overlap,
        batch_windows=batch_windows,
        mask_method=mask_method,
        seed=seed,
    )
    seconds = {"load": 0.0, "read_before": 0.0, "edit": 0.0, "paste": 0.0, "read_after": 0.0}
    plot_examples: list[dict] = []
    num_clips = 0
    num_records = 0
    clip_iter = clip_sources.source_clips(
        dataset,
        data_dir,
        clip_seconds,
        max_clips=max_clips,
        seed=seed,
        synthetic_size=synthetic_size,
        allow_no_face=allow_no_face,
    )
    num = clip_sources.count_clips(dataset, max_clips)
    bar = progress_bars.bar(
        None if num is None else num * len(settings), f"{kind} items", progress, unit="item"
    )
    chunks = _chunks(clip_iter, clips_per_chunk)
    if not 0 <= process_index < process_count:
        raise RppgEditError(f"process {process_index} of {process_count}: not a process index")
    own_items = items_path(out, process_index)
    finished = results_file.finished_keys(own_items, out.glob("items.*.jsonl"))
    run_key = {
        "kind": kind,
        **job_settings,
        "estimators": list(estimators),
        "attackers": list(models),
        "crops": list(crops),
    }
    edited = skipped = 0
    wanted: set[str] = set()  # this run's items (the store may hold other settings' too)
    order: dict[str, int] = {}  # their order in the grid: clip, then setting
    while True:
        tic = time.perf_counter()
        chunk = next(chunks, None)  # loads (decodes, tracks or renders) the next clips
        seconds["load"] += time.perf_counter() - tic
        if chunk is None:
            break
        prepared = []
        tic = time.perf_counter()
        for clip in chunk:
            keys = {s.label: _item_key(clip, s, run_key) for s in settings}
            wanted.update(keys.values())
            order.update((k, len(order)) for k in keys.values() if k not in order)
            index, num_clips = num_clips, num_clips + 1
            if index % process_count != process_index:  # another process's clip
                continue
            if all(k in finished for k in keys.values()):  # resumed: nothing left to do
                skipped += len(keys)
                bar.update(len(keys))
                continue
            prep = _prepare(clip, index, work_size, mask_method)
            prep.keys = keys
            prep.before = _readings(prep.crop_s, prep.mask, clip.fps, crops, estimators, params)
            if models:
                prep.attackers_before = _read_attackers(
                    _attacker_crops(clip.frames, clip.boxes, crops), clip.fps, models, progress
                )
            prepared.append(prep)
        seconds["read_before"] += time.perf_counter() - tic

        groups: dict[tuple, list[_Pair]] = {}
        for prep in prepared:
            for setting in settings:
                if prep.keys[setting.label] in finished:
                    skipped += 1
                    bar.update(1)
                    continue
                job = _edit_job(setting, **job_settings)
                cfg = pipeline.editor_config(job, prep.clip.fps)
                groups.setdefault(_group_key(prep, job, cfg), []).append((prep, setting, job))
        for key, pairs in groups.items():
            method, cfg = key[0], key[1]
            if (method, cfg) not in states:
                states[(method, cfg)] = editors.get(method).load_state(cfg)
            tic = time.perf_counter()
            for (prep, setting, job), residual, edit_s in _edit_group(
                pairs, cfg, states[(method, cfg)]
            ):
                seconds["edit"] += time.perf_counter() - tic
                lines, example = _finish_pair(
                    prep,
                    setting,
                    job,
                    residual,
                    edit_s,
                    kind=kind,
                    crops=crops,
                    estimators=estimators,
                    params=params,
                    models=models,
                    seconds=seconds,
                    want_example=make_plots and prep.index == 0,
                    progress=progress,
                )
                key = prep.keys[setting.label]
                parts = len(lines)
                lines = [{**r, "key": key, "part": i, "parts": parts} for i, r in enumerate(lines)]
                results_file.append_item(own_items, lines)
                edited += 1
                if example is not None:
                    plot_examples.append(example)
                bar.update(1)
                tic = time.perf_counter()
    bar.close()
    done = {}
    for path in sorted(out.glob("items.*.jsonl")):
        for key, item in results_file.read_results(path)[0].items():
            done.setdefault(key, item)
    missing = len(wanted - set(done))
    if missing:  # other processes' items still to come: the last process writes the tables
        return {"complete": False, "missing": missing, "edited": edited, "skipped": skipped}
    records = [r for key in sorted(wanted, key=order.get) for r in done[key]]
    num_records = len(records)
    safe_write.write_text_atomic(
        records_path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
    )

    tic = time.perf_counter()
    written = report.write_reports(records_path, out)
    plot_paths = []
    if make_plots:
        plot_paths = plots.experiment_plots(kind, written["tables"], out)
        plot_paths += _example_plots(plot_examples, estimators, out)
    seconds["report"] = time.perf_counter() - tic
    seconds["total"] = time.perf_counter() - tic_total
    summary = {
        "kind": kind,
        "dataset": dataset,
        "data_dir": data_dir,
        "clips": num_clips,
        "settings": [dataclasses.asdict(s) for s in settings],
        "estimators": list(estimators),
        "attackers": list(models),
        "crops": list(crops),
        "complete": True,
        "records": num_records,
        "edited": edited,
        "skipped": skipped,
        "records_path": str(records_path),
        "tables_path": written["markdown_path"],
        "csv_paths": written["csv_paths"],
        "plots": [str(p) for p in plot_paths],
        "seconds": seconds,
        "work_size": work_size,
        "window": window,
        "overlap": overlap,
        "batch_windows": batch_windows,
        "clip_seconds": clip_seconds,
    }
    if config is not None:
        summary["config"] = config
    safe_write.write_text_atomic(
        out / "summary.json", json.dumps(safe_write.json_safe(summary), indent=2)
    )
    summary["markdown"] = written["markdown"]
    return summary


def _finish_pair(
    prep: _Prepared,
    setting: Setting,
    job: pipeline.EditJob,
    residual: np.ndarray,
    edit_s: float,
    *,
    kind: str,
    crops: Sequence[str],
    estimators: Sequence[str],
    params: dict,
    models: Sequence[str],
    seconds: dict,
    want_example: bool,
    progress: bool = False,
) -> tuple[list[dict], dict | None]:
    """Pastes a residual, quantises, reads every estimator; returns the records (and plot data)."""
    clip = prep.clip
    tic = time.perf_counter()
    num = clip.frames.shape[0]
    edited = pipeline.FaceEdit(clip.boxes, 0, num, prep.crop_s, prep.mask, residual)
    output, _ = pipeline.paste_frames(clip.frames, [edited], job)  # the bits of --mode=edit
    quality = _face_metrics(clip.frames, output, clip.boxes)
    seconds["paste"] += time.perf_counter() - tic

    tic = time.perf_counter()
    after_s = crop.crop_resize(output, clip.boxes, prep.crop_s.shape[1])
    after = _readings(after_s, prep.mask, clip.fps, crops, estimators, params)
    attackers_after = None
    if models:
        attackers_after = _read_attackers(
            _attacker_crops(output, clip.boxes, crops), clip.fps, models, progress
        )
    seconds["read_after"] += time.perf_counter() - tic

    cfg = pipeline.editor_config(job, clip.fps)
    surrogates = {n for n, _ in getattr(cfg, "surrogates", ())}
    base = {
        "experiment": kind,
        "dataset": clip.meta.get("dataset"),
        "clip": clip.id,
        "clip_meta": clip.meta,
        "frames": int(clip.frames.shape[0]),
        "fps": clip.fps,
        "height": int(clip.frames.shape[1]),
        "width": int(clip.frames.shape[2]),
        "method": setting.method,
        "setting": setting.label,
        "options": {k: v for k, v in setting.options},
        "sweep": setting.sweep,
        "sweep_value": setting.value,
        "target_hr_bpm": setting.target_hr_bpm,
        "hr_true_bpm": clip.true_hr_bpm,
        "skin_coverage": float(prep.mask.mean()),
        "edit_seconds": edit_s,
        **quality,
    }
    records = []
    for c, name in enumerate(crops):
        for est in estimators:
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
        for model in models:
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
    example = None
    if want_example:
        mid = clip.frames.shape[0] // 2
        example = {
            "clip": clip.id,
            "setting": setting.label,
            "fps": clip.fps,
            "hr_true_bpm": clip.true_hr_bpm,
            "target_hr_bpm": setting.target_hr_bpm,
            "crop_before": prep.crop_s,
            "crop_after": after_s,
            "mask": prep.mask,
            "frame_before": clip.frames[mid],
            "frame_after": output[mid],
            "frame_edit": crop.paste_residual(  # before rounding
                clip.frames[mid : mid + 1],
                clip.boxes[mid : mid + 1],
                residual[mid : mid + 1],
                prep.mask_full[mid : mid + 1],
            )[0],
            "box": clip.boxes[mid],
        }
    return records, example


def _example_plots(examples: list[dict], estimators: Sequence[str], out: pathlib.Path) -> list:
    """Fig. 5 (PSD before/after) per setting and Fig. 6 (difference maps) for the first clip."""
    if not examples or not estimators:
        return []
    deep = [e for e in estimators if family_of(e) == "deep"]
    name = deep[0] if deep else estimators[0]
    est = registry.get(name)
    params = est.load_params() if est.input == "video" else None
    paths = []
    for i, ex in enumerate(examples):
        before = readings.estimate_bvp(name, ex["crop_before"], ex["mask"], ex["fps"], params)
        after = readings.estimate_bvp(name, ex["crop_after"], ex["mask"], ex["fps"], params)
        path = out / f"fig5_psd_{i:02d}.png"
        plots.psd_before_after(
            before,
            after,
            ex["fps"],
            path,
            hr_original_bpm=ex["hr_true_bpm"],
            hr_target_bpm=ex["target_hr_bpm"],
            title=f"{ex['clip']}: {ex['setting']} ({name})",
        )
        paths.append(path)
    x0, y0, x1, y1 = (int(round(v)) for v in examples[0]["box"])
    frame = examples[0]["frame_before"]
    y0, x0 = max(0, y0), max(0, x0)
    y1, x1 = min(frame.shape[0], y1), min(frame.shape[1], x1)
    for key, name, what in (
        ("frame_edit", "fig6_abs_diff.png", "the edit before 8-bit rounding"),
        ("frame_after", "fig6_abs_diff_8bit.png", "the 8-bit output (stochastic rounding)"),
    ):
        path = out / name
        plots.abs_diff_maps(
            frame[y0:y1, x0:x1],
            {ex["setting"]: ex[key][y0:y1, x0:x1] for ex in examples},
            path,
            title=f"{examples[0]['clip']}, middle frame, face box: |edited - original| of {what}",
        )
        paths.append(path)
    return paths
