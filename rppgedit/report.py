"""The report a person reads: a one-line verdict, the settings and versions, and `OUT.report.png`.

`finish` adds to an edit's report dict (the rows of `edit_report.report_rows` / `pipeline.run_edit`) what a
reader needs to trust and reproduce it: the verdict computed from the rows, what SNR means, the
rppgedit / JAX versions, the resolved settings (the `EditJob` and the editor's config, seed
included) and the devices. `figure` draws the report's picture (spectra before and after per
estimator family, the difference map, the target) and `write_png` writes it beside the report.

`Report`, `Readings` and `Audit` are what the Python API (`rppgedit.api`) returns: small objects
with a readable `repr` and an HTML form for notebooks.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import io as _bytes_io
import math
import os
import platform
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# A reading "reads" a rate when it is within this many bpm of it (the surrogates' test,
# `edit_report.FOOLED_BPM`).
TOLERANCE_BPM = 3.0

SNR_EXPLANATION = (
    "SNR (dB) says how much the pulse stands out at the rate read: 10 log10 of the spectral power "
    "within 6 bpm of that rate (and of its first harmonic) over the power in the rest of the "
    "40-180 bpm band. 0 dB means as much power at the peak as in the rest of the band; negative "
    "means the peak is weaker than the rest of the band together (a weak or noisy reading), "
    "which is common on short clips and after an edit that flattens the spectrum."
)

FAMILIES = ("classical", "deep", "attacker")


def family_of(name: str) -> str:
    """ "classical" (trace methods), "deep" (rppgedit's own networks) or "attacker" (open-rppg)."""
    from rppgedit.errors import RppgEditError
    from rppgedit.estimators import registry

    try:
        return "classical" if registry.get(name).input == "trace" else "deep"
    except RppgEditError:  # not a registered estimator: an open-rppg attacker
        return "attacker"


# --------------------------------------------------------------------------------------------
# The verdict.


def _reads(hr, rate) -> bool:
    return hr is not None and rate is not None and abs(hr - rate) <= TOLERANCE_BPM


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _face_target(summary: Mapping, face: int) -> float | None:
    """The face's target rate: the report's, or (a waveform file) read from it by the surrogates."""
    if summary.get("target_hr_bpm") is not None:
        return float(summary["target_hr_bpm"])
    for entry in summary.get("surrogates", []):
        if entry.get("face") == face and entry.get("target_hr_bpm") is not None:
            return float(entry["target_hr_bpm"])
    return None


def verdict_counts(summary: Mapping) -> list[dict]:
    """Per edited face, the counts the verdict states: {"face", "remove", "estimators", "original_hr_bpm"
    (median of the readings before), "target_hr_bpm" (None: removal), "read_target" (readings after
    within `TOLERANCE_BPM` of the target; None for removal), "read_original" (readings after
    within it of the original), "after_min_bpm", "after_max_bpm", "consensus_after_bpm" and
    "agree_after" (the rate most readings after agree on, and how many: `consensus`)}."""
    rows = summary.get("rows", [])
    out = []
    for face in dict.fromkeys(r.get("face", 0) for r in rows):
        mine = [r for r in rows if r.get("face", 0) == face]
        before = [r["hr_before"] for r in mine if r.get("hr_before") is not None]
        after = [r["hr_after"] for r in mine if r.get("hr_after") is not None]
        original = float(np.median(before)) if before else None
        target = _face_target(summary, face)
        remove = (summary.get("target") or {}).get("kind") == "none"
        rate, agrees = consensus(after)
        out.append(
            {
                "face": face,
                "remove": remove,
                "estimators": len(mine),
                "original_hr_bpm": original,
                "target_hr_bpm": None if remove else target,
                "read_target": None if remove else sum(_reads(h, target) for h in after),
                "read_original": sum(_reads(h, original) for h in after),
                "after_min_bpm": min(after) if after else None,
                "after_max_bpm": max(after) if after else None,
                "consensus_after_bpm": rate,
                "agree_after": sum(agrees),
            }
        )
    return out


def agreement_is_readable(agreeing: int, total: int) -> bool:
    """A pulse is readable when at least half the readers, and at least two, agree on one rate."""
    return agreeing >= max(2, math.ceil(total / 2))


def _face_clause(c: dict) -> str:
    n, tol = c["estimators"], f"{TOLERANCE_BPM:g}"
    noun = _plural(n, "estimator", "estimators")
    original = c["original_hr_bpm"]
    kept = c["read_original"]
    if c["target_hr_bpm"] is None and not c.get("remove", True):  # a waveform of unknown rate
        return (
            f"after the edit {n} {noun} read {c['after_min_bpm']:.0f}-{c['after_max_bpm']:.0f} "
            f"bpm; {kept} still {_plural(kept, 'reads', 'read')} the original {original:.1f} bpm"
        )
    if c["target_hr_bpm"] is None:  # removal
        gone = n - kept
        text = f"{gone}/{n} {noun} no longer read the original {original:.1f} bpm (+/- {tol})"
        if n:
            text += (
                f"; after the edit they read {c['after_min_bpm']:.0f}-{c['after_max_bpm']:.0f} bpm"
            )
        agree, rate = c.get("agree_after", 0), c.get("consensus_after_bpm")
        if rate is not None and agreement_is_readable(agree, n):
            text += f", but {agree} agree on {rate:.1f} bpm, "
            if original is not None and _reads(rate, 2.0 * original):
                text += "twice the original rate, which gives it away"
            elif original is not None and _reads(rate, original / 2.0):
                text += "half the original rate, which gives it away"
            else:
                text += "a rate an observer would take for the pulse"
        elif rate is not None:
            text += f", at most {agree} of {n} on one rate"
        return text
    text = f"{c['read_target']}/{n} {noun} read {round(c['target_hr_bpm'], 1):g} +/- {tol} bpm; "
    if kept == 0:
        return text + f"none reads the original {original:.1f} bpm"
    return text + f"{kept} still {_plural(kept, 'reads', 'read')} the original {original:.1f} bpm"


def verdict(summary: Mapping) -> str:
    """The one line a person reads first, computed from the report's rows, e.g. "10/10 estimators
    read 120 +/- 3 bpm; none reads the original 70.5 bpm; PSNR 59.2 dB; 4.1 s of compute per 10 s
    of video"."""
    counts = verdict_counts(summary)
    if not counts:
        return "no face was edited"
    clauses = [_face_clause(c) for c in counts]
    if len(counts) > 1:
        clauses = [f"face {c['face']}: {text}" for c, text in zip(counts, clauses, strict=True)]
    psnr = summary.get("psnr_db")
    if psnr is not None and math.isfinite(psnr):
        clauses.append(f"PSNR {psnr:.1f} dB")
    seconds = summary.get("seconds") or {}
    frames, fps = summary.get("frames"), summary.get("fps")
    if seconds and frames and fps:
        per_ten = sum(seconds.values()) / (frames / fps) * 10.0
        clauses.append(f"{per_ten:.1f} s of compute per 10 s of video")
    return "; ".join(clauses)


# --------------------------------------------------------------------------------------------
# Versions, settings and the report dict.


def versions() -> dict[str, str]:
    """rppgedit, JAX, jaxlib, NumPy and Python versions."""
    import importlib.metadata

    import jax

    from rppgedit import __version__

    try:
        jaxlib = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        jaxlib = "unknown"
    return {
        "rppgedit": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def settings(job, cfg=None) -> dict:
    """The resolved settings: every field of the `EditJob` (seed included) and of the editor's
    config (steps, learning rate, lambda = fidelity_weight, surrogates, ...)."""
    out = {"job": dataclasses.asdict(job)}
    if cfg is not None and dataclasses.is_dataclass(cfg):
        out["editor"] = dataclasses.asdict(cfg)
    return out


def finish(summary: dict, job=None, cfg=None) -> dict:
    """Adds the verdict, the SNR explanation, versions, settings and devices to an edit's report
    dict (in place; existing keys are kept) and returns it."""
    import jax

    summary["verdict"] = verdict(summary)
    summary["verdict_counts"] = verdict_counts(summary)
    summary["tolerance_bpm"] = TOLERANCE_BPM
    summary["snr_explanation"] = SNR_EXPLANATION
    summary["versions"] = versions()
    if job is not None:
        summary["settings"] = settings(job, cfg)
    summary.setdefault("devices", [str(d) for d in jax.devices()])
    return summary


PLOTS_INSTALL = "pip install 'rppgedit[plots]'"


def can_plot() -> bool:
    """Whether matplotlib (the ``plots`` extra) is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def import_plotting_soon() -> None:
    """Imports the matplotlib modules of `figure` on a thread: for a caller that waits on other
    work first (an edit), so that the report's end does not (0.4 s of the shared clip's command)."""

    def load():
        from matplotlib import figure  # noqa: F401
        from matplotlib.backends import backend_agg  # noqa: F401

    if can_plot():
        threading.Thread(target=load, name="rppgedit-import-plots", daemon=True).start()


def plots_wanted(plots: bool | None) -> bool:
    """Whether to draw the figures: None means "when matplotlib is installed"; True without it
    is a one-line error saying what to install."""
    from rppgedit.errors import RppgEditError

    if plots is None:
        return can_plot()
    if plots and not can_plot():
        raise RppgEditError(f"plots need matplotlib: {PLOTS_INSTALL} (or turn plots off)")
    return bool(plots)


def png_path_for(report_path) -> str:
    """OUT.report.png beside OUT.report.json."""
    path = os.fspath(report_path)
    return (path[: -len(".json")] if path.endswith(".json") else path) + ".png"


# --------------------------------------------------------------------------------------------
# The picture.


@dataclasses.dataclass
class PlotData:
    """What `figure` draws (one face).

    Attributes:
      fps: frame rate of the BVPs.
      bvps: {"before": {reader: (T,) BVP}, "after": {...}}; "after" may be absent (a reading).
      families: {reader: "classical" | "deep" | "attacker"}.
      bvp_fps: {reader: rate} for BVPs at another rate than `fps` (open-rppg's 30 fps).
      original_frame, edited_frame: (h, w, 3) uint8 face regions of one frame, or None.
      frame_index: which frame.
      target: (T,) target waveform, None for removal or a reading.
      target_hr_bpm, original_hr_bpm: rates marked on the spectra.
      remove: the edit removed the pulse.
      title: the figure's title (the verdict).
    """

    fps: float
    bvps: dict[str, dict[str, np.ndarray]]
    families: dict[str, str]
    bvp_fps: dict[str, float] = dataclasses.field(default_factory=dict)
    original_frame: np.ndarray | None = None
    edited_frame: np.ndarray | None = None
    frame_index: int | None = None
    target: np.ndarray | None = None
    target_hr_bpm: float | None = None
    original_hr_bpm: float | None = None
    remove: bool = False
    title: str = ""


BAND_BPM = (40.0, 180.0)


def _spectrum(bvp, fps: float):
    """(bpm, PSD normalised to its peak) of a BVP inside `BAND_BPM`."""
    from rppgedit import signals

    x = np.asarray(bvp, np.float64)
    x = (x - x.mean()) / (x.std() + 1e-12)
    nfft = max(2048, 1 << int(np.ceil(np.log2(2 * max(x.size, 1)))))
    freqs, psd = signals.periodogram(x, fps, nfft=nfft)
    bpm, psd = np.asarray(freqs) * 60.0, np.asarray(psd)
    keep = (bpm >= BAND_BPM[0]) & (bpm <= BAND_BPM[1])
    p = psd[keep]
    return bpm[keep], p / (p.max() + 1e-30)


def spectra_title(family: str) -> str:
    return f"{family} readers: spectra" if family == "attacker" else f"{family} estimators: spectra"


DIFFERENCE_TITLE = "difference |edited - original|"
TARGET_TITLE = "target"


def figure(data: PlotData):
    """The report's figure (a matplotlib `Figure`, Agg canvas, no pyplot): one panel of spectra
    per estimator family (each reader's normalised PSD thin, the family's mean thick; before in
    blue, after in red; the original rate dashed, the target dotted), the difference map of one
    frame (grey levels, mean over RGB), and the target waveform against an edited reading.

    Panel titles start with `spectra_title(family)`, `DIFFERENCE_TITLE` and `TARGET_TITLE`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    families = [f for f in FAMILIES if any(v == f for v in data.families.values())]
    edited = "after" in data.bvps
    panels = len(families) + (2 if edited else 0)
    cols = 2 if panels > 1 else 1
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(5.2 * cols, 3.4 * rows + 0.6))
    FigureCanvasAgg(fig)
    axes = list(np.atleast_1d(fig.subplots(rows, cols)).ravel())
    for ax in axes[panels:]:
        ax.remove()
    for ax, family in zip(axes, families, strict=False):
        names = [n for n, f in data.families.items() if f == family and n in data.bvps["before"]]
        for key, colour, label in (("before", "C0", "before"), ("after", "C3", "after")):
            if key not in data.bvps:
                continue
            curves = []
            for name in names:
                bvp = data.bvps[key].get(name)
                if bvp is None or len(bvp) < 4:
                    continue
                bpm, p = _spectrum(bvp, data.bvp_fps.get(name, data.fps))
                ax.plot(bpm, p, color=colour, lw=0.6, alpha=0.35)
                curves.append(np.interp(np.linspace(*BAND_BPM, 281), bpm, p))
            if curves:
                ax.plot(
                    np.linspace(*BAND_BPM, 281), np.mean(curves, 0), color=colour, lw=2, label=label
                )
        if data.original_hr_bpm is not None:
            ax.axvline(data.original_hr_bpm, color="k", ls="--", lw=1, label="original")
        if data.target_hr_bpm is not None and not data.remove:
            ax.axvline(data.target_hr_bpm, color="g", ls=":", lw=1.8, label="target")
        ax.set_title(f"{spectra_title(family)} ({len(names)})", fontsize=9)
        ax.set_xlabel("heart rate (bpm)", fontsize=8)
        ax.set_ylabel("PSD (normalised)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper right")
    if edited:
        ax = axes[len(families)]
        if data.original_frame is not None and data.edited_frame is not None:
            diff = np.abs(
                np.asarray(data.edited_frame, np.float64) - np.asarray(data.original_frame)
            )
            image = ax.imshow(diff.mean(-1), cmap="magma", vmin=0.0, vmax=max(1.0, diff.max()))
            bar = fig.colorbar(image, ax=ax, shrink=0.85)
            bar.set_label("grey levels", fontsize=8)
            bar.ax.tick_params(labelsize=7)
            where = f", frame {data.frame_index}" if data.frame_index is not None else ""
            ax.set_title(f"{DIFFERENCE_TITLE}{where}", fontsize=9)
        else:
            ax.set_title(DIFFERENCE_TITLE, fontsize=9)
            ax.text(0.5, 0.5, "no frame", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        _target_panel(axes[len(families) + 1], data)
    fig.suptitle(_wrap(data.title), fontsize=9)
    fig.tight_layout()
    return fig


def _target_panel(ax, data: PlotData) -> None:
    """The target waveform (or, for removal, the original reading) against an edited reading."""
    first = next(iter(data.families), None)
    after = data.bvps.get("after", {}).get(first) if first else None
    seconds = 10.0
    if data.remove or data.target is None:
        before = data.bvps["before"].get(first) if first else None
        shown = [(before, "C0", f"{first} before"), (after, "C3", f"{first} after")]
        title = f"{TARGET_TITLE}: remove the pulse"
    else:
        shown = [(data.target, "g", "target"), (after, "C3", f"{first} after")]
        rate = "" if data.target_hr_bpm is None else f" {round(data.target_hr_bpm, 1):g} bpm"
        title = f"{TARGET_TITLE}:{rate} waveform"
    for wave, colour, label in shown:
        if wave is None or not len(wave):
            continue
        x = np.asarray(wave, np.float64)[: int(seconds * data.fps)]
        x = (x - x.mean()) / (x.std() + 1e-12)
        ax.plot(np.arange(x.size) / data.fps, x, color=colour, lw=1, label=label)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("standardised", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper right")


def _wrap(text: str, width: int = 110) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) if text else ""


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes."""
    buffer = _bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def write_png(path, fig, *, overwrite: bool = True, inputs=()) -> str:
    """Writes the figure to `path` atomically (the `rppgedit.safe_write` policy)."""
    from rppgedit import safe_write

    return safe_write.write_bytes(path, png_bytes(fig), inputs=inputs, overwrite=overwrite)


def face_region(frame: np.ndarray, box, margin: float = 0.15) -> np.ndarray:
    """The face box (x0, y0, x1, y1) of a frame grown by `margin`, clipped to the frame; 16-bit
    frames are scaled to 8-bit levels (float)."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    grow_x, grow_y = margin * (x1 - x0), margin * (y1 - y0)
    xa, xb = int(max(0, np.floor(x0 - grow_x))), int(min(width, np.ceil(x1 + grow_x)))
    ya, yb = int(max(0, np.floor(y0 - grow_y))), int(min(height, np.ceil(y1 + grow_y)))
    if xb <= xa or yb <= ya:
        xa, ya, xb, yb = 0, 0, width, height
    region = frame[ya:yb, xa:xb]
    if region.dtype == np.uint16:
        return region.astype(np.float64) / 257.0
    return region


# --------------------------------------------------------------------------------------------
# What the API returns.


def _rows_table(rows: Sequence[Mapping], columns) -> str:
    from rppgedit import readings

    return readings.format_table(list(rows), columns)


def _html_table(rows: Sequence[Mapping], columns) -> str:
    import html

    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in columns)
    body = []
    for r in rows:
        cells = []
        for key, _, spec in columns:
            value = r.get(key)
            text = "" if value is None else format(value, spec)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img_html(png: bytes | None) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%"/>'


EDIT_COLUMNS = [
    ("estimator", "estimator", "s"),
    ("hr_before", "HR before", ".1f"),
    ("hr_after", "HR after", ".1f"),
    ("snr_before", "SNR before", ".1f"),
    ("snr_after", "SNR after", ".1f"),
]


def regions_lines(regions: dict) -> str:
    """Two lines on a face's regions (`edit_report.Readers.regions`), before -> after: each
    region's rate (POS) and how the regions' pulses agree (correlation r / lag in frames)."""
    before, after = regions["before"], regions["after"]
    rates = ", ".join(
        f"{name.replace('_', ' ')} {before['hr_bpm'][name]:.1f} -> {hr:.1f}"
        for name, hr in after["hr_bpm"].items()
    )
    pairs = ", ".join(
        f"{pair.replace('_', ' ')} {before['coherence'][pair][0]:.2f}/{before['coherence'][pair][1]}"
        f" -> {r:.2f}/{lag}"
        for pair, (r, lag) in after["coherence"].items()
    )
    return f"  regions (POS, bpm): {rates}\n  region pulses agree (r/lag in frames): {pairs}"


@dataclasses.dataclass(repr=False)
class Report:
    """An edit's report: `verdict` (one line), `rows` (one per estimator and face: HR and SNR
    before/after), `psnr` (dB), `settings` (the resolved EditJob and editor config), `paths`
    (output, report_json, report_png when written) and `summary`, the whole report dict (what
    OUT.report.json holds). `figure` is the report's matplotlib figure when drawn in memory."""

    rows: list[dict]
    verdict: str
    psnr: float | None
    settings: dict
    paths: dict[str, str]
    summary: dict
    figure: Any = None

    @classmethod
    def from_summary(cls, summary: dict, figure=None) -> Report:
        paths = {}
        for key, name in (("output", "output"), ("report_path", "report_json")):
            if summary.get(key):
                paths[name] = str(summary[key])
        if summary.get("report_png"):
            paths["report_png"] = str(summary["report_png"])
        return cls(
            rows=list(summary.get("rows", [])),
            verdict=summary.get("verdict", ""),
            psnr=summary.get("psnr_db"),
            settings=summary.get("settings", {}),
            paths=paths,
            summary=summary,
            figure=figure,
        )

    def to_dict(self) -> dict:
        """The report as JSON-writable data (NaN and inf as None)."""
        from rppgedit import safe_write

        return safe_write.json_safe(self.summary)

    def _columns(self):
        columns = [("face", "face", "d")] if len(self.summary.get("faces", [])) > 1 else []
        return columns + EDIT_COLUMNS

    def table(self) -> str:
        """The rows as a plain-text table."""
        return _rows_table(self.rows, self._columns())

    def png(self) -> bytes | None:
        """The report's picture as PNG bytes (drawn in memory or read from report_png)."""
        if self.figure is not None:
            return png_bytes(self.figure)
        path = self.paths.get("report_png")
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                return f.read()
        return None

    def __repr__(self) -> str:
        lines = [f"Report: {self.verdict}", self.table()]
        ssim = self.summary.get("ssim")
        if self.psnr is not None:
            lines.append(
                f"PSNR {self.psnr:.2f} dB" + ("" if ssim is None else f"   SSIM {ssim:.5f}")
            )
        lines += self._regions()
        lines += [f"warning: {w}" for w in self.summary.get("warnings", [])]
        lines += [f"{k}: {v}" for k, v in self.paths.items()]
        return "\n".join(lines)

    def _regions(self) -> list[str]:
        """`regions_lines` of each edited face (with "face i:" when there are several)."""
        faces = [f for f in self.summary.get("faces", []) if "regions" in f]
        return [
            (f"face {f['face']}:\n" if len(faces) > 1 else "") + regions_lines(f["regions"])
            for f in faces
        ]

    def _repr_html_(self) -> str:
        import html

        parts = [
            f"<p><b>{html.escape(self.verdict)}</b></p>",
            _html_table(self.rows, self._columns()),
        ]
        parts += [
            "<p>" + html.escape(text).replace("\n", "<br>") + "</p>" for text in self._regions()
        ]
        parts += [f"<p>warning: {html.escape(w)}</p>" for w in self.summary.get("warnings", [])]
        parts.append(f"<p><small>{html.escape(SNR_EXPLANATION)}</small></p>")
        parts.append(_img_html(self.png()))
        return "\n".join(parts)


READING_COLUMNS = [
    ("estimator", "estimator", "s"),
    ("hr_bpm", "HR bpm", ".1f"),
    ("snr_db", "SNR dB", ".1f"),
]


@dataclasses.dataclass(repr=False)
class Readings:
    """Heart-rate readings of one video: `rows` ({"estimator", "hr_bpm", "snr_db", "abs_err"}),
    indexable by estimator name or position, and `info` (fps, frames, ground truth, skin
    coverage: the `--mode=evaluate` JSON without the rows); `figure` holds the spectra per
    estimator family when drawn (`read_heart_rate(plots=True)`)."""

    rows: list[dict]
    info: dict
    figure: Any = None

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, key):
        if isinstance(key, str):
            for row in self.rows:
                if row["estimator"] == key:
                    return row
            raise KeyError(key)
        return self.rows[key]

    def hr(self, name: str) -> float:
        """The heart rate (bpm) read by estimator `name`."""
        return self[name]["hr_bpm"]

    def _columns(self):
        columns = list(READING_COLUMNS)
        if self.info.get("ground_truth_hr_bpm") is not None:
            columns.append(("abs_err", "|err| bpm", ".1f"))
        return columns

    def to_dict(self) -> dict:
        from rppgedit import safe_write

        return safe_write.json_safe({**self.info, "rows": self.rows})

    def __repr__(self) -> str:
        text = _rows_table(self.rows, self._columns())
        if self.info.get("ground_truth_hr_bpm") is not None:
            text += f"\nground truth {self.info['ground_truth_hr_bpm']:.1f} bpm"
        return text

    def _repr_html_(self) -> str:
        table = _html_table(self.rows, self._columns())
        if self.figure is None:
            return table
        return table + "\n" + _img_html(png_bytes(self.figure))


