"""Sweeps: one editor run over a grid of clips x targets x settings, from one CPU to a GPU pod.

A sweep is the Cartesian product

    clips (synthetic seeds, or dataset clips) x target HR x lambda (fidelity weight) x method x steps

laid out as flat columns (`Grid`). Every work item is named by a CONTENT key: a hash of the clip's
description and every setting that changes its result (the editor's full config, the target, crop
size, windows, mask rule, rounding, seed, estimators). Positions never name anything, so a grid can
grow, shrink or be reordered and finished items are still found.

How an item is computed (the sweep works on the face crop at the working size, the same crop the
editor edits; the full-frame paste of `--mode=edit` is left out because it does not depend on any
swept setting). The windows go through the edit engine (`rppgedit.engine`) and the crop is pasted
and rounded by `pipeline.paste_frames`, so an item's edited crop has the bits of `--mode=edit` run
on a video of crop8 with the whole frame as the face box and the same settings and seed (on one
device, with `batch_per_device` equal to the edit's `--batch_windows`):

    clip ──crop to S×S, round to 8 bit──► crop8 ──skin──► mask ──windows──► editor (batched, sharded)
    residual ──► crop8 + residual inside the grown mask, stochastic 8-bit rounding (seed) ──► edited8
    estimators on crop8 and edited8 ──► HR before/after, SNR; PSNR and SSIM of edited8 vs crop8

Note that the PSNR/SSIM are of the face crop, not of a full frame, so they are lower (stricter) than
the full-frame numbers `--mode=edit` prints.

The grid, keys, resume, sharding over devices and hosts and the merge are `rppgedit.runner`'s (the
papers' experiments run on the same runner); this module is the sweep's plan: its clips, its
settings, the crop-level reading and its tables. Items whose editor config is the same (method,
steps, fps, window) form one group; their windows are stacked on one batch axis and edited by ONE
call per batch of `batch_per_device x local devices` windows (`engine.device_editor`:
`editor.edit_batch` (vmap) inside `jax.shard_map` over the local devices). Every device runs the
same program on `batch_per_device` windows, so results do not depend on which other items share a
batch nor on restarts (bit-identical, tests/sweep_test.py). On the 24 items of
experiments/sweep_small.flags, 2 and 4 simulated devices gave bit-identical results, and 1 device
differed from them only by float rounding of XLA's unpartitioned program: one 8-bit level on about
1e-6 of the edited crop's values (stochastic rounding at a boundary), HR within 0.001 bpm, PSNR
within 3e-5 dB, SSIM within 2e-8: that is the stated tolerance across device counts. A last batch
that does not fill the devices is padded with copies of its last window; padded rows are dropped. The next batch is dispatched
before the previous one is finished on the host, so devices and host overlap.

Lambda and the learning rate are traced hyperparameters (`editors.contract`): one compiled program
serves every value; target HR and clips vary freely inside a group (the target is a traced array).

Results (all under `out_dir`, which all hosts must share for cross-host skipping and the merge):
- `results.<process>.jsonl`: one JSON line per finished item x estimator. The lines of one item are
  appended with one write, then flushed and fsync'ed; every line carries the item's key and
  `part`/`parts`, so an item counts as finished only when all its lines are there. On start a process
  drops a torn last line or a partial item from its own file (atomic rewrite) and skips every item
  finished in ANY results file. A sweep killed at any point (kill -9) and restarted recomputes
  exactly the unfinished items: none lost, none duplicated.
- `items/<key>.npy` (or `.mkv`): the edited 8-bit crop (T,S,S,3), written atomically before the
  item's lines (so a finished item always has its video).
- `grid.json`: the run-level settings, the resolved command-line config and the keys of the grid
  (written by process 0).
- `results.csv` (every record) and `results.md` (means over clips per setting x estimator), built by
  `merge(out_dir)`, deduplicated by key, restricted to the keys of `grid.json`.

Multi-host (`rppgedit.runner`): `initialize_distributed` calls `jax.distributed.initialize`; each
process takes the items whose rank in the sorted key list is `process_index (mod process_count)`,
edits them on its LOCAL devices (no cross-host communication while editing, so a slow or restarted
host never stalls the others) and writes its own results file; a barrier ends the sweep and process 0
merges. Dataset recordings are prepared (decoded, face-tracked, cropped) sharded the same way and
cached in `clips/` (`rppgedit.data.clips.index_recordings`) before a barrier.

Commands (settings in rppgedit/settings.py; `--flagfile=experiments/sweep_small.flags` is a small grid):

    # one machine, all its GPUs (or CPU): the mesh spans jax.local_devices()
    python -m rppgedit.main --flagfile=experiments/sweep_small.flags --out_dir=results/sweep
    # resume after a crash or kill: run the same command again
    # simulate 4 devices on a CPU
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m rppgedit.main \
        --flagfile=experiments/sweep_small.flags --out_dir=results/sweep
    # two hosts (out_dir on a shared file system), started on each host:
    python -m rppgedit.main --flagfile=experiments/sweep_small.flags --out_dir=/shared/sweep \
        --coordinator_address=host0:12345 --num_processes=2 --process_id=0   # 1 on host 1
    # SLURM / Open MPI / TPU pods: JAX detects the cluster
    srun --nodes=4 --ntasks-per-node=1 python -m rppgedit.main \
        --flagfile=experiments/sweep_small.flags --out_dir=/shared/sweep --distributed
    # rebuild the tables from whatever results files exist (e.g. copied from hosts without a
    # shared file system into one folder)
    python -m rppgedit.main --mode=sweep --merge_only --out_dir=/shared/sweep
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np

from rppgedit import editors, metrics, pipeline, readings, runner, safe_write, tables, targets
from rppgedit.data import clips as clip_sources
from rppgedit.errors import RppgEditError
from rppgedit.estimators import registry
from rppgedit.runner import ClipRef
from rppgedit.video import crop, encode, skin
from rppgedit.windows import default_window

SAVE_FORMATS = ("npy", "mkv", "none")
MANIFEST = runner.MANIFEST
CSV_COLUMNS = (
    "key",
    "clip",
    "true_hr_bpm",
    "method",
    "fidelity_weight",
    "steps",
    "target_kind",
    "target_hr_bpm",
    "estimator",
    "hr_before",
    "hr_after",
    "abs_err_to_target",
    "snr_before",
    "snr_after",
    "psnr_db",
    "ssim",
    "skin_coverage",
    "output",
)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """What a sweep computes (all of it is hashed into the work-item keys, except `data_dir`).

    Attributes:
      source: "synthetic" (seeded `rppgedit.data.synthetic` faces) or a dataset name of
        `rppgedit.data.datasets.DATASETS` (then `data_dir` is needed).
      data_dir: the dataset's root folder.
      seeds: synthetic clip seeds (one clip each).
      num_frames, frame_size, fps, true_hr_bpm, motion: synthetic clip frames T, frame side in
        pixels, frame rate in Hz, mean heart rate in bpm and head motion.
      clip_seconds: dataset clip length in s (consecutive, non-overlapping clips per recording).
      clips_per_sample: at most this many clips per dataset recording (None: all).
      allow_no_face: dataset clips without a detected face are cropped to a centred box.
      target_hrs: target heart rates in bpm (ignored for `target_kind="none"`).
      fidelity_weights: lambda values; None keeps the method's default.
      methods: editor names.
      steps: optimiser steps; None keeps the method's default.
      method_options: (field, value) overrides applied to every method whose Config has the field.
      target_kind: "sinusoid", "pulse" or "none" (remove the pulse).
      work_size: side S of the face crop the editor works on, in pixels.
      window, overlap: frames per editing window (0: `windows.default_window` of the target
        kind) and minimum overlap (as in `pipeline.EditJob`).
      mask_method: skin-mask rule (`rppgedit.video.skin`).
      quantize: "stochastic" or "round" 8-bit rounding of the edited crop.
      seed: seed of the targets' random parts and of the rounding (`--mode=edit --seed`: every item
        is rounded as that edit rounds it).
      estimators: estimators read before and after editing.
      save: format of the edited crop per item: "npy", "mkv" (FFV1) or "none".
    """

    source: str = "synthetic"
    data_dir: str | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    num_frames: int = 128
    frame_size: int = 64
    fps: float = 30.0
    true_hr_bpm: float = 72.0
    motion: bool = False
    clip_seconds: float = 15.0
    clips_per_sample: int | None = None
    allow_no_face: bool = False
    target_hrs: tuple[float, ...] = (120.0,)
    fidelity_weights: tuple[float | None, ...] = (None,)
    methods: tuple[str, ...] = ("privacy_phys",)
    steps: tuple[int | None, ...] = (None,)
    method_options: tuple[tuple[str, Any], ...] = ()
    target_kind: str = "sinusoid"
    work_size: int = 64
    window: int = 0
    overlap: int = 32
    mask_method: str = "ycrcb_adaptive"
    quantize: str = "stochastic"
    seed: int = 0
    estimators: tuple[str, ...] = ("green", "pos", "chrom")
    save: str = "npy"

    def __post_init__(self):
        def need(ok: bool, what: str):
            if not ok:
                raise RppgEditError(f"sweep: {what}")

        need(
            self.target_kind in ("sinusoid", "pulse", "none"),
            f"target kind must be sinusoid, pulse or none, got {self.target_kind!r}",
        )
        need(self.save in SAVE_FORMATS, f"save must be one of {SAVE_FORMATS}, got {self.save!r}")
        need(self.quantize in ("stochastic", "round"), f"bad quantize {self.quantize!r}")
        need(bool(self.methods) and bool(self.estimators), "needs methods and estimators")
        need(bool(self.fidelity_weights) and bool(self.steps), "needs lambda and steps values")
        need(self.target_kind == "none" or bool(self.target_hrs), "needs target heart rates")
        need(
            self.work_size >= 8 and (self.window == 0 or self.window >= 8) and 0 <= self.overlap,
            "bad sizes",
        )
        if self.source == "synthetic":
            need(bool(self.seeds), "needs synthetic seeds")
            need(self.num_frames >= 32, f"synthetic clips need >= 32 frames, got {self.num_frames}")
        else:
            need(self.data_dir is not None, f"source {self.source!r} needs a data_dir")
        for name in self.estimators:
            registry.get(name)
        for name in self.methods:
            editors.get(name)


# --------------------------------------------------------------------------------------------
# The grid's settings and clips.


def grid_settings(spec: SweepSpec) -> list[runner.Setting]:
    """The product methods x target HRs x lambdas x steps as runner settings (settings a method does
    not have are dropped by `runner.editor_config`, so they collapse into one item)."""
    remove = spec.target_kind == "none"
    hrs = (None,) if remove else tuple(float(h) for h in spec.target_hrs)
    out = []
    for method, hr, lam, steps in itertools.product(
        spec.methods, hrs, spec.fidelity_weights, spec.steps
    ):
        options = dict(spec.method_options)
        if lam is not None:
            options["fidelity_weight"] = float(lam)
        if steps is not None:
            options["steps"] = int(steps)
        target = None
        if not remove:
            target = targets.TargetSpec(kind=spec.target_kind, hr_bpm=hr, phase=0.0, seed=spec.seed)
        label = f"{method} lambda={lam} steps={steps} target={'remove' if remove else hr}"
        out.append(runner.Setting(label, method, tuple(options.items()), target))
    return out


@dataclasses.dataclass(frozen=True)
class _Clip:
    crop8: np.ndarray  # uint8 (T,S,S,3): the clip as the sweep sees it
    mask: np.ndarray  # bool (T,S,S)
    true_hr_bpm: float | None


def _square_boxes(boxes: np.ndarray) -> np.ndarray:
    """Square boxes (T,4) around the centres of (T,4) boxes, side the larger box side."""
    boxes = np.asarray(boxes, np.float64)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    half = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], -1).astype(np.float32)


def _crop_and_mask(frames, boxes, spec: SweepSpec) -> tuple[np.ndarray, np.ndarray]:
    clip = crop.crop_resize(frames, boxes, spec.work_size)
    crop8 = np.clip(np.rint(clip * 255.0), 0, 255).astype(np.uint8)
    mask = skin.skin_mask(crop8.astype(np.float32) / 255.0, method=spec.mask_method)
    return crop8, mask


def _synthetic_refs(spec: SweepSpec) -> list[ClipRef]:
    refs = []
    for seed in spec.seeds:
        desc = {
            "source": "synthetic",
            "seed": int(seed),
            "num_frames": spec.num_frames,
            "frame_size": spec.frame_size,
            "fps": float(spec.fps),
            "hr_bpm": float(spec.true_hr_bpm),
            "motion": spec.motion,
            "work_size": spec.work_size,
            "mask_method": spec.mask_method,
        }
        refs.append(ClipRef(f"synthetic/seed{seed}", spec.num_frames, float(spec.fps), desc))
    return refs


def _load_synthetic(ref: ClipRef, spec: SweepSpec) -> _Clip:
    clip = clip_sources.synthetic_clip(
        ref.desc["seed"],
        hr_bpm=spec.true_hr_bpm,
        num_frames=spec.num_frames,
        fps=spec.fps,
        height=spec.frame_size,
        width=spec.frame_size,
        motion=spec.motion,
    )
    crop8, mask = _crop_and_mask(clip.frames, clip.boxes, spec)
    return _Clip(crop8, mask, clip.true_hr_bpm)


def _save_npy_atomic(path: pathlib.Path, array: np.ndarray) -> None:
    """Writes `array` as .npy through an O_EXCL temporary renamed over `path` (`safe_write`)."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    safe_write.write_bytes(path, buffer.getvalue())


