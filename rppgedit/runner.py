"""One runner for every grid of edits: the sweeps and the papers' experiments.

A grid run edits every clip of a source with every setting of a list and reads the result. What
differs between runs is a `Plan` (data plus four functions): which clips, which settings, how a
clip is prepared for the editor, how an edited clip is read into records, and which tables and
plots are built from the records. Everything else is here, once:

* **Keys.** Every (clip, setting) item is named by a CONTENT key: a hash of the clip's description,
  the plan's run-level settings (`Plan.describe`), the editor's full config and the target. Items
  that differ only in an option the editor does not have are one item. Positions never name
  anything, so a grid can grow, shrink or be reordered and finished items are still found.
* **Resume.** `results.<process>.jsonl`: the records of a finished item are appended with one
  write, flushed and fsync'ed (`rppgedit.results_file`); a rerun of the same command skips every
  item finished in ANY results file and edits only the rest. Killed at any point (kill -9) and
  restarted, a run recomputes exactly the unfinished items.
* **Sharding.** Each process takes the items whose rank in the sorted key list is its index modulo
  the process count, and edits them on its LOCAL devices: windows of several clips that share an
  editor config are stacked into batches of `batch_per_device x local devices` windows and edited
  by `engine.device_editor` (vmap inside `shard_map`). No cross-host traffic while editing.
* **Memory.** Clips are prepared `clips_per_chunk` at a time, in the plan's clip order, and
  dropped after their items are finished.
* **Merge.** `grid.json` (written by process 0) holds the plan's description and the sorted keys.
  Under `jax.distributed` a barrier ends the run and process 0 merges; processes started
  independently on one folder (`process_index`/`process_count` given) merge in the one that finds
  every item finished. `collect` reads every results file, deduplicated by key and restricted to
  the grid; the plan turns that into its tables and plots.

The plans: `rppgedit.sweep` (synthetic or dataset clips x targets x lambda x method x steps, read
on the face crop) and `rppgedit.papers.run` (the papers' experiments, pasted into and read on the
full frames, with quarter crops and the open-rppg attackers).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import jax
import numpy as np

from rppgedit import editors, engine, pipeline, results_file, safe_write, targets
from rppgedit import progress as progress_bars
from rppgedit.errors import RppgEditError
from rppgedit.windows import edit_plan

SCHEMA = 2  # part of every key: bump when the meaning of a record changes
MANIFEST = "grid.json"


@dataclasses.dataclass(frozen=True)
class Setting:
    """One edit setting of a grid.

    Attributes:
      label: short name, unique in its grid, e.g. "privacy_phys lambda=0.1".
      method: editor name (`rppgedit.editors.METHODS`).
      options: (Config field, value) overrides of the editor's defaults; fields the editor does not
        have are dropped (`editor_config`).
      target: what to embed; None removes the pulse.
      sweep: name of the swept quantity ("fidelity_weight", "learning_rate", "target_hr_bpm") or
        None for a fixed setting.
      value: the swept quantity's value (None when `sweep` is None).
    """

    label: str
    method: str
    options: tuple[tuple[str, Any], ...] = ()
    target: targets.TargetSpec | None = targets.TargetSpec()
    sweep: str | None = None
    value: float | None = None

    @property
    def target_hr_bpm(self) -> float | None:
        return None if self.target is None else float(self.target.hr_bpm)


@dataclasses.dataclass(frozen=True)
class ClipRef:
    """One clip of a grid: `desc` (JSON-able) identifies its content and goes into the keys."""

    id: str
    num_frames: int
    fps: float
    desc: dict = dataclasses.field(hash=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Item:
    """One edit: a clip and a setting, with the editor's static config."""

    key: str
    clip: ClipRef
    setting: Setting
    cfg: Any  # the editor's frozen Config
    content: dict = dataclasses.field(hash=False, compare=False)  # hashed into `key` with the clip


@dataclasses.dataclass
class Prepared:
    """A clip ready for the editor: the crop it edits ((T,S,S,3) float32 in [0, 1] or uint8), the
    skin mask ((T,S,S) bool) and whatever the plan's `finish` needs (frames, readings ...)."""

    crop: np.ndarray
    mask: np.ndarray
    data: Any = None