AUDIT_COLUMNS = [
    ("reader", "reader", "s"),
    ("family", "family", "s"),
    ("hr_bpm", "HR bpm", ".1f"),
    ("snr_db", "SNR dB", ".1f"),
    ("agrees", "agrees", ""),
]


def consensus(hrs: Sequence[float | None]) -> tuple[float | None, list[bool]]:
    """The rate most readings agree on (within `TOLERANCE_BPM` of one another's centre) and which
    readings agree with it. Ties go to the tighter group."""
    values = [h for h in hrs if h is not None and math.isfinite(h)]
    if not values:
        return None, [False] * len(hrs)
    best, best_key = None, None
    for h in values:
        group = [v for v in values if abs(v - h) <= TOLERANCE_BPM]
        key = (len(group), -float(np.std(group)))
        if best_key is None or key > best_key:
            best, best_key = float(np.median(group)), key
    agrees = [h is not None and math.isfinite(h) and abs(h - best) <= TOLERANCE_BPM for h in hrs]
    return best, agrees


def audit_verdict(rows: Sequence[Mapping], attackers_note: str | None = None) -> dict:
    """{"readable", "consensus_hr_bpm", "agreeing", "readers", "median_snr_db", "verdict"}: the
    pulse is readable when at least half the readers (and at least two) agree on one rate."""
    hrs = [r.get("hr_bpm") for r in rows]
    rate, agrees = consensus(hrs)
    total, agreeing = len(rows), sum(agrees)
    readable = rate is not None and agreement_is_readable(agreeing, total)
    snrs = [
        r["snr_db"] for r, a in zip(rows, agrees, strict=True) if a and r.get("snr_db") is not None
    ]
    median_snr = float(np.median(snrs)) if snrs else None
    kinds = []
    for label, fam in (
        ("estimators", ("classical", "deep")),
        ("open-rppg attackers", ("attacker",)),
    ):
        mine = [a for r, a in zip(rows, agrees, strict=True) if r.get("family") in fam]
        if mine:
            kinds.append(f"{sum(mine)}/{len(mine)} {label}")
    tol = f"{TOLERANCE_BPM:g}"
    valid = [h for h in hrs if h is not None and math.isfinite(h)]
    if readable:
        weak = median_snr is not None and median_snr < 0
        text = (
            f"The pulse is readable{' (weakly)' if weak else ''}: {agreeing} of {total} readers "
            f"({', '.join(kinds)}) agree on {rate:.1f} +/- {tol} bpm"
        )
        if median_snr is not None:
            text += f", median SNR {median_snr:.1f} dB"
    elif valid:
        text = (
            f"No consistent pulse: the {total} readers spread over {min(valid):.0f}-"
            f"{max(valid):.0f} bpm and at most {agreeing} ({', '.join(kinds)}) agree on one rate "
            f"({rate:.1f} +/- {tol} bpm)"
        )
    else:
        text = "No reading: no reader gave a heart rate"
    if attackers_note:
        text += f" ({attackers_note})"
    return {
        "readable": bool(readable),
        "consensus_hr_bpm": rate,
        "agreeing": int(agreeing),
        "readers": int(total),
        "median_snr_db": median_snr,
        "verdict": text,
        "agrees": agrees,
    }


