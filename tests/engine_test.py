"""The one edit engine: its window plan and batching, and the same bits from `--mode=edit`'s path
(`pipeline.edit_frames`), the experiments and the sweeps for the same clip and settings."""

import json

import numpy as np
import pytest

from rppgedit import engine, metrics, pipeline, runner, sweep, targets
from rppgedit.data.clips import synthetic_variants
from rppgedit.errors import RppgEditError
from rppgedit.papers import run
from rppgedit.windows import edit_plan, window_starts

SURROGATES = (("pos", 1.0), ("chrom", 1.0))
OPTIONS = (("surrogates", SURROGATES), ("steps", 3), ("stop_pearson", None))


def _fake_editor(calls):
    """A deterministic stand-in editor: each window becomes crop + 0.01 * its target wave (the same
    value for a frame whatever window holds it, so the blend must give it back exactly)."""

    def edit_batch(clips, masks, waves):
        calls.append(clips.shape[0])
        return clips + np.float32(0.01) * waves[:, :, None, None, None] * masks[..., None]

    return edit_batch


def _task(key, num, seed):
    rng = np.random.default_rng(seed)
    crop = rng.uniform(0, 1, (num, 4, 4, 3)).astype(np.float32)
    mask = rng.uniform(size=(num, 4, 4)) > 0.3
    wave = np.sin(np.arange(num) * 0.3 + seed).astype(np.float32)
    return engine.task(key, crop, mask, wave), crop, mask, wave


