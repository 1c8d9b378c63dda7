"""Tests of rppgedit.metrics: PSNR/SSIM against hand values and scikit-image, HR error metrics."""

import math

import jax
import numpy as np
import pytest
import scipy.ndimage
from skimage.metrics import structural_similarity

from rppgedit import metrics

# --------------------------------------------------------------------------------- psnr


def test_psnr_one_level_offset_is_20log10_255(rng):
    a = rng.integers(0, 255, size=(4, 16, 16, 3), dtype=np.uint8)
    b = a + np.uint8(1)  # every pixel off by one grey level: MSE = 1
    assert metrics.psnr(a, b) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_psnr_known_mse_and_float_consistency(rng):
    a = rng.integers(10, 240, size=(3, 8, 8, 3), dtype=np.uint8)
    b = a.copy()
    b[0, 0, 0, 0] += 5  # one pixel off by 5: MSE = 25 / size
    mse = 25.0 / a.size
    expect = 10 * math.log10(255.0**2 / mse)
    assert metrics.psnr(a, b) == pytest.approx(expect, abs=1e-9)
    assert metrics.psnr(a / 255.0, b / 255.0) == pytest.approx(expect, abs=1e-9)
    af, bf = a.astype(np.float32) / 255, b.astype(np.float32) / 255
    assert metrics.psnr(af, bf) == pytest.approx(expect, abs=1e-4)
    assert metrics.psnr(a.astype(float), b.astype(float), data_range=255) == pytest.approx(expect)


def test_psnr_identical_is_inf_and_errors(rng):
    a = rng.integers(0, 255, size=(2, 8, 8, 3), dtype=np.uint8)
    assert metrics.psnr(a, a) == math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr(a, a[:1])
    with pytest.raises(ValueError, match="mixed"):
        metrics.psnr(a, a / 255.0)


# --------------------------------------------------------------------------------- ssim


def _sk(a, b, data_range):
    """skimage SSIM per frame, averaged over frames (float64 reference)."""
    kw = dict(
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=-1,
    )
    return float(np.mean([structural_similarity(x, y, **kw) for x, y in zip(a, b, strict=True)]))


def test_ssim_matches_skimage_random_frames(rng):
    a = rng.random((3, 32, 32, 3))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    ref = _sk(a, b, 1.0)
    assert 0.2 < ref < 0.9  # a non-trivial value
    assert metrics.ssim(a, b) == pytest.approx(ref, abs=1e-4)
    # a single frame (H,W,3)
    assert metrics.ssim(a[0], b[0]) == pytest.approx(_sk(a[:1], b[:1], 1.0), abs=1e-4)


def test_ssim_matches_skimage_uint8_structured_and_blurred(rng):
    yy, xx = np.mgrid[0:64, 0:48]
    base = 128 + 60 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None] * np.array(
        [1, 0.8, 0.5]
    )
    base = base + 20 * rng.standard_normal((64, 48, 3))
    frame = np.clip(base, 0, 255).astype(np.uint8)
    blurred = scipy.ndimage.gaussian_filter(frame.astype(float), sigma=(1.2, 1.2, 0))
    blurred = np.clip(np.round(blurred), 0, 255).astype(np.uint8)
    a = np.stack([frame, np.roll(frame, 3, axis=1)])
    b = np.stack([blurred, np.roll(blurred, 3, axis=1)])
    ref = _sk(a, b, 255)
    assert 0.3 < ref < 0.95
    assert metrics.ssim(a, b) == pytest.approx(ref, abs=1e-4)
    # consistency of the uint8 and float paths
    assert metrics.ssim(a / 255.0, b / 255.0) == pytest.approx(ref, abs=1e-4)


