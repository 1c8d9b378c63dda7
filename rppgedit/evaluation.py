"""Reading heart rates from clips with any registered estimator: the one path every report uses."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from rppgedit import signals
from rppgedit.estimators import registry
from rppgedit.windows import overlap_add, window_starts

VIDEO_WINDOW = 128  # frames per window for deep estimators (the open-rppg PhysNet training length)


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
    clip, mask, fps: float, names: Iterable[str], params: dict | None = None, *, with_bvp=False
) -> dict[str, dict[str, float]]:
    """{estimator: {"hr_bpm", "snr_db"}} for a clip (T,H,W,3) in [0,1] and its skin mask (T,H,W);
    with `with_bvp`, also the BVP (T,) each reading was taken from, under "bvp".

    `params` caches the deep estimators' weights: those it lacks are loaded once and stored in it,
    so a caller that reads several clips passes the same dict and loads each model once."""
    params = {} if params is None else params
    out = {}
    for name in names:
        if registry.get(name).input == "video" and params.get(name) is None:
            params[name] = registry.get(name).load_params()
        bvp = estimate_bvp(name, clip, mask, fps, params.get(name))
        hr = float(signals.heart_rate(bvp, fps))
        snr = float(signals.pulse_snr(bvp, fps, hr))
        out[name] = {"hr_bpm": hr, "snr_db": snr if math.isfinite(snr) else float("nan")}
        if with_bvp:
            out[name]["bvp"] = bvp
    return out


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A plain-text table; `columns` are (key, header, format spec) triples."""
    header = [h for _, h, _ in columns]
    body = [[("" if r.get(k) is None else format(r[k], f)) for k, _, f in columns] for r in rows]
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)
