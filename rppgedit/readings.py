"""Reading heart rates from clips with any registered estimator: the one path every report uses."""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable

import numpy as np

from rppgedit import progress as progress_bars
from rppgedit import signals, tables
from rppgedit.estimators import registry, roi
from rppgedit.estimators.roi import spatial_mean
from rppgedit.windows import overlap_add, window_starts

VIDEO_WINDOW = 128  # frames per window for deep estimators (the open-rppg PhysNet training length)
# Deep-estimator windows a `StreamReader` leaves running on the device before it waits for one.
_IN_FLIGHT = 4


def estimate_bvp(name: str, clip, mask, fps: float, params=None) -> np.ndarray:
    """BVP (T,) of a whole clip with estimator `name`.

    Trace methods see the whole skin-masked mean trace at once. Video methods (deep models) see
    windows of `VIDEO_WINDOW` frames (the length they were trained on), standardised per window and
    blended with cross-fades; a clip shorter than a window is padded by repeating its last frame.
    """
    est = registry.get(name)
    if est.input == "trace":
        return np.asarray(est.bvp(clip, fps, mask=mask), np.float64)
    if params is None:
        params = est.load_params()
    clip = np.asarray(clip, np.float32)
    num = clip.shape[0]
    if num < VIDEO_WINDOW:
        pad = np.repeat(clip[-1:], VIDEO_WINDOW - num, axis=0)
        return np.asarray(est.fn(params, np.concatenate([clip, pad]), fps), np.float64)[:num]
    starts = window_starts(num, VIDEO_WINDOW, VIDEO_WINDOW // 4)
    outs = np.stack([np.asarray(est.fn(params, clip[s : s + VIDEO_WINDOW], fps)) for s in starts])
    return overlap_add(outs, starts, num).astype(np.float64)


def read_heart_rates(
    clip,
    mask,
    fps: float,
    names: Iterable[str],
    params: dict | None = None,
    *,
    with_bvp=False,
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """{estimator: {"hr_bpm", "snr_db"}} for a clip (T,H,W,3) in [0,1] and its skin mask (T,H,W);
    with `with_bvp`, also the BVP (T,) each reading was taken from, under "bvp".

    `params` caches the deep estimators' weights: those it lacks are loaded once and stored in it,
    so a caller that reads several clips passes the same dict and loads each model once.
    `progress`: a bar "readings" advanced by one per estimator (`rppgedit.progress`)."""
    params = {} if params is None else params
    names = list(names)
    out = {}
    for name in progress_bars.wrap(names, "readings", progress, unit="est"):
        if registry.get(name).input == "video" and params.get(name) is None:
            params[name] = registry.get(name).load_params()
        out[name] = _reading(estimate_bvp(name, clip, mask, fps, params.get(name)), fps, with_bvp)
    return out


def read_trace(names: Iterable[str], trace, fps: float) -> dict[str, dict[str, float]]:
    """{estimator: {"hr_bpm", "snr_db"}} of the trace estimators `names` (GREEN, POS, ...) on a
    skin-masked mean trace (T,3), as `read_heart_rates` reads them from the clip it came from."""
    trace = np.asarray(trace, np.float32)
    out = {}
    for name in names:
        est = registry.get(name)
        if est.input != "trace":
            raise ValueError(f"estimator {name!r} reads video, not a trace")
        out[name] = _reading(np.asarray(est.fn(trace, fps), np.float64), fps, False)
    return out


def regional_pulses(clip, mask, fps: float, estimator: str = "pos") -> dict:
    """The pulse of each face region (`roi.FACE_REGIONS`) of a face crop (T,S,S,3) in [0,1] with its
    skin mask (T,S,S), read by a trace estimator, and how the regions' pulses agree
    (`regional_agreement` of `roi.region_traces`)."""
    clip = np.asarray(clip, np.float32)
    mask = np.asarray(mask, bool)
    return regional_agreement(
        roi.region_traces(clip, mask, spatial_mean(clip, mask)), fps, estimator
    )


def regional_agreement(traces, fps: float, estimator: str = "pos") -> dict:
    """The pulse of each face region from its RGB trace ("k t 3", `roi.FACE_REGIONS` in order), read
    by a trace estimator, and how the regions' pulses agree.

    Returns {"hr_bpm": {region: rate}, "coherence": {"a~b": (r, lag)}}: for each pair of regions
    the Pearson correlation r of their band-passed pulses at the lag (frames, within
    `signals.MAX_REGION_LAG_S`) where it is highest, the lag counted as the frames region b trails
    region a."""
    bvps = {}
    for name, trace in zip(roi.FACE_REGIONS, np.asarray(traces, np.float32), strict=True):
        bvp = np.asarray(registry.get(estimator).fn(trace, fps), np.float64)
        bvps[name] = np.asarray(signals.bandpass(bvp, fps), np.float64)
    hr = {name: float(signals.heart_rate(b, fps)) for name, b in bvps.items()}
    reach = int(signals.MAX_REGION_LAG_S * fps)
    lags = range(-reach, reach + 1)
    coherence = {}
    names = list(bvps)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ua, ub = bvps[a], bvps[b]
            best = max((_shifted_pearson(ua, ub, lag), lag) for lag in lags)
            coherence[f"{a}~{b}"] = (float(best[0]), int(best[1]))
    return {"hr_bpm": hr, "coherence": coherence}


def _shifted_pearson(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Pearson of a[t] and b[t + lag] over the frames both cover."""
    if lag >= 0:
        a, b = a[: len(a) - lag], b[lag:]
    else:
        a, b = a[-lag:], b[: len(b) + lag]
    return float(np.corrcoef(a, b)[0, 1])


def _reading(bvp: np.ndarray, fps: float, with_bvp: bool) -> dict:
    hr = float(signals.heart_rate(bvp, fps))
    snr = float(signals.pulse_snr(bvp, fps, hr))
    out = {"hr_bpm": hr, "snr_db": snr if math.isfinite(snr) else float("nan")}
    if with_bvp:
        out["bvp"] = bvp
    return out


class StreamReader:
    """`read_heart_rates` of a clip that arrives chunk by chunk, holding a window, not the clip.

    Trace methods keep the skin-masked mean trace (T,3); video methods run on each `VIDEO_WINDOW`
    window as soon as its frames are in (the windows of `estimate_bvp`) and keep its BVP. A clip
    shorter than a window is kept whole and read at the end, as `estimate_bvp` reads it.
    """

    def __init__(self, names: Iterable[str], num_frames: int, fps: float, params=None):
        self.names, self.num, self.fps = list(names), num_frames, fps
        self.params = {} if params is None else params
        self.video = [n for n in self.names if registry.get(n).input == "video"]
        for name in self.video:
            if self.params.get(name) is None:
                self.params[name] = registry.get(name).load_params()
        self.whole = num_frames < VIDEO_WINDOW
        self.starts = (
            [] if self.whole else window_starts(num_frames, VIDEO_WINDOW, VIDEO_WINDOW // 4)
        )
        self.traces, self.region_traces, self.outs = [], [], {n: [] for n in self.video}
        self._in_flight: collections.deque = collections.deque()  # outs not yet on the host
        self.frames, self.frames_start, self.received, self.next_window = None, 0, 0, 0

    def add(self, clip, mask) -> None:
        """Appends frames (n,S,S,3) float in [0,1] and their skin mask (n,S,S)."""
        clip, mask = np.asarray(clip, np.float32), np.asarray(mask, bool)
        self.traces.append(np.asarray(spatial_mean(clip, mask)))
        self.region_traces.append(roi.region_traces(clip, mask, self.traces[-1]))
        self.received += len(clip)
        if not self.video:
            return
        held = clip if self.frames is None else np.concatenate([self.frames, clip])
        while (
            not self.whole
            and self.next_window < len(self.starts)
            and self.starts[self.next_window] + VIDEO_WINDOW <= self.received
        ):
            a = self.starts[self.next_window] - self.frames_start
            for name in self.video:
                out = registry.get(name).fn(self.params[name], held[a : a + VIDEO_WINDOW], self.fps)
                self.outs[name].append(out)  # not waited for: XLA may be busy with an edit
                self._in_flight.append((name, len(self.outs[name]) - 1))
            while len(self._in_flight) > _IN_FLIGHT:  # each holds its window of frames
                name, k = self._in_flight.popleft()
                self.outs[name][k] = np.asarray(self.outs[name][k])
            self.next_window += 1
            keep = (
                self.starts[self.next_window]
                if self.next_window < len(self.starts)
                else self.received
            )
            held, self.frames_start = held[keep - self.frames_start :], keep
        self.frames = held

    def regions(self) -> dict:
        """`regional_agreement` of the face regions' traces (every frame must be in)."""
        if self.received != self.num:
            raise ValueError(f"read {self.received} of {self.num} frames")
        return regional_agreement(np.concatenate(self.region_traces, axis=1), self.fps)

    def readings(self, *, with_bvp: bool = False, step=None) -> dict[str, dict[str, float]]:
        """The readings of `read_heart_rates` on the whole clip (every frame must be in); `step`
        (e.g. a progress bar's `update`) is called with 1 after each estimator's reading."""
        if self.received != self.num:
            raise ValueError(f"read {self.received} of {self.num} frames")
        trace = np.concatenate(self.traces) if self.traces else np.zeros((0, 3), np.float32)
        out = {}
        for name in self.names:
            est = registry.get(name)
            if est.input == "trace":
                bvp = np.asarray(est.fn(trace, self.fps), np.float64)
            elif self.whole:
                pad = np.repeat(self.frames[-1:], VIDEO_WINDOW - self.num, axis=0)
                clip = np.concatenate([self.frames, pad])
                bvp = np.asarray(est.fn(self.params[name], clip, self.fps), np.float64)[: self.num]
            else:
                windows = np.stack([np.asarray(w) for w in self.outs[name]])
                bvp = overlap_add(windows, self.starts, self.num).astype(np.float64)
            out[name] = _reading(bvp, self.fps, with_bvp)
            if step is not None:
                step(1)
        return out


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A plain-text table; `columns` are (key, header, format spec) triples (`tables.text_table`)."""
    return tables.text_table(rows, columns)
