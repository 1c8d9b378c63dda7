"""Target waveforms: rates, continuity, user files and their errors."""

import numpy as np
import pytest

from rppgedit import targets
from rppgedit.errors import RppgEditError


def _peak_bpm(x, fps):
    spec = np.abs(np.fft.rfft(x - x.mean(), 1 << 16))
    return np.fft.rfftfreq(1 << 16, 1 / fps)[np.argmax(spec)] * 60


@pytest.mark.parametrize("kind", ["sinusoid", "pulse"])
@pytest.mark.parametrize("hr", [55.0, 90.0, 143.0])
def test_target_rate(kind, hr):
    wave = targets.make_target(targets.TargetSpec(kind=kind, hr_bpm=hr), 600, 30.0)
    assert wave.shape == (600,) and wave.dtype == np.float32
    assert abs(_peak_bpm(wave.astype(np.float64), 30.0) - hr) < 1.0


def test_pulse_has_harmonics_and_variability():
    wave = targets.pulse_waveform(72.0, 1800, 30.0, hrv=0.05, seed=3).astype(np.float64)
    spec = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(1800, 1 / 30.0)
    fundamental = spec[(freqs > 1.0) & (freqs < 1.4)].sum()
    second = spec[(freqs > 2.1) & (freqs < 2.7)].sum()
    assert 0.05 < second / fundamental < 0.6
    assert not np.allclose(
        wave, targets.pulse_waveform(72.0, 1800, 30.0, hrv=0.0, seed=3), atol=0.1
    )


def test_slices_of_one_target_are_continuous():
    spec = targets.TargetSpec(kind="sinusoid", hr_bpm=100.0, phase=None, seed=7)
    whole = targets.make_target(spec, 400, 30.0)
    np.testing.assert_array_equal(whole, targets.make_target(spec, 400, 30.0))  # seeded phase
    t = np.arange(400) / 30.0
    phase = np.random.default_rng(7).uniform(0, 2 * np.pi)
    np.testing.assert_allclose(whole, np.cos(2 * np.pi * 100 / 60 * t + phase), atol=1e-5)


def test_none_means_remove():
    assert targets.make_target(targets.TargetSpec(kind="none"), 100, 30.0) is None


def test_from_file_csv_with_times_is_resampled(tmp_path):
    fps_file = 20.0
    t = np.arange(0, 12, 1 / fps_file) + 1.7e9  # UNIX-like timestamps
    path = tmp_path / "w.csv"
    np.savetxt(
        path,
        np.c_[t, np.sin(2 * np.pi * 1.5 * (t - t[0]))],
        delimiter=",",
        header="timestamp,bvp",
        comments="",
    )
    wave = targets.from_file(path, 300, 30.0)
    expected = np.sin(2 * np.pi * 1.5 * np.arange(300) / 30.0)
    assert np.corrcoef(wave, expected)[0, 1] > 0.999


def test_from_file_npy_at_video_rate(tmp_path):
    values = np.random.default_rng(0).standard_normal(90)
    np.save(tmp_path / "w.npy", values)
    wave = targets.from_file(tmp_path / "w.npy", 90, 30.0)
    np.testing.assert_allclose(wave, (values - values.mean()) / values.std(), atol=1e-5)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        ("1,2\n3\n", "readable"),
        ("0,1\n0.1,2\n", "covers"),
        ("0,1\n1,1\n2,1\n3,1\n4,1\n5,1\n6,1\n7,1\n8,1\n9,1\n10,1\n11,1\n", "constant"),
    ],
)
def test_from_file_errors_are_one_line_and_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RppgEditError, match=message) as err:
        targets.from_file(path, 300, 30.0)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_spec_validation():
    with pytest.raises(RppgEditError, match="unknown target"):
        targets.TargetSpec(kind="square")
    with pytest.raises(RppgEditError, match="outside"):
        targets.TargetSpec(hr_bpm=400)
    with pytest.raises(RppgEditError, match="needs a waveform"):
        targets.TargetSpec(kind="file")
    with pytest.raises(RppgEditError, match="variability 0.3 is outside"):
        targets.TargetSpec(kind="pulse", hrv=0.3)
    with pytest.raises(RppgEditError, match="needs --target=sinusoid or pulse, not none"):
        targets.TargetSpec(kind="none", hr_end_bpm=80.0)
    with pytest.raises(RppgEditError, match="end heart rate 300.0 bpm is outside"):
        targets.TargetSpec(hr_end_bpm=300.0)
    assert targets.TargetSpec(hr_bpm=90.0).single_rate_bpm == 90.0
    assert targets.TargetSpec(hr_bpm=90.0, hr_end_bpm=70.0).single_rate_bpm is None
    assert targets.TargetSpec(kind="none").single_rate_bpm is None


