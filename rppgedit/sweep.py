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

Batching and sharding: items whose editor config is the same (method, steps, lambda, fps, window) form
one group; their windows are stacked on one batch axis and edited by ONE call per batch of
`batch_per_device x local devices` windows (`engine.device_editor`: `editor.edit_batch` (vmap) inside
`jax.shard_map` over the local devices). Every device runs the same program on `batch_per_device`
windows, so results do not depend on which other items share a batch nor on restarts (bit-identical,
tests/sweep_test.py). On the 24 items of
experiments/sweep_small.flags, 2 and 4 simulated devices gave bit-identical results, and 1 device
differed from them only by float rounding of XLA's unpartitioned program: one 8-bit level on about
1e-6 of the edited crop's values (stochastic rounding at a boundary), HR within 0.001 bpm, PSNR
within 3e-5 dB, SSIM within 2e-8: that is the stated tolerance across device counts. A last batch
that does not fill the devices is padded with copies of its last window; padded rows are dropped. The next batch is dispatched
before the previous one is finished on the host, so devices and host overlap.

Lambda is a static field of the editor config (privacy_phys), so items are grouped by it; target HR
and clips vary freely inside a group (the target is a traced array).

Results (all under `out_dir`, which all hosts must share for cross-host skipping and the merge):
- `results.<process>.jsonl`: one JSON line per finished item x estimator. The lines of one item are
  appended with one write, then flushed and fsync'ed; every line carries the item's key and
  `part`/`parts`, so an item counts as finished only when all its lines are there. On start a process
  drops a torn last line or a partial item from its own file (atomic rewrite) and skips every item
  finished in ANY results file. A sweep killed at any point (kill -9) and restarted recomputes
  exactly the unfinished items: none lost, none duplicated.
- `items/<key>.npy` (or `.mkv`): the edited 8-bit crop (T,S,S,3), written atomically before the
  item's lines (so a finished item always has its video).
- `sweep.json`: the spec and the sorted keys of the grid (written by process 0).
- `results.csv` (every record) and `results.md` (means over clips per setting x estimator), built by
  `merge(out_dir)`, deduplicated by key, restricted to the keys of `sweep.json`.

Multi-host: `initialize_distributed` calls `jax.distributed.initialize`; each process takes the items
whose rank in the sorted key list is `process_index (mod process_count)`, edits them on its LOCAL
devices (no cross-host communication while editing, so a slow or restarted host never stalls the
others) and writes its own results file; a barrier (`multihost_utils.sync_global_devices`) ends the
sweep and process 0 merges. Dataset clips are prepared (decoded, face-tracked, cropped) sharded the
same way and cached in `clips/` before a barrier.

Commands (flags in rppgedit/main.py; `--flagfile=experiments/sweep_small.flags` is a small grid):

    # one machine, all its GPUs (or CPU): the mesh spans jax.local_devices()
    python -m rppgedit.main --flagfile=experiments/sweep_small.flags --sweep_dir=results/sweep
    # resume after a crash or kill: run the same command again
    # simulate 4 devices on a CPU
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m rppgedit.main \
        --flagfile=experiments/sweep_small.flags --sweep_dir=results/sweep
    # two hosts (sweep_dir on a shared file system), started on each host:
    python -m rppgedit.main --flagfile=experiments/sweep_small.flags --sweep_dir=/shared/sweep \
        --coordinator_address=host0:12345 --num_processes=2 --process_id=0   # 1 on host 1
    # SLURM / Open MPI / TPU pods: JAX detects the cluster
    srun --nodes=4 --ntasks-per-node=1 python -m rppgedit.main \
        --flagfile=experiments/sweep_small.flags --sweep_dir=/shared/sweep --distributed
    # rebuild the tables from whatever results files exist (e.g. copied from hosts without a
    # shared file system into one folder)
    python -m rppgedit.main --mode=sweep --merge_only --sweep_dir=/shared/sweep
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import os
import pathlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from rppgedit import (
    editors,
    engine,
    metrics,
    pipeline,
    readings,
    results_file,
    safe_write,
    tables,
    targets,
)
from rppgedit import progress as progress_bars
from rppgedit.data import clips as clip_sources
from rppgedit.errors import RppgEditError
from rppgedit.estimators import registry
from rppgedit.video import crop, encode, skin
from rppgedit.windows import edit_plan