def _dataset_refs(spec: SweepSpec, out: pathlib.Path, pid: int, nproc: int, progress: bool):
    """Dataset clips, cropped and masked once (recordings sharded over processes) and cached under
    `out/clips/`."""
    folder = out / "clips"
    listing = clip_sources.Listing(
        spec.source,
        spec.data_dir,
        spec.clip_seconds,
        spec.clips_per_sample,
        spec.allow_no_face,
        {"work_size": spec.work_size, "mask_method": spec.mask_method, "for": "sweep crops"},
    )

    def cache(clip, name):
        crop8, mask = _crop_and_mask(clip.frames, _square_boxes(clip.boxes), spec)
        _save_npy_atomic(folder / f"{name}.crop.npy", crop8)
        _save_npy_atomic(folder / f"{name}.mask.npy", mask)

    refs = []
    for entry in runner.list_dataset(listing, out, pid, nproc, on_clip=cache, progress=progress):
        desc = {
            "source": spec.source,
            "sample": entry["sample"],
            "start": entry["start"],
            "num_frames": entry["num_frames"],
            "fps": entry["fps"],
            "clip_seconds": spec.clip_seconds,
            "work_size": spec.work_size,
            "mask_method": spec.mask_method,
            "allow_no_face": spec.allow_no_face,
            "cache": entry["name"],
            "true_hr_bpm": entry["true_hr_bpm"],
        }
        clip_id = f"{spec.source}/{entry['id']}"
        refs.append(ClipRef(clip_id, entry["num_frames"], entry["fps"], desc))
    return refs


