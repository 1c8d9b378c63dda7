"""What an edit is measured by: its fidelity (PSNR, SSIM where the frames differ), each face's
heart-rate readers before and after (and after one more re-encode), the surrogates' verdicts, and
the report's rows and picture (`run_edit` and `report_rows` build the report from these).

    input crops ──► Readers["before"]      output frames ──crop──► Readers["after"]
    input, output ──► Fidelity (only the rectangle where they differ; the rest counts as equal)
    Readers ──► summary(): per-face rows, surrogates fooled or not (a warning each), skin coverage
"""

from __future__ import annotations

import collections
import concurrent.futures

import jax
import numpy as np

from rppgedit import metrics, pipeline, readings, signals
from rppgedit import progress as progress_bars
from rppgedit.engine import MIN_FRAMES
from rppgedit.pipeline import Rect


def _squared_error(reference: np.ndarray, output: np.ndarray) -> float:
    """The sum of squared differences of two uint8 or uint16 arrays of one dtype, on the [0, 1]
    scale (16-bit output is compared at full precision). The squares are summed as integers in
    float64, exactly while the sum stays below 2^53: always for a few 8-bit frames (4 of 1080p
    sum to at most 1.6e12), and for 16-bit ones that differ by an edit's few levels."""
    signed = np.int16 if reference.dtype == np.uint8 else np.int32
    diff = np.subtract(output, reference, dtype=signed).ravel().astype(np.float64)
    return float(np.dot(diff, diff)) / float(np.iinfo(reference.dtype).max) ** 2


def _differing_rect(a: np.ndarray, b: np.ndarray) -> Rect | None:
    """The smallest rectangle (y0, y1, x0, x1) that holds every pixel where frames a and b
    (T, H, W, 3) differ; None when they are equal."""
    differs = np.any(a != b, axis=(0, 3))
    rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    if not len(rows):
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _same_scale(reference: np.ndarray, output: np.ndarray):
    """The pair with 8-bit frames lifted to 16 bits (x 257, exact) when the other one is 16-bit."""
    if reference.dtype == output.dtype:
        return reference, output
    lift = [
        f.astype(np.uint16) * np.uint16(257) if f.dtype == np.uint8 else f
        for f in (reference, output)
    ]
    return lift[0], lift[1]


