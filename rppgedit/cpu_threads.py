"""How many threads NumPy's BLAS uses while the edit's XLA computations share the cores."""

from __future__ import annotations

import contextlib
import ctypes
import functools
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