def _load_cached(ref: ClipRef, out: pathlib.Path) -> _Clip:
    name = out / "clips" / ref.desc["cache"]
    crop8 = np.load(f"{name}.crop.npy")
    mask = np.load(f"{name}.mask.npy")
    return _Clip(crop8, mask, ref.desc["true_hr_bpm"])


def _edit_job(spec: SweepSpec) -> pipeline.EditJob:
    """The `pipeline.EditJob` whose windows, rounding and seed the sweep's items use."""
    return pipeline.EditJob(
        work_size=spec.work_size,
        window=spec.window or default_window(spec.target_kind == "none"),
        overlap=spec.overlap,
        mask_method=spec.mask_method,
        quantize=spec.quantize,
        seed=spec.seed,
    )


# --------------------------------------------------------------------------------------------
# The plan.


class SweepPlan:
    """A sweep as a `runner.Plan`: edits and reads the 8-bit face crop at the working size."""

    name = "sweep"

    def __init__(self, spec: SweepSpec, out: pathlib.Path):
        self.spec, self.out = spec, pathlib.Path(out)
        self.settings = grid_settings(spec)
        self.job = _edit_job(spec)
        self._params = None

    def describe(self) -> dict:
        s = self.spec
        return {
            "work_size": s.work_size,
            "window": self.job.window,
            "overlap": s.overlap,
            "mask_method": s.mask_method,
            "quantize": s.quantize,
            "seed": s.seed,
            "estimators": list(s.estimators),
            "save": s.save,
        }

    def clip_refs(self, out, pid, nproc, progress) -> list[ClipRef]:
        if self.spec.source == "synthetic":
            return _synthetic_refs(self.spec)
        return _dataset_refs(self.spec, out, pid, nproc, progress)

    @property
    def params(self) -> dict:
        if self._params is None:
            names = [n for n in self.spec.estimators if registry.get(n).input == "video"]
            self._params = {n: registry.get(n).load_params() for n in names}
        return self._params

    def prepare(self, ref: ClipRef) -> runner.Prepared:
        if self.spec.source == "synthetic":
            clip = _load_synthetic(ref, self.spec)
        else:
            clip = _load_cached(ref, self.out)
        before = readings.read_heart_rates(
            clip.crop8.astype(np.float32) / 255.0,
            clip.mask,
            ref.fps,
            self.spec.estimators,
            self.params,
        )
        return runner.Prepared(clip.crop8, clip.mask, (clip, before))

    def finish(self, item: runner.Item, prepared, residual, seconds) -> list[dict]:
        """Pastes, rounds, reads and saves one item; one record per estimator.

        The crop is pasted and rounded as `--mode=edit` pastes a video of the crop with the whole
        frame as the face box (same bits): inside the grown skin mask, rounding seeded by the
        spec's seed."""
        del seconds
        spec, (clip, before) = self.spec, prepared.data
        num, size = clip.crop8.shape[:2]
        boxes = np.tile(np.array([0, 0, size, size], np.float32), (num, 1))
        edited = pipeline.FaceEdit(boxes, 0, num, clip.crop8, clip.mask, residual)
        edited8, _ = pipeline.paste_frames(clip.crop8, [edited], self.job)
        edited_crop = edited8.astype(np.float32) / 255.0
        # Read through the output's own skin mask, as an observer of the output would
        # (`edit_report.Readers.add_frames`).
        after = readings.read_heart_rates(
            edited_crop, skin.skin_mask(edited_crop, method=spec.mask_method), item.clip.fps,
            spec.estimators, self.params,
        )  # fmt: skip
        output = None
        if spec.save != "none":
            (self.out / "items").mkdir(exist_ok=True)
            output = f"items/{item.key}.{spec.save}"
            encode.write_video(self.out / output, edited8, item.clip.fps, overwrite=True)
        target_hr = item.setting.target_hr_bpm
        common = {
            "clip": item.clip.id,
            "true_hr_bpm": clip.true_hr_bpm,
            "method": item.setting.method,
            "fidelity_weight": getattr(item.cfg, "fidelity_weight", None),
            "steps": getattr(item.cfg, "steps", None),
            "target_kind": spec.target_kind,
            "target_hr_bpm": target_hr,
            "psnr_db": float(metrics.psnr(clip.crop8, edited8)),
            "ssim": float(metrics.ssim(clip.crop8, edited8)),
            "skin_coverage": float(clip.mask.mean()),
            "output": output,
            "settings": item.content,
        }
        records = []
        for name in spec.estimators:
            hr_after = after[name]["hr_bpm"]
            records.append(
                {
                    **common,
                    "estimator": name,
                    "hr_before": before[name]["hr_bpm"],
                    "hr_after": hr_after,
                    "snr_before": before[name]["snr_db"],
                    "snr_after": after[name]["snr_db"],
                    "abs_err_to_target": None if target_hr is None else abs(hr_after - target_hr),
                }
            )
        return records

    def merge(self, out, records, missing) -> dict:
        return _write_tables(out, records, missing)