class Fidelity:
    """Running PSNR and SSIM of output frames against reference frames, chunk by chunk.

    Both are computed where the frames differ, exactly: the other pixels add no error to the PSNR,
    and an SSIM of 1 wherever the window sees no difference (`metrics.ssim(changed=)`). The SSIM
    runs on the device without the caller waiting (`metrics.ssim_terms`), one computation per
    group of frames: the device holds few computations in flight, and a caller that sends more
    waits behind the edit (`metrics._ssim_deficit`). At most `_PENDING_VALUES` compared values are
    in flight; past that, the oldest are waited for.
    """

    _PENDING_VALUES = 1 << 26
    # Frame values per SSIM computation (a 54-frame chunk at 320x320): the device keeps few in
    # flight (`metrics._ssim_deficit`).
    _GROUP_VALUES = 1 << 24

    def __init__(self):
        self.sse, self.count, self.values = 0.0, 0, 0
        self._done = metrics.SsimTerms([], 0)
        self._pending: collections.deque = collections.deque()  # (terms, values compared)
        self._pending_values = 0

    def add(
        self,
        reference: np.ndarray,
        output: np.ndarray,
        changed: Rect | None = None,
        sse: float | None = None,
    ) -> None:
        """Adds frames (T, H, W, 3); `changed`: a rectangle (y0, y1, x0, x1) outside which they
        are equal, or None to find the one that holds every differing pixel; `sse`: their sum of
        squared differences on the [0, 1] scale when the caller has it (the paste does)."""
        if sse is not None:
            self.sse += sse
        group = max(4, self._GROUP_VALUES // max(reference[0].size, 1))
        for g in range(0, len(reference), group):  # one SSIM computation per group
            ref, out = _same_scale(reference[g : g + group], output[g : g + group])
            rects = []
            for i in range(0, len(ref), 4):  # 4 frames at a time bound the temporaries
                r4, o4 = ref[i : i + 4], out[i : i + 4]
                rect = changed if changed is not None else _differing_rect(r4, o4)
                if rect is None:
                    continue
                rects.append(rect)
                if sse is None:
                    y0, y1, x0, x1 = rect
                    self.sse += _squared_error(r4[:, y0:y1, x0:x1], o4[:, y0:y1, x0:x1])
            self.count += len(ref)
            self.values += ref.size
            rect = pipeline.bounding_rect(rects) or (0, 0, 0, 0)  # equal: every window counts 1
            terms = metrics.ssim_terms(ref, out, changed=rect)
            compared = len(ref) * (rect[1] - rect[0]) * (rect[3] - rect[2]) * ref.shape[-1]
            self._pending.append((terms, compared))
            self._pending_values += compared
            while self._pending_values > self._PENDING_VALUES:
                self._settle_oldest()

    def _settle_oldest(self) -> None:
        terms, values = self._pending.popleft()
        self._pending_values -= values
        jax.block_until_ready(terms.deficits)
        self._done += terms

    def psnr_db(self) -> float:
        mse = self.sse / max(self.values, 1)
        return float("inf") if mse == 0 else float(-10.0 * np.log10(mse))

    def ssim(self) -> float:
        while self._pending:
            self._settle_oldest()
        return self._done.value() if self.count else 0.0


class Readers:
    """Each face's heart-rate readers, fed chunk by chunk (`readings.StreamReader`): "before" (the
    input's crops), "after" (the output's) and "reencoded" (the output re-encoded once more).
    "before" and "after" read `job.estimators` and the editor's surrogates, "reencoded" the
    estimators. Faces too short to edit get none.

    Once every face's input crops are in (`add_crop`: "before"; in well before the edit's last
    windows are back), their readings are taken on a thread, while the caller waits for the edit,
    instead of after the paste (0.4-0.5 s of the shared 320x320 clip's command)."""

    def __init__(
        self,
        job: pipeline.EditJob,
        faces: list[pipeline.FaceEdit],
        fps: float,
        keys=("before", "after"),
    ):
        self.job, self.faces = job, faces
        self.surrogates = getattr(pipeline.editor_config(job, fps), "surrogates", ())
        every = tuple(dict.fromkeys(job.estimators + tuple(n for n, _ in self.surrogates)))
        params = {}
        self.readers = {
            key: {
                i: readings.StreamReader(
                    job.estimators if key == "reencoded" else every, f.stop - f.first, fps, params
                )
                for i, f in enumerate(faces)
                if f.stop - f.first >= MIN_FRAMES
            }
            for key in keys
        }
        self._early: dict[str, concurrent.futures.Future] = {}  # readings of complete keys

    def add_crop(self, key: str, i: int, clip: np.ndarray, mask: np.ndarray) -> None:
        if i in self.readers[key]:
            self.readers[key][i].add(clip, mask)
            self._read_if_complete(key)

    def _read_if_complete(self, key: str) -> None:
        readers = self.readers[key]
        if key not in self._early and all(r.received == r.num for r in readers.values()):
            pool = concurrent.futures.ThreadPoolExecutor(1, "rppgedit-readings")
            self._early[key] = pool.submit(
                lambda: {i: r.readings(with_bvp=True) for i, r in readers.items()}
            )
            pool.shutdown(wait=False)  # its one task: the thread ends after it

    def add_frames(self, key: str, start: int, frames: np.ndarray) -> None:
        """Crops each face out of full frames `start`.. of an output and reads them through the
        skin mask of those crops, as an observer who has only the output would, not through the
        edit's mask of the original: the pulse modulates that mask (pixels at its edge enter and
        leave it with each beat), so reading through it finds the true rate even in frames that
        carry none (`benchmarks/removal_codec.py`: clips rendered without a pulse, 8 seeds x 10
        estimators, 24/80 readings at the true rate through the original's mask, 5/80 through
        their own)."""
        for i, f in enumerate(self.faces):
            a, b = pipeline.overlap(f, start, len(frames))
            if a < b and i in self.readers[key]:
                clip, mask = pipeline.crop_and_mask(
                    frames[a - start : b - start], f.boxes[a:b], self.job
                )
                self.readers[key][i].add(clip, mask)

    def readings(self, i: int, step=None) -> dict:
        """{key: {estimator: reading}} of face `i` ("after" with the BVP of each reading); `step`
        is called with 1 after each estimator's reading (a progress bar's `update`)."""
        out = {}
        for key, readers in self.readers.items():
            if key not in self._early:
                out[key] = readers[i].readings(with_bvp=key == "after", step=step)
                continue
            read = self._early[key].result()[i]
            out[key] = {
                name: r if key == "after" else {k: v for k, v in r.items() if k != "bvp"}
                for name, r in read.items()
            }
            if step is not None:
                for _ in read:
                    step(1)
        return out

    def regions(self, i: int) -> dict:
        """{"before"/"after": `readings.regional_agreement`} of face `i`: each face region's rate
        and how the regions' pulses agree, before and after the edit."""
        return {key: self.readers[key][i].regions() for key in ("before", "after")}

    def num_readings(self, faces) -> int:
        """How many readings `readings` takes of the edited faces (the report's bar's total)."""
        return sum(
            len(readers[i].names)
            for i, f in enumerate(faces)
            if f.edited
            for readers in self.readers.values()
        )

    def bvps(self, i: int) -> dict:
        """{"before"/"after": {estimator: BVP (T,)}} of face `i` for `job.estimators` (the report's
        spectra)."""
        return {
            key: {
                n: r["bvp"]
                for n, r in self.readers[key][i].readings(with_bvp=True).items()
                if n in self.job.estimators
            }
            for key in ("before", "after")
            if i in self.readers.get(key, {})
        }


def plot_data(job: pipeline.EditJob, faces, readers: Readers, fps: float, target, pair, summary):
    """`report.PlotData` of the first edited face: its spectra before and after, the frame `pair`
    ((index, original, output) of one frame, or None) cut to the face, the target."""
    from rppgedit import report

    i = next(i for i, f in enumerate(faces) if f.edited)
    f = faces[i]
    counts = [c for c in report.verdict_counts(summary) if c["face"] == i]
    data = report.PlotData(
        fps=fps,
        bvps=readers.bvps(i),
        families={n: report.family_of(n) for n in job.estimators},
        target=None if target is None else np.asarray(target[f.span]),
        target_hr_bpm=counts[0]["target_hr_bpm"] if counts else None,
        original_hr_bpm=counts[0]["original_hr_bpm"] if counts else None,
        remove=job.target.kind == "none",
        title=summary.get("verdict", ""),
    )
    if pair is not None:
        index, original, out = pair
        box = f.boxes[index]
        data.original_frame = report.face_region(original, box)
        data.edited_frame = report.face_region(out, box)
        data.frame_index = index
    return data


def pair_index(faces) -> int:
    """The frame the report's difference map shows: the middle of the first long-enough face."""
    f = next((f for f in faces if f.stop - f.first >= MIN_FRAMES), faces[0])
    return (f.first + f.stop) // 2


# A surrogate is fooled when it reads the target rate within this (removal: not its before rate).
FOOLED_BPM = 3.0


def _face_rows(estimators, index: int, readings: dict, target_hr) -> list[dict]:
    """Before/after readings of `estimators` on one face, a row per estimator."""
    rows = []
    for n in estimators:
        row = {"face": index, "estimator": n}
        for key, values in readings.items():
            row[f"hr_{key}"] = values[n]["hr_bpm"]
            row[f"snr_{key}"] = values[n]["snr_db"]
        row["abs_err_to_target"] = None if target_hr is None else abs(row["hr_after"] - target_hr)
        rows.append(row)
    return rows


def _surrogate_entries(surrogates, index, readings, wave, target_hr, fps):
    """Each (name, weight) surrogate's reading and Pearson with the target waveform `wave` (None for
    removal) on the face's "after" crop (`readings`, with its BVP), and whether it was fooled: it
    reads the target rate
    (`target_hr`; None: read from `wave`) within FOOLED_BPM, or for removal no longer reads its
    before rate within FOOLED_BPM."""
    if wave is not None and target_hr is None:
        target_hr = float(signals.heart_rate(wave, fps))
    entries = []
    for name, weight in surrogates:
        before, hr = readings["before"][name]["hr_bpm"], readings["after"][name]["hr_bpm"]
        entry = {"face": index, "surrogate": name, "weight": weight, "hr_before": before}
        entry.update(hr_after=hr, target_hr_bpm=target_hr, pearson_to_target=None)
        if wave is None:
            entry["fooled"] = abs(hr - before) > FOOLED_BPM
        else:
            bvp = readings["after"][name]["bvp"]
            entry["pearson_to_target"] = float(signals.pearson(bvp, wave))
            entry["fooled"] = abs(hr - target_hr) <= FOOLED_BPM
        entries.append(entry)
    return entries


def _not_fooled(entry: dict, multi_face: bool) -> str:
    """The warning line of a surrogate that was not fooled."""
    who = f"face {entry['face']}: " if multi_face else ""
    if entry["target_hr_bpm"] is None:
        return (
            f"{who}{entry['surrogate']} still reads {entry['hr_after']:.1f} bpm after the removal "
            f"(before {entry['hr_before']:.1f} bpm)"
        )
    return (
        f"{who}{entry['surrogate']} still reads {entry['hr_after']:.1f} bpm after the edit "
        f"(target {entry['target_hr_bpm']:.1f} bpm, Pearson {entry['pearson_to_target']:.2f})"
    )


def readings_summary(
    job: pipeline.EditJob, faces, readers: Readers, fps: float, target, progress=False
) -> dict:
    """Per-face readings before and after (each face's `readers`), their rows, and the editor's
    surrogates on "after" against the `target` waveform (None for removal). `progress`: a bar
    "report: readings" with one step per estimator, face and key (before, after, ...)."""
    target_hr = job.target.single_rate_bpm
    bar = progress_bars.bar(readers.num_readings(faces), "report: readings", progress, unit="est")
    with bar:
        listed, rows, entries = _face_entries(job, faces, readers, fps, target, bar.update)
    edited = [f for f in faces if f.edited]
    return {
        "rows": rows,
        "faces": listed,
        "surrogates": entries,
        "warnings": [_not_fooled(e, len(faces) > 1) for e in entries if not e["fooled"]],
        "skin_coverage": float(np.mean([f.mask.mean() for f in edited])),
        "target_hr_bpm": target_hr,
    }


def _face_entries(job: pipeline.EditJob, faces, readers: Readers, fps: float, target, step):
    """(the report's "faces" entries, its rows, its surrogate entries), reading each edited face."""
    surrogates = readers.surrogates
    target_hr = job.target.single_rate_bpm
    rows, listed, entries = [], [], []
    for i, f in enumerate(faces):
        entry = {
            "face": i,
            "first_frame": f.first,
            "last_frame": f.stop - 1,
            "edited": f.edited,
            "skin_coverage": float(f.mask.mean()) if f.mask.size else 0.0,
            "boxes": np.round(f.boxes[f.span], 1).tolist(),
        }
        if f.edited:
            readings = readers.readings(i, step)
            entry["rows"] = _face_rows(job.estimators, i, readings, target_hr)
            wave = None if target is None else np.asarray(target[f.span], np.float64)
            entry["surrogates"] = _surrogate_entries(surrogates, i, readings, wave, target_hr, fps)
            entry["regions"] = readers.regions(i)
            rows += entry["rows"]
            entries += entry["surrogates"]
        listed.append(entry)
    return listed, rows, entries


def report_rows(
    job: pipeline.EditJob,
    result: pipeline.EditResult,
    original: np.ndarray,
    fps: float,
    *,
    plots: bool = False,
    progress: bool = False,
) -> dict:
    """Before/after heart rates of `job.estimators` per face, the editor's surrogates after the
    edit (with a warning for each one not fooled), PSNR and SSIM of the full frames; with `plots`,
    also the report's `report.PlotData` under "plot_data" (not JSON: pop it before writing).
    `progress`: a bar per pass, "report: read before + after" (frames: the readers take each
    face's crops before and after, the deep estimators window by window) and "report: readings"
    (estimators)."""
    fidelity = Fidelity()
    fidelity.add(original, result.frames)
    readers = Readers(job, result.faces, fps)
    num = len(result.frames)
    size = pipeline.chunk_frames(*result.frames.shape[1:3])
    with progress_bars.bar(num, "report: read before + after", progress, unit="frame") as bar:
        for start in range(0, num, size):
            for i, f in enumerate(result.faces):
                a, b = pipeline.overlap(f, start, min(size, num - start))
                if a < b:
                    lo, hi = a - f.first, b - f.first
                    readers.add_crop("before", i, f.clip[lo:hi], f.mask[lo:hi])
            readers.add_frames("after", start, result.frames[start : start + size])
            bar.update(min(size, num - start))
    summary = readings_summary(job, result.faces, readers, fps, result.target, progress)
    summary.update(psnr_db=fidelity.psnr_db(), ssim=fidelity.ssim())
    if plots:
        k = pair_index(result.faces)
        pair = (k, original[k], result.frames[k])
        summary["plot_data"] = plot_data(
            job, result.faces, readers, fps, result.target, pair, summary
        )
    return summary
