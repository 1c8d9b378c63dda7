"""Tests for the synthetic face-video generator (rppgedit.data.synthetic).

Heart rates and amplitudes are measured from the rendered uint8 frames with independent float64 NumPy
references written here (mean skin trace, zero-padded FFT, least squares), never with the library's own
helpers.
"""

import numpy as np
import pytest

from rppgedit.data import synthetic


def _skin_trace(clip, channel=None):
    """Mean skin colour per frame, float64 "t 3" (or "t" for one channel), in 8-bit levels."""
    frames = clip.frames.astype(np.float64)
    weights = clip.mask.astype(np.float64)
    trace = np.einsum("thwc,thw->tc", frames, weights) / weights.sum(axis=(1, 2))[:, None]
    return trace if channel is None else trace[:, channel]


def _fft_peak_bpm(x, fps, lo=40.0, hi=200.0):
    """Reference HR: linear detrend, Hann window, zero pad to 2**17, largest bin in [lo, hi] bpm."""
    t = np.arange(len(x))
    x = x - np.polyval(np.polyfit(t, x, 1), t)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 1 << 17))
    bpm = np.fft.rfftfreq(1 << 17, 1.0 / fps) * 60.0
    band = (bpm >= lo) & (bpm <= hi)
    return bpm[band][np.argmax(spec[band])]


def _slopes(clip):
    """Least-squares slope of each channel's relative mean skin trace on bvp, float64 "3"."""
    trace = _skin_trace(clip)
    rel = trace / trace.mean(0) - 1.0
    design = np.stack([clip.bvp, np.ones_like(clip.bvp)], 1)
    coef, *_ = np.linalg.lstsq(design, rel, rcond=None)
    return coef[0]


@pytest.mark.parametrize("motion", [False, True])
@pytest.mark.parametrize("tone", ["light", "dark"])
@pytest.mark.parametrize("hr", [50.0, 72.0, 100.0, 150.0])
def test_green_fft_reads_the_ground_truth_hr(hr, tone, motion):
    clip = synthetic.make_clip(
        int(hr) + motion,
        hr_bpm=hr,
        num_frames=600,
        height=32,
        width=32,
        skin_tone=synthetic.SKIN_TONES[tone],
        motion=motion,
    )
    assert clip.hr_bpm == pytest.approx(hr, abs=1e-9)
    measured = _fft_peak_bpm(_skin_trace(clip, 1), clip.fps)
    assert abs(measured - clip.hr_bpm) <= 1.5, (measured, clip.hr_bpm)


def test_hr_survives_illumination_drift_and_flicker():
    clip = synthetic.make_clip(
        3, hr_bpm=84.0, num_frames=600, height=32, width=32, illumination=True
    )
    trace = _skin_trace(clip, 1)
    assert trace.std() / trace.mean() > 0.01  # the drift is really there (a few %)
    assert abs(_fft_peak_bpm(trace, clip.fps) - 84.0) <= 1.5


@pytest.mark.parametrize("noise_std", [0.6, 1.5])
def test_sensor_noise_is_the_same_at_every_level(noise_std):
    """Constant in 8-bit levels (as a gamma-encoded webcam's), so dark skin is as noisy as light."""
    stds = {}
    for tone in ("light", "dark"):
        kw = dict(num_frames=64, height=48, width=48, skin_tone=synthetic.SKIN_TONES[tone])
        noisy = synthetic.make_clip(5, noise_std=noise_std, **kw)
        clean = synthetic.make_clip(5, noise_std=0.0, **kw)
        diff = noisy.frames.astype(np.float64) - clean.frames.astype(np.float64)
        stds[tone] = diff[noisy.mask].std()
    assert stds["dark"] == pytest.approx(stds["light"], rel=0.08), stds
    # The two roundings (noisy and clean frames) add about 1/12 level^2 of variance each.
    assert noise_std <= stds["dark"] <= np.sqrt(noise_std**2 + 1 / 4), stds


def test_flicker_is_a_real_webcams():
    """0.03% per frame (measured on the physrecorder webcam clip), not the old 0.2%."""
    clip = synthetic.make_clip(
        6, num_frames=400, height=128, width=128, illumination=True, pulse_amplitude=0.0
    )
    level = clip.frames.astype(np.float64).mean(axis=(1, 2, 3))
    rel = level / level.mean()
    high = (rel[1:-1] - 0.5 * (rel[:-2] + rel[2:])) / np.sqrt(1.5)  # white-equivalent std
    assert 0.0002 < high.std() < 0.0005, high.std()