# --------------------------------------------------------------------------------------------
# The entry point.


def run_sweep(
    spec: SweepSpec,
    out_dir,
    *,
    batch_per_device: int = 4,
    clips_per_chunk: int = 64,
    progress: bool = True,
    merge_results: bool = True,
    config: dict | None = None,
    on_item: Callable[[str, list[dict]], None] | None = None,
) -> dict:
    """Runs (or resumes) this process's share of a sweep (`runner.run` of `SweepPlan`); process 0
    merges at the end.

    Args:
      spec: the grid and the fixed settings.
      out_dir: results folder (shared by all processes; created).
      batch_per_device: windows each local device edits per call (`--batch_windows`).
      clips_per_chunk: clips prepared and held in memory together.
      progress: show a bar of this process's items (done / total, ETA) and of its dataset
        recordings prepared (`rppgedit.progress`: silent when not a terminal).
      merge_results: after a barrier, process 0 writes results.csv and results.md.
      config: the command's resolved settings, written into grid.json.
      on_item: called as `on_item(key, records)` after each item is persisted.

    Returns:
      `runner.run`'s summary (the `merge` result on the process that merged).
    """
    out = runner.open_folder(out_dir)
    return runner.run(
        SweepPlan(spec, out),
        out,
        batch_per_device=batch_per_device,
        clips_per_chunk=clips_per_chunk,
        progress=progress,
        merge=merge_results,
        config=config,
        on_item=on_item,
    )