_log = logging.getLogger(__name__)

SCHEMA = 1  # part of every key: bump when the meaning of a record changes
SAVE_FORMATS = ("npy", "mkv", "none")
MANIFEST = "sweep.json"
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
      window, overlap: frames per editing window and minimum overlap (as in `pipeline.EditJob`).
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
    window: int = 128
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
        need(self.work_size >= 8 and self.window >= 8 and 0 <= self.overlap, "bad sizes")
        if self.source == "synthetic":
            need(bool(self.seeds), "needs synthetic seeds")
            need(self.num_frames >= 32, f"synthetic clips need >= 32 frames, got {self.num_frames}")
        else:
            need(self.data_dir is not None, f"source {self.source!r} needs a data_dir")
        for name in self.estimators:
            registry.get(name)
        for name in self.methods:
            editors.get(name)


@dataclasses.dataclass(frozen=True)
class ClipRef:
    """One clip of the grid: `desc` (JSON-able) identifies its content and goes into the keys."""

    id: str
    num_frames: int
    fps: float
    desc: dict = dataclasses.field(hash=False, compare=False)


@dataclasses.dataclass(frozen=True)
class WorkItem:
    """One edit: a clip, a target and a static editor config."""

    key: str
    clip: ClipRef
    method: str
    cfg: Any  # the editor's frozen Config
    target: targets.TargetSpec | None  # None: remove the pulse
    settings: dict = dataclasses.field(hash=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Grid:
    """The sweep grid as columns (one entry per unique work item, sorted by key)."""

    items: tuple[WorkItem, ...]
    keys: np.ndarray  # (N,) str
    clip: np.ndarray  # (N,) str, clip ids
    method: np.ndarray  # (N,) str
    target_hr: np.ndarray  # (N,) float64 bpm, NaN for removal
    fidelity_weight: np.ndarray  # (N,) float64, NaN when the method has none
    steps: np.ndarray  # (N,) int64, -1 when the method has none


# --------------------------------------------------------------------------------------------
# Keys and the grid.


def _editor_config(method: str, fps: float, remove: bool, options: dict):
    fields = {f.name for f in dataclasses.fields(editors.get(method).Config)}
    kept = [(k, v) for k, v in options.items() if k in fields]
    try:
        return editors.make_config(method, fps, remove, kept)
    except RppgEditError as err:
        raise RppgEditError(f"sweep: {err}") from None


def content_key(clip_desc: dict, settings: dict) -> str:
    """The stable key of a sweep item (`results_file.content_key` with this module's `SCHEMA`)."""
    return results_file.content_key(SCHEMA, clip_desc, settings)


def make_grid(spec: SweepSpec, clips: Iterable[ClipRef]) -> Grid:
    """All unique work items of `spec` over `clips`, sorted by key.

    Settings a method does not have (e.g. `steps` of an editor without an optimiser) are dropped for
    that method, so the items that differ only in them have the same key and appear once.
    """
    remove = spec.target_kind == "none"
    hrs = (None,) if remove else tuple(float(h) for h in spec.target_hrs)
    found: dict[str, WorkItem] = {}
    for clip, method, hr, lam, steps in itertools.product(
        clips, spec.methods, hrs, spec.fidelity_weights, spec.steps
    ):
        options = dict(spec.method_options)
        if lam is not None:
            options["fidelity_weight"] = float(lam)
        if steps is not None:
            options["steps"] = int(steps)
        cfg = _editor_config(method, clip.fps, remove, options)
        target = None
        if not remove:
            target = targets.TargetSpec(kind=spec.target_kind, hr_bpm=hr, phase=0.0, seed=spec.seed)
        settings = {
            "method": method,
            "config": dataclasses.asdict(cfg),
            "target": None if target is None else dataclasses.asdict(target),
            "work_size": spec.work_size,
            "window": spec.window,
            "overlap": spec.overlap,
            "mask_method": spec.mask_method,
            "quantize": spec.quantize,
            "seed": spec.seed,
            "estimators": list(spec.estimators),
            "save": spec.save,
        }
        key = content_key(clip.desc, settings)
        found.setdefault(key, WorkItem(key, clip, method, cfg, target, settings))
    items = tuple(found[k] for k in sorted(found))
    return Grid(
        items=items,
        keys=np.array([it.key for it in items], dtype=str),
        clip=np.array([it.clip.id for it in items], dtype=str),
        method=np.array([it.method for it in items], dtype=str),
        target_hr=np.array([np.nan if it.target is None else it.target.hr_bpm for it in items]),
        fidelity_weight=np.array([getattr(it.cfg, "fidelity_weight", np.nan) for it in items]),
        steps=np.array([getattr(it.cfg, "steps", -1) for it in items], dtype=np.int64),
    )


def shard_items(grid: Grid, process_index: int, process_count: int) -> list[WorkItem]:
    """The items of one process: round-robin on the sorted keys (the same on every process)."""
    return list(grid.items[process_index::process_count])


# --------------------------------------------------------------------------------------------
# Clips.


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


def _sample_hash(spec: SweepSpec, sample_id: str) -> str:
    desc = [
        spec.source,
        sample_id,
        spec.clip_seconds,
        spec.clips_per_sample,
        spec.work_size,
        spec.mask_method,
        spec.allow_no_face,
    ]
    return hashlib.sha256(json.dumps(desc).encode()).hexdigest()[:24]


def _save_npy_atomic(path: pathlib.Path, array: np.ndarray) -> None:
    """Writes `array` through an O_EXCL temporary (removed on any error) renamed over `path`."""
    temp = safe_write.make_temp_file(path, suffix=".tmp")
    try:
        with open(temp, "wb") as f:
            np.save(f, array)
            f.flush()
            os.fsync(f.fileno())
        safe_write.move_into_place(temp, path)
    except BaseException:
        safe_write.remove(temp)
        raise


def _lock_folder(out: pathlib.Path, process_index: int):
    """An exclusive lock on `out` for this process index (released when the process ends): a
    second sweep started on the same folder stops at once instead of redoing all the work."""
    import fcntl

    path = out / f".sweep.{process_index}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RppgEditError(
            f"{out}: another sweep (process {process_index}) is running on this folder; wait for "
            "it or use another --sweep_dir"
        ) from None
    return fd


