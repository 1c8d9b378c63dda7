"""The one windowed edit loop: every edit (`--mode=edit`, the sweeps, the experiments) runs here.

    tasks (a face crop, its mask, its target wave) ──windows──► batches of `batch_size` windows
    ──edit_batch──► edited windows ──(edited - crop), cross-faded──► one residual per task

Windows of several tasks share a batch. Every batch has exactly `batch_size` windows (a short one is
padded with copies of its last window, whose results are dropped): XLA compiles one shape, and a
window's edit does not depend on the windows it shares a batch with (rows of a vmapped batch of one
size are computed alike), so a clip edited alone, in a sweep or in an experiment gets the same bits.
A window's result does depend on the batch size (XLA lays out other sizes differently): same bits
need the same `batch_size`.

The editor runs as one program per device (`device_editor`: `jax.shard_map` of the editor's
`edit_batch` over the devices' batch axis), `batch_size / devices` windows each: a window gets the
same bits on any number of devices above one; one device runs XLA's unpartitioned program, which
differs by float rounding (about 1e-3 of the values by one float32 ulp; tests/sweep_test.py).

Batches are dispatched one ahead: while the host collects batch k (and blends finished tasks), the
device already runs batch k + 1.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rppgedit.errors import RppgEditError
from rppgedit.windows import edit_plan, overlap_add

# Fewer frames than this carry no readable pulse (and no window of the deep surrogates).
MIN_FRAMES = 32

EditBatch = Callable[[np.ndarray, np.ndarray, np.ndarray], Any]  # (clips, masks, waves) -> edited


@dataclasses.dataclass(frozen=True)
class Task:
    """One clip to edit.

    Attributes:
      key: the caller's name for it (returned with its residual).
      num_frames: frames N of the clip.
      load: () -> (crop (N,S,S,3) float32 in [0, 1] or uint8, mask bool (N,S,S), target wave
        float32 (N,), zeros when removing); called when the first window is batched, and the
        arrays are dropped once the task is finished.
    """

    key: Any
    num_frames: int
    load: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]


def task(key, crop: np.ndarray, mask: np.ndarray, wave: np.ndarray | None) -> Task:
    """A task of arrays in memory (`wave` None: removal, zeros)."""
    num = crop.shape[0]
    wave = np.zeros(num, np.float32) if wave is None else np.asarray(wave, np.float32)
    return Task(key, num, lambda: (crop, mask, wave))


@dataclasses.dataclass(frozen=True)
class Edited:
    """A finished task: its residual (edited - crop, (N,S,S,3) float32 in [0, 1] units) and the
    seconds of editor time it took (its share of every batch it was in)."""

    task: Task
    residual: np.ndarray
    seconds: float


def local_mesh() -> Mesh:
    """The devices of this process on one batch axis."""
    return Mesh(np.array(jax.local_devices()), ("batch",))


def device_editor(module, state, cfg, mesh: Mesh) -> EditBatch:
    """An editor module's `edit_batch` (weights `state`, static `cfg`) as the engine's batch call:
    jit(shard_map(edit_batch)) over `mesh`, each device editing its rows alone.

    The batch size must be a multiple of the mesh's devices. The result is a JAX array computed
    asynchronously."""
    rows = P("batch")

    def local(state, clips, masks, waves):
        edited, _ = module.edit_batch(state, clips, masks, waves, cfg)
        return edited

    # check_vma=False is required for correctness: with the default check, all devices ended with
    # the SAME perturbation (measured on 4 simulated devices: rows' deltas equal to 1e-5 instead of
    # differing by ~1 grey level), i.e. the gradient was summed over devices. The likely cause: the
    # editor's zero initial perturbation is created inside the body, so it is device-invariant,
    # and the transpose of its implicit `pvary` is a psum. Without the check each device's program
    # is exactly the single-device one (bit-identical results).
    editor = jax.jit(
        jax.shard_map(
            local, mesh=mesh, in_specs=(P(), rows, rows, rows), out_specs=rows, check_vma=False
        )
    )
    sharding = NamedSharding(mesh, rows)
    state = jax.device_put(state, NamedSharding(mesh, P()))

    def edit_batch(clips, masks, waves):
        return editor(state, *(jax.device_put(a, sharding) for a in (clips, masks, waves)))

    return edit_batch


def _unit(crop: np.ndarray) -> np.ndarray:
    if crop.dtype == np.uint8:
        return crop.astype(np.float32) / np.float32(255.0)
    return np.asarray(crop, np.float32)


def edit_windows(
    tasks: Sequence[Task],
    edit_batch: EditBatch,
    *,
    window: int,
    overlap: int,
    batch_size: int,
    progress: Callable[[int], Any] | None = None,
) -> Iterator[Edited]:
    """Edits every task window by window; yields each task as soon as its last window is back.

    Args:
      tasks: the clips, all with crops of one size. Tasks whose windows have different lengths
        (clips shorter than `window`) are batched separately, in order of first appearance.
      edit_batch: (clips (B,L,S,S,3) float32, masks (B,L,S,S), waves (B,L)) -> edited clips
        (B,L,S,S,3), a NumPy or (asynchronously computed) JAX array; B is always `batch_size`.
      window, overlap: see `windows.edit_plan`.
      batch_size: windows per `edit_batch` call.
      progress: called with the number of windows of each finished batch.

    Raises:
      RppgEditError: a task shorter than `MIN_FRAMES`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    plans, groups = [], {}
    for i, t in enumerate(tasks):
        if t.num_frames < MIN_FRAMES:
            raise RppgEditError(f"clip has {t.num_frames} frames; at least {MIN_FRAMES} are needed")
        length, starts = edit_plan(t.num_frames, window, overlap)
        plans.append((length, starts))
        groups.setdefault(length, []).extend((i, s) for s in starts)
    loaded, done = {}, {i: {} for i in range(len(tasks))}
    seconds = dict.fromkeys(range(len(tasks)), 0.0)

    def dispatch(length, units):
        padded = units + [units[-1]] * (batch_size - len(units))
        parts = []
        for i, s in padded:
            if i not in loaded:
                loaded[i] = tasks[i].load()
            crop, mask, wave = loaded[i]
            parts.append((crop[s : s + length], mask[s : s + length], wave[s : s + length]))
        clips = np.stack([_unit(c) for c, _, _ in parts])
        masks = np.stack([m for _, m, _ in parts])
        waves = np.stack([np.asarray(w, np.float32) for _, _, w in parts])
        tic = time.perf_counter()
        return units, clips, edit_batch(clips, masks, waves), time.perf_counter() - tic

    def collect(units, clips, edited, spent):
        tic = time.perf_counter()
        edited = np.asarray(edited)
        spent += time.perf_counter() - tic
        for k, (i, s) in enumerate(units):
            done[i][s] = edited[k] - clips[k]
            seconds[i] += spent / len(units)
        if progress is not None:
            progress(len(units))
        for i in dict.fromkeys(i for i, _ in units):
            starts = plans[i][1]
            if len(done[i]) == len(starts):
                windows = np.stack([done[i].pop(s) for s in starts])
                loaded.pop(i, None)
                yield Edited(
                    tasks[i], overlap_add(windows, starts, tasks[i].num_frames), seconds[i]
                )

    in_flight = None
    for length, units in groups.items():
        for b in range(0, len(units), batch_size):
            launched = dispatch(length, units[b : b + batch_size])
            if in_flight is not None:
                yield from collect(*in_flight)
            in_flight = launched
    if in_flight is not None:
        yield from collect(*in_flight)