# --------------------------------------------------------------------------------------------
# Merging.


def _sort_key(record: dict):
    def num(v):
        return -1.0 if v is None else float(v)

    estimators = record["settings"]["estimators"]
    return (
        record["method"],
        num(record["fidelity_weight"]),
        num(record["steps"]),
        num(record["target_hr_bpm"]),
        record["clip"],
        estimators.index(record["estimator"]),
        record["key"],
    )


def merge(out_dir) -> dict:
    """Builds `results.csv` (every record) and `results.md` (means over clips) from all results files
    (`runner.collect`: deduplicated by key, restricted to the keys of `grid.json` when it exists).

    Returns:
      {"rows": records (sorted), "items": finished items, "missing": keys of the grid without a
      result, "csv_path", "md_path", "table": the Markdown text}.
    """
    found, keys, missing = runner.collect(out_dir)
    return _write_tables(pathlib.Path(out_dir), [r for k in keys for r in found[k]], missing or [])


def _write_tables(out: pathlib.Path, records: list[dict], missing: list[str]) -> dict:
    rows = sorted(records, key=_sort_key)
    items = len({r["key"] for r in rows})
    csv_path = safe_write.write_text_atomic(out / "results.csv", tables.csv_text(rows, CSV_COLUMNS))
    table = _markdown(rows, items, missing)
    md_path = safe_write.write_text_atomic(out / "results.md", table)
    return {
        "rows": rows,
        "items": items,
        "missing": missing,
        "csv_path": csv_path,
        "md_path": md_path,
        "table": table,
    }


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