def _prepare_sample(sample, spec: SweepSpec, folder: pathlib.Path) -> None:
    """Decodes, tracks, crops and masks every clip of one recording into `folder` (atomically)."""
    entries = []
    found = clip_sources.dataset_clips(
        spec.source,
        spec.data_dir,
        spec.clip_seconds,
        samples=[sample],
        allow_no_face=spec.allow_no_face,
    )
    for clip in itertools.islice(found, spec.clips_per_sample):
        start = clip.meta["start"]
        crop8, mask = _crop_and_mask(clip.frames, _square_boxes(clip.boxes), spec)
        name = f"{_sample_hash(spec, clip.meta['sample'])}_{start}"
        _save_npy_atomic(folder / f"{name}.crop.npy", crop8)
        _save_npy_atomic(folder / f"{name}.mask.npy", mask)
        entries.append(
            {
                "id": f"{spec.source}/{clip.id}",
                "name": name,
                "start": start,
                "num_frames": int(len(clip.frames)),
                "fps": clip.fps,
                "true_hr_bpm": clip.true_hr_bpm,
            }
        )
    index = folder / f"{_sample_hash(spec, sample.id)}.json"
    safe_write.write_text_atomic(index, json.dumps({"sample": sample.id, "clips": entries}))


def _dataset_refs(
    spec: SweepSpec, out: pathlib.Path, pid: int, nproc: int, progress: bool = False
) -> list[ClipRef]:
    """Dataset clips, prepared once (sharded over processes) and cached under `out/clips/`."""
    from rppgedit.data import datasets

    folder = out / "clips"
    folder.mkdir(parents=True, exist_ok=True)
    samples = datasets.list_samples(spec.source, spec.data_dir)
    mine = samples[pid::nproc]
    for sample in progress_bars.wrap(mine, f"sweep clips {pid}/{nproc}", progress, unit="rec"):
        if not (folder / f"{_sample_hash(spec, sample.id)}.json").exists():
            _prepare_sample(sample, spec, folder)
    _barrier("rppgedit_sweep_clips", nproc)
    refs = []
    for sample in samples:
        index = folder / f"{_sample_hash(spec, sample.id)}.json"
        if not index.exists():
            raise RppgEditError(f"{index}: clip index missing (did a sweep process fail?)")
        for entry in json.loads(index.read_text())["clips"]:
            desc = {
                "source": spec.source,
                "sample": sample.id,
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
            refs.append(ClipRef(entry["id"], entry["num_frames"], entry["fps"], desc))
    return refs


def _load_cached(ref: ClipRef, out: pathlib.Path) -> _Clip:
    name = out / "clips" / ref.desc["cache"]
    crop8 = np.load(f"{name}.crop.npy")
    mask = np.load(f"{name}.mask.npy")
    return _Clip(crop8, mask, ref.desc["true_hr_bpm"])


class _ClipCache:
    """Prepared clips by id, the most recent `capacity` kept in memory."""

    def __init__(self, load: Callable[[ClipRef], _Clip], capacity: int = 64):
        self._load, self._capacity = load, capacity
        self._clips: collections.OrderedDict[str, _Clip] = collections.OrderedDict()

    def get(self, ref: ClipRef) -> _Clip:
        if ref.id in self._clips:
            self._clips.move_to_end(ref.id)
        else:
            self._clips[ref.id] = self._load(ref)
            if len(self._clips) > self._capacity:
                self._clips.popitem(last=False)
        return self._clips[ref.id]


# --------------------------------------------------------------------------------------------
# Results files.


def _results_path(out: pathlib.Path, process_index: int) -> pathlib.Path:
    return out / f"results.{process_index}.jsonl"


# --------------------------------------------------------------------------------------------
# Editing.


def _target_wave(item: WorkItem, num_frames: int) -> np.ndarray:
    if item.target is None:
        return np.zeros(num_frames, np.float32)
    return np.asarray(targets.make_target(item.target, num_frames, item.clip.fps), np.float32)


def _edit_job(spec: SweepSpec) -> pipeline.EditJob:
    """The `pipeline.EditJob` whose windows, rounding and seed the sweep's items use."""
    return pipeline.EditJob(
        work_size=spec.work_size,
        window=spec.window,
        overlap=spec.overlap,
        mask_method=spec.mask_method,
        quantize=spec.quantize,
        seed=spec.seed,
    )


def _edit_group(items, module, cfg, state, mesh, spec, batch_per_device, clips, finish):
    """Edits all windows of `items` (one static config) with the edit engine, in batches of
    `batch_per_device` windows per device; calls `finish(item, residual)` for each item as soon as
    its last window is back."""
    edit_batch = engine.device_editor(module, state, cfg, mesh)

    def load(item):
        clip = clips.get(item.clip)
        return clip.crop8, clip.mask, _target_wave(item, item.clip.num_frames)

    tasks = [
        engine.Task(i, item.clip.num_frames, functools.partial(load, item))
        for i, item in enumerate(items)
    ]
    for done in engine.edit_windows(
        tasks,
        edit_batch,
        window=spec.window,
        overlap=spec.overlap,
        batch_size=batch_per_device * mesh.devices.size,
    ):
        finish(items[done.task.key], done.residual)


def _finish_item(
    item: WorkItem, residual, clip: _Clip, before: dict, params: dict, spec, out: pathlib.Path
):
    """Pastes, rounds, evaluates and saves one item; returns its records (one per estimator).

    The crop is pasted and rounded as `--mode=edit` pastes a video of the crop with the whole frame
    as the face box (same bits): inside the grown skin mask, rounding seeded by `spec.seed`."""
    num, size = clip.crop8.shape[:2]
    boxes = np.tile(np.array([0, 0, size, size], np.float32), (num, 1))
    edited = pipeline.FaceEdit(boxes, 0, num, clip.crop8, clip.mask, residual)
    edited8, _ = pipeline.paste_frames(clip.crop8, [edited], _edit_job(spec))
    after = readings.read_heart_rates(
        edited8.astype(np.float32) / 255.0, clip.mask, item.clip.fps, spec.estimators, params
    )
    output = None
    if spec.save != "none":
        items_dir = out / "items"
        items_dir.mkdir(exist_ok=True)
        output = f"items/{item.key}.{spec.save}"
        encode.write_video(out / output, edited8, item.clip.fps, overwrite=True)
    target_hr = None if item.target is None else float(item.target.hr_bpm)
    common = {
        "key": item.key,
        "clip": item.clip.id,
        "true_hr_bpm": clip.true_hr_bpm,
        "method": item.method,
        "fidelity_weight": getattr(item.cfg, "fidelity_weight", None),
        "steps": getattr(item.cfg, "steps", None),
        "target_kind": spec.target_kind,
        "target_hr_bpm": target_hr,
        "psnr_db": float(metrics.psnr(clip.crop8, edited8)),
        "ssim": float(metrics.ssim(clip.crop8, edited8)),
        "skin_coverage": float(clip.mask.mean()),
        "output": output,
        "settings": item.settings,
    }
    records = []
    for part, name in enumerate(spec.estimators):
        hr_after = after[name]["hr_bpm"]
        records.append(
            {
                **common,
                "part": part,
                "parts": len(spec.estimators),
                "estimator": name,
                "hr_before": before[name]["hr_bpm"],
                "hr_after": hr_after,
                "snr_before": before[name]["snr_db"],
                "snr_after": after[name]["snr_db"],
                "abs_err_to_target": None if target_hr is None else abs(hr_after - target_hr),
            }
        )
    return records


# --------------------------------------------------------------------------------------------
# Distributed helpers.


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto: bool = False,
) -> tuple[int, int]:
    """Starts `jax.distributed` when asked; returns (process_index, process_count).

    Arguments left None are read from the environment (`JAX_COORDINATOR_ADDRESS`,
    `RPPGEDIT_NUM_PROCESSES`, `RPPGEDIT_PROCESS_ID`). Nothing is started when no coordinator is
    known and `auto` is False (one process). `auto=True` with no arguments lets JAX detect the
    cluster (SLURM, Open MPI, Cloud TPU pods). Must run before any other JAX call. On the CPU the
    cross-process collectives (only the barriers here) go through gloo.
    """
    env = os.environ
    coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and env.get("RPPGEDIT_NUM_PROCESSES"):
        num_processes = int(env["RPPGEDIT_NUM_PROCESSES"])
    if process_id is None and env.get("RPPGEDIT_PROCESS_ID"):
        process_id = int(env["RPPGEDIT_PROCESS_ID"])
    if coordinator_address is None and not auto:
        if num_processes not in (None, 1):
            raise RppgEditError(f"{num_processes} processes need a coordinator address")
        return 0, 1
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return jax.process_index(), jax.process_count()


