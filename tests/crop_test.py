"""Tests for rppgedit.video.crop: area crops, residual paste, quantisation."""

import jax
import numpy as np
import pytest
from scipy import ndimage

from rppgedit.video import crop, paste, quantise


def _frames(rng, t=2, h=40, w=48):
    return rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_crop_integer_box_is_block_mean(rng):
    frames = _frames(rng)
    boxes = np.array([[8.0, 4.0, 40.0, 36.0], [0.0, 0.0, 32.0, 32.0]])
    out = crop.crop_resize(frames, boxes, 8)
    assert out.shape == (2, 8, 8, 3) and out.dtype == np.float32
    for t, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        region = frames[t, y0:y1, x0:x1].astype(np.float64) / 255.0
        ref = region.reshape(8, 4, 8, 4, 3).mean(axis=(1, 3))
        np.testing.assert_allclose(out[t], ref, atol=2e-6)


def test_crop_fractional_box_matches_supersampled_area(rng):
    frames = _frames(rng, t=1, h=20, w=24)
    box = np.array([[2.25, 1.5, 17.75, 17.0]])  # 15.5 x 15.5 px onto 4x4 cells (3.875 px each)
    out = crop.crop_resize(frames, box, 4)
    # Reference: 8x nearest supersampling turns every edge into an integer sub-pixel index.
    fine = np.kron(frames[0].astype(np.float64) / 255.0, np.ones((8, 8, 1)))
    x0, y0, x1, y1 = (box[0] * 8).astype(int)
    ref = fine[y0:y1, x0:x1].reshape(4, 31, 4, 31, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out[0], ref, atol=2e-6)


def test_crop_past_the_border_replicates_edges(rng):
    frames = _frames(rng, t=1, h=16, w=16)
    box = np.array([[-8.0, -4.0, 8.0, 12.0]])
    padded = np.pad(frames, ((0, 0), (4, 0), (8, 0), (0, 0)), mode="edge")
    expected = crop.crop_resize(padded, np.array([[0.0, 0.0, 16.0, 16.0]]), 8)
    np.testing.assert_allclose(crop.crop_resize(frames, box, 8), expected, atol=1e-6)


def test_crop_of_large_boxes_matches_the_dense_area_product(rng):
    """The resampling multiplies a few output rows at a time over only the input rows they touch
    (`_banded_matmul`): the dense float64 product of the same area weights, for boxes 1-15x the
    output side, inside and past the frame."""
    frames = _frames(rng, t=6, h=300, w=340)
    boxes = np.array(
        [
            [10.3, 7.9, 290.6, 288.2],  # 280 px onto 20: 14 px a cell
            [-30.5, -12.25, 230.0, 247.75],  # past the top-left edges
            [100.0, 40.0, 360.5, 300.5],  # past the right and bottom edges
            [50.0, 60.0, 70.0, 80.0],  # 20 px: one pixel a cell
            [0.0, 0.0, 340.0, 300.0],  # the whole frame, not square
            [120.7, 130.1, 157.9, 167.3],  # under 2 px a cell
        ]
    )
    size = 20
    got = crop.crop_resize(frames, boxes, size)
    for t, (x0, y0, x1, y1) in enumerate(boxes):
        wy, fy = crop._area_matrix(y0, y1, size, 300)
        wx, fx = crop._area_matrix(x0, x1, size, 340)
        region = frames[t, fy : fy + wy.shape[1], fx : fx + wx.shape[1]].astype(np.float64)
        want = np.einsum("yi,xj,ijc->yxc", wy, wx, region) / 255.0
        np.testing.assert_allclose(got[t], want, rtol=0, atol=2e-6)


def _paste_case(rng, residual):
    t, size = residual.shape[:2]
    frames = _frames(rng, t=t, h=40, w=48)
    boxes = np.tile([[5.5, 3.25, 37.5, 35.25]], (t, 1))  # 32 px box, 4 px per residual cell
    mask = np.zeros((t, 40, 48), bool)
    mask[:, 8:30, 10:34] = True
    return frames, boxes, mask, paste.paste_float(frames, boxes, residual, mask)