# Columns of `results.md`: (key of a `_markdown` row, header, format spec).
MD_COLUMNS = (
    ("method", "method", "s"),
    ("fidelity_weight", "lambda", "g"),
    ("steps", "steps", "d"),
    ("target", "target", "s"),
    ("estimator", "estimator", "s"),
    ("clips", "clips", "d"),
    ("hr_before", "HR before", ".1f"),
    ("hr_after", "HR after", ".1f"),
    ("abs_err_to_target", "MAE to target", ".2f"),
    ("psnr_db", "PSNR dB", ".2f"),
    ("ssim", "SSIM", ".5f"),
)


def _markdown(rows: list[dict], items: int, missing: list[str]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        setting = (
            r["method"],
            r["fidelity_weight"],
            r["steps"],
            r["target_kind"],
            r["target_hr_bpm"],
            r["estimator"],
        )
        groups.setdefault(setting, []).append(r)
    means = ("hr_before", "hr_after", "abs_err_to_target", "psnr_db", "ssim")
    summary = [
        {
            "method": method,
            "fidelity_weight": lam,
            "steps": steps,
            "target": "remove" if kind == "none" else f"{kind} {hr:g}",
            "estimator": est,
            "clips": len(rs),
            **{k: _mean(r[k] for r in rs) for k in means},
        }
        for (method, lam, steps, kind, hr, est), rs in groups.items()
    ]
    lines = [
        f"# Sweep results: {items} items, {len(missing)} missing",
        "",
        "Means over clips; HR in bpm; PSNR/SSIM of the 8-bit face crop (edited vs original).",
        "",
        tables.markdown_table(summary, MD_COLUMNS, align=False),
    ]
    return "\n".join(lines) + "\n"