def _barrier(name: str, process_count: int) -> None:
    if process_count > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


# --------------------------------------------------------------------------------------------
# The entry point.


def run_sweep(
    spec: SweepSpec,
    out_dir,
    *,
    batch_per_device: int = 4,
    progress: bool = True,
    merge_results: bool = True,
    on_item: Callable[[str, list[dict]], None] | None = None,
) -> dict:
    """Runs (or resumes) this process's share of a sweep; process 0 merges at the end.

    Args:
      spec: the grid and the fixed settings.
      out_dir: results folder (shared by all processes; created).
      batch_per_device: windows each local device edits per call.
      progress: show a bar of this process's items (done / total, ETA) and of its dataset
        recordings prepared (`rppgedit.progress`: silent when not a terminal).
      merge_results: after a barrier, process 0 writes results.csv and results.md.
      on_item: called as `on_item(key, records)` after each item is persisted.

    Returns:
      summary dict: process_index, process_count, devices, total_items (grid), process_items,
      skipped (finished before), edited, seconds (editing, after clip preparation),
      items_per_minute, first_item_s (includes compilation), steady_items_per_minute (after the
      first item), results_path, and the `merge` result on process 0.
    """
    if batch_per_device < 1:
        raise RppgEditError(f"sweep: batch_per_device must be >= 1, got {batch_per_device}")
    out = pathlib.Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RppgEditError(f"{out}: sweep folder exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RppgEditError(f"{out}: cannot create the sweep folder ({e.strerror})") from None
    pid, nproc = jax.process_index(), jax.process_count()
    lock = _lock_folder(out, pid)
    try:
        return _run_sweep_locked(
            spec, out, pid, nproc, batch_per_device, progress, merge_results, on_item
        )
    finally:
        os.close(lock)


def _run_sweep_locked(spec, out, pid, nproc, batch_per_device, progress, merge_results, on_item):
    if spec.source == "synthetic":
        refs = _synthetic_refs(spec)
        clips = _ClipCache(lambda ref: _load_synthetic(ref, spec))
    else:
        refs = _dataset_refs(spec, out, pid, nproc, progress)
        clips = _ClipCache(lambda ref: _load_cached(ref, out))
    grid = make_grid(spec, refs)
    if pid == 0:
        manifest = {"spec": dataclasses.asdict(spec), "keys": grid.keys.tolist()}
        safe_write.write_text_atomic(
            out / MANIFEST, json.dumps(safe_write.json_safe(manifest), indent=1)
        )
    mine = shard_items(grid, pid, nproc)
    finished = results_file.finished_keys(_results_path(out, pid), out.glob("results.*.jsonl"))
    todo = [it for it in mine if it.key not in finished]
    results = _results_path(out, pid)
    results.touch()
    devices = jax.local_devices()
    mesh = Mesh(np.array(devices), ("batch",))
    params = {
        n: registry.get(n).load_params()
        for n in spec.estimators
        if registry.get(n).input == "video"
    }
    before_cache: dict[str, dict] = {}
    bar = progress_bars.bar(
        len(mine), f"sweep {pid}/{nproc}", progress, unit="item", initial=len(mine) - len(todo)
    )
    tic = time.perf_counter()
    first_item_s = None

    def finish(item: WorkItem, residual: np.ndarray):
        nonlocal first_item_s
        ref = item.clip
        clip = clips.get(ref)
        if ref.id not in before_cache:
            before_cache[ref.id] = readings.read_heart_rates(
                clip.crop8.astype(np.float32) / 255.0, clip.mask, ref.fps, spec.estimators, params
            )
        records = _finish_item(item, residual, clip, before_cache[ref.id], params, spec, out)
        results_file.append_item(results, records)
        bar.update(1)
        if first_item_s is None:
            first_item_s = time.perf_counter() - tic
        if on_item is not None:
            on_item(item.key, records)

    groups: dict[tuple, list[WorkItem]] = {}
    for item in todo:
        shape = edit_plan(item.clip.num_frames, spec.window, spec.overlap)[0]
        groups.setdefault((item.method, item.cfg, shape), []).append(item)
    for (method, cfg, _), items in groups.items():
        module = editors.get(method)
        _edit_group(
            items, module, cfg, module.load_state(cfg), mesh, spec, batch_per_device, clips, finish
        )
    seconds = time.perf_counter() - tic
    bar.close()
    summary = {
        "process_index": pid,
        "process_count": nproc,
        "devices": [str(d) for d in devices],
        "total_items": len(grid.items),
        "process_items": len(mine),
        "skipped": len(mine) - len(todo),
        "edited": len(todo),
        "seconds": seconds,
        "items_per_minute": 60.0 * len(todo) / seconds if todo and seconds > 0 else None,
        "first_item_s": first_item_s,
        "steady_items_per_minute": (
            60.0 * (len(todo) - 1) / (seconds - first_item_s) if len(todo) > 1 else None
        ),
        "results_path": str(results),
    }
    _barrier("rppgedit_sweep_done", nproc)
    if merge_results and pid == 0:
        summary["merge"] = merge(out)
    return summary


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
    """Builds `results.csv` (every record) and `results.md` (means over clips) from all results files.

    Items are deduplicated by key (the first complete copy in file-name order wins) and restricted
    to the keys of `sweep.json` when it exists.

    Returns:
      {"rows": records (sorted), "items": finished items, "missing": keys of the grid without a
      result, "csv_path", "md_path", "table": the Markdown text}.
    """
    out = pathlib.Path(out_dir)
    if not out.is_dir():
        raise RppgEditError(f"{out}: sweep folder not found")
    found: dict[str, list[dict]] = {}
    for path in sorted(out.glob("results.*.jsonl")):
        for key, records in results_file.read_results(path)[0].items():
            found.setdefault(key, records)
    manifest = out / MANIFEST
    missing = []
    if manifest.exists():
        keys = json.loads(manifest.read_text())["keys"]
        missing = [k for k in keys if k not in found]
        found = {k: found[k] for k in keys if k in found}
    rows = sorted((r for records in found.values() for r in records), key=_sort_key)
    csv_path = safe_write.write_text_atomic(out / "results.csv", tables.csv_text(rows, CSV_COLUMNS))
    table = _markdown(rows, len(found), missing)
    md_path = safe_write.write_text_atomic(out / "results.md", table)
    return {
        "rows": rows,
        "items": len(found),
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