def test_every_task_comes_back_blended_with_full_batches():
    # three clips: two long ones (several windows each) and one shorter than the window
    made = [_task(k, n, k) for k, n in enumerate((300, 200, 96))]
    calls, progress = [], []
    out = list(
        engine.edit_windows(
            [m[0] for m in made],
            _fake_editor(calls),
            window=128,
            overlap=32,
            batch_size=3,
            progress=progress.append,
        )
    )
    assert sorted(e.task.key for e in out) == [0, 1, 2]
    for e in out:
        _, crop, mask, wave = made[e.task.key]
        want = 0.01 * wave[:, None, None, None] * mask[..., None]
        np.testing.assert_allclose(e.residual, np.broadcast_to(want, crop.shape), atol=1e-7)
    windows = sum(len(edit_plan(n, 128, 32)[1]) for n in (300, 200, 96))
    assert sum(progress) == windows  # every window once, the padding not counted
    assert set(calls) == {3}  # every call had exactly batch_size rows (short ones padded)
    assert len(calls) == sum(-(-len(edit_plan(n, 128, 32)[1]) // 3) for n in (300, 200)) + 1


def test_edit_plan_is_the_windows_rule():
    assert edit_plan(300, 128, 32) == (128, window_starts(300, 128, 32))
    # a clip shorter than the window: one window of its length rounded down to 4 frames
    assert edit_plan(90, 128, 32) == (88, [0, 2])
    assert edit_plan(64, 64, 40)[1] == [0]  # overlap capped at half a window


def test_too_short_a_clip_is_refused():
    short, *_ = _task(0, engine.MIN_FRAMES - 1, 0)
    with pytest.raises(RppgEditError, match="at least 32"):
        list(engine.edit_windows([short], _fake_editor([]), window=64, overlap=16, batch_size=2))


def _job(seed: int, **changes) -> pipeline.EditJob:
    base = dict(
        method="privacy_phys",
        target=targets.TargetSpec(kind="sinusoid", hr_bpm=110.0, phase=0.0),
        work_size=32,
        window=64,
        overlap=16,
        batch_windows=2,
        seed=seed,
        method_options=OPTIONS,
    )
    return pipeline.EditJob(**{**base, **changes})


def test_experiments_give_the_bits_of_edit_frames(tmp_path):
    """Two clips edited together (their windows share batches) by the experiment runner: each
    output's PSNR and SSIM are those of `edit_frames` on that clip alone, to the last bit."""
    seed = 3
    run.run_experiment(
        "target_hrs",
        dataset="synthetic",
        clip_seconds=96 / 30,
        out_dir=str(tmp_path),
        methods=("privacy_phys",),
        target_hrs=(110.0,),
        method_options={"privacy_phys": OPTIONS},
        work_size=32,
        window=64,
        overlap=16,
        batch_windows=2,
        estimators=("pos",),
        synthetic_size=32,
        max_clips=2,
        seed=seed,
        make_plots=False,
    )
    records = {r["clip"]: r for r in map(json.loads, (tmp_path / "records.jsonl").open())}
    clips = list(synthetic_variants(2, 96 / 30, size=32, seed=seed))
    assert sorted(records) == sorted(c.id for c in clips)
    for clip in clips:
        result = pipeline.edit_frames(clip.frames, clip.fps, clip.boxes, _job(seed))
        assert np.any(result.frames != clip.frames)
        assert records[clip.id]["psnr_db"] == metrics.psnr(clip.frames, result.frames)
        assert records[clip.id]["ssim"] == metrics.ssim(clip.frames, result.frames)


def test_sweep_items_have_the_bits_of_edit_frames(tmp_path):
    """A sweep item's edited crop is `edit_frames` on a video of the crop with the whole frame as
    the face box (one device, batch_per_device = batch_windows)."""
    spec = sweep.SweepSpec(
        seeds=(0, 1),
        num_frames=96,
        frame_size=64,
        target_hrs=(110.0,),
        method_options=OPTIONS,
        work_size=32,
        window=64,
        overlap=16,
        seed=5,
        estimators=("pos",),
        save="npy",
    )
    sweep.run_sweep(spec, str(tmp_path), batch_per_device=2, progress=False)
    plan = sweep.SweepPlan(spec, tmp_path)
    items = {it.key: it for it in runner.make_items(plan, sweep._synthetic_refs(spec))}
    assert len(items) == 2
    for key, item in items.items():
        crop8 = sweep._load_synthetic(item.clip, spec).crop8
        boxes = np.tile(np.array([0, 0, 32, 32], np.float32), (len(crop8), 1))
        job = _job(5, target=item.setting.target, method_options=tuple(OPTIONS))
        result = pipeline.edit_frames(crop8, item.clip.fps, boxes, job)
        saved = np.load(tmp_path / "items" / f"{key}.npy")
        assert np.any(saved != crop8)
        np.testing.assert_array_equal(saved, result.frames)


def test_a_lambda_and_learning_rate_grid_compiles_the_device_program_once():
    """Settings that differ only in traced hyperparameters share one jit(shard_map) program, and
    still give their own edits."""
    from rppgedit import editors
    from rppgedit.data import synthetic
    from rppgedit.editors import contract

    clip = synthetic.make_clip(1, num_frames=64, height=32, width=32)
    crops = clip.frames[None].astype(np.float32) / 255.0
    masks = np.ones(crops.shape[:4], bool)
    waves = targets.sinusoid(110.0, 64, clip.fps)[None].astype(np.float32)
    module, mesh = editors.get("pulseedit"), engine.local_mesh(1)  # a batch of one window
    engine._sharded_editor.cache_clear()
    results = []
    for lam, lr in ((0.05, 1.0), (1.0, 1.0), (0.05, 3.0)):
        cfg = editors.make_config(
            "pulseedit", clip.fps, False, (("fidelity_weight", lam), ("learning_rate", lr))
        )
        edit_batch = engine.device_editor(module, module.load_state(cfg), cfg, mesh)
        results.append(np.asarray(edit_batch(crops, masks, waves)))
    info = engine._sharded_editor.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    static = contract.strip(cfg, module.edit_batch.hyperparameter_names)
    name = "rppgedit.editors.pulseedit.edit_batch"
    assert (
        engine._sharded_editor(module.edit_batch, static, mesh, name).__wrapped__._cache_size() == 1
    )
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert np.abs(results[a] - results[b]).max() > 1e-4  # each setting edits its own way
