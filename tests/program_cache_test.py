"""Traced programs stored beside the compilation cache (`program_cache`): a later call loads the
program instead of tracing, gets the same bits, and any change of what the program is built from
names another file."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rppgedit import editors, engine, pipeline, program_cache, targets
from rppgedit.data import synthetic
from rppgedit.video import encode


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A program folder for this test (the suite runs with no compilation cache, hence none)."""
    monkeypatch.setattr(program_cache, "_folder", lambda: tmp_path / "exported")
    return tmp_path / "exported"


def _traced_function(traces: list, scale: float):
    @jax.jit
    def fn(x, extra):
        traces.append(1)  # runs only while JAX traces
        return jnp.sin(x) * scale + extra["b"]

    return fn


def test_a_second_function_loads_the_stored_program_without_tracing(folder):
    x, extra = np.linspace(0, 3, 11, dtype=np.float32), {"b": np.float32(0.5)}
    traces = []
    first = program_cache.cached_program(_traced_function(traces, 2.0), "f", 2.0)
    a = np.asarray(first(x, extra))
    assert len(traces) == 1 and len(list(folder.glob("*.jaxexport"))) == 1
    first(x + 1, extra)  # same shapes: the program in memory
    assert len(traces) == 1
    again = program_cache.cached_program(_traced_function(traces, 2.0), "f", 2.0)
    b = np.asarray(again(x, extra))
    assert len(traces) == 1  # loaded from the file: not traced
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, np.sin(x.astype(np.float64)) * 2 + 0.5, rtol=1e-6, atol=1e-6)


def test_other_settings_shapes_or_source_name_other_programs(folder, monkeypatch):
    x, extra = np.zeros(5, np.float32), {"b": np.float32(0)}
    key = program_cache.program_key("f", 2.0, (x, extra))
    assert key == program_cache.program_key("f", 2.0, (x + 1, extra))  # values do not count
    others = {
        program_cache.program_key("g", 2.0, (x, extra)),
        program_cache.program_key("f", 3.0, (x, extra)),
        program_cache.program_key("f", 2.0, (np.zeros(6, np.float32), extra)),
        program_cache.program_key("f", 2.0, (x.astype(np.int32), extra)),
        program_cache.program_key("f", 2.0, (x, {"c": np.float32(0)})),
        program_cache.program_key("f", 2.0, (x, {"b": 0.0})),  # a weak-typed Python float
    }
    monkeypatch.setattr(program_cache, "_package_source_hash", lambda: "edited source")
    others.add(program_cache.program_key("f", 2.0, (x, extra)))
    assert key not in others and len(others) == 7
    traces = []
    program_cache.cached_program(_traced_function(traces, 2.0), "f", 2.0)(x, extra)
    program_cache.cached_program(_traced_function(traces, 3.0), "f", 3.0)(x, extra)
    assert len(traces) == 2 and len(list(folder.glob("*.jaxexport"))) == 2


def test_a_program_is_looked_up_by_its_call_signature_once(folder, monkeypatch):
    """`program_key` hashes JAX's whole configuration (about a millisecond); a call whose tree,
    shapes, dtypes and configuration were seen before finds its program without it, and a change
    of any of them looks again."""
    keys = []
    real = program_cache.program_key
    monkeypatch.setattr(program_cache, "program_key", lambda *a: keys.append(1) or real(*a))
    fn = program_cache.cached_program(_traced_function([], 2.0), "f", 2.0)
    x, extra = np.zeros(5, np.float32), {"b": np.float32(0)}
    for _ in range(3):
        fn(x, extra)
    assert len(keys) == 1
    fn(x, {"b": 0.0})  # a weak-typed Python float: another signature
    fn(np.zeros(6, np.float32), extra)
    assert len(keys) == 3
    with jax.numpy_dtype_promotion("strict"):  # another configuration
        fn(x, extra)
    assert len(keys) == 4


def test_an_unreadable_program_is_traced_again_and_replaced(folder):
    x, extra = np.arange(4, dtype=np.float32), {"b": np.float32(1)}
    traces = []
    want = np.asarray(
        program_cache.cached_program(_traced_function(traces, 2.0), "f", 2.0)(x, extra)
    )
    (path,) = folder.glob("*.jaxexport")
    path.write_bytes(b"not a program")
    got = program_cache.cached_program(_traced_function(traces, 2.0), "f", 2.0)(x, extra)
    np.testing.assert_array_equal(np.asarray(got), want)
    assert len(traces) == 2 and path.read_bytes() != b"not a program"
    assert (
        program_cache.cached_program(_traced_function(traces, 2.0), "f", 2.0)(x, extra) is not None
    )
    assert len(traces) == 2