def test_grid_clip_cycles_tones_and_moves_odd_seeds():
    for seed in range(4):
        clip = synthetic.grid_clip(seed, num_frames=30, size=48)
        again = synthetic.make_clip(
            seed,
            hr_bpm=synthetic.grid_hr_bpm(seed),
            num_frames=30,
            height=48,
            width=48,
            skin_tone=synthetic.SKIN_TONES[("light", "medium", "dark")[seed % 3]],
            motion=seed % 2 == 1,
            illumination=seed % 2 == 1,
        )
        np.testing.assert_array_equal(clip.frames, again.frames)
        assert 60.0 <= synthetic.grid_hr_bpm(seed) <= 110.0
        assert (np.ptp(clip.crop_boxes[:, 0]) > 0) == (seed % 2 == 1)
    dark_still = synthetic.grid_clip(1, tone="dark", motion=False, num_frames=30, size=48)
    assert np.ptp(dark_still.crop_boxes[:, 0]) == 0
    with pytest.raises(ValueError, match="tone must be one of"):
        synthetic.grid_clip(0, tone="pale")


def test_shapes_and_dtypes():
    clip = synthetic.make_clip(0, num_frames=40, height=48, width=40, motion=True)
    assert clip.frames.shape == (40, 48, 40, 3) and clip.frames.dtype == np.uint8
    assert clip.mask.shape == (40, 48, 40) and clip.mask.dtype == bool
    assert clip.bvp.shape == (40,) and clip.bvp.dtype == np.float64
    assert clip.face_boxes.shape == (40, 4) and np.issubdtype(clip.face_boxes.dtype, np.integer)
    assert isinstance(clip.fps, float) and isinstance(clip.hr_bpm, float)
    np.testing.assert_allclose([clip.bvp.mean(), clip.bvp.std()], [0.0, 1.0], atol=1e-12)


