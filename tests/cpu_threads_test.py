"""`cpu_threads`: NumPy's OpenBLAS on one thread inside `single_thread_blas`, as it was after;
JAX's CPU devices one per core (`spread_over_cores`) and the edit's default batch on them."""

import dataclasses
import os

import jax
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


_DEVICES = """
import json, sys
import jax
from rppgedit import cpu_threads
if sys.argv[1] == "late":
    jax.numpy.zeros(1).block_until_ready()  # the backends start before the call
chosen = cpu_threads.spread_over_cores()
print(json.dumps([chosen, jax.device_count("cpu"), cpu_threads.cpu_devices_wanted()]))
"""


def _json_of_a_fresh_process(script: str, *args: str, **env) -> list:
    """The JSON line `script` prints last, run in a fresh Python on the CPU with `env` added to
    this environment less the user's device count (XLA_FLAGS, JAX_NUM_CPU_DEVICES)."""
    import json
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**base, "JAX_PLATFORMS": "cpu", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _devices_in_a_fresh_process(when: str = "first", **env) -> list:
    return _json_of_a_fresh_process(_DEVICES, when, **env)


def test_jax_gets_one_cpu_device_per_core_unless_the_user_chose():
    chosen, count, wanted = _devices_in_a_fresh_process()
    assert chosen == count == wanted == min(len(os.sched_getaffinity(0)), 8)
    # the user's number stands, whichever way it was given
    assert _devices_in_a_fresh_process(JAX_NUM_CPU_DEVICES="3")[:2] == [None, 3]
    flags = "--xla_force_host_platform_device_count=3"
    assert _devices_in_a_fresh_process(XLA_FLAGS=flags)[:2] == [None, 3]
    # too late once JAX has computed: nothing changes, and nothing fails
    assert _devices_in_a_fresh_process("late")[:2] == [None, 1]


_API_IMPORT = """
import json, sys
import rppgedit.api
imported = "jax" in sys.modules
import jax
print(json.dumps([imported, jax.device_count("cpu")]))
"""


def test_importing_the_api_does_not_import_jax_and_still_spreads_over_the_cores():
    wanted = cpu_threads.cpu_devices_wanted()
    assert _json_of_a_fresh_process(_API_IMPORT) == [False, wanted]


def test_the_default_batch_is_one_window_per_cpu_device():
    from rppgedit import editors, engine, pipeline

    assert engine.windows_per_device(0, engine.local_mesh()) == engine.CPU_WINDOWS_PER_DEVICE == 1
    assert engine.windows_per_device(3, engine.local_mesh()) == 3  # the user's number
    job = pipeline.EditJob(method="pulseedit")
    assert job.batch_windows == 0
    cfg = pipeline.editor_config(job, 30.0)
    state = editors.get(job.method).load_state(cfg)
    assert pipeline.job_editor(job, state, cfg)[1] == len(jax.local_devices())
    assert pipeline.job_editor(job, state, cfg, devices=1)[1] == 1  # the live mode's
    wider = dataclasses.replace(job, batch_windows=2)
    assert pipeline.job_editor(wider, state, cfg)[1] == 2 * len(jax.local_devices())
