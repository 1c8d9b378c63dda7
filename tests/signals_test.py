"""Tests of rppgedit.signals against float64 NumPy/SciPy references written here."""

import functools
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from rppgedit import signals

FPS = 30.0


def _sine(bpm, n, fps=FPS, phase=0.0):
    t = np.arange(n) / fps
    return np.sin(2.0 * np.pi * bpm / 60.0 * t + phase)


def _detrend_ref(x, lam):
    """Tarvainen et al. 2002 in float64: x - (I + lam^2 D2^T D2)^{-1} x, with D2 built by np.diff."""
    n = x.shape[-1]
    d2 = np.diff(np.eye(n), n=2, axis=0)
    a = np.eye(n) + lam**2 * d2.T @ d2
    return x - np.linalg.solve(a, x.T).T


# --------------------------------------------------------------------------------- detrend


@pytest.mark.parametrize("lam", [10.0, 100.0])
def test_detrend_matches_dense_float64_reference(rng, lam):
    x = rng.standard_normal((3, 257)) + 5.0
    got = np.asarray(jax.jit(functools.partial(signals.detrend, lam=lam))(x.astype(np.float32)))
    ref = _detrend_ref(x, lam)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5)


def test_detrend_axis_and_dtype(rng):
    x = rng.standard_normal((64, 2)).astype(np.float32)
    got = signals.detrend(x, axis=0)
    assert got.dtype == jnp.float32 and got.shape == (64, 2)
    np.testing.assert_allclose(
        np.asarray(got), _detrend_ref(x.T.astype(np.float64), 100.0).T, atol=2e-5
    )


def test_detrend_removes_quadratic_trend_keeps_sinusoid():
    n = 300
    t = np.arange(n) / FPS
    pulse = 0.01 * _sine(72.0, n)
    trend = 0.5 + 0.02 * t + 0.003 * t**2  # illumination drift, 50x the pulse amplitude
    got = np.asarray(signals.detrend((trend + pulse).astype(np.float32)))
    inner = slice(30, -30)  # the smoother bends a little at the ends
    err = got[inner] - pulse[inner]
    pulse_rms = np.sqrt(np.mean(pulse[inner] ** 2))
    assert np.sqrt(np.mean(err**2)) < 0.05 * pulse_rms  # measured 0.030
    # removing only the mean leaves an error 20x the pulse itself
    centred = trend + pulse - np.mean(trend + pulse)
    assert np.sqrt(np.mean((centred - pulse)[inner] ** 2)) > 10 * pulse_rms


# --------------------------------------------------------------------------------- bandpass


def test_bandpass_matches_filtfilt_in_interior(rng):
    x = rng.standard_normal((2, 900))
    b, a = scipy.signal.butter(3, [0.7, 3.0], btype="band", fs=FPS)
    ref = scipy.signal.filtfilt(b, a, x)
    got = np.asarray(jax.jit(functools.partial(signals.bandpass, fps=FPS))(x.astype(np.float32)))
    interior = slice(150, -150)  # 5 s from each end: both filters' edge transients have died out
    np.testing.assert_allclose(got[:, interior], ref[:, interior], rtol=0, atol=2e-4)
    # at the very edges the two treatments differ (documented), but stay of the same size
    assert np.abs(got).max() < 3 * np.abs(ref).max()


def test_bandpass_other_band_order_and_axis(rng):
    x = rng.standard_normal((600, 2))
    b, a = scipy.signal.butter(2, [0.5, 4.0], btype="band", fs=25.0)
    ref = scipy.signal.filtfilt(b, a, x, axis=0)
    got = np.asarray(signals.bandpass(x, 25.0, 0.5, 4.0, order=2, axis=0))
    np.testing.assert_allclose(got[125:-125], ref[125:-125], rtol=0, atol=2e-4)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 6])
