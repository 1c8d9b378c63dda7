"""How the edit shares the CPU cores: JAX's CPU devices (one per core) and NumPy's BLAS threads."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading

# Blocks entered and not yet left (any thread): the thread count is the process's, so a block
# inside another one (a crop inside an edit) has nothing to do. Finding the libraries reads
# /proc/self/maps, thousands of lines in a JAX process: 4.5 ms a call, 1.4 s of a 1080p edit.
_depth = 0
_depth_lock = threading.Lock()
_restore: list = []  # (set function, threads before) of the outermost block


@functools.cache
def _thread_controls(path: str) -> tuple | None:
    """(get, set) thread-count functions of the OpenBLAS library at `path`, or None."""
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix in ("scipy_openblas", "openblas"):
        for suffix in ("64_", ""):
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                return get, put
    return None


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries this process has loaded (NumPy's, SciPy's)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return []
    return sorted(p for p in paths if ".so" in p)


@contextlib.contextmanager
def single_thread_blas():
    """OpenBLAS (NumPy's and SciPy's) on one thread inside the block, then as it was; also a
    decorator.

    An edit's small host matrix products (the crops' area resampling) share the cores with the
    editor's XLA threads: with OpenBLAS's default threads they ran 10-15x slower (measured on 2
    busy cores: 10.6 ms against 0.7 ms per 640x480 frame in the live loop; 12.7 s of a 602-frame
    file edit of a 320x320 clip in `crop_resize`). Best effort: nothing changes where the library
    or its symbols are not found (another BLAS, another OS). Nested blocks leave it to the
    outermost one, which restores the threads when the last block leaves."""
    global _depth
    with _depth_lock:
        _depth += 1
        if _depth == 1:
            for path in _loaded_openblas():
                controls = _thread_controls(path)
                if controls is not None:
                    get, put = controls
                    _restore.append((put, int(get())))
                    put(ctypes.c_int(1))
    try:
        yield
    finally:
        with _depth_lock:
            _depth -= 1
            if _depth == 0:
                for put, threads in reversed(_restore):
                    put(ctypes.c_int(threads))
                _restore.clear()


# One XLA program of the edit keeps about 1.2 of 2 cores busy (PhysNet's small convolutions leave
# the rest of XLA's thread pool idle), so a CPU host edits faster as one JAX device per core, each
# editing its own windows (`engine.windows_per_device`): measured on this project's 2-core machine,
# the 6 windows of the shared 602-frame clip in 3.1 s on two devices against 5.4 s on one (batch 2)
# and 4.4 s (batch 1); the whole edit command 11.0 s against 12.9 s.
MAX_CPU_DEVICES = 8


def cpu_devices_wanted() -> int:
    """JAX CPU devices for this host: one per core this process may use, at most
    `MAX_CPU_DEVICES`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_CPU_DEVICES))


def spread_over_cores() -> int | None:
    """Gives JAX one CPU device per core (`cpu_devices_wanted`) unless the user chose a number
    ($JAX_NUM_CPU_DEVICES, `jax_num_cpu_devices`, or XLA_FLAGS'
    --xla_force_host_platform_device_count) or JAX has already started its backends (then nothing
    changes). Call it before JAX computes anything, as the command line and `rppgedit.api` do.
    Before JAX is imported it only sets $JAX_NUM_CPU_DEVICES, which JAX reads when it is imported
    (importing JAX here would cost `import rppgedit.api` 2 s). Accelerators are not affected:
    with a GPU the edit runs there. Returns the number set, or None when it was left as it was."""
    if "JAX_NUM_CPU_DEVICES" in os.environ or "xla_force_host_platform_device_count" in (
        os.environ.get("XLA_FLAGS", "")
    ):
        return None
    wanted = cpu_devices_wanted()
    jax = sys.modules.get("jax")
    if jax is None:
        os.environ["JAX_NUM_CPU_DEVICES"] = str(wanted)
        return wanted
    if jax.config.jax_num_cpu_devices != -1:  # set in this process's code
        return None
    try:
        jax.config.update("jax_num_cpu_devices", wanted)
    except RuntimeError:  # the backends have started: too late, and not ours to change
        return None
    return wanted