@dataclasses.dataclass(repr=False)
class Audit:
    """How readable the pulse of a video is: `verdict` (plain language), `readable`, the
    `consensus_hr_bpm` that `agreeing` of the readers agree on, and `rows` (one per reader:
    {"reader", "family", "hr_bpm", "snr_db", "agrees", "error"}); `figure` holds the spectra when
    drawn."""

    rows: list[dict]
    verdict: str
    readable: bool
    consensus_hr_bpm: float | None
    agreeing: int
    info: dict
    figure: Any = None

    def to_dict(self) -> dict:
        from rppgedit import safe_write

        return safe_write.json_safe(
            {
                **self.info,
                "verdict": self.verdict,
                "readable": self.readable,
                "consensus_hr_bpm": self.consensus_hr_bpm,
                "agreeing": self.agreeing,
                "rows": self.rows,
                "snr_explanation": SNR_EXPLANATION,
            }
        )

    def __repr__(self) -> str:
        return f"Audit: {self.verdict}\n{_rows_table(self.rows, AUDIT_COLUMNS)}"

    def _repr_html_(self) -> str:
        import html

        parts = [
            f"<p><b>{html.escape(self.verdict)}</b></p>",
            _html_table(self.rows, AUDIT_COLUMNS),
        ]
        parts.append(f"<p><small>{html.escape(SNR_EXPLANATION)}</small></p>")
        if self.figure is not None:
            parts.append(_img_html(png_bytes(self.figure)))
        return "\n".join(parts)