def test_same_seed_same_clip_and_different_seeds_differ():
    kw = dict(num_frames=60, height=32, width=32, motion=True, illumination=True)
    a, b, c = (synthetic.make_clip(s, **kw) for s in (5, 5, 6))
    for name in ("frames", "bvp", "mask", "face_boxes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.hr_bpm == b.hr_bpm
    assert np.mean(a.frames != c.frames) > 0.5
    assert not np.allclose(a.bvp, c.bvp)


def test_flags_keep_face_and_pulse_of_a_seed():
    still = synthetic.make_clip(9, num_frames=60, height=32, width=32)
    moving = synthetic.make_clip(9, num_frames=60, height=32, width=32, motion=True)
    np.testing.assert_array_equal(still.bvp, moving.bvp)


def test_mask_inside_face_box_and_excludes_eyes_and_mouth():
    clip = synthetic.make_clip(1, num_frames=30, height=64, width=64, motion=True)
    height, width = clip.mask.shape[1:]
    for t in range(clip.mask.shape[0]):
        x0, y0, x1, y1 = clip.face_boxes[t]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        inside = np.zeros((height, width), bool)
        inside[y0:y1, x0:x1] = True
        assert clip.mask[t].any() and not (clip.mask[t] & ~inside).any()
        assert (y1 - y0) * (x1 - x0) < 0.6 * height * width  # the box is not the whole frame
    # Without motion, eyes (box height 0.49, width 0.31 / 0.69) and the mouth (0.77, 0.5) are not skin.
    still = synthetic.make_clip(1, num_frames=1, height=64, width=64)
    x0, y0, x1, y1 = still.face_boxes[0]
    for fy, fx in [(0.486, 0.31), (0.486, 0.69), (0.771, 0.5)]:
        row, col = round(y0 + fy * (y1 - y0) - 0.5), round(x0 + fx * (x1 - x0) - 0.5)
        assert not still.mask[0, row, col], (fy, fx)
    # Skin fills much but not all of the box (hair, brows, eyes, mouth, corners).
    box_mask = still.mask[0, y0:y1, x0:x1]
    assert 0.25 < box_mask.mean() < 0.8


@pytest.mark.parametrize("amplitude", [0.003, 0.008])
@pytest.mark.parametrize("tone", [0.1, 0.85])
def test_pulse_amplitude_and_sign_measured_from_frames(amplitude, tone):
    clip = synthetic.make_clip(
        2, num_frames=300, height=32, width=32, skin_tone=tone, pulse_amplitude=amplitude
    )
    green = _skin_trace(clip, 1)
    relative_std = green.std() / green.mean()
    assert amplitude / 2 < relative_std < amplitude * 2
    # Blood absorbs: skin gets darker as bvp rises; the slope is -amplitude within 20%.
    slope = _slopes(clip)[1]
    assert -1.2 * amplitude < slope < -0.8 * amplitude


def test_green_carries_the_strongest_pulse_in_pbv_proportions():
    clip = synthetic.make_clip(4, num_frames=300, height=32, width=32, pulse_amplitude=0.01)
    r, g, b = -_slopes(clip)
    assert g > b > r > 0
    np.testing.assert_allclose([r / g, b / g], [0.33 / 0.77, 0.53 / 0.77], atol=0.03)


def test_dark_skin_is_darker_with_a_weaker_absolute_pulse():
    kw = dict(num_frames=300, height=32, width=32, pulse_amplitude=0.006)
    light = synthetic.make_clip(7, skin_tone=0.1, **kw)
    dark = synthetic.make_clip(7, skin_tone=0.9, **kw)
    gl, gd = _skin_trace(light, 1), _skin_trace(dark, 1)
    assert gd.mean() < 0.5 * gl.mean()
    assert gd.std() < 0.5 * gl.std()


def test_pixels_outside_the_mask_carry_no_pulse_and_strength_varies_inside():
    clip = synthetic.make_clip(
        8, num_frames=90, height=48, width=48, pulse_amplitude=0.05, noise_std=0.0
    )
    frames = clip.frames.astype(np.float64)
    temporal_range = frames.max(0) - frames.min(0)
    assert temporal_range[~clip.mask[0]].max() == 0.0
    # Per-pixel green slope on bvp over the skin: spatially varying (forehead and cheeks stronger).
    design = np.stack([clip.bvp, np.ones_like(clip.bvp)], 1)
    green = frames[..., 1][:, clip.mask[0]]
    coef, *_ = np.linalg.lstsq(design, green / green.mean(0), rcond=None)
    slope = -coef[0]
    assert (slope > 0).all()
    assert np.percentile(slope, 90) > 1.8 * np.percentile(slope, 10)
    # The top quarter of the skin (forehead) pulses more than the skin around the mouth row.
    rows = np.nonzero(clip.mask[0])[0]
    top = rows <= np.percentile(rows, 25)
    bottom = rows >= np.percentile(rows, 90)
    assert slope[top].mean() > 1.3 * slope[bottom].mean()


def test_motion_moves_box_and_mask_together():
    clip = synthetic.make_clip(11, num_frames=300, height=64, width=64, motion=True)
    boxes = clip.face_boxes.astype(np.float64)
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    assert np.ptp(centre_x) >= 2.0 or np.ptp(centre_y) >= 2.0
    ys, xs = np.mgrid[:64, :64]
    area = clip.mask.sum((1, 2))
    mask_x = (clip.mask * xs).sum((1, 2)) / area
    mask_y = (clip.mask * ys).sum((1, 2)) / area
    axis = (mask_x, centre_x) if np.ptp(centre_x) >= np.ptp(centre_y) else (mask_y, centre_y)
    assert np.corrcoef(*axis)[0, 1] > 0.9
    assert (clip.mask != clip.mask[:1]).any(axis=(1, 2)).mean() > 0.5
    still = synthetic.make_clip(11, num_frames=30, height=64, width=64)
    assert (still.mask == still.mask[:1]).all() and (still.face_boxes == still.face_boxes[0]).all()


def test_strictly_periodic_pulse_without_hrv_and_its_harmonics():
    clip = synthetic.make_clip(12, hr_bpm=60.0, hrv=0.0, num_frames=300, height=16, width=16)
    np.testing.assert_allclose(clip.bvp[30:], clip.bvp[:-30], atol=1e-9)  # period 30 frames
    spec = np.abs(np.fft.rfft(clip.bvp))  # 10 s: 1 Hz is bin 10
    assert spec[10] == spec.max()
    assert 0.1 * spec[10] < spec[20] < spec[10]  # a real second harmonic (systolic/dicrotic shape)
    varying = synthetic.make_clip(12, hr_bpm=60.0, hrv=0.05, num_frames=300, height=16, width=16)
    assert np.abs(varying.bvp[30:] - varying.bvp[:-30]).max() > 0.1


def test_given_bvp_is_used_and_its_hr_read_from_the_spectrum():
    t = np.arange(450) / 30.0
    wave = 3.0 + 2.0 * np.sin(2 * np.pi * 1.7 * t)  # 102 bpm, not standardised
    clip = synthetic.make_clip(0, num_frames=450, height=32, width=32, bvp=wave, hr_bpm=60.0)
    np.testing.assert_allclose(clip.bvp, (wave - wave.mean()) / wave.std(), atol=1e-12)
    assert clip.hr_bpm == pytest.approx(102.0, abs=0.5)
    assert abs(_fft_peak_bpm(_skin_trace(clip, 1), 30.0) - 102.0) <= 1.5
    with pytest.raises(ValueError, match="bvp"):
        synthetic.make_clip(0, num_frames=450, bvp=wave[:10])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="skin_tone"):
        synthetic.make_clip(0, skin_tone=1.5, num_frames=2)
    with pytest.raises(ValueError, match="background"):
        synthetic.make_clip(0, background="plaid", num_frames=2)
    with pytest.raises(ValueError, match="hr_bpm"):
        synthetic.make_clip(0, hr_bpm=1000.0, num_frames=2)


def test_flat_background_is_one_colour():
    clip = synthetic.make_clip(0, num_frames=2, height=32, width=32, background="flat", noise_std=0)
    corner = clip.frames[0, :4, :4].reshape(-1, 3)
    assert (corner == corner[0]).all()
