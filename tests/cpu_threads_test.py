"""`cpu_threads.single_thread_blas`: NumPy's OpenBLAS on one thread inside, as it was after."""

import numpy as np
import pytest

from rppgedit import cpu_threads
from rppgedit.video import crop


def _thread_counts() -> list[int]:
    controls = [cpu_threads._thread_controls(p) for p in cpu_threads._loaded_openblas()]
    return [int(get()) for get, _ in filter(None, controls)]


@pytest.fixture
def two_blas_threads():
    """NumPy's OpenBLAS set to 2 threads for the test (a 1-core runner would start at 1)."""
    controls = list(filter(None, map(cpu_threads._thread_controls, cpu_threads._loaded_openblas())))
    assert controls, "NumPy's OpenBLAS was not found among the loaded libraries"
    before = [int(get()) for get, _ in controls]
    for _, put in controls:
        put(2)
    yield
    for (_, put), n in zip(controls, before, strict=True):
        put(n)


def test_blas_runs_on_one_thread_inside_and_as_before_after(two_blas_threads):
    assert set(_thread_counts()) == {2}
    with cpu_threads.single_thread_blas():
        assert set(_thread_counts()) == {1}
        with cpu_threads.single_thread_blas():  # nested: still one, and the outer one restores
            assert set(_thread_counts()) == {1}
        assert set(_thread_counts()) == {1}
    assert set(_thread_counts()) == {2}


def test_nested_blocks_find_the_libraries_once(two_blas_threads, monkeypatch):
    """Only the outermost block reads /proc/self/maps (milliseconds in a JAX process): a crop
    inside an edit costs nothing; the threads come back when the last block leaves."""
    calls = []
    loaded = cpu_threads._loaded_openblas
    monkeypatch.setattr(cpu_threads, "_loaded_openblas", lambda: calls.append(1) or loaded())
    with cpu_threads.single_thread_blas():
        for _ in range(3):
            crop.crop_resize(np.zeros((1, 8, 8, 3), np.uint8), np.array([[0.0, 0, 8, 8]]), 4)
        reads = len(calls)
        assert set(_thread_counts()) == {1}
    assert reads == 1
    assert set(_thread_counts()) == {2}


def test_the_crop_resamples_on_one_thread(two_blas_threads, monkeypatch):
    seen = []
    area_matrix = crop._area_matrix

    def spy(*args):
        seen.append(_thread_counts())
        return area_matrix(*args)

    monkeypatch.setattr(crop, "_area_matrix", spy)
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    crop.crop_resize(frames, np.tile([[0.0, 0.0, 16.0, 16.0]], (2, 1)), 8)
    assert seen and all(set(counts) == {1} for counts in seen)
    assert set(_thread_counts()) == {2}
