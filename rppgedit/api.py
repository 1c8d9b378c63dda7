"""The Python API: edit a video's pulse, read its heart rate, audit how readable its pulse is.

    import rppgedit
    report = rppgedit.edit("in.mp4", "out.mkv", target_hr=100)   # or remove=True
    print(report.verdict)
    frames, report = rppgedit.edit_frames(frames, fps, target_hr=100)   # uint8 arrays
    rppgedit.read_heart_rate("out.mkv")                                # a table, one row per estimator
    rppgedit.audit("in.mp4")                                           # readable or not, and why

Every call is a thin layer over `rppgedit.pipeline` (the edit), `rppgedit.readings` (the readings)
and `rppgedit.open_rppg` (the black-box attackers); the command line's modes do the same work.
`demo_video` / `demo_frames` generate the demo's face clip (no download).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rppgedit import cpu_threads
from rppgedit.errors import RppgEditError
from rppgedit.report import Audit, Readings, Report

cpu_threads.spread_over_cores()  # one JAX device per core, as the command line has (unless set)

__all__ = [
    "Audit",
    "Readings",
    "Report",
    "audit",
    "demo_frames",
    "demo_video",
    "edit",
    "edit_frames",
    "preview",
    "read_heart_rate",
]

_JOB_FIELDS = (
    "work_size",
    "window",
    "overlap",
    "batch_windows",
    "mask_method",
    "margin",
    "quantize",
    "bit_depth",
)
_OUTPUT_FIELDS = ("codec", "crf", "verify_reencode", "keep_streams", "lossy_strength")


def _estimators(names) -> tuple[str, ...]:
    """Estimator names (None: `registry.DEFAULT_READERS`), checked."""
    from rppgedit.estimators import registry

    if names is None:
        return registry.DEFAULT_READERS
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    names = tuple(registry.get(n).name for n in names)  # an unknown name is a one-line error
    if not names:
        raise RppgEditError("estimators: needs at least one estimator")
    return names


def _surrogates(value) -> tuple[tuple[str, float], ...]:
    """ "pos:2,chrom", ["pos", "chrom"] or [("pos", 2.0), ...] as ((name, weight), ...)."""
    if isinstance(value, str):
        value = [item for item in value.split(",") if item.strip()]
    pairs = []
    for item in value:
        if isinstance(item, str):
            name, _, weight = item.strip().partition(":")
            pairs.append((name.strip(), float(weight) if weight else 1.0))
        else:
            name, weight = item
            pairs.append((str(name), float(weight)))
    return tuple(pairs)


@dataclasses.dataclass(frozen=True)
class EditOptions:
    """The keyword arguments `edit` and `edit_frames` share (documented in `edit`): what to embed
    (`remove`, `target`), with which editor (`method`, `seed`), read by which `estimators` for the
    report, in which faces (`face_box`, `allow_no_face`). Both functions take them as keyword
    arguments (their signatures list them, `_takes_edit_options`); `split` separates them from the
    editor's, the edit's and the output's options."""

    remove: bool = False
    method: str = "privacy_phys"
    target: str = "sinusoid"
    estimators: Sequence[str] | None = None
    seed: int = 0
    face_box: Any = None
    allow_no_face: bool = False

    @classmethod
    def split(cls, kwargs: dict) -> tuple[EditOptions, dict]:
        """(the shared options among `kwargs`, the other keyword arguments)."""
        names = {f.name for f in dataclasses.fields(cls)}
        shared = cls(**{k: v for k, v in kwargs.items() if k in names})
        return shared, {k: v for k, v in kwargs.items() if k not in names}


def _takes_edit_options(fn):
    """Lists `EditOptions`' fields in `fn`'s signature (help(), a notebook's completion) as
    keyword-only parameters before its `**options`, which receives them."""
    signature = inspect.signature(fn)
    *own, rest = signature.parameters.values()
    shared = [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type
        )
        for f in dataclasses.fields(EditOptions)
    ]
    fn.__signature__ = signature.replace(parameters=[*own, *shared, rest])
    return fn


