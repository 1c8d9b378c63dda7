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
