"""Target pulse waveforms: what the edited video should make an rPPG estimator read.

Every target is one continuous signal over the whole video, sampled at the video's frame rate; long
videos are edited in windows that each take their slice, so the pulse has no seams. `None` as a target
means *remove*: the editors then flatten the pulse spectrum instead of matching a waveform.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from rppgedit.errors import RppgEditError, one_line

KINDS = ("sinusoid", "pulse", "file", "none")


@dataclasses.dataclass(frozen=True)
class TargetSpec:
    """What to embed.

    Attributes:
      kind: "sinusoid" (the paper's target), "pulse" (realistic waveform with harmonics and
        heart-rate variability), "file" (a user waveform) or "none" (remove the pulse).
      hr_bpm: heart rate of the sinusoid/pulse targets, in beats per minute.
      phase: starting phase in radians; None draws it from `seed`.
      path: waveform file for kind "file" (.npy or .csv, see `from_file`).
      seed: seed of the random phase and of the heart-rate variability.
      hrv: kind "pulse": relative standard deviation of the instantaneous heart rate
        (`pulse_waveform`).
      hr_end_bpm: kinds "sinusoid" and "pulse": the rate at the last frame; the rate glides
        linearly from `hr_bpm` to it over the video (a slow change, e.g. a heart calming down).
        None keeps `hr_bpm` throughout.
    """

    kind: str = "sinusoid"
    hr_bpm: float = 120.0
    phase: float | None = 0.0
    path: str | None = None
    seed: int = 0
    hrv: float = 0.01
    hr_end_bpm: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise RppgEditError(
                f"unknown target kind {self.kind!r}; choose one of {', '.join(KINDS)}"
            )
        if self.kind in ("sinusoid", "pulse") and not 30.0 <= self.hr_bpm <= 240.0:
            raise RppgEditError(f"target heart rate {self.hr_bpm} bpm is outside 30-240 bpm")
        if self.kind == "file" and not self.path:
            raise RppgEditError("target kind 'file' needs a waveform path (--target_file)")
        if not 0.0 <= self.hrv <= 0.2:
            raise RppgEditError(f"target heart-rate variability {self.hrv} is outside 0-0.2")
        if self.hr_end_bpm is not None:
            if self.kind not in ("sinusoid", "pulse"):
                raise RppgEditError(
                    f"a target rate that changes (--target_hr_end) needs --target=sinusoid or "
                    f"pulse, not {self.kind}"
                )
            if not 30.0 <= self.hr_end_bpm <= 240.0:
                raise RppgEditError(
                    f"target end heart rate {self.hr_end_bpm} bpm is outside 30-240 bpm"
                )

    @property
    def single_rate_bpm(self) -> float | None:
        """The one rate the target holds (a sinusoid or pulse without `hr_end_bpm`), else None
        (removal, a waveform file, a gliding rate: read from the waveform instead)."""
        if self.kind in ("sinusoid", "pulse") and self.hr_end_bpm is None:
            return self.hr_bpm
        return None


def _phase(spec: TargetSpec) -> float:
    if spec.phase is not None:
        return float(spec.phase)
    return float(np.random.default_rng(spec.seed).uniform(0.0, 2.0 * np.pi))


def sinusoid(
    hr_bpm: float,
    num_frames: int,
    fps: float,
    phase: float = 0.0,
    hr_end_bpm: float | None = None,
) -> np.ndarray:
    """A cosine at `hr_bpm` (gliding linearly to `hr_end_bpm` at the last frame, when given):
    float32 (num_frames,), unit amplitude."""
    if hr_end_bpm is None:
        t = np.arange(num_frames) / fps
        return np.cos(2.0 * np.pi * hr_bpm / 60.0 * t + phase).astype(np.float32)
    rate_hz = _rates_bpm(hr_bpm, hr_end_bpm, num_frames) / 60.0
    return np.cos(_beat_phase(rate_hz, fps, phase)).astype(np.float32)


def _rates_bpm(hr_bpm: float, hr_end_bpm: float | None, num_frames: int):
    """The mean rate at each frame: `hr_bpm` throughout, or a linear glide to `hr_end_bpm`."""
    if hr_end_bpm is None:
        return hr_bpm
    return np.linspace(hr_bpm, hr_end_bpm, num_frames)


def _beat_phase(rate_hz: np.ndarray, fps: float, phase: float) -> np.ndarray:
    """The phase of a beat whose rate (Hz, one per frame) changes frame by frame, integrated
    from `phase`."""
    return phase + 2.0 * np.pi * np.cumsum(rate_hz) / fps


def _smooth_noise(rng: np.random.Generator, num: int, fps: float, cutoff_hz: float) -> np.ndarray:
    """Zero-mean, unit-std noise low-passed below `cutoff_hz` (a Gaussian spectral taper)."""
    spectrum = np.fft.rfft(rng.standard_normal(num))
    freqs = np.fft.rfftfreq(num, 1.0 / fps)
    smooth = np.fft.irfft(spectrum * np.exp(-0.5 * (freqs / cutoff_hz) ** 2), num)
    return (smooth - smooth.mean()) / (smooth.std() + 1e-12)


# Relative amplitudes and phases of the first harmonics of a fingertip/face PPG beat: a steep systolic
# upstroke and a dicrotic notch on the downstroke (shape as in Allen 2007, Physiol. Meas. 28:R1).
_HARMONICS = ((1.0, 0.0), (0.45, -0.9), (0.18, -1.9), (0.07, -2.8))


def pulse_waveform(
    hr_bpm: float,
    num_frames: int,
    fps: float,
    *,
    hrv: float = 0.01,
    phase: float = 0.0,
    seed: int = 0,
    hr_end_bpm: float | None = None,
) -> np.ndarray:
    """A realistic blood-volume pulse: harmonics plus slow heart-rate variability.

    Args:
      hr_bpm: mean heart rate in bpm.
      num_frames: number of samples.
      fps: sampling rate in Hz.
      hrv: relative standard deviation of the instantaneous heart rate (smooth, below 0.15 Hz, the
        low-frequency band of heart-rate variability).
      phase: starting phase of the beat in radians.
      seed: seed of the variability.
      hr_end_bpm: the mean rate at the last frame (a linear glide from `hr_bpm`); None: constant.

    Returns:
      float32 (num_frames,), zero mean, unit standard deviation, rising with blood volume.
    """
    rng = np.random.default_rng(seed)
    rate_hz = (
        _rates_bpm(hr_bpm, hr_end_bpm, num_frames)
        / 60.0
        * (1.0 + hrv * _smooth_noise(rng, num_frames, fps, 0.15))
    )
    beat_phase = _beat_phase(rate_hz, fps, phase)
    wave = sum(a * np.cos(k * beat_phase + p) for k, (a, p) in enumerate(_HARMONICS, start=1))
    wave = wave - wave.mean()
    return (wave / (wave.std() + 1e-12)).astype(np.float32)


def from_file(path: str | pathlib.Path, num_frames: int, fps: float) -> np.ndarray:
    """A user waveform resampled to the video's frames.

    Accepted: `.npy` with shape (N,) (already at the video's fps) or (N, 2) (time in s, value); `.csv`
    / `.txt` with one column (at the video's fps) or two columns (time in s, value), an optional header
    row. Times are shifted to start at 0 and linearly interpolated at `arange(num_frames) / fps`. The
    waveform must cover the whole video.

    Returns:
      float32 (num_frames,), zero mean, unit standard deviation.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise RppgEditError(f"{path}: target waveform file not found")
    try:
        if path.suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            data = np.genfromtxt(path, delimiter=",", dtype=np.float64)
            if data.ndim >= 1 and np.isnan(data.reshape(len(data), -1)[0]).all():
                data = data[1:]  # header row
    except (ValueError, OSError) as err:
        raise RppgEditError(f"{path}: not a readable waveform ({one_line(err)})") from None
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 2 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim == 1:
        times, values = np.arange(len(data)) / fps, data
    elif data.ndim == 2 and data.shape[1] == 2:
        times, values = data[:, 0] - data[0, 0], data[:, 1]
    else:
        raise RppgEditError(f"{path}: expected one column (values) or two (time s, value)")
    if len(values) < 2 or not np.all(np.isfinite(values)) or not np.all(np.diff(times) > 0):
        raise RppgEditError(f"{path}: waveform needs >= 2 finite samples with increasing times")
    wanted = np.arange(num_frames) / fps
    if wanted[-1] > times[-1] + 1.0 / fps:
        raise RppgEditError(
            f"{path}: waveform covers {times[-1]:.2f} s but the video lasts {wanted[-1]:.2f} s"
        )
    wave = np.interp(wanted, times, values)
    wave = wave - wave.mean()
    std = wave.std()
    if std == 0:
        raise RppgEditError(f"{path}: waveform is constant")
    return (wave / std).astype(np.float32)


def make_target(spec: TargetSpec, num_frames: int, fps: float) -> np.ndarray | None:
    """The target waveform (num_frames,) for `spec`, or None for removal."""
    if spec.kind == "none":
        return None
    if spec.kind == "file":
        return from_file(spec.path, num_frames, fps)
    if spec.kind == "pulse":
        return pulse_waveform(
            spec.hr_bpm,
            num_frames,
            fps,
            hrv=spec.hrv,
            phase=_phase(spec),
            seed=spec.seed,
            hr_end_bpm=spec.hr_end_bpm,
        )
    return sinusoid(spec.hr_bpm, num_frames, fps, _phase(spec), spec.hr_end_bpm)
