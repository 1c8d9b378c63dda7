"""`--mode=bench` counts the FLOPs of every optimisation step, not of one loop body."""

import jax
import numpy as np
import pytest

from rppgedit import editors
from rppgedit.modes import bench

# PhysNet alone: its convolutions dominate, so each step adds the same count (measured at 64
# frames on the lowered programs: 9.52, 15.86, 28.55 GFLOP for 1, 2, 4 steps; compiled: 9.55,
# 15.93, 28.68).
# With only classical surrogates the compiled count was dominated by fused elementwise work that
# XLA fuses differently as the unrolled program grows.
SURROGATES = (("physnet_pure", 1.0),)


def _args(rng):
    clips = rng.uniform(0.3, 0.7, (1, 64, 32, 32, 3)).astype(np.float32)
    masks = np.ones((1, 64, 32, 32), bool)
    waves = np.cos(np.arange(64) / 30.0 * 2 * np.pi * 2.0)[None].astype(np.float32)
    return clips, masks, waves


def test_flops_grow_with_the_number_of_steps(rng):
    module = editors.get("privacy_phys")
    counted = {}
    for steps, deep_every in ((1, 1), (2, 1), (4, 1)):  # already unrolled: counted as given
        cfg = module.Config(
            fps=30.0, steps=steps, surrogates=SURROGATES, deep_every=deep_every, unroll=steps
        )
        args = (module.load_state(cfg), *_args(rng))
        lowered = module.edit_batch.lower(*args, cfg)
        counted[steps, deep_every] = bench._counted_flops(module, cfg, args, lowered)
    # a compiled loop (unroll 1): counted on the unrolled copy the count lowers itself (the
    # timed program, None here, is not what it counts)
    cfg = module.Config(fps=30.0, steps=4, surrogates=SURROGATES, deep_every=2)
    counted[4, 2] = bench._counted_flops(module, cfg, (module.load_state(cfg), *_args(rng)), None)
    body = counted[2, 1] - counted[1, 1]
    assert body > 0.2 * counted[1, 1]  # XLA alone counts a scan body once: this would be ~0
    assert counted[4, 1] - counted[2, 1] == pytest.approx(2 * body, rel=0.01)
    # PhysNet on every other step: four steps cost about what two exact ones do
    assert counted[4, 2] == pytest.approx(counted[2, 1], rel=0.05)


def test_a_backend_that_cannot_count_a_lowered_program_counts_the_compiled_copy(rng, monkeypatch):
    """Jax's PJRT plugin backends (CUDA, TPU) raise NotImplementedError from
    `Lowered.cost_analysis`; the count then compiles the unrolled copy, with the same result."""
    module = editors.get("privacy_phys")
    cfg = module.Config(fps=30.0, steps=2, surrogates=SURROGATES)  # a loop: counted unrolled
    args = (module.load_state(cfg), *_args(rng))
    lowered = bench._counted_flops(module, cfg, args, None)

    def unavailable(self):
        raise NotImplementedError("Lowered.cost_analysis not implemented on platform 'cuda'")

    monkeypatch.setattr(jax.stages.Lowered, "cost_analysis", unavailable)
    compiled = bench._counted_flops(module, cfg, args, None)
    assert compiled == pytest.approx(lowered, rel=0.01)


def test_an_editor_whose_loops_cannot_be_unrolled_is_not_counted(rng):
    module = editors.get("pulseedit")  # trend filter and Adam loops, no unroll field
    cfg = module.Config(fps=30.0, steps=3)
    args = (module.load_state(cfg), *_args(rng))
    lowered = module.edit_batch.lower(*args, cfg)
    assert bench._counted_flops(module, cfg, args, lowered) is None