def test_paste_outside_mask_is_bit_exact_and_constant_has_no_blocks(rng):
    residual = np.full((2, 8, 8, 3), 0.01, np.float32)
    frames, boxes, mask, out = _paste_case(rng, residual)
    assert out.dtype == np.float32 and out.shape == frames.shape
    np.testing.assert_array_equal(out[~mask], frames[~mask].astype(np.float32))
    # A constant residual upsamples to exactly that constant (no block edges, no ripple), so
    # every masked pixel is the input plus the same float32 amount.
    expected = frames.astype(np.float32) + np.float32(255.0) * np.float32(0.01)
    np.testing.assert_array_equal(out[mask], expected[mask])
    # A mask that reaches past the box changes only the pixels whose centres lie in the box.
    everywhere = paste.paste_float(frames, boxes, residual, np.ones_like(mask))
    changed = np.any(everywhere != frames, axis=(0, 3))
    want = np.zeros_like(changed)
    want[3:35, 5:37] = True
    np.testing.assert_array_equal(changed, want)


def test_paste_smooth_residual_matches_bilinear_reference(rng):
    yy, xx = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    field = 0.01 * np.sin(0.5 * xx + 0.3 * yy)
    gains = np.array([1.0, -0.5, 2.0])  # each channel its own field
    residual = (field[None, :, :, None] * gains).astype(np.float32)
    frames, boxes, mask, out = _paste_case(rng, residual)
    x0, y0, x1, y1 = boxes[0]
    rows, cols = np.nonzero(mask[0])
    # Independent reference: scipy linear interpolation at pixel centres, clamped at the edges.
    ry = np.clip((rows + 0.5 - y0) / ((y1 - y0) / 8) - 0.5, 0, 7)
    rx = np.clip((cols + 0.5 - x0) / ((x1 - x0) / 8) - 0.5, 0, 7)
    ref = ndimage.map_coordinates(field, [ry, rx], order=1, mode="nearest") * 255.0
    for c, gain in enumerate(gains):
        got = out[0, rows, cols, c] - frames[0, rows, cols, c]
        np.testing.assert_allclose(got, gain * ref, atol=1e-4)
    # Smooth: neighbouring pixels differ by at most the field's slope over a quarter cell.
    change = (out - frames.astype(np.float32))[0, 8:30, 10:34, 0]
    assert np.abs(np.diff(change, axis=1)).max() < 255 * 0.01 * 0.5 / 4 * 1.01


def test_zero_residual_returns_input_exactly(rng):
    frames, _, _, out = _paste_case(rng, np.zeros((2, 8, 8, 3), np.float32))
    np.testing.assert_array_equal(out, frames.astype(np.float32))


def test_mask_to_frame_fills_the_box():
    boxes = np.array([[4.0, 2.0, 12.0, 10.0]])
    full = crop.mask_to_frame(np.ones((1, 4, 4), bool), boxes, 16, 16)
    expected = np.zeros((1, 16, 16), bool)
    expected[0, 2:10, 4:12] = True
    np.testing.assert_array_equal(full, expected)
    half = np.zeros((1, 4, 4), bool)
    half[0, :, :2] = True
    np.testing.assert_array_equal(
        crop.mask_to_frame(half, boxes, 16, 16)[0, 2:10, 4:12].sum(0) > 0, [True] * 4 + [False] * 4
    )


@pytest.mark.parametrize("mode", ["stochastic", "round", "error_diffusion"])
def test_quantize_integers_are_bit_exact(mode, rng):
    values = rng.integers(0, 256, (6, 5, 7, 3)).astype(np.float32)
    values[0, 0, 0] = [0.0, 255.0, 128.0]
    out = quantise.quantize(values, 3, mode=mode)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, values.astype(np.uint8))
    values16 = rng.integers(0, 65536, (4, 3, 3, 3)).astype(np.float32)
    values16[0, 0, 0] = [0.0, 65535.0, 1.0]
    out16 = quantise.quantize_16bit(values16, 3, mode=mode)
    assert out16.dtype == np.uint16
    np.testing.assert_array_equal(out16, values16.astype(np.uint16))


