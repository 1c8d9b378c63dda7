"""`heap.Trimmer` gives the C heap's free memory back at most once per interval."""

import platform

import pytest

from rppgedit import heap


def test_the_trimmer_trims_at_most_once_per_interval():
    now, trims = [100.0], []
    trimmer = heap.Trimmer(20.0, trim=lambda: trims.append(now[0]), clock=lambda: now[0])
    calls = []
    for t in (100.0, 110.0, 119.9, 120.0, 125.0, 139.9, 140.0, 200.0):
        now[0] = t
        calls.append(trimmer.maybe())
    assert calls == [False, False, False, True, False, False, True, True]
    assert trims == [120.0, 140.0, 200.0]


def test_without_glibc_the_trimmer_does_nothing(monkeypatch):
    monkeypatch.setattr(heap, "malloc_trim", lambda: None)
    now = [0.0]
    trimmer = heap.Trimmer(1.0, clock=lambda: now[0])
    now[0] = 5.0
    assert trimmer.trim is None and trimmer.maybe() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_malloc_trim_is_found_and_runs():
    trim = heap.malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)  # 1: memory was released, 0: there was none to release
