"""smooth_remove: the pulse SNR at the true HR falls to the level of pulse-free clips."""

import numpy as np
import pytest

from rppgedit import editors, estimators, metrics, pipeline, signals, targets
from rppgedit.data import synthetic
from rppgedit.editors import smooth_remove
from rppgedit.errors import RppgEditError
from rppgedit.video import quantise

TRUE_HR, FPS, FRAMES = 72.0, 30.0, 300
ESTIMATORS = ("green", "pos", "chrom")


def _snr_at_true_hr(frames_uint8, mask):
    """{estimator: pulse SNR in dB at TRUE_HR (and its harmonic)} read from uint8 frames."""
    x = frames_uint8.astype(np.float32) / 255.0
    return {
        n: float(signals.pulse_snr(estimators.get(n).bvp(x, FPS, mask=mask), FPS, hr_bpm=TRUE_HR))
        for n in ESTIMATORS
    }


@pytest.fixture(scope="module")
def pulse_free():
    """SNR readings at 72 bpm of clips that never had a pulse: 40 seeds x 3 methods, "40 3".

    Such clips hold only sensor noise in the band, so their SNR at any HR is what chance gives. A
    removed clip's band holds only noise too, so its SNR is itself (roughly) a draw from this
    distribution: a threshold at a percentile p would fail a perfect remover with probability 1 - p
    per reading. Hence two thresholds: every single reading must stay below the sample maximum
    (about the 99th percentile of 120 readings; 0.0 dB here, while the 95th percentile is -2.6 dB),
    and the mean of all readings below the pulse-free mean plus 3 standard errors of such a mean.
    """
    values = []
    for seed in range(40):
        clip = synthetic.make_clip(
            1000 + seed, hr_bpm=TRUE_HR, num_frames=FRAMES, height=64, width=64, pulse_amplitude=0.0
        )
        values.append(list(_snr_at_true_hr(clip.frames, clip.mask).values()))
    return np.asarray(values)


@pytest.fixture(scope="module")
def removal():
    """SNR readings at 72 bpm before and after removal on three seeds: {"before", "after"} "3 3"."""
    cfg = smooth_remove.Config(fps=FPS)
    before, after = [], []
    for seed in (0, 1, 2):
        source = synthetic.make_clip(seed, hr_bpm=TRUE_HR, num_frames=FRAMES, height=64, width=64)
        clip = source.frames.astype(np.float32) / 255.0
        edited, _ = smooth_remove.edit(None, clip, source.mask, np.zeros(FRAMES, np.float32), cfg)
        pasted = source.frames.astype(np.float32) + 255.0 * (np.asarray(edited) - clip)
        out = quantise.quantize(pasted, seed, mode="stochastic")
        outside = ~source.mask
        np.testing.assert_array_equal(out[outside], source.frames[outside])
        assert metrics.psnr(source.frames, out) >= 55.0  # only the sub-level pulse was taken out
        before.append(list(_snr_at_true_hr(source.frames, source.mask).values()))
        after.append(list(_snr_at_true_hr(out, source.mask).values()))
    return {"before": np.asarray(before), "after": np.asarray(after)}


def test_original_clips_carry_a_pulse_far_above_noise(pulse_free, removal):
    assert removal["before"].min() > pulse_free.max() + 5.0, (removal["before"], pulse_free.max())


def test_every_reading_after_removal_is_below_the_pulse_free_maximum(pulse_free, removal):
    assert removal["after"].max() < pulse_free.max(), (removal["after"], pulse_free.max())


def test_mean_reading_after_removal_is_at_the_pulse_free_level(pulse_free, removal):
    after = removal["after"]
    bound = pulse_free.mean() + 3.0 * pulse_free.std() / np.sqrt(after.size)
    assert after.mean() < bound, (after, bound)


def test_every_cell_loses_exactly_its_band_component(rng):
    """Independent float64 reference: per cell, mean(clip - edited) over its mask pixels equals the
    band-passed cell mean (the one band-pass of `rppgedit.signals`, applied to NumPy cell means)."""
    num, size, grid = 96, 24, 4
    clip = rng.uniform(0.3, 0.7, (num, size, size, 3)).astype(np.float32)
    mask = rng.uniform(size=(num, size, size)) < 0.7
    mask[:, :, :3] = False  # a strip of non-skin
    cfg = smooth_remove.Config(fps=FPS, grid=grid)
    edited, _ = smooth_remove.edit(None, clip, mask, np.zeros(num, np.float32), cfg)
    removed = clip.astype(np.float64) - np.asarray(edited, np.float64)
    edges = [k * size // grid for k in range(grid + 1)]
    for a in range(grid):
        for b in range(grid):
            sl = (slice(None), slice(edges[a], edges[a + 1]), slice(edges[b], edges[b + 1]))
            m = mask[sl][..., None]
            count = m.sum(axis=(1, 2))
            means = (clip[sl].astype(np.float64) * m).sum(axis=(1, 2)) / count
            band = np.asarray(signals.bandpass(means, FPS, *cfg.band_hz, cfg.order, axis=0))
            got = (removed[sl] * m).sum(axis=(1, 2)) / count
            np.testing.assert_allclose(got, band, atol=2e-6)  # [0, 1] units, float32 inside
    np.testing.assert_array_equal(np.asarray(edited)[~mask], clip[~mask])


def test_edit_batch_equals_one_by_one_and_compiles_once(rng):
    clips = rng.uniform(0.2, 0.8, (2, 64, 32, 32, 3)).astype(np.float32)
    masks = rng.uniform(size=(2, 64, 32, 32)) < 0.8
    zeros = np.zeros((2, 64), np.float32)
    cfg = smooth_remove.Config(fps=FPS)
    batched, _ = smooth_remove.edit_batch(None, clips, masks, zeros, cfg)
    for i in range(2):
        single, _ = smooth_remove.edit(None, clips[i], masks[i], zeros[i], cfg)
        np.testing.assert_allclose(batched[i], single, atol=1e-6)  # [0, 1] units
    before = smooth_remove.edit_batch._cache_size()
    smooth_remove.edit_batch(None, clips[::-1], masks, zeros, cfg)
    assert smooth_remove.edit_batch._cache_size() == before


def test_a_target_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="only removes the pulse"):
        smooth_remove.Config(fps=FPS, remove=False)
    with pytest.raises(ValueError, match="band_hz"):
        smooth_remove.Config(fps=8.0)  # 5 Hz is above Nyquist
    monkeypatch.setitem(editors.METHODS, "smooth_remove", "rppgedit.editors.smooth_remove")
    job = pipeline.EditJob(method="smooth_remove", target=targets.TargetSpec(kind="sinusoid"))
    with pytest.raises(RppgEditError, match="only removes the pulse"):
        pipeline.editor_config(job, FPS)
    job = pipeline.EditJob(method="smooth_remove", target=targets.TargetSpec(kind="none"))
    assert pipeline.editor_config(job, FPS).remove
