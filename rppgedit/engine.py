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

import collections
import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rppgedit import program_cache
from rppgedit.editors import contract
from rppgedit.errors import RppgEditError
from rppgedit.windows import blend_weights, edit_plan

# Fewer frames than this carry no readable pulse (and no window of the deep surrogates).
MIN_FRAMES = 32


class FrameCountError(ValueError):
    """A task was fed more or fewer frames than it declared (its source changed under it)."""


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


def local_mesh(limit: int | None = None) -> Mesh:
    """The devices of this process (the first `limit` of them, when given) on one batch axis."""
    return Mesh(np.array(jax.local_devices()[:limit]), ("batch",))


# Windows per device and call when the job asks for 0 (the default): on a CPU device (one per core,
# `cpu_threads.spread_over_cores`) one window keeps its core busy and a second would only be
# padding in a short clip's last call (the shared 602-frame clip: 11.0 s end to end with 1, 12.9 s
# with 2). An accelerator keeps the earlier default of 2: one window's small kernels leave a GPU
# mostly idle (not measured here: no GPU was lent to this work).
CPU_WINDOWS_PER_DEVICE = 1
ACCELERATOR_WINDOWS_PER_DEVICE = 2


def windows_per_device(batch_windows: int, mesh: Mesh) -> int:
    """`batch_windows`, or for 0 the default of `mesh`'s platform (see `CPU_WINDOWS_PER_DEVICE`)."""
    if batch_windows:
        return batch_windows
    cpu = mesh.devices.flat[0].platform == "cpu"
    return CPU_WINDOWS_PER_DEVICE if cpu else ACCELERATOR_WINDOWS_PER_DEVICE


def device_editor(module, state, cfg, mesh: Mesh) -> EditBatch:
    """An editor module's `edit_batch` (weights `state`, settings `cfg`) as the engine's batch call:
    jit(shard_map(edit_batch)) over `mesh`, each device editing its rows alone.

    The compiled program is shared by every `cfg` that differs only in the editor's traced
    hyperparameters (learning rate, lambda: `editors.contract`), so a sweep over them compiles
    once. The batch size must be a multiple of the mesh's devices. The result is a JAX array
    computed asynchronously. With a compilation cache, the traced program is kept on disk too
    (`program_cache`): a later run loads it instead of tracing the editor again."""
    edit = module.edit_batch
    static = contract.strip(cfg, edit.hyperparameter_names)
    editor = _sharded_editor(edit, static, mesh, f"{module.__name__}.edit_batch")
    sharding = NamedSharding(mesh, P("batch"))
    replicated = NamedSharding(mesh, P())
    state = jax.device_put(state, replicated)
    hyper = jax.device_put(edit.hyperparameters(cfg), replicated)

    def edit_batch(clips, masks, waves):
        return editor(state, hyper, *(jax.device_put(a, sharding) for a in (clips, masks, waves)))

    return edit_batch


@functools.lru_cache(maxsize=64)
def _sharded_editor(edit, static_cfg, mesh: Mesh, name: str):
    """jit(shard_map) of `edit.apply` (the editor `name`) with the static part `static_cfg` of a
    setting, through its stored program (`program_cache`); its hyperparameters are a replicated
    argument."""
    rows = P("batch")

    def local(state, hyper, clips, masks, waves):
        edited, _ = edit.apply(state, clips, masks, waves, hyper, static_cfg)
        return edited

    # check_vma=False is required for correctness: with the default check, all devices ended with
    # the SAME perturbation (measured on 4 simulated devices: rows' deltas equal to 1e-5 instead of
    # differing by ~1 grey level), i.e. the gradient was summed over devices. The likely cause: the
    # editor's zero initial perturbation is created inside the body, so it is device-invariant,
    # and the transpose of its implicit `pvary` is a psum. Without the check each device's program
    # is exactly the single-device one (bit-identical results).
    program = jax.jit(
        jax.shard_map(
            local, mesh=mesh, in_specs=(P(), P(), rows, rows, rows), out_specs=rows, check_vma=False
        )
    )
    return program_cache.cached_program(
        program, name, (static_cfg, mesh.axis_names, mesh.devices.shape)
    )


