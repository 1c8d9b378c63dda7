"""Removal keeps every estimator off the true rate, losslessly and after an H.264 re-encode.

The clips are `benchmarks/removal_codec.py`'s seeds 0 and 1 (light skin still, medium skin moving),
where removal without the spectral notch (`notch_weight=0`) left 4 and 8 of the 10 estimators at the
true rate losslessly and 6 and 3 after CRF 23 (measured with that benchmark).
"""

import numpy as np
import pytest

from rppgedit import evaluation, pipeline, signals, targets
from rppgedit.data import synthetic
from rppgedit.editors import privacy_phys
from rppgedit.video import crop, io

FPS, HIT_BPM = 30.0, 3.0
ESTIMATORS = (
    "green", "pos", "chrom", "lgi", "pbv", "omit", "ica", "pca", "physnet_pure", "physnet_rlap",
)  # fmt: skip


def _clip(seed):
    moving = seed % 2 == 1
    return synthetic.make_clip(
        seed,
        hr_bpm=float(np.random.default_rng(seed).uniform(60.0, 110.0)),
        num_frames=256,
        height=128,
        width=128,
        skin_tone=synthetic.SKIN_TONES[("light", "medium", "dark")[seed % 3]],
        motion=moving,
        illumination=moving,
    )


def _at_true_rate(frames, clip, mask, params, size):
    face = crop.crop_resize(frames, clip.crop_boxes, size)
    read = evaluation.read_heart_rates(face, mask, FPS, ESTIMATORS, params)
    return {
        n: round(r["hr_bpm"], 1)
        for n, r in read.items()
        if abs(r["hr_bpm"] - clip.hr_bpm) <= HIT_BPM
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_removal_leaves_no_estimator_at_the_true_rate_after_h264(tmp_path, seed):
    clip = _clip(seed)
    job = pipeline.EditJob(target=targets.TargetSpec(kind="none"), estimators=())
    assert pipeline.editor_config(job, FPS).notch_weight > 0  # the default removes with the notch
    result = pipeline.edit_frames(clip.frames, FPS, clip.crop_boxes, job)
    mask, params = result.faces[0].mask, {}
    before = _at_true_rate(clip.frames, clip, mask, params, job.work_size)
    assert len(before) >= 9, before  # the estimators read the clip before the edit
    assert _at_true_rate(result.frames, clip, mask, params, job.work_size) == {}
    lossless = io.write_video(tmp_path / "removed.mkv", result.frames, FPS)
    shared = io.reencode(lossless, tmp_path / "removed.mp4", codec="h264", crf=23)
    decoded = io.read_video(shared).frames
    assert _at_true_rate(decoded, clip, mask, params, job.work_size) == {}


def test_removal_overlap_is_one_for_a_flat_spectrum_and_falls_with_a_notch():
    """`removal_overlap` (the notch term): white noise ~1 against any reference, the reference's own
    sinusoid well above 1, the same sinusoid moved 30 bpm away near 0."""
    cfg = privacy_phys.Config(fps=FPS)
    t = np.arange(256) / FPS
    pulse = np.sin(2 * np.pi * 72.0 / 60.0 * t).astype(np.float32)
    reference = signals.band_share(pulse, FPS, band_hz=cfg.band_hz)
    noise = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    flat = float(np.mean(privacy_phys.removal_overlap(noise, reference, cfg)))
    same = float(privacy_phys.removal_overlap(pulse[None], reference, cfg)[0])
    moved = np.sin(2 * np.pi * 102.0 / 60.0 * t).astype(np.float32)
    away = float(privacy_phys.removal_overlap(moved[None], reference, cfg)[0])
    np.testing.assert_allclose(float(np.sum(reference)), 1.0, rtol=1e-5)
    assert 0.8 < flat < 1.2
    assert same > 5.0
    assert away < 0.1