def test_without_a_cache_folder_calls_go_to_the_function():
    assert jax.config.jax_compilation_cache_dir is None  # the suite's setting
    assert program_cache._folder() is None
    traces = []
    fn = _traced_function(traces, 1.0)
    wrapped = program_cache.cached_program(fn, "f", 1.0)
    x, extra = np.arange(3, dtype=np.float32), {"b": np.float32(0)}
    wrapped(x, extra), wrapped(x + 1, extra)
    assert len(traces) == 1 and fn._cache_size() == 1  # fn's own jit cache served both
    assert wrapped.__wrapped__ is fn


def test_calls_inside_another_trace_are_traced_into_it(folder):
    traces = []
    wrapped = program_cache.cached_program(_traced_function(traces, 2.0), "f", 2.0)
    x, extra = np.arange(3, dtype=np.float32), {"b": np.float32(1)}
    got = jax.jit(lambda v: wrapped(v, extra) * 2)(x)
    np.testing.assert_allclose(np.asarray(got), (np.sin(x) * 2 + 1) * 2, rtol=1e-6)
    assert not folder.exists()  # nothing exported from inside a trace


def test_the_stored_editor_program_gives_the_edit_of_the_traced_one(folder, monkeypatch):
    """Privacy-Phys through `engine.device_editor`: traced (no cache), stored, then loaded by a
    fresh editor: the same bits each time."""
    clip = synthetic.make_clip(2, num_frames=64, height=32, width=32)
    crops = clip.frames[None].astype(np.float32) / 255.0
    masks = np.ones(crops.shape[:4], bool)
    waves = targets.sinusoid(110.0, 64, clip.fps)[None].astype(np.float32)
    module, mesh = editors.get("privacy_phys"), engine.local_mesh(1)  # a batch of one window
    options = (("surrogates", (("pos", 1.0), ("chrom", 1.0))), ("steps", 4), ("param_size", 8))
    cfg = editors.make_config("privacy_phys", clip.fps, False, options)
    state = module.load_state(cfg)
    results = []
    for cache in (None, folder, folder):
        monkeypatch.setattr(program_cache, "_folder", lambda cache=cache: cache)
        engine._sharded_editor.cache_clear()  # a fresh process's editor
        edit_batch = engine.device_editor(module, state, cfg, mesh)
        results.append(np.asarray(edit_batch(crops, masks, waves)))
        stored = list(folder.glob("*.jaxexport")) if folder.exists() else []
        assert len(stored) == (0 if cache is None else 1)
    engine._sharded_editor.cache_clear()
    assert np.abs(results[0] - crops).max() > 0  # it edits
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_the_command_gives_the_same_output_and_report_from_stored_programs(tmp_path):
    """`rppgedit edit` with no cache, then twice with one (the first run stores the editor's,
    the detector's, PhysNet's and the SSIM's programs, the second loads them): the same output
    bytes and the same report numbers."""
    clip = synthetic.make_clip(4, hr_bpm=75.0, num_frames=96, height=96, width=96)
    src = tmp_path / "in.mkv"
    encode.write_video(src, clip.frames, 30.0)
    cache = tmp_path / "cache"
    outputs, reports, stored = [], [], []
    for setting in ("off", str(cache), str(cache)):
        out = tmp_path / f"out{len(outputs)}.mkv"
        command = [sys.executable, "-m", "rppgedit.main", "edit", f"--input={src}"]
        command += [f"--output={out}", "--target_hr=110", "--noprogress", "--noplots"]
        command += ["--surrogates=pos:1,chrom:1", "--steps=5", "--work_size=32", "--window=64"]
        command += ["--overlap=16", "--estimators=pos,physnet_pure"]
        env = {**os.environ, "RPPGEDIT_JAX_CACHE": setting}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(out.read_bytes())
        report = json.loads(pipeline.report_path_for(out).read_text())
        reports.append((report["psnr_db"], report["ssim"], report["rows"]))
        stored.append(sorted(p.name for p in (cache / "exported").glob("*.jaxexport")))
    assert stored[0] == [] and len(stored[1]) >= 4  # editor, detector, PhysNet, SSIM
    assert stored[2] == stored[1]  # loaded, none traced and stored again
    assert outputs[0] == outputs[1] == outputs[2]
    assert reports[0] == reports[1] == reports[2]
    assert reports[0][1] < 1.0  # the SSIM saw the edit


def test_a_function_that_cannot_be_exported_runs_as_it_is(folder):
    """A host callback cannot be serialised: the call goes to the function, nothing is stored."""
    seen = []

    @jax.jit
    def fn(x):
        jax.debug.callback(lambda v: seen.append(float(v)), x.sum())
        return x * 2

    wrapped = program_cache.cached_program(fn, "callback", None)
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(wrapped(x)), x * 2)
    np.testing.assert_array_equal(np.asarray(wrapped(x)), x * 2)
    jax.effects_barrier()
    assert seen == [3.0, 3.0] and not list(folder.glob("*.jaxexport"))