def _job(target_hr, shared: EditOptions, options):
    """(EditJob, OutputSpec fields) from the API's arguments; the options that are neither the
    job's nor the output's go to the editor's config (`steps`, `learning_rate`,
    `fidelity_weight`, `surrogates`, `stop_pearson`, ...)."""
    from rppgedit import pipeline, targets

    remove, target, seed = shared.remove, shared.target, shared.seed
    options = dict(options)
    if remove and target_hr is not None:
        raise RppgEditError("give target_hr= or remove=True, not both")
    target_file = options.pop("target_file", None)
    phase = options.pop("target_phase", 0.0)
    variability = {
        field: options.pop(name)
        for name, field in (("target_hrv", "hrv"), ("target_hr_end", "hr_end_bpm"))
        if name in options
    }
    if remove:
        kind = "none"
    elif target == "file" or target_file is not None:
        kind = "file"
    elif target_hr is None:
        raise RppgEditError(
            "say what to embed: target_hr=<bpm> (e.g. 100), remove=True, or target_file=<waveform>"
        )
    else:
        kind = target
    spec = targets.TargetSpec(
        kind=kind,
        hr_bpm=120.0 if target_hr is None else float(target_hr),
        phase=phase,
        path=None if target_file is None else os.fspath(target_file),
        seed=seed,
        **variability,
    )
    job_fields = {k: options.pop(k) for k in _JOB_FIELDS if k in options}
    output_fields = {k: options.pop(k) for k in _OUTPUT_FIELDS if k in options}
    if "surrogates" in options and options["surrogates"] is not None:
        options["surrogates"] = _surrogates(options["surrogates"])
    job = pipeline.EditJob(
        method=shared.method,
        target=spec,
        seed=seed,
        method_options=tuple(options.items()),
        estimators=_estimators(shared.estimators),
        **job_fields,
    )
    pipeline.editor_config(job, 30.0)  # bad methods and options fail before any work
    return job, output_fields


@_takes_edit_options
def edit(
    input,
    output,
    target_hr: float | None = None,
    *,
    share: bool = False,
    overwrite: bool = False,
    plots: bool | None = None,
    progress: bool = True,
    **options,
) -> Report:
    """Edits every face of the video file `input` so that rPPG estimators read `target_hr` (or,
    with `remove=True`, no pulse), writes `output` (lossless FFV1 for .mkv; `share=True` writes
    H.264 that plays everywhere) with OUT.report.json and OUT.report.png (`plots`).

    Args:
      input, output: video paths (any file ffmpeg reads, a PNG folder or a .npy array).
      target_hr: the heart rate to embed, in bpm (30-240).
      share: write H.264 (CRF 23 unless `crf=`), read back for the report.
      overwrite: replace an existing output.
      plots: also write OUT.report.png; None (default): when matplotlib is installed (the
        ``plots`` extra); True without it is a one-line error.
      progress: progress bars on stderr (one per pass: decode, edit, report).
      **options: the arguments `edit` and `edit_frames` share (`EditOptions`):
        `remove`: remove the pulse instead (default False);
        `method`: the editor: "privacy_phys" (default), "pulseedit", "physiolatent",
          "smooth_remove";
        `target`: "sinusoid" (default) or "pulse" (a realistic beat with harmonics and
          variability, `target_hrv=` its relative standard deviation, default 0.01);
          `target_hr_end=` makes the rate glide from `target_hr` to it over the video;
          `target_file=` embeds a waveform file;
        `estimators`: the estimators read before and after for the report (default: the ten
          in-house ones, `registry.DEFAULT_READERS`);
        `seed`: the seed of the stochastic rounding (and of a random target phase; default 0);
        `face_box`: (x0, y0, x1, y1) to edit instead of tracking the faces;
        `allow_no_face`: edit a centred box when no face is found (default False);
        then the editor's settings (`steps`, `learning_rate`, `fidelity_weight` (lambda),
        `surrogates` ("pos:2,chrom" or pairs), `stop_pearson`, `balance`, `colour`, ...), the
        edit's (`work_size`, `window`, `overlap`, `batch_windows`, `mask_method`, `margin`,
        `quantize`, `bit_depth`) and the output's (`codec`, `crf`, `verify_reencode`,
        `keep_streams`, `lossy_strength`).

    Returns:
      a `Report` (its `verdict`, `rows`, `psnr`, `settings`, `paths`; `to_dict()` is the JSON).

    Example (a short generated clip; a few fast steps through two classical surrogates):

    >>> import os, tempfile, rppgedit
    >>> folder = tempfile.mkdtemp()
    >>> clip = rppgedit.demo_video(os.path.join(folder, "face.mkv"), seconds=5, size=96)
    >>> report = rppgedit.edit(clip, os.path.join(folder, "edited.mkv"), target_hr=120,
    ...                        estimators=["green", "pos", "chrom"], surrogates="pos,chrom",
    ...                        steps=30, learning_rate=0.2, work_size=32, window=64, overlap=16,
    ...                        progress=False)
    >>> report.verdict  # doctest: +ELLIPSIS
    '3/3 estimators read 120 +/- 3 bpm; none reads the original 7... bpm; PSNR ... dB; ... s of compute per 10 s of video'
    >>> sorted(report.paths)
    ['output', 'report_json', 'report_png']
    """
    from rppgedit import pipeline
    from rppgedit import report as reporting

    plots = reporting.plots_wanted(plots)
    shared, options = EditOptions.split(options)
    job, output_fields = _job(target_hr, shared, options)
    if share:
        if output_fields.get("codec") not in (None, "h264"):
            raise RppgEditError(f"share=True writes H.264; not codec={output_fields['codec']!r}")
        output_fields["codec"] = "h264"
        output_fields.setdefault("crf", 23)
    summary = pipeline.run_edit(
        os.fspath(input),
        os.fspath(output),
        job,
        face_box=shared.face_box,
        allow_no_face=shared.allow_no_face,
        overwrite=overwrite,
        output=pipeline.OutputSpec(**output_fields),
        progress=progress,
        plots=plots,
    )
    return Report.from_summary(summary)