@pytest.mark.parametrize(
    "n_fft, fps, low_hz, high_hz",
    [(256, 30.0, 0.7, 3.0), (301, 25.0, 0.5, 4.0), (1024, 14.9, 0.04, 0.5), (160, 60.0, 1.0, 1.2)],
)
def test_butterworth_power_response_is_scipys_design(n_fft, fps, low_hz, high_hz, order):
    """The closed form equals |sosfreqz|^2 of scipy's `butter` design at every rFFT bin, from 0 Hz
    (gain 0) to Nyquist; measured worst 1.7e-11 over these cases."""
    sos = scipy.signal.butter(order, [low_hz, high_hz], btype="band", fs=fps, output="sos")
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / fps)
    _, h = scipy.signal.sosfreqz(sos, worN=freqs, fs=fps)
    got = signals.butterworth_power_response(n_fft, fps, low_hz, high_hz, order)
    assert got.dtype == np.float64 and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np.abs(h) ** 2, rtol=0, atol=1e-9)


def test_the_edit_command_does_not_import_scipy_signal():
    """`scipy.signal` parses its docstrings on import (0.7 s of every command's start-up here);
    the edit path, its report and the estimators do without it."""
    modules = "rppgedit.modes.edit rppgedit.pipeline rppgedit.estimators rppgedit.edit_report"
    code = (
        f"import importlib, sys\nfor m in {modules.split()!r}: importlib.import_module(m)\n"
        "print('scipy.signal' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bandpass_kills_out_of_band_keeps_in_band():
    n = 600
    t = np.arange(n) / FPS
    inband = np.sin(2 * np.pi * 1.3 * t)
    out = np.sin(2 * np.pi * 0.2 * t + 0.3) + np.sin(2 * np.pi * 6.0 * t + 1.0)
    got = np.asarray(signals.bandpass((inband + out).astype(np.float32), FPS))
    inner = slice(60, -60)
    # Butterworth |H|^2 at 1.3 Hz is ~1; at 0.2 and 6 Hz it is < 1e-3
    np.testing.assert_allclose(got[inner], inband[inner], atol=0.02)
    out_only = np.asarray(signals.bandpass(out.astype(np.float32), FPS))
    assert np.sqrt(np.mean(out_only[inner] ** 2)) < 0.01


def test_bandpass_rejects_bad_band():
    with pytest.raises(ValueError, match="fps/2"):
        signals.bandpass(np.zeros(100), 5.0, 0.7, 3.0)


# --------------------------------------------------------------------------------- pearson


def test_pearson_matches_corrcoef(rng):
    x = rng.standard_normal((4, 200))
    y = 0.5 * x + rng.standard_normal((4, 200)) + 3.0
    got = np.asarray(jax.jit(signals.pearson)(x, y))
    ref = np.array([np.corrcoef(x[i], y[i])[0, 1] for i in range(4)])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(signals.pearson(x.T, y.T, axis=0)), ref, atol=1e-6)


def test_pearson_scale_invariant_for_tiny_pulses(rng):
    x = rng.standard_normal(300)
    y = x + 0.3 * rng.standard_normal(300)
    ref = np.corrcoef(x, y)[0, 1]
    # 1e-4 amplitude: the size of a pulse in [0,1] pixel units; eps must not bias it
    np.testing.assert_allclose(float(signals.pearson(1e-4 * x, 1e-4 * y)), ref, atol=1e-5)


def test_pearson_constant_signal_is_finite():
    x = jnp.ones(50)
    y = jnp.arange(50.0)
    assert float(signals.pearson(x, y)) == pytest.approx(0.0, abs=1e-6)
    g = jax.grad(lambda v: signals.pearson(v, y))(x)
    assert np.all(np.isfinite(np.asarray(g)))


def test_neg_pearson_loss_is_minus_pearson(rng):
    x = rng.standard_normal((2, 64))
    y = rng.standard_normal((2, 64))
    np.testing.assert_allclose(
        np.asarray(signals.neg_pearson_loss(x, y)), -np.asarray(signals.pearson(x, y)), atol=0
    )
    assert float(signals.neg_pearson_loss(x[0], 2 * x[0] + 1)) == pytest.approx(-1.0, abs=1e-6)


