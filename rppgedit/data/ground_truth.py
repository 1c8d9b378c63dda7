"""Ground-truth pulse files: UBFC-rPPG `ground_truth.txt` and time,BVP CSV files.

Each loader returns a `GroundTruth` with the waveform on its own time axis; `heart_rate_of` resamples
it to a uniform grid and reads the heart rate with the project's one HR function.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from rppgedit import signals
from rppgedit.errors import RppgEditError, one_line


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """A contact pulse waveform.

    Attributes:
      times: (N,) seconds from the first sample (increasing).
      bvp: (N,) waveform values.
      hr_bpm: per-sample heart rate when the file has one (UBFC), else None.
    """

    times: np.ndarray
    bvp: np.ndarray
    hr_bpm: np.ndarray | None = None


def _load_text(path: pathlib.Path, **kw) -> np.ndarray:
    if not path.is_file():
        raise RppgEditError(f"{path}: ground-truth file not found")
    try:
        data = np.genfromtxt(path, dtype=np.float64, **kw)
    except ValueError as err:
        raise RppgEditError(f"{path}: not a numeric ground-truth file ({one_line(err)})") from None
    if data.size == 0:
        raise RppgEditError(f"{path}: ground-truth file is empty")
    return data


def load_ubfc(path) -> GroundTruth:
    """UBFC-rPPG DATASET_2 `ground_truth.txt`: three rows (PPG, HR in bpm, time in s)."""
    path = pathlib.Path(path)
    data = _load_text(path)
    if data.ndim != 2 or data.shape[0] != 3 or np.isnan(data).any():
        raise RppgEditError(f"{path}: expected 3 rows (PPG, HR, time) of equal length")
    times = data[2] - data[2, 0]
    return GroundTruth(times=times, bvp=data[0], hr_bpm=data[1])


def load_csv(path) -> GroundTruth:
    """A CSV of (timestamp in s, BVP) with an optional header row (e.g. PhysRecorder `BVP.csv`)."""
    path = pathlib.Path(path)
    data = _load_text(path, delimiter=",")
    if data.ndim == 2 and np.isnan(data[0]).all():
        data = data[1:]
    if data.ndim != 2 or data.shape[1] < 2 or np.isnan(data[:, :2]).any():
        raise RppgEditError(f"{path}: expected two numeric columns (time s, BVP)")
    times = data[:, 0] - data[0, 0]
    if not np.all(np.diff(times) > 0):
        raise RppgEditError(f"{path}: timestamps are not increasing")
    return GroundTruth(times=times, bvp=data[:, 1])


def load(path) -> GroundTruth:
    """Picks the loader by content: 3 whitespace-separated rows (UBFC) or a CSV."""
    path = pathlib.Path(path)
    if path.suffix.lower() == ".csv":
        return load_csv(path)
    return load_ubfc(path)


def resample(gt: GroundTruth, fps: float, start_s: float = 0.0, duration_s: float | None = None):
    """The waveform at `fps` on [start_s, start_s + duration_s) (linear interpolation)."""
    end = gt.times[-1] if duration_s is None else min(gt.times[-1], start_s + duration_s)
    grid = np.arange(start_s, end, 1.0 / fps)
    if grid.size < 2:
        raise RppgEditError("ground truth does not cover the requested time span")
    return np.interp(grid, gt.times, gt.bvp)


def heart_rate_of(gt: GroundTruth, fps: float = 30.0, **kw) -> float:
    """Heart rate (bpm) of the ground-truth waveform over `kw` span, via `signals.heart_rate`."""
    wave = resample(gt, fps, **kw)
    wave = signals.bandpass(signals.detrend(wave - wave.mean()), fps)
    return float(signals.heart_rate(wave, fps))