def test_ssim_many_frames_in_chunks_and_identity(rng):
    a = rng.random((40, 16, 16, 3)).astype(np.float32)  # more than one chunk of frames
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    assert metrics.ssim(a, b) == pytest.approx(_sk(a, b, 1.0), abs=1e-4)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_ssim_deficit_of_a_small_edit_is_float64_accurate(seed):
    """An edit moves a tenth of the pixels by one level: 1 - SSIM (~8e-4) must match skimage's
    float64 value to 2e-5 of itself. The five-map form (1 - (2 ux uy + C1)(2 vxy + C2) / ...)
    misses by 5e-5 to 1.5e-4 of it in float32; the deficit form 4e-6 to 5e-6."""
    rng = np.random.default_rng(seed)
    xx = np.arange(96)[None, :, None]
    texture = 120 + 60 * np.sin(xx / 9 + seed) * np.array([1.0, 0.8, 0.6])
    a = np.clip(texture + rng.normal(0, 3, (6, 96, 96, 3)), 0, 255).astype(np.uint8)
    step = (rng.random(a.shape) < 0.1) * rng.choice([-1, 1], a.shape)
    b = np.clip(a.astype(int) + step, 0, 255).astype(np.uint8)
    deficit = 1.0 - _sk(a.astype(np.float64), b.astype(np.float64), 255.0)
    assert 5e-4 < deficit < 2e-3
    assert abs((1.0 - metrics.ssim(a, b)) - deficit) <= 2e-5 * deficit
    assert abs((1.0 - metrics.ssim(a, b, changed=(0, 96, 0, 96))) - deficit) <= 2e-5 * deficit


@pytest.mark.parametrize("band_values", [1, 3 * 96 * 3 * 8, 1 << 30])
def test_ssim_in_bands_of_rows_is_skimage_float64(band_values, monkeypatch):
    """The SSIM program sweeps each frame in bands of rows (one row each; 8 rows, the last band
    overlapping the one before by 2; the whole map at once): every band size gives skimage's
    float64 deficit to 2e-5 of itself, so no row is counted twice or left out."""
    monkeypatch.setattr(metrics, "_SSIM_BAND_VALUES", band_values)
    rng = np.random.default_rng(7)
    a = rng.integers(30, 220, (3, 80, 96, 3)).astype(np.uint8)  # 70 rows of 11x11 windows
    step = (rng.random(a.shape) < 0.2) * rng.choice([-2, 2], a.shape)
    b = np.clip(a.astype(int) + step, 0, 255).astype(np.uint8)
    deficit = 1.0 - _sk(a.astype(np.float64), b.astype(np.float64), 255.0)
    assert abs((1.0 - metrics.ssim(a, b)) - deficit) <= 2e-5 * deficit
    b[:, :, 60:] = a[:, :, 60:]  # changed only left of column 60
    deficit = 1.0 - _sk(a.astype(np.float64), b.astype(np.float64), 255.0)
    assert abs((1.0 - metrics.ssim(a, b, changed=(0, 80, 0, 60))) - deficit) <= 2e-5 * deficit


def test_ssim_rejects_too_small_frames():
    with pytest.raises(ValueError, match="window"):
        metrics.ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


# --------------------------------------------------------------------------------- HR metrics


def test_hr_error_metrics_known_values():
    pred = [70.0, 80.0, 95.0, 60.0]
    true = [72.0, 80.0, 90.0, 66.0]  # errors -2, 0, 5, -6
    assert metrics.mae(pred, true) == pytest.approx(13 / 4)
    assert metrics.rmse(pred, true) == pytest.approx(math.sqrt((4 + 0 + 25 + 36) / 4))
    assert metrics.mape(pred, true) == pytest.approx(100 * (2 / 72 + 0 + 5 / 90 + 6 / 66) / 4)
    with pytest.raises(ValueError):
        metrics.mae([1.0, 2.0], [1.0])


def test_hr_pearson_matches_corrcoef(rng):
    true = rng.uniform(50, 120, size=30)
    pred = true + rng.normal(0, 8, size=30)
    assert metrics.hr_pearson(pred, true) == pytest.approx(np.corrcoef(pred, true)[0, 1], abs=1e-5)
    assert metrics.hr_pearson(true, true) == pytest.approx(1.0, abs=1e-6)


def test_ssim_terms_of_chunks_add_up_to_the_video_ssim(rng):
    """`ssim_terms` leaves the work on the device; the terms of a video's chunks (whole frames or
    a changed rectangle) add up to the SSIM of the whole video."""
    a = rng.integers(0, 256, (9, 40, 48, 3), dtype=np.uint8)
    b = a.copy()
    b[:, 10:25, 5:30] = rng.integers(0, 256, (9, 15, 25, 3), dtype=np.uint8)
    terms = metrics.ssim_terms(a[:4], b[:4]) + metrics.ssim_terms(
        a[4:], b[4:], changed=(10, 25, 5, 30)
    )
    assert isinstance(terms.deficits[0], jax.Array)
    assert terms.value() == pytest.approx(metrics.ssim(a, b), abs=1e-6)
    assert terms.value() < 0.9
    assert metrics.ssim_terms(a, a, changed=(3, 3, 0, 48)).value() == 1.0