def _unit(crop: np.ndarray) -> np.ndarray:
    if crop.dtype == np.uint8:
        return crop.astype(np.float32) / np.float32(255.0)
    return np.asarray(crop, np.float32)


class _Stream:
    """One task's frames on their way through the engine: the input frames that windows still need,
    and the blended residual of the frames that windows still add to."""

    def __init__(self, key, num_frames: int, window: int, overlap: int):
        if num_frames < MIN_FRAMES:
            raise RppgEditError(f"clip has {num_frames} frames; at least {MIN_FRAMES} are needed")
        self.key, self.num = key, num_frames
        self.length, self.starts = edit_plan(num_frames, window, overlap)
        self.weights = blend_weights(self.starts, self.length, num_frames)
        self.inputs, self.input_start, self.received = None, 0, 0
        self.next_window = 0  # the first window not yet cut
        self.acc, self.acc_start = None, 0  # residual of frames acc_start.. (not yet final)
        self.seconds = 0.0

    def feed(self, crop, mask, wave) -> list[tuple]:
        """Appends frames; returns the windows they complete: (stream, index, crop, mask, wave)."""
        new = (crop, mask, np.asarray(wave, np.float32))
        if self.inputs is None:
            self.inputs = new
        else:
            self.inputs = tuple(
                np.concatenate([a, b]) for a, b in zip(self.inputs, new, strict=True)
            )
        self.received += len(crop)
        if self.received > self.num:
            raise FrameCountError(f"task {self.key!r} got {self.received} frames for {self.num}")
        ready = []
        while (
            self.next_window < len(self.starts)
            and self.starts[self.next_window] + self.length <= self.received
        ):
            i = self.next_window
            a = self.starts[i] - self.input_start
            ready.append((self, i, *(x[a : a + self.length] for x in self.inputs)))
            self.next_window += 1
            keep = self.starts[i + 1] if i + 1 < len(self.starts) else self.received
            self.inputs = tuple(x[keep - self.input_start :] for x in self.inputs)
            self.input_start = keep
        return ready

    def add(self, index: int, residual: np.ndarray):
        """Blends window `index` in (windows arrive in order); returns (first frame, residual
        frames) that no later window touches, or None."""
        start, end = self.starts[index], self.starts[index] + self.length
        if self.acc is None:
            self.acc = np.zeros((0, *residual.shape[1:]), np.float32)
        grow = end - self.acc_start - len(self.acc)
        if grow > 0:
            self.acc = np.concatenate([self.acc, np.zeros((grow, *residual.shape[1:]), np.float32)])
        expand = (slice(None),) + (None,) * (residual.ndim - 1)
        self.acc[start - self.acc_start : end - self.acc_start] += (
            residual * self.weights[index][expand]
        )
        final = self.starts[index + 1] if index + 1 < len(self.starts) else self.num
        if final <= self.acc_start:
            return None
        out = self.acc[: final - self.acc_start]
        self.acc, first, self.acc_start = self.acc[final - self.acc_start :], self.acc_start, final
        return first, out


Feed = Iterable[list[tuple[Any, np.ndarray, np.ndarray, np.ndarray]]]