def test_end_to_end_bench_times_the_whole_command(tmp_path, monkeypatch):
    """`--mode=bench --input=...`: every run edits the whole file; its wall clock holds the
    report's stages, fps is frames over the wall clock, and nothing is left behind."""
    import tempfile

    from rppgedit import pipeline, targets
    from rppgedit.data import synthetic
    from rppgedit.video import encode

    clip = synthetic.make_clip(1, num_frames=96, height=64, width=64)
    path = tmp_path / "in.mkv"
    encode.write_video(path, clip.frames, clip.fps)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    job = pipeline.EditJob(
        target=targets.TargetSpec(kind="sinusoid", hr_bpm=110.0),
        work_size=32,
        window=64,
        overlap=16,
        method_options=(("surrogates", (("pos", 1.0),)), ("steps", 2)),
        estimators=("green",),
    )
    result = bench.run_end_to_end(str(path), job, runs=2, face_box=(8, 8, 56, 56))
    assert [r["run"] for r in result["rows"]] == [1, 2]
    for row in result["rows"]:
        stages = sum(v for k, v in row.items() if k.endswith("_s") and k != "wall_s")
        assert row["frames"] == 96 and 0 < stages <= row["wall_s"]
        assert row["fps"] == pytest.approx(96 / row["wall_s"]) and row["peak_rss_mb"] > 0
        assert np.isfinite(row["psnr_db"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]  # outputs deleted


def test_the_pytorch_reference_edits_the_same_file_end_to_end(tmp_path):
    """`bench --input` runs benchmarks/torch_reference.py on the same file (with the `bench` extra):
    it decodes, edits and writes every frame, and its output reads the target through PhysNet."""
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("cv2") is None:
        pytest.skip(
            "the PyTorch reference needs torch and cv2 (pip install -e '.[bench,attackers]')"
        )
    from conftest import shared_file

    from rppgedit.video import decode, encode

    source = shared_file("physrecorder", "v01_facecrop320_lossless_ffv1.mkv")
    _, frames = next(decode.iter_chunks(source, 160))
    path = encode.write_video(tmp_path / "in.mkv", frames, 30.0)
    script = bench.torch_reference_script()
    assert script is not None and script.name == "torch_reference.py"
    # read with signals.heart_rate (sub-bin peak) from 160 frames (5.3 s)
    ref = bench.run_torch_reference(script, str(path), 112.5, str(tmp_path))
    assert ref["frames"] == 160 and ref["wall_s"] > 0 and ref["peak_rss_mb"] > 0
    assert ref["hr_after"] == pytest.approx(112.5, abs=1.0)
    assert abs(ref["hr_before"] - 112.5) > 20  # the clip's own rate is about 71 bpm
    out = decode.read_video(tmp_path / "torch_reference.mkv").frames
    assert out.shape == frames.shape
    assert 45 < ref["psnr_db"] < 80 and np.any(out != frames)


def test_a_failing_pytorch_reference_is_reported_not_fatal(tmp_path, monkeypatch):
    """The reference runs after rppgedit's own runs: when it fails (it once ran out of memory on a
    1080p clip), bench prints why and records it, and its own measurements still stand."""
    import importlib.util
    import types

    from rppgedit.errors import RppgEditError

    def fail(script, input_path, target_hr, folder):
        raise RppgEditError(f"{script.name} failed on {input_path}: MemoryError")

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(bench, "torch_reference_script", lambda: tmp_path / "torch_reference.py")
    monkeypatch.setattr(bench, "run_torch_reference", fail)
    settings = types.SimpleNamespace(target="sinusoid", input="clip.mp4", target_hr=120.0)
    result = {"rows": [{"wall_s": 10.0, "peak_rss_mb": 900.0}]}
    line = bench._torch_line(settings, result)
    assert line == "PyTorch reference: failed (torch_reference.py failed on clip.mp4: MemoryError)"
    assert result["torch_reference"] == {"error": line[len("PyTorch reference: failed (") : -1]}
    assert result["rows"] == [{"wall_s": 10.0, "peak_rss_mb": 900.0}]