# --------------------------------------------------------------------------------- gradients


def test_gradients_finite_nonzero_and_match_finite_differences(rng):
    x = jnp.asarray(rng.standard_normal(256), dtype=jnp.float32)
    target = jnp.asarray(_sine(75.0, 256), dtype=jnp.float32)

    def loss(v):
        return signals.neg_pearson_loss(signals.bandpass(signals.detrend(v), FPS), target)

    g = np.asarray(jax.jit(jax.grad(loss))(x))
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 1e-4
    # directional finite difference (float64 reference of the same pipeline through the float32 code
    # is too noisy; a central difference with step 1e-2 along a random direction suffices)
    d = rng.standard_normal(256).astype(np.float32)
    d /= np.linalg.norm(d)
    eps = 1e-2
    fd = (float(loss(x + eps * d)) - float(loss(x - eps * d))) / (2 * eps)
    assert float(g @ d) == pytest.approx(fd, rel=2e-2, abs=1e-4)
    for f in (signals.detrend, functools.partial(signals.bandpass, fps=FPS)):
        gi = np.asarray(jax.grad(lambda v, f=f: jnp.sum(f(v) * target))(x))
        assert np.all(np.isfinite(gi)) and np.abs(gi).max() > 1e-3


# --------------------------------------------------------------------------------- spectra


@pytest.mark.parametrize("n, nfft", [(300, None), (300, 2048), (257, 512)])
def test_periodogram_matches_scipy(rng, n, nfft):
    x = rng.standard_normal((2, n)) + 1.0
    f, p = signals.periodogram(x.astype(np.float32), FPS, nfft=nfft)
    fr, pr = scipy.signal.periodogram(x, FPS, window="hann", nfft=nfft, detrend="constant")
    np.testing.assert_allclose(f, fr, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(p), pr, rtol=0, atol=1e-5 * pr.max())


@pytest.mark.parametrize(
    "nperseg, noverlap, nfft", [(256, None, None), (128, 96, 512), (64, 0, None)]
)
def test_welch_matches_scipy(rng, nperseg, noverlap, nfft):
    x = rng.standard_normal((2, 1000)) + 2.0
    kw = dict(nperseg=nperseg, noverlap=noverlap, nfft=nfft)
    f, p = signals.welch(x.astype(np.float32), FPS, **kw)
    fr, pr = scipy.signal.welch(x, FPS, window="hann", detrend="constant", **kw)
    np.testing.assert_allclose(f, fr, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(p), pr, rtol=0, atol=1e-5 * pr.max())


# --------------------------------------------------------------------------------- heart rate


def test_heart_rate_sub_bin_accuracy_73_3():
    x = _sine(73.3, 300)  # 10 s at 30 fps; one FFT bin of nfft=2048 is 0.88 bpm
    hr = float(jax.jit(functools.partial(signals.heart_rate, fps=FPS))(x))
    assert hr == pytest.approx(73.3, abs=0.2)


def test_heart_rate_random_rates_and_phases():
    rng = np.random.default_rng(1)
    rates = rng.uniform(45.0, 170.0, size=60)
    phases = rng.uniform(0.0, 2 * np.pi, size=60)
    x = np.stack([_sine(r, 300, phase=p) for r, p in zip(rates, phases, strict=True)])
    hr = np.asarray(signals.heart_rate(x.astype(np.float32), FPS))  # batched: one row per rate
    np.testing.assert_allclose(hr, rates, atol=0.2)


def test_heart_rate_with_noise_and_other_fps():
    rng = np.random.default_rng(2)
    fps = 25.0
    rates = rng.uniform(50.0, 150.0, size=20)
    x = np.stack([_sine(r, 500, fps, phase=rng.uniform(0, 6)) for r in rates])  # 20 s
    x = x + 0.5 * rng.standard_normal(x.shape)  # SNR ~3 dB in the time domain
    hr = np.asarray(signals.heart_rate(x, fps))
    np.testing.assert_allclose(hr, rates, atol=1.0)