def test_quantize_stochastic_is_unbiased_and_clipped(rng):
    x = rng.uniform(-3.0, 258.0, 200_000).astype(np.float32)
    out = quantise.quantize(x, jax.random.PRNGKey(1)).astype(np.float64)
    clipped = np.clip(x.astype(np.float64), 0, 255)
    assert np.all((out == np.floor(clipped)) | (out == np.ceil(clipped)))
    frac = clipped - np.floor(clipped)
    stderr = np.sqrt(np.sum(frac * (1 - frac))) / x.size
    assert abs(np.mean(out - clipped)) < 4 * stderr
    # Conditional frequency of rounding up equals the fraction (binned check).
    up = out > np.floor(clipped)
    for lo in np.arange(0.0, 1.0, 0.25):
        sel = (frac > lo) & (frac < lo + 0.25)
        assert abs(up[sel].mean() - frac[sel].mean()) < 4 * 0.5 / np.sqrt(sel.sum())


def test_quantize_16bit_is_unbiased(rng):
    x = rng.uniform(0.0, 65535.0, 100_000).astype(np.float32)
    out = quantise.quantize_16bit(x, 5).astype(np.float64)
    frac = x - np.floor(x.astype(np.float64))
    assert abs(np.mean(out - x)) < 4 * np.sqrt(np.sum(frac * (1 - frac))) / x.size


def test_quantize_same_key_same_output_and_round_mode(rng):
    x = rng.uniform(0, 255, (3, 4, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(quantise.quantize(x, 7), quantise.quantize(x, 7))
    assert np.any(quantise.quantize(x, 7) != quantise.quantize(x, 8))
    np.testing.assert_array_equal(
        quantise.quantize(x, 0, mode="round"), np.round(x).astype(np.uint8)
    )
    # Raw and typed JAX keys with the same bits seed the same stream; fold_in gives a new one.
    raw, typed = jax.random.PRNGKey(4), jax.random.key(4)
    np.testing.assert_array_equal(quantise.quantize(x, raw), quantise.quantize(x, typed))
    assert np.any(quantise.quantize(x, raw) != quantise.quantize(x, jax.random.fold_in(raw, 1)))
    with pytest.raises(ValueError):
        quantise.quantize(x, 0, mode="dither")


@pytest.mark.parametrize("mode", ["stochastic", "error_diffusion"])
def test_sub_level_pulse_survives_unbiased_quantisation(mode, rng):
    fps, hz, frames = 30.0, 1.5, 256
    t = np.arange(frames) / fps
    base = rng.integers(60, 200, 1000) + 0.1  # 1000 pixels; values stay in [b - 0.2, b + 0.4]
    values = (base[None, :] + 0.3 * np.sin(2 * np.pi * hz * t)[:, None]).astype(np.float32)
    rounded = quantise.quantize(values, 11, mode="round").astype(np.float64).mean(axis=1)
    assert np.ptp(rounded) == 0.0  # plain rounding erases the 0.3-level wave completely
    mean = quantise.quantize(values, 11, mode=mode).astype(np.float64).mean(axis=1)
    freqs = np.fft.rfftfreq(frames, 1 / fps)
    spectrum = np.abs(np.fft.rfft(mean - mean.mean()))
    # Error diffusion moves its error to high temporal frequencies: look in the pulse band.
    band = (freqs >= 0.5) & (freqs <= 4.0) if mode == "error_diffusion" else freqs > 0
    assert freqs[band][np.argmax(spectrum[band])] == pytest.approx(hz, abs=fps / frames)
    amplitude = 2 * spectrum[band].max() / frames
    assert amplitude == pytest.approx(0.3, rel=0.2)