def _check_frames(frames, fps) -> tuple[np.ndarray, float]:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise RppgEditError(
            f"frames must be a (T, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}"
        )
    if fps is None or not math.isfinite(float(fps)) or float(fps) <= 0:
        raise RppgEditError(f"fps must be a positive number, got {fps}")
    return frames, float(fps)


@_takes_edit_options
def edit_frames(
    frames,
    fps: float,
    target_hr: float | None = None,
    *,
    boxes=None,
    report: bool = True,
    plots: bool = False,
    progress: bool = False,
    **options,
) -> tuple[np.ndarray, Report | None]:
    """`edit` on uint8 frames (T, H, W, 3) in memory: returns (edited frames, `Report`).

    The faces are tracked (or given: `boxes` (T, 4) of one face, or a list of
    `rppgedit.video.face.FaceTrack`; `face_box` one fixed box). With `report=False` the report is
    None (no readings); with `plots=True` its `figure` holds the report's picture; `progress`
    shows the edit's and the report's bars. The other arguments (`remove`, `method`, `target`,
    `estimators`, `seed`, `face_box`, `allow_no_face` and the editor's and edit's options) are
    `edit`'s; the output file's options do not apply.

    >>> import rppgedit
    >>> frames, fps = rppgedit.demo_frames(seconds=5, size=96)
    >>> edited, report = rppgedit.edit_frames(frames, fps, target_hr=120,
    ...                                       estimators=["green", "pos", "chrom"],
    ...                                       surrogates="pos,chrom", steps=30, learning_rate=0.2,
    ...                                       work_size=32, window=64, overlap=16)
    >>> edited.shape == frames.shape, edited.dtype
    (True, dtype('uint8'))
    >>> [round(r["hr_after"]) for r in report.rows]  # doctest: +SKIP
    [119, 119, 120]
    >>> report.verdict.startswith("3/3 estimators read 120 +/- 3 bpm")
    True
    """
    from rppgedit import edit_report, pipeline
    from rppgedit import report as reporting

    plots = reporting.plots_wanted(plots)
    frames, fps = _check_frames(frames, fps)
    shared, options = EditOptions.split(options)
    job, output_fields = _job(target_hr, shared, options)
    if output_fields:
        raise RppgEditError(f"edit_frames writes no file: {', '.join(output_fields)} do not apply")
    tic = time.perf_counter()
    if boxes is None:
        tracks = pipeline.find_faces(
            frames, face_box=shared.face_box, allow_no_face=shared.allow_no_face
        )
    else:
        tracks = boxes
    track_s = time.perf_counter() - tic
    result = pipeline.edit_frames(frames, fps, tracks, job, progress=progress)
    if not report:
        return result.frames, None
    tic = time.perf_counter()
    summary = edit_report.report_rows(job, result, frames, fps, plots=plots, progress=progress)
    data = summary.pop("plot_data", None)
    summary.update(
        method=job.method,
        target=dataclasses.asdict(job.target),
        frames=int(frames.shape[0]),
        fps=fps,
        measured_on="the output frames (in memory)",
        seconds={"track": track_s, **result.seconds, "report": time.perf_counter() - tic},
    )
    reporting.finish(summary, job, pipeline.editor_config(job, fps))
    figure = None
    if data is not None:
        data.title = summary["verdict"]
        figure = reporting.figure(data)
    return result.frames, Report.from_summary(summary, figure)