class Plan(Protocol):
    """What a grid run computes; `run` does the rest.

    Attributes:
      name: what the run is called in bars and messages ("sweep", "lambda_sweep" ...).
      settings: the grid's settings.
      job: the windows, work size, mask rule, rounding and seed of every edit (an item's output
        has the bits of `--mode=edit` with this job).
    """

    name: str
    settings: Sequence[Setting]
    job: pipeline.EditJob

    def describe(self) -> dict:
        """Run-level settings that change a record (JSON-able): hashed into every key."""

    def clip_refs(self, out: pathlib.Path, pid: int, nproc: int, progress: bool) -> list[ClipRef]:
        """The clips, in the order they are prepared (may prepare and cache them under `out`)."""

    def prepare(self, ref: ClipRef) -> Prepared:
        """Loads one clip for the editor (and reads it before the edit)."""

    def finish(self, item: Item, clip: Prepared, residual: np.ndarray, seconds: float) -> list:
        """Pastes, rounds and reads one edited item; returns its records (JSON-able dicts)."""

    def merge(self, out: pathlib.Path, records: list[dict], missing: list[str]) -> dict:
        """Writes the tables and plots of a finished grid from its records (grid order)."""


# --------------------------------------------------------------------------------------------
# Keys and items.


def editor_config(setting: Setting, fps: float):
    """The editor's static config of `setting` at `fps`; options it does not have are dropped."""
    fields = {f.name for f in dataclasses.fields(editors.get(setting.method).Config)}
    kept = [(k, v) for k, v in setting.options if k in fields]
    return editors.make_config(setting.method, fps, setting.target is None, kept)


def make_items(plan: Plan, refs: Sequence[ClipRef]) -> list[Item]:
    """Every unique (clip, setting) item of `plan` over `refs`, clip by clip in `refs`' order and
    settings in the plan's order (the order of the merged records)."""
    described = plan.describe()
    found: dict[str, Item] = {}
    for ref in refs:
        for setting in plan.settings:
            cfg = editor_config(setting, ref.fps)
            content = {
                **described,
                "method": setting.method,
                "config": dataclasses.asdict(cfg),
                "target": None if setting.target is None else dataclasses.asdict(setting.target),
            }
            key = results_file.content_key(SCHEMA, ref.desc, content)
            found.setdefault(key, Item(key, ref, setting, cfg, content))
    return list(found.values())


def shard_items(items: Sequence[Item], process_index: int, process_count: int) -> list[Item]:
    """The items of one process: round-robin on the sorted keys (the same on every process)."""
    return sorted(items, key=lambda it: it.key)[process_index::process_count]


def results_path(out: pathlib.Path, process_index: int = 0) -> pathlib.Path:
    """A process's resumable store of finished items."""
    return pathlib.Path(out) / f"results.{process_index}.jsonl"


# --------------------------------------------------------------------------------------------
# Folders and processes.


def open_folder(out_dir) -> pathlib.Path:
    """`out_dir` as a folder (created), or a one-line error."""
    out = pathlib.Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RppgEditError(f"{out}: output folder exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RppgEditError(f"{out}: cannot create the output folder ({e.strerror})") from None
    return out


def lock_folder(out: pathlib.Path, process_index: int) -> int:
    """An exclusive lock on `out` for this process index (released when the process ends): a
    second run started on the same folder stops at once instead of redoing all the work."""
    import fcntl

    path = out / f".run.{process_index}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RppgEditError(
            f"{out}: another run (process {process_index}) is using this folder; wait for it or "
            "choose another output folder"
        ) from None
    return fd


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