def test_heart_rate_batched_axis_and_band():
    x = np.stack([_sine(60.0, 300), _sine(120.0, 300)], axis=-1)  # (T, 2)
    hr = np.asarray(signals.heart_rate(x, FPS, axis=0))
    np.testing.assert_allclose(hr, [60.0, 120.0], atol=0.2)
    # a band that excludes 120 bpm finds the weaker 60 bpm component instead
    mix = _sine(120.0, 300) + 0.3 * _sine(60.0, 300)
    assert float(signals.heart_rate(mix, FPS)) == pytest.approx(120.0, abs=0.2)
    assert float(signals.heart_rate(mix, FPS, band_bpm=(40.0, 90.0))) == pytest.approx(
        60.0, abs=0.3
    )


def test_heart_rate_over_time_tracks_a_change():
    n = 1800  # 60 s: 70 bpm, then 110 bpm
    x = np.concatenate([_sine(70.0, n // 2), _sine(110.0, n // 2)])
    times, bpm = signals.heart_rate_over_time(x, FPS, window_s=10.0, step_s=5.0)
    bpm = np.asarray(bpm)
    assert bpm.shape == times.shape == (11,)
    np.testing.assert_allclose(times, 5.0 - 0.5 / FPS + 5.0 * np.arange(11))
    np.testing.assert_allclose(bpm[times < 25], 70.0, atol=0.2)
    np.testing.assert_allclose(bpm[times > 35], 110.0, atol=0.2)


def test_pulse_snr_high_for_sinusoid_low_for_noise(rng):
    clean = _sine(72.0, 900)  # 30 s: the Hann main lobe (+/-4 bpm) fits in the +/-6 bpm window
    noise = rng.standard_normal(900)
    s_clean = float(signals.pulse_snr(clean, FPS))
    s_noise = float(signals.pulse_snr(noise, FPS))
    assert s_clean > 30.0
    assert s_noise < 0.0
    # reference: the same definition computed here with scipy's periodogram, given hr 72
    f, p = scipy.signal.periodogram(noise, FPS, window="hann", nfft=2048)
    bpm = 60 * f
    band = (bpm >= 40) & (bpm <= 180)
    sig = band & ((np.abs(bpm - 72) <= 6) | (np.abs(bpm - 144) <= 6))
    ref = 10 * np.log10(p[sig].sum() / p[band & ~sig].sum())
    assert float(signals.pulse_snr(noise, FPS, 72.0)) == pytest.approx(ref, abs=1e-3)
    # batched, with per-row heart rates
    both = np.stack([clean, noise])
    got = np.asarray(
        jax.jit(lambda v, h: signals.pulse_snr(v, FPS, h))(both, jnp.array([72.0, 72.0]))
    )
    np.testing.assert_allclose(got, [s_clean, ref], atol=1e-3)


def test_spectral_peak_soft_near_argmax_and_differentiable(rng):
    x = _sine(84.0, 300) + 0.2 * rng.standard_normal(300)
    soft = float(signals.spectral_peak_soft(x, FPS, band_bpm=(40.0, 180.0), temperature=0.05))
    assert soft == pytest.approx(84.0, abs=1.0)
    # temperature 1 is the power-weighted centroid of the band
    f, p = scipy.signal.periodogram(x, FPS, window="hann", nfft=2048)
    band = (60 * f >= 40) & (60 * f <= 180)
    centroid = np.sum(60 * f[band] * p[band]) / np.sum(p[band])
    got = float(signals.spectral_peak_soft(x, FPS, band_bpm=(40.0, 180.0), temperature=1.0))
    assert got == pytest.approx(centroid, abs=0.05)
    g = np.asarray(
        jax.grad(lambda v: signals.spectral_peak_soft(v, FPS, temperature=0.1))(jnp.asarray(x))
    )
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0


def test_spectral_flatness_line_vs_noise(rng):
    sine = _sine(75.0, 300)
    noise = rng.standard_normal((8, 300))
    flat_sine = float(signals.spectral_flatness(sine, FPS))
    flat_noise = np.asarray(jax.jit(lambda v: signals.spectral_flatness(v, FPS))(noise))
    assert flat_sine < 0.05
    assert np.all(flat_noise > 0.35) and abs(np.mean(flat_noise) - np.exp(-np.euler_gamma)) < 0.1
    # float64 reference with scipy's periodogram
    f, p = scipy.signal.periodogram(noise[0], FPS, window="hann", nfft=2048)
    band = p[(f >= 0.7) & (f <= 3.0)]
    ref = np.exp(np.mean(np.log(band / band.mean() + 1e-10)))
    assert flat_noise[0] == pytest.approx(ref, abs=1e-4)
    assert float(signals.spectral_flatness(1e-3 * noise[0], FPS)) == pytest.approx(ref, abs=1e-4)
    g = np.asarray(jax.grad(lambda v: signals.spectral_flatness(v, FPS))(jnp.asarray(sine)))
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0


def test_pulse_strength_counts_the_peak_not_the_rest_of_the_band():
    """`signals.pulse_strength`: a sinusoid's standard deviation exactly (on a bin), whatever else the band
    holds away from its peak (a weaker second tone)."""
    t = np.arange(256) / FPS
    pulse = 1.5 * np.sqrt(2.0) * np.sin(2 * np.pi * (10 * FPS / 256) * t)
    other = 1.5 * np.sin(2 * np.pi * (22 * FPS / 256) * t)
    for trace in (pulse, pulse + other):
        strength = float(signals.pulse_strength(jnp.asarray(trace, jnp.float32), FPS))
        assert strength == pytest.approx(1.5, rel=1e-3)
    assert np.std(pulse + other) > 1.7  # the whole band's std would count the rest


@pytest.mark.parametrize("lag_s", [-0.1, 0.0, 0.05, 0.13])
def test_pulse_lag_finds_a_delay_and_gain_under_noise(lag_s):
    """`signals.pulse_lag`: a pulse delayed by `lag_s` and scaled by 0.6, under white noise and a
    weaker tone elsewhere in the band, reads that delay and gain against the clean pulse (off a
    bin: 1.23 Hz over 256 frames); a delay past `max_lag_s` is clipped to it."""
    rng = np.random.default_rng(4)
    t = np.arange(256) / FPS
    reference = np.sin(2 * np.pi * 1.23 * t)
    trace = 0.6 * np.sin(2 * np.pi * 1.23 * (t - lag_s)) + 0.3 * np.sin(2 * np.pi * 2.4 * t)
    trace = trace + rng.normal(0.0, 0.3, t.shape)
    lag, gain = signals.pulse_lag(jnp.asarray([trace, -trace], jnp.float32), reference, FPS)
    assert float(lag[0]) == pytest.approx(lag_s, abs=0.015)
    assert float(gain[0]) == pytest.approx(0.6, rel=0.1)
    # inverted, the pulse is half a period away: beyond the 0.2 s limit either way
    assert abs(float(lag[1])) == pytest.approx(0.2)
    late, _ = signals.pulse_lag(trace, reference, FPS, max_lag_s=0.02)
    assert float(late) == pytest.approx(float(np.clip(lag_s, -0.02, 0.02)), abs=0.015)


def test_pulse_component_keeps_the_bins_around_its_strongest_rate_or_a_given_one():
    """Two tones on whole DFT bins (300 samples at 30 Hz: 0.1 Hz apart), 0.9 Hz strong and 1.3 Hz
    weak: the component is the strong tone, or with `centre_hz` the tone at that rate (float64
    NumPy reference: each tone alone), a rate read elsewhere (`privacy_phys.pulse_rate_hz`)."""
    t = np.arange(300) / 30.0
    strong, weak = 2.0 * np.cos(2 * np.pi * 0.9 * t + 0.3), np.cos(2 * np.pi * 1.3 * t - 1.0)
    trace = (strong + weak).astype(np.float32)
    own = signals.pulse_component(trace, 30.0, half_width_hz=0.1)
    given = signals.pulse_component(trace, 30.0, half_width_hz=0.1, centre_hz=1.3)
    np.testing.assert_allclose(np.asarray(own, np.float64), strong, atol=2e-5)
    np.testing.assert_allclose(np.asarray(given, np.float64), weak, atol=2e-5)


def test_pulse_component_with_the_excess_leaves_no_band_bin_above_the_level():
    """`excess_over`: minus the component leaves the bins near the rate empty, no other band bin
    above `excess_over` times the trace's median band magnitude (a 3x tone at another rate is cut
    down to it), and the bins below that level and outside the band as they were."""
    rng = np.random.default_rng(4)
    t = np.arange(256) / 30.0
    trace = (
        rng.normal(0.0, 1.0, 256)
        + 3.0 * np.cos(2 * np.pi * 1.65 * t)
        + 2.0 * np.cos(2 * np.pi * 1.18 * t)
    )
    trace = (trace - trace.mean()).astype(np.float32)
    got = signals.pulse_component(trace, 30.0, half_width_hz=0.25, centre_hz=1.18, excess_over=1.5)
    before = np.fft.rfft(trace.astype(np.float64))
    after = np.fft.rfft(trace.astype(np.float64) - np.asarray(got, np.float64))
    freqs = np.fft.rfftfreq(256, 1.0 / 30.0)
    band = (freqs >= 0.7) & (freqs <= 3.0)
    near = np.abs(np.arange(freqs.size) - round(1.18 * 256 / 30.0)) <= 2
    level = 1.5 * np.median(np.abs(before[band]))
    assert np.all(np.abs(after[near]) < 1e-3 * level)
    assert np.all(np.abs(after[band & ~near]) <= level * (1 + 1e-4))
    assert np.abs(before[np.argmin(np.abs(freqs - 1.65))]) > 3 * level  # the tone was cut
    low = (band & ~near & (np.abs(before) < level)) | ~band
    np.testing.assert_allclose(after[low], before[low], atol=1e-3 * level)


def test_pulse_component_with_a_floor_leaves_the_noise_level_at_the_rate_not_a_hole():
    """`floor_over`: minus the component leaves each bin near the rate at `floor_over` times the
    trace's median band magnitude where it stood above it (in its own phase) and as it was where
    it did not; every other bin as it was (float64 NumPy reference)."""
    rng = np.random.default_rng(5)
    t = np.arange(256) / 30.0
    trace = rng.normal(0.0, 1.0, 256) + 4.0 * np.cos(2 * np.pi * 1.18 * t + 0.4)
    trace = (trace - trace.mean()).astype(np.float32)
    got = signals.pulse_component(trace, 30.0, half_width_hz=0.25, centre_hz=1.18, floor_over=1.0)
    before = np.fft.rfft(trace.astype(np.float64))
    after = np.fft.rfft(trace.astype(np.float64) - np.asarray(got, np.float64))
    freqs = np.fft.rfftfreq(256, 1.0 / 30.0)
    level = np.median(np.abs(before[(freqs >= 0.7) & (freqs <= 3.0)]))
    near = np.abs(np.arange(freqs.size) - round(1.18 * 256 / 30.0)) <= 2
    assert np.sum(np.abs(before[near]) > 2 * level) >= 2  # the tone stood out there
    expected = before * np.minimum(1.0, level / np.abs(before))
    np.testing.assert_allclose(after[near], expected[near], atol=1e-3 * level)
    np.testing.assert_allclose(after[~near], before[~near], atol=1e-3 * level)