def stream_windows(
    feed: Feed,
    sizes: dict,
    edit_batch: EditBatch,
    *,
    window: int,
    overlap: int,
    batch_size: int,
    progress: Callable[[int], Any] | None = None,
) -> Iterator[tuple[Any, int, np.ndarray, float]]:
    """Edits clips that arrive frame chunk by frame chunk; yields their residuals as they become
    final. Memory holds about one window per clip and the batches in flight, whatever the length.

    Args:
      feed: an iterable of lists of (key, crop frames (n,S,S,3) float32 in [0, 1] or uint8, mask
        (n,S,S), target wave (n,)), each appending frames to that clip in order; pulled only as far
        as the windows need.
      sizes: {key: frames N of the clip}: the windows are planned from it (`windows.edit_plan`).
      edit_batch, window, overlap, batch_size, progress: see `edit_windows`.

    Yields:
      (key, first frame, residual frames (n,S,S,3) float32 in [0, 1] units, editor seconds spent
      on the clip so far), consecutive and in order per clip; the same values as `overlap_add` of
      the clip's windows.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    streams = {key: _Stream(key, num, window, overlap) for key, num in sizes.items()}
    ready: dict[int, collections.deque] = {}
    chunks = iter(feed)

    def dispatch(units):
        padded = units + [units[-1]] * (batch_size - len(units))
        clips = np.stack([_unit(u[2]) for u in padded])
        masks = np.stack([u[3] for u in padded])
        waves = np.stack([u[4] for u in padded])
        tic = time.perf_counter()
        edited = edit_batch(clips, masks, waves)
        return [u[:2] for u in units], clips, edited, time.perf_counter() - tic

    def collect(units, clips, edited, spent):
        tic = time.perf_counter()
        edited = np.asarray(edited)
        spent += time.perf_counter() - tic
        for k, (stream, index) in enumerate(units):
            stream.seconds += spent / len(units)
            final = stream.add(index, edited[k] - clips[k])
            if final is not None:
                yield stream.key, final[0], final[1], stream.seconds
        if progress is not None:
            progress(len(units))

    in_flight, exhausted = None, False
    while True:
        full = next((q for q in ready.values() if len(q) >= batch_size), None)
        if full is None and not exhausted:
            chunk = next(chunks, None)
            if chunk is None:
                exhausted = True
                short = [s for s in streams.values() if s.received != s.num]
                if short:
                    raise FrameCountError(
                        f"task {short[0].key!r} got {short[0].received} of {short[0].num} frames"
                    )
            for key, crop, mask, wave in chunk or ():
                for unit in streams[key].feed(crop, mask, wave):
                    ready.setdefault(unit[0].length, collections.deque()).append(unit)
            continue
        queue = full if full is not None else next((q for q in ready.values() if q), None)
        if queue is None:
            break
        launched = dispatch([queue.popleft() for _ in range(min(batch_size, len(queue)))])
        if in_flight is not None:
            yield from collect(*in_flight)
        in_flight = launched
    if in_flight is not None:
        yield from collect(*in_flight)


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

    Tasks are loaded one after another, as the batches need their windows (`stream_windows`).

    Args:
      tasks: the clips, all with crops of one size. Tasks whose windows have different lengths
        (clips shorter than `window`) are batched separately.
      edit_batch: (clips (B,L,S,S,3) float32, masks (B,L,S,S), waves (B,L)) -> edited clips
        (B,L,S,S,3), a NumPy or (asynchronously computed) JAX array; B is always `batch_size`.
      window, overlap: see `windows.edit_plan`.
      batch_size: windows per `edit_batch` call.
      progress: called with the number of windows of each finished batch.

    Raises:
      RppgEditError: a task shorter than `MIN_FRAMES`.
    """

    def feed():
        for i, t in enumerate(tasks):
            yield [(i, *t.load())]

    sizes = {i: t.num_frames for i, t in enumerate(tasks)}
    parts: dict[int, list[np.ndarray]] = {i: [] for i in sizes}
    got = dict.fromkeys(sizes, 0)
    for i, _, residual, seconds in stream_windows(
        feed(),
        sizes,
        edit_batch,
        window=window,
        overlap=overlap,
        batch_size=batch_size,
        progress=progress,
    ):
        parts[i].append(residual)
        got[i] += len(residual)
        if got[i] == sizes[i]:
            yield Edited(tasks[i], np.concatenate(parts.pop(i)), seconds)