def _load(video, fps):
    """(frames uint8, fps, name) of a path or an array."""
    if isinstance(video, str | os.PathLike):
        from rppgedit.video import decode

        loaded = decode.read_video(os.fspath(video), fps=fps)
        return loaded.frames, float(loaded.fps), os.fspath(video)
    frames, fps = _check_frames(video, fps)
    return frames, fps, "frames"


class _Decoding:
    """A video file decoded once, chunk by chunk (`decode.iter_chunks`), into one array
    (`frames()`) while its frames stream on (`stream`) to the face tracker: one decode for both,
    with a progress bar of the frames."""

    def __init__(self, path, fps):
        from rppgedit import validate
        from rppgedit.video import probe

        self.path, self.fps_given = os.fspath(path), fps
        self.info = probe.probe(self.path, fps=fps)
        num, width, height = max(self.info.num_frames, 1), self.info.width, self.info.height
        validate.check_decode_total(self.path, num, width, height)
        self.buffer = np.empty((num, height, width, 3), np.uint8)
        self.count = 0

    def stream(self, bar):
        """The frames one by one, kept as they pass; `bar` advances per chunk."""
        from rppgedit import pipeline, validate
        from rppgedit.video import decode

        size = pipeline.chunk_frames(self.info.height, self.info.width)
        for _, chunk in decode.iter_chunks(self.path, size, fps=self.fps_given):
            end = self.count + len(chunk)
            if end > len(self.buffer):  # the header counted fewer frames than the decoder gives
                grow = max(end - len(self.buffer), len(self.buffer) // 2)
                h, w = self.buffer.shape[1:3]
                validate.check_decode_total(self.path, len(self.buffer) + grow, w, h)
                self.buffer = np.concatenate([self.buffer, np.empty((grow, h, w, 3), np.uint8)])
            self.buffer[self.count : end] = chunk
            self.count = end
            yield from chunk
            bar.update(len(chunk))

    def frames(self) -> np.ndarray:
        return self.buffer[: self.count]


@dataclasses.dataclass(frozen=True)
class _Face:
    """A video's frames and the face's crop, what the readings and the audit read."""

    frames: np.ndarray  # uint8 (T, H, W, 3)
    fps: float
    name: str  # the path, or "frames"
    boxes: np.ndarray  # (T, 4)
    clip: np.ndarray  # (T, S, S, 3) in [0, 1]
    mask: np.ndarray  # (T, S, S) skin


def _video_face(video, fps, face_box, allow_no_face, mask_method, work_size, progress) -> _Face:
    """The `_Face` of a path (decoded once, tracked as it decodes: the bar "decode + track face")
    or of uint8 frames with `fps` (the bar "track face")."""
    from rppgedit import pipeline
    from rppgedit import progress as progress_bars
    from rppgedit.video import crop, skin

    track = "" if face_box is not None else " + track face"
    if isinstance(video, str | os.PathLike):
        decoding = _Decoding(video, fps)
        name, info = decoding.path, decoding.info
        bar = progress_bars.bar(info.num_frames, "decode" + track, progress, unit="frame")
        with bar:
            boxes = pipeline.find_boxes(
                decoding.stream(bar),
                face_box=face_box,
                allow_no_face=allow_no_face,
                shape=(info.num_frames, info.height, info.width),
                name=name,
            )
        frames, fps = decoding.frames(), float(info.fps)
    else:
        frames, fps = _check_frames(video, fps)
        name = "frames"
        stream, shape = frames, None
        if track:
            stream = progress_bars.wrap(frames, "track face", progress, unit="frame")
            shape = frames.shape[:3]
        boxes = pipeline.find_boxes(
            stream, face_box=face_box, allow_no_face=allow_no_face, shape=shape, name=name
        )
    clip = crop.crop_resize(frames, boxes, work_size)
    return _Face(frames, fps, name, boxes, clip, skin.skin_mask(clip, method=mask_method))


def _ground_truth_hr(ground_truth, fps: float, num_frames: int) -> float | None:
    if ground_truth is None:
        return None
    if isinstance(ground_truth, int | float):
        return float(ground_truth)
    from rppgedit.data import ground_truth as gt_files

    gt = gt_files.load(ground_truth)
    return float(gt_files.heart_rate_of(gt, fps, duration_s=num_frames / fps))


def read_heart_rate(
    video,
    fps: float | None = None,
    *,
    estimators: Sequence[str] | None = None,
    ground_truth=None,
    face_box=None,
    allow_no_face: bool = False,
    mask_method: str = "ycrcb_adaptive",
    work_size: int = 64,
    plots: bool = False,
    progress: bool = False,
) -> Readings:
    """The heart rate of the face in `video` (a path, or uint8 frames (T, H, W, 3) with `fps`)
    as read by each estimator (default: every one): a `Readings` table, one row per estimator
    ({"estimator", "hr_bpm", "snr_db", "abs_err"}). `ground_truth`: a rate in bpm, or a UBFC
    ground_truth.txt / (time, BVP) CSV file; each row's |error| is then filled in. `plots=True`
    draws the spectra per estimator family into `Readings.figure` (as `audit(plots=True)` does,
    from the same decode and readings). `progress`: a bar per pass on stderr (decode and track,
    readings).

    >>> import rppgedit
    >>> frames, fps = rppgedit.demo_frames(seconds=5, size=96)   # true rate 72 bpm
    >>> table = rppgedit.read_heart_rate(frames, fps, estimators=["pos", "chrom"], ground_truth=72)
    >>> [abs(row["hr_bpm"] - 72) < 3 for row in table]
    [True, True]
    >>> print(table)  # doctest: +ELLIPSIS
    estimator  HR bpm  SNR dB  |err| bpm
    ---------  ------  ------  ---------
          pos    7...
    ground truth 72.0 bpm
    """
    from rppgedit import readings
    from rppgedit import report as reporting

    plots = reporting.plots_wanted(plots)

    names = _estimators(estimators)
    face = _video_face(video, fps, face_box, allow_no_face, mask_method, work_size, progress)
    fps = face.fps
    values = readings.read_heart_rates(
        face.clip, face.mask, fps, names, with_bvp=plots, progress=progress
    )
    gt_hr = _ground_truth_hr(ground_truth, fps, len(face.frames))
    rows = [
        {
            "estimator": n,
            "hr_bpm": r["hr_bpm"],
            "snr_db": r["snr_db"],
            "abs_err": None if gt_hr is None else abs(r["hr_bpm"] - gt_hr),
        }
        for n, r in values.items()
    ]
    info = {
        "input": face.name,
        "fps": fps,
        "frames": int(len(face.frames)),
        "ground_truth_hr_bpm": gt_hr,
        "skin_coverage": float(face.mask.mean()),
    }
    figure = None
    if plots:
        readers = _reader_rows(values)
        summary = _agreement(readers, None)
        figure = _spectra_figure(
            fps, readers, {n: r["bvp"] for n, r in values.items()}, {}, summary
        )
    return Readings(rows, info, figure)


def _reader_rows(values: dict) -> list[dict]:
    """The audit's rows of estimator readings ({estimator: {"hr_bpm", "snr_db", ...}})."""
    from rppgedit import report as reporting

    return [
        {
            "reader": n,
            "family": reporting.family_of(n),
            "hr_bpm": r["hr_bpm"],
            "snr_db": r["snr_db"],
            "error": None,
        }
        for n, r in values.items()
    ]


def _agreement(rows: list[dict], note) -> dict:
    """`report.audit_verdict` of the readers' `rows`, each row marked with whether it "agrees"."""
    from rppgedit import report as reporting

    summary = reporting.audit_verdict(rows, note)
    for row, agrees in zip(rows, summary.pop("agrees"), strict=True):
        row["agrees"] = agrees
    return summary


def _spectra_figure(fps: float, rows: list[dict], bvps: dict, bvp_fps: dict, summary: dict):
    """The readers' spectra per family (`report.figure`), titled with the audit's verdict."""
    from rppgedit import report as reporting

    data = reporting.PlotData(
        fps=fps,
        bvps={"before": bvps},
        families={r["reader"]: r["family"] for r in rows},
        bvp_fps=bvp_fps,
        original_hr_bpm=summary["consensus_hr_bpm"],
        title=summary["verdict"],
    )
    return reporting.figure(data)


def audit(
    video,
    fps: float | None = None,
    *,
    estimators: Sequence[str] | None = None,
    attackers: Iterable[str] | str | None = "auto",
    face_box=None,
    allow_no_face: bool = False,
    mask_method: str = "ycrcb_adaptive",
    work_size: int = 64,
    plots: bool = False,
    progress: bool = False,
) -> Audit:
    """How readable the pulse of `video` is (a path, or uint8 frames with `fps`): every estimator
    (default: the ten in-house ones, `rppgedit.estimators.registry.DEFAULT_READERS`) and, with
    `attackers` ("auto": the default open-rppg models when open-rppg is installed; a list of names;
    None or () for none), their readings, SNR and agreement, with a plain-language verdict. The
    pulse is called readable when at least half the readers (and at least two) agree on one rate
    within 3 bpm. `plots=True` draws the spectra per family into `Audit.figure`. `progress`: a bar
    per pass on stderr (decode and track, readings, attackers).

    >>> import rppgedit
    >>> frames, fps = rppgedit.demo_frames(seconds=5, size=96)   # true rate 72 bpm
    >>> result = rppgedit.audit(frames, fps, estimators=["green", "pos", "chrom"], attackers=None)
    >>> result.readable, round(result.consensus_hr_bpm / 10) * 10
    (True, 70)
    >>> result.verdict  # doctest: +ELLIPSIS
    'The pulse is readable: 3 of 3 readers (3/3 estimators) agree on 7... +/- 3 bpm, median SNR ... dB'
    """
    from rppgedit import readings
    from rppgedit import report as reporting

    plots = reporting.plots_wanted(plots)

    names = _estimators(estimators)
    face = _video_face(video, fps, face_box, allow_no_face, mask_method, work_size, progress)
    frames, fps, boxes = face.frames, face.fps, face.boxes
    values = readings.read_heart_rates(
        face.clip, face.mask, fps, names, with_bvp=True, progress=progress
    )
    rows = _reader_rows(values)
    bvps = {n: r["bvp"] for n, r in values.items()}
    bvp_fps = {}
    models, note = _attacker_models(attackers)
    if models:
        from rppgedit import open_rppg
        from rppgedit.video import crop

        side = int(
            np.clip(
                round(
                    float(
                        np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))
                    )
                ),
                16,
                256,
            )
        )
        crops = np.round(crop.crop_resize(frames, boxes, side) * 255.0).astype(np.uint8)
        read = open_rppg.read_open_rppg(crops, fps, models, return_bvp=plots, progress=progress)
        for model, r in read.items():
            if r.get("error"):
                note = ", ".join(filter(None, [note, f"{model} failed: {r['error']}"]))
                continue
            rows.append(
                {
                    "reader": f"open-rppg {model}",
                    "family": "attacker",
                    "hr_bpm": r["hr_bpm"],
                    "snr_db": r["snr_db"],
                    "error": None,
                }
            )
            if plots and r.get("bvp") is not None:
                bvps[f"open-rppg {model}"] = r["bvp"]
                bvp_fps[f"open-rppg {model}"] = r.get("bvp_fps") or fps
    summary = _agreement(rows, note)
    info = {
        "input": face.name,
        "fps": fps,
        "frames": int(len(frames)),
        "skin_coverage": float(face.mask.mean()),
        "readers": summary["readers"],
        "median_snr_db": summary["median_snr_db"],
        "attackers": note or "",
    }
    figure = _spectra_figure(fps, rows, bvps, bvp_fps, summary) if plots else None
    return Audit(
        rows=rows,
        verdict=summary["verdict"],
        readable=summary["readable"],
        consensus_hr_bpm=summary["consensus_hr_bpm"],
        agreeing=summary["agreeing"],
        info=info,
        figure=figure,
    )