def barrier(name: str) -> None:
    """Waits for every process of `jax.distributed` (nothing to wait for in one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def list_dataset(
    listing, out: pathlib.Path, pid: int, nproc: int, *, on_clip=None, max_clips=None,
    progress: bool = False,
) -> list[dict]:  # fmt: skip
    """The clips of a dataset (`data.clips.Listing`), each recording decoded and listed once under
    `out/clips/` (`on_clip(clip, name)` caches what a plan needs beside the lists): under
    `jax.distributed` each process lists its share of the recordings and a barrier waits for the
    others; one process lists only until it has `max_clips`. Returns the entries of
    `clips.read_recordings`, at most `max_clips`."""
    from rppgedit.data import clips as clip_sources
    from rppgedit.data import datasets

    folder = out / "clips"
    folder.mkdir(parents=True, exist_ok=True)
    samples = datasets.list_samples(listing.dataset, listing.data_dir)
    if jax.process_count() > 1:  # each host lists its share, then all read every list
        mine, enough = samples[pid::nproc], None
    else:
        mine, enough = samples, max_clips
    clip_sources.index_recordings(
        listing, folder, mine, on_clip=on_clip, enough=enough, progress=progress
    )
    barrier("rppgedit_dataset_clips")
    return clip_sources.read_recordings(listing, folder, samples, max_clips=max_clips)


# --------------------------------------------------------------------------------------------
# Results.


def collect(
    out_dir, grid: Sequence[str] | None = None
) -> tuple[dict[str, list[dict]], list[str], list[str] | None]:
    """Every finished item in `out_dir`'s results files: ({key: records}, the finished keys in the
    grid's order, the grid's keys without a result). Items are deduplicated by key (the first
    complete copy in file-name order wins) and restricted to the `grid` keys (default: those of
    `grid.json`; without either, every item in key order and nothing known missing: None)."""
    out = pathlib.Path(out_dir)
    if not out.is_dir():
        raise RppgEditError(f"{out}: results folder not found")
    found: dict[str, list[dict]] = {}
    for path in sorted(out.glob("results.*.jsonl")):
        for key, records in results_file.read_results(path)[0].items():
            found.setdefault(key, records)
    manifest = out / MANIFEST
    if grid is None and not manifest.exists():
        return found, sorted(found), None
    keys = json.loads(manifest.read_text())["keys"] if grid is None else grid
    return (
        {k: found[k] for k in keys if k in found},
        [k for k in keys if k in found],
        [k for k in keys if k not in found],
    )


# --------------------------------------------------------------------------------------------
# Editing.


def _chunks(items: Sequence, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _target_wave(item: Item) -> np.ndarray:
    num = item.clip.num_frames
    if item.setting.target is None:
        return np.zeros(num, np.float32)
    return np.asarray(targets.make_target(item.setting.target, num, item.clip.fps), np.float32)


class _Editors:
    """Each (method, config)'s weights loaded once and its batch call on this process's mesh."""

    def __init__(self, mesh):
        self._mesh, self._states = mesh, {}

    def __call__(self, method: str, cfg):
        module = editors.get(method)
        if (method, cfg) not in self._states:
            self._states[(method, cfg)] = module.load_state(cfg)
        return engine.device_editor(module, self._states[(method, cfg)], cfg, self._mesh)


def _edit_chunk(plan, items, clips, editor_for, batch_size) -> Iterator[tuple[Item, Any, float]]:
    """Edits the `items` of one chunk of prepared `clips` ({clip id: Prepared}); windows of items
    with one editor config share batches. Yields (item, residual, its editor seconds) as each item
    finishes."""
    job = plan.job
    groups: dict[tuple, list[Item]] = {}
    for item in items:
        shape = edit_plan(item.clip.num_frames, job.window, job.overlap)[0]
        groups.setdefault((item.setting.method, item.cfg, shape), []).append(item)
    for (method, cfg, _), group in groups.items():

        def load(item):
            clip = clips[item.clip.id]
            return clip.crop, clip.mask, _target_wave(item)

        tasks = [
            engine.Task(i, item.clip.num_frames, lambda item=item: load(item))
            for i, item in enumerate(group)
        ]
        for done in engine.edit_windows(
            tasks,
            editor_for(method, cfg),
            window=job.window,
            overlap=job.overlap,
            batch_size=batch_size,
        ):
            yield group[done.task.key], done.residual, done.seconds


def run(
    plan: Plan,
    out_dir,
    *,
    batch_per_device: int = 4,
    clips_per_chunk: int = 64,
    progress: bool = True,
    merge: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
    config: dict | None = None,
    on_item: Callable[[str, list[dict]], None] | None = None,
) -> dict:
    """Runs (or resumes) this process's share of `plan`'s grid; merges when the grid is finished.

    Args:
      plan: the clips, settings and readings (`Plan`).
      out_dir: results folder (shared by all processes; created).
      batch_per_device: windows each local device edits per call.
      clips_per_chunk: clips prepared and held in memory together.
      progress: a bar of this process's items (done / total, ETA; `rppgedit.progress`).
      merge: build the plan's tables when the grid is finished (`plan.merge`).
      process_index, process_count: this process among those sharing `out_dir`; default
        `jax.process_index()` / `jax.process_count()`.
      config: the resolved settings of the command, written into `grid.json`.
      on_item: called as `on_item(key, records)` after each item is persisted.

    Returns:
      summary dict: process_index, process_count, devices, total_items (grid), process_items,
      skipped (finished before), edited, seconds (editing, after clip listing), items_per_minute,
      first_item_s (includes compilation), steady_items_per_minute (after the first item),
      results_path, complete (every item of the grid finished), missing (how many not), and the
      plan's `merge` result when this process merged.
    """
    if batch_per_device < 1 or clips_per_chunk < 1:
        raise RppgEditError(
            f"{plan.name}: batch_per_device and clips_per_chunk must be >= 1, got "
            f"{batch_per_device} and {clips_per_chunk}"
        )
    distributed = jax.process_count() > 1
    pid = jax.process_index() if process_index is None else process_index
    nproc = jax.process_count() if process_count is None else process_count
    if not 0 <= pid < nproc:
        raise RppgEditError(f"process {pid} of {nproc}: not a process index")
    out = open_folder(out_dir)
    lock = lock_folder(out, pid)
    try:
        return _run_locked(
            plan, out, pid, nproc, distributed, batch_per_device, clips_per_chunk, progress,
            merge, config, on_item,
        )  # fmt: skip
    finally:
        os.close(lock)


def _run_locked(
    plan, out, pid, nproc, distributed, batch_per_device, clips_per_chunk, progress, merge,
    config, on_item,
):  # fmt: skip
    refs = plan.clip_refs(out, pid, nproc, progress)
    items = make_items(plan, refs)
    if pid == 0:
        manifest = {"plan": plan.describe(), "keys": [it.key for it in items]}
        if config is not None:
            manifest["config"] = config
        safe_write.write_text_atomic(
            out / MANIFEST, json.dumps(safe_write.json_safe(manifest), indent=1)
        )
    own = results_path(out, pid)
    mine = shard_items(items, pid, nproc)
    finished = results_file.finished_keys(own, out.glob("results.*.jsonl"))
    todo = [it for it in mine if it.key not in finished]
    own.touch()
    mesh = engine.local_mesh()
    editor_for = _Editors(mesh)
    bar = progress_bars.bar(
        len(mine),
        f"{plan.name} {pid}/{nproc}",
        progress,
        unit="item",
        initial=len(mine) - len(todo),
    )
    order = {ref.id: i for i, ref in enumerate(refs)}
    by_clip: dict[str, list[Item]] = {}
    for item in sorted(todo, key=lambda it: order[it.clip.id]):
        by_clip.setdefault(item.clip.id, []).append(item)
    refs_todo = [ref for ref in refs if ref.id in by_clip]
    tic = time.perf_counter()
    first_item_s = None
    for chunk in _chunks(refs_todo, clips_per_chunk):
        clips = {ref.id: plan.prepare(ref) for ref in chunk}
        chunk_items = [it for ref in chunk for it in by_clip[ref.id]]
        for item, residual, seconds in _edit_chunk(
            plan, chunk_items, clips, editor_for, batch_per_device * mesh.devices.size
        ):
            records = plan.finish(item, clips[item.clip.id], residual, seconds)
            parts = len(records)
            records = [
                {**r, "key": item.key, "part": i, "parts": parts} for i, r in enumerate(records)
            ]
            results_file.append_item(own, records)
            bar.update(1)
            if first_item_s is None:
                first_item_s = time.perf_counter() - tic
            if on_item is not None:
                on_item(item.key, records)
        del clips
    seconds = time.perf_counter() - tic
    bar.close()
    edited = len(todo)
    summary = {
        "process_index": pid,
        "process_count": nproc,
        "devices": [str(d) for d in mesh.devices.flat],
        "clips": len(refs),
        "total_items": len(items),
        "process_items": len(mine),
        "skipped": len(mine) - edited,
        "edited": edited,
        "seconds": seconds,
        "items_per_minute": 60.0 * edited / seconds if edited and seconds > 0 else None,
        "first_item_s": first_item_s,
        "steady_items_per_minute": (
            60.0 * (edited - 1) / (seconds - first_item_s) if edited > 1 else None
        ),
        "results_path": str(own),
    }
    if distributed:
        barrier(f"rppgedit_{plan.name}_done")
    found, keys, missing = collect(out, [it.key for it in items])
    summary["complete"] = not missing
    summary["missing"] = len(missing)
    if merge and (pid == 0 if distributed else not missing):
        records = [r for k in keys for r in found[k]]
        summary["merge"] = plan.merge(out, records, missing)
    return summary
