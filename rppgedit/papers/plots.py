"""PNG plots of the experiments (matplotlib, Agg canvas; no pyplot, no global backend change).

* `psd_before_after` -- Privacy-Phys Fig. 5: an estimator's pulse signal and its power spectral
  density before and after editing, with the original and the target heart rates marked;
* `abs_diff_maps` -- Privacy-Phys Fig. 6: per-channel absolute difference between an original
  and an edited frame, one row per method, in grey levels (the colour scale is amplified: it
  spans 0 .. the largest difference shown, with a colour bar in grey levels);
* `mae_vs_psnr` -- Fig. 4: output MAE against face PSNR, one curve per method, one panel per
  estimator family;
* `lambda_sweep` -- Fig. 3: PSNR and MAE against lambda;
* `target_hrs` -- input and output MAE per target heart rate (PhysioLatent's table as a plot);
* `crops_bars` -- Table I as bars: output MAE per crop and method.

All plotting functions take plain arrays or the table rows of `report.tables_from_jsonl` and an
output path, and return the path written.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rppgedit import signals
from rppgedit.report import FAMILIES


def _save(fig: Figure, path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def _standardise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    x = x - x.mean()
    return x / (x.std() + 1e-12)


def psd_before_after(
    bvp_before,
    bvp_after,
    fps: float,
    path,
    *,
    hr_original_bpm: float | None = None,
    hr_target_bpm: float | None = None,
    title: str = "",
    band_bpm: tuple[float, float] = (40.0, 180.0),
) -> pathlib.Path:
    """Pulse signals and their PSDs before and after an edit (Privacy-Phys Fig. 5).

    Args:
      bvp_before, bvp_after: (T,) pulse signals read from the original and the edited clip.
      fps: sampling rate in Hz.
      path: PNG to write.
      hr_original_bpm: marked with a dashed line (the clip's true HR), optional.
      hr_target_bpm: marked with a dotted line, optional.
      title: figure title.
      band_bpm: x range of the PSD panels, bpm.

    Returns:
      the path written.
    """
    before, after = _standardise(bvp_before), _standardise(bvp_after)
    t = np.arange(before.size) / fps
    nfft = max(2048, 1 << int(np.ceil(np.log2(2 * before.size))))
    freqs, psd_b = signals.periodogram(before, fps, nfft=nfft)
    _, psd_a = signals.periodogram(after, fps, nfft=nfft)
    bpm = freqs * 60.0
    keep = (bpm >= band_bpm[0]) & (bpm <= band_bpm[1])
    fig = Figure(figsize=(10, 5.5))
    axes = fig.subplots(2, 2)
    for row, (sig, psd, label) in enumerate(
        ((before, np.asarray(psd_b), "original"), (after, np.asarray(psd_a), "edited"))
    ):
        axes[row, 0].plot(t, sig, lw=0.8, color="C0" if row == 0 else "C3")
        axes[row, 0].set_ylabel(f"{label} rPPG (std units)")
        p = psd[keep] / (psd[keep].max() + 1e-30)
        axes[row, 1].plot(bpm[keep], p, color="C0" if row == 0 else "C3")
        peak = bpm[keep][np.argmax(p)]
        axes[row, 1].set_ylabel(f"{label} PSD (norm.)")
        axes[row, 1].set_title(f"peak {peak:.1f} bpm", fontsize=9)
        if hr_original_bpm is not None:
            axes[row, 1].axvline(hr_original_bpm, color="k", ls="--", lw=1, label="original HR")
        if hr_target_bpm is not None:
            axes[row, 1].axvline(hr_target_bpm, color="g", ls=":", lw=1.5, label="target HR")
    axes[1, 0].set_xlabel("time (s)")
    axes[1, 1].set_xlabel("heart rate (bpm)")
    if hr_original_bpm is not None or hr_target_bpm is not None:
        axes[0, 1].legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def abs_diff_maps(
    original,
    edited: Mapping[str, np.ndarray],
    path,
    *,
    title: str = "",
    vmax: float | None = None,
) -> pathlib.Path:
    """Per-channel |edited - original| of one frame, one row per method (Privacy-Phys Fig. 6).

    Args:
      original: (H, W, 3) frame, uint8 (or float on the 0-255 scale).
      edited: {label: (H, W, 3) frame} edited versions of the same frame.
      path: PNG to write.
      title: figure title.
      vmax: top of the colour scale in grey levels; default the largest difference shown (at
        least 1), i.e. the maps are amplified to the full grey range.

    Returns:
      the path written.
    """
    ref = np.asarray(original, np.float64)
    diffs = {k: np.abs(np.asarray(v, np.float64) - ref) for k, v in edited.items()}
    if not diffs:
        raise ValueError("abs_diff_maps needs at least one edited frame")
    top = vmax if vmax is not None else max(1.0, max(float(d.max()) for d in diffs.values()))
    rows = len(diffs)
    fig = Figure(figsize=(9.5, 2.15 * rows + 0.8))  # square panels, little margin
    axes = np.asarray(fig.subplots(rows, 4, gridspec_kw={"width_ratios": [1, 1, 1, 1]})).reshape(
        rows, 4
    )
    image = None
    for r, (label, d) in enumerate(diffs.items()):
        axes[r, 0].imshow(np.clip(ref / 255.0, 0, 1))
        axes[r, 0].set_ylabel(label, fontsize=9)
        for c, name in enumerate(("R", "G", "B")):
            image = axes[r, c + 1].imshow(d[..., c], cmap="gray", vmin=0.0, vmax=top)
            axes[r, c + 1].set_title(f"|diff| {name}: mean {d[..., c].mean():.2f}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("original", fontsize=8)
    bar = fig.colorbar(image, ax=axes[:, 1:].ravel().tolist(), shrink=0.9)
    bar.set_label("grey levels (8-bit)")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _families(rows: Sequence[dict]) -> list[tuple[str, bool]]:
    """The (family, surrogate) panels present, classical/deep/attacker, white box first."""
    present = {(r["family"], bool(r.get("surrogate"))) for r in rows}
    return [(f, s) for f in FAMILIES for s in (True, False) if (f, s) in present]


def _in(row: dict, panel: tuple[str, bool]) -> bool:
    return (row["family"], bool(row.get("surrogate"))) == panel


def _panel_name(panel: tuple[str, bool]) -> str:
    return f"{panel[0]} estimators" + (" (surrogates)" if panel[1] else "")


def _full(rows: Sequence[dict]) -> list[dict]:
    return [r for r in rows if r.get("crop", "full") == "full"]


def mae_vs_psnr(rows: Sequence[dict], path, *, psnr_key: str = "psnr_face_db") -> pathlib.Path:
    """Output MAE against PSNR per method, one panel per family (Privacy-Phys Fig. 4).

    Args:
      rows: `per_family` rows of `report.tables_from_jsonl`.
      path: PNG to write.
      psnr_key: "psnr_face_db" (face-box pixels) or "psnr_db" (whole frames).
    """
    rows = _full(rows)
    fams = _families(rows)
    fig = Figure(figsize=(4.6 * len(fams), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(fams)))
    for ax, fam in zip(axes, fams, strict=True):
        for i, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
            pts = sorted(
                (r[psnr_key], r["output_mae"], r.get("sweep_value"))
                for r in rows
                if _in(r, fam)
                and r["method"] == method
                and r.get(psnr_key) is not None
                and r.get("output_mae") is not None
            )
            if not pts:
                continue
            x, y, v = zip(*pts, strict=True)
            ax.plot(x, y, "o-", color=f"C{i}", label=method)
            for xi, yi, vi in pts:
                if vi is not None:
                    ax.annotate(
                        f"{vi:g}", (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points"
                    )
        ax.set_title(_panel_name(fam), fontsize=10)
        ax.set_xlabel("PSNR (dB, face box)" if psnr_key == "psnr_face_db" else "PSNR (dB)")
        ax.set_ylabel("MAE to target (bpm)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def lambda_sweep(rows: Sequence[dict], path, *, psnr_key: str = "psnr_face_db") -> pathlib.Path:
    """PSNR and output MAE against lambda (Privacy-Phys Fig. 3), MAE per estimator family.

    Args:
      rows: `per_family` rows of `report.tables_from_jsonl` of a lambda sweep.
      path: PNG to write.
      psnr_key: "psnr_face_db" or "psnr_db".
    """
    rows = [r for r in _full(rows) if r.get("sweep_value") is not None]
    fig = Figure(figsize=(10, 3.8))
    ax_p, ax_m = fig.subplots(1, 2)
    for i, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        mine = [r for r in rows if r["method"] == method]
        per_setting = {}
        for r in mine:
            per_setting.setdefault(r["sweep_value"], r.get(psnr_key))
        xs = sorted(v for v in per_setting if per_setting[v] is not None)
        ax_p.plot(xs, [per_setting[v] for v in xs], "o-", color=f"C{i}", label=method)
        for j, fam in enumerate(_families(mine)):
            pts = sorted(
                (r["sweep_value"], r["output_mae"])
                for r in mine
                if _in(r, fam) and r.get("output_mae") is not None
            )
            if pts:
                x, y = zip(*pts, strict=True)
                ax_m.plot(
                    x,
                    y,
                    "os^"[j % 3] + "-",
                    color=f"C{i + j}",
                    label=f"{method}, {_panel_name(fam)}",
                )
    for ax in (ax_p, ax_m):
        ax.set_xscale("log")
        ax.set_xlabel("lambda (fidelity weight)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_p.set_ylabel("PSNR (dB, face box)" if psnr_key == "psnr_face_db" else "PSNR (dB)")
    ax_m.set_ylabel("MAE to target (bpm)")
    ax_p.set_title("(a) PSNR vs lambda", fontsize=10)
    ax_m.set_title("(b) MAE vs lambda", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def target_hrs(rows: Sequence[dict], path) -> pathlib.Path:
    """Input and output MAE per target heart rate and family (PhysioLatent's table as a plot)."""
    rows = _full(rows)
    fams = _families(rows)
    fig = Figure(figsize=(4.6 * len(fams), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(fams)))
    for ax, fam in zip(axes, fams, strict=True):
        for i, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
            pts = sorted(
                (r["target_hr_bpm"], r.get("input_mae"), r.get("output_mae"))
                for r in rows
                if _in(r, fam) and r["method"] == method
            )
            if not pts:
                continue
            x = [p[0] for p in pts]
            ax.plot(
                x, [p[1] for p in pts], "s--", color=f"C{i}", alpha=0.6, label=f"{method} input MAE"
            )
            ax.plot(x, [p[2] for p in pts], "o-", color=f"C{i}", label=f"{method} output MAE")
        ax.set_title(_panel_name(fam), fontsize=10)
        ax.set_xlabel("target heart rate (bpm)")
        ax.set_ylabel("MAE to target (bpm)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def crops_bars(rows: Sequence[dict], path) -> pathlib.Path:
    """Output MAE per crop (full face, quarters), method and family as grouped bars (Table I)."""
    fams = _families(rows)
    crops = list(dict.fromkeys(r["crop"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig = Figure(figsize=(4.8 * len(fams), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(fams)))
    width = 0.8 / max(1, len(methods))
    for ax, fam in zip(axes, fams, strict=True):
        for i, method in enumerate(methods):
            vals = []
            for c in crops:
                match = [
                    r["output_mae"]
                    for r in rows
                    if _in(r, fam) and r["method"] == method and r["crop"] == c
                ]
                vals.append(match[0] if match and match[0] is not None else np.nan)
            ax.bar(np.arange(len(crops)) + i * width, vals, width, label=method, color=f"C{i}")
        ax.set_xticks(np.arange(len(crops)) + width * (len(methods) - 1) / 2)
        ax.set_xticklabels([c.replace("_", "\n") for c in crops], fontsize=8)
        ax.set_ylabel("MAE to target (bpm)")
        ax.set_title(_panel_name(fam), fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