def _attacker_models(attackers) -> tuple[tuple[str, ...], str | None]:
    """(open-rppg models to read, a note for the verdict)."""
    from rppgedit import open_rppg

    if attackers is None or (not isinstance(attackers, str) and not list(attackers)):
        return (), None
    if attackers == "auto":
        if not open_rppg.available():
            return (), f"open-rppg attackers not installed: {open_rppg.INSTALL_HINT}"
        return tuple(open_rppg.OPEN_RPPG_MODELS), None
    if isinstance(attackers, str):
        attackers = [a for a in attackers.split(",") if a.strip()]
    open_rppg.require_installed("attackers=")
    return tuple(attackers), None


# --------------------------------------------------------------------------------------------
# The demo clip.


def demo_frames(
    *, seconds: float = 10.0, size: int = 128, hr_bpm: float | None = None, seed: int = 0
) -> tuple[np.ndarray, float]:
    """The demo's generated face clip (no download): (uint8 frames (T, size, size, 3), fps), a
    moving face with a known pulse (72 bpm unless `hr_bpm`). The defaults give the clip of
    `rppgedit demo`."""
    from rppgedit.data import clips

    rate = clips.DEMO_HR_BPM if hr_bpm is None else hr_bpm
    clip = clips.demo_clip(seconds=seconds, size=size, hr_bpm=rate, seed=seed)
    return clip.frames, clip.fps