def test_a_gliding_sinusoid_is_the_chirp():
    """`hr_end_bpm`: the rate glides linearly, the float64 linear chirp to within the frame
    step of the phase integration (one frame's phase at most)."""
    fps, num = 30.0, 900
    spec = targets.TargetSpec(hr_bpm=60.0, hr_end_bpm=120.0, phase=0.4)
    wave = targets.make_target(spec, num, fps).astype(np.float64)
    t = np.arange(num) / fps
    slope = (120.0 - 60.0) / 60.0 / ((num - 1) / fps)  # Hz per second
    chirp = np.cos(
        0.4
        + 2 * np.pi * (1.0 * t + 0.5 * slope * t**2)
        + 2 * np.pi * np.linspace(1.0, 2.0, num) / fps
    )
    np.testing.assert_allclose(wave, chirp, atol=0.25)
    assert abs(_peak_bpm(wave[:150], fps) - 65.0) < 6.0  # the first 5 s: 60-70 bpm
    assert abs(_peak_bpm(wave[-150:], fps) - 115.0) < 6.0  # the last 5 s: 110-120 bpm


@pytest.mark.parametrize("hrv", [0.02, 0.08])
def test_pulse_variability_is_the_requested_relative_std(hrv):
    """`hrv`: the instantaneous rate of the pulse's fundamental (the Hilbert phase's slope)
    varies with that relative standard deviation, around a mean that glides when asked."""
    import scipy.signal

    fps, num = 30.0, 3600
    wave = targets.pulse_waveform(80.0, num, fps, hrv=hrv, seed=5).astype(np.float64)
    sos = scipy.signal.butter(4, [0.9, 1.8], btype="band", fs=fps, output="sos")
    phase = np.unwrap(np.angle(scipy.signal.hilbert(scipy.signal.sosfiltfilt(sos, wave))))
    rate = np.diff(phase)[200:-200] * fps / (2 * np.pi) * 60.0  # bpm, the filter's edges cut
    assert abs(rate.mean() - 80.0) < 1.5
    assert rate.std() / rate.mean() == pytest.approx(hrv, rel=0.35)
    glide = targets.pulse_waveform(80.0, num, fps, hrv=hrv, seed=5, hr_end_bpm=100.0)
    assert abs(_peak_bpm(glide[-600:].astype(np.float64), fps) - 97.5) < 4.0


def test_an_edit_follows_a_gliding_target():
    """An edit to a rate gliding from 60 to 110 bpm: POS reads the start rate in the first
    quarter of the edited clip and the end rate in the last (the true 85 bpm in neither)."""
    from rppgedit import pipeline, readings
    from rppgedit.data import clips

    clip = clips.synthetic_clip(2, hr_bpm=85.0, num_frames=600, height=96, width=96)
    job = pipeline.EditJob(
        target=targets.TargetSpec(hr_bpm=60.0, hr_end_bpm=110.0), estimators=("pos",)
    )
    edited = pipeline.edit_frames(clip.frames, clip.fps, clip.boxes, job).frames
    crop, mask = pipeline.crop_and_mask(edited, clip.boxes, job)
    first = readings.read_heart_rates(crop[:150], mask[:150], clip.fps, ["pos"])["pos"]["hr_bpm"]
    last = readings.read_heart_rates(crop[-150:], mask[-150:], clip.fps, ["pos"])["pos"]["hr_bpm"]
    assert abs(first - 66.0) <= 6.0 and abs(last - 104.0) <= 6.0, (first, last)