def demo_video(path, *, overwrite: bool = True, **kwargs) -> str:
    """Writes `demo_frames(**kwargs)` losslessly to `path` (.mkv: FFV1) and returns the path."""
    from rppgedit.video import encode

    frames, fps = demo_frames(**kwargs)
    return encode.write_video(os.fspath(path), frames, fps, overwrite=overwrite)


# --------------------------------------------------------------------------------------------
# A before/after preview that plays in a browser.


@dataclasses.dataclass(repr=False)
class Preview:
    """A playable H.264 MP4 (`path`, `data`): original | edited | |difference| x `amplify`, side by
    side; shown inline in a notebook as an HTML5 video."""

    path: str
    data: bytes
    amplify: float

    def html(self, width: int = 720) -> str:
        import base64

        src = base64.b64encode(self.data).decode("ascii")
        return (
            f'<video width="{width}" controls autoplay loop muted playsinline '
            f'src="data:video/mp4;base64,{src}"></video>'
            f"<p><small>left: original; middle: edited; right: |edited - original| x "
            f"{self.amplify:g}</small></p>"
        )

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:
        return f"Preview({self.path}, {len(self.data)} bytes)"


def preview(
    original,
    edited,
    fps: float | None = None,
    *,
    path=None,
    seconds: float = 6.0,
    max_height: int = 240,
    amplify: float = 20.0,
    crf: int = 18,
) -> Preview:
    """A before/after preview that plays in any browser (H.264 MP4, yuv420p): the first `seconds`
    of `original` and `edited` (paths, or uint8 frames with `fps`) side by side with their
    difference amplified `amplify` times, scaled down to at most `max_height` pixels. The edit
    itself is invisible (about one grey level); the third panel shows where it is. Written to
    `path` (default: a temporary file)."""
    import tempfile
    import warnings

    from rppgedit.video import encode

    a, fps_a, _ = _load(original, fps)
    is_path = isinstance(edited, str | os.PathLike)
    b, _, _ = _load(edited, None if is_path else (fps if fps is not None else fps_a))
    if a.shape != b.shape:
        raise RppgEditError(f"original {a.shape} and edited {b.shape} differ in shape")
    num = max(1, min(len(a), int(round(seconds * fps_a))))
    step = max(1, math.ceil(a.shape[1] / max_height))
    a, b = a[:num, ::step, ::step], b[:num, ::step, ::step]
    diff = np.abs(b.astype(np.int16) - a.astype(np.int16)).astype(np.float32) * amplify
    panels = np.concatenate([a, b, np.clip(diff, 0, 255).astype(np.uint8)], axis=2)
    height, width = panels.shape[1] // 2 * 2, panels.shape[2] // 2 * 2  # yuv420p: even sizes
    panels = np.ascontiguousarray(panels[:, :height, :width])
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="rppgedit-preview-"), "preview.mp4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", encode.LossyOutputWarning)
        written = encode.write_video(
            os.fspath(path), panels, fps_a, codec="h264", crf=crf, overwrite=True
        )
    with open(written, "rb") as f:
        return Preview(written, f.read(), amplify)
