"""Public rPPG datasets: list the recordings of a dataset folder and load frames with aligned BVP.

`list_samples(name, data_dir)` reads a dataset's published folder layout and ground-truth format
(without decoding any video) and returns `Sample`s; `load_sample` decodes one and returns its frames
with the contact pulse interpolated at the frame times, one value per frame; `clips` cuts samples into
fixed-length clips (15 s in the rPPG papers' evaluation protocols). Loaders are looked up by name in
`DATASETS`:

* ``ubfc_rppg``: UBFC-rPPG (Bobbia et al., "Unsupervised skin tissue segmentation for remote
  photoplethysmography", Pattern Recognition Letters 2019). Every folder under ``data_dir`` (at any
  depth, ``data_dir`` itself included) that holds ``vid.avi`` is one subject, with either
  ``ground_truth.txt`` (DATASET_2: three whitespace-separated rows, PPG, HR in bpm, time in s, one
  column per video frame) or ``gtdump.xmp`` (DATASET_1: comma-separated rows ``time ms, HR, SpO2,
  PPG`` at the pulse oximeter's own rate; its first row is taken to be at the first frame) beside
  it.
* ``pure``: PURE (Stricker et al., "Non-contact video-based pulse rate measurement on a mobile service
  robot", IEEE RO-MAN 2014). Session folders ``NN-NN`` with the JSON ``NN-NN/NN-NN.json`` and the
  frames ``NN-NN/NN-NN/Image<timestamp>.png`` (the layout the rPPG-Toolbox documents), or the JSON
  beside the session folder (``NN-NN.json`` next to ``NN-NN/Image<timestamp>.png``). The JSON holds
  ``"/FullPackage"`` (pulse oximeter packets: ``Timestamp`` in ns, ``Value.waveform``,
  ``Value.pulseRate``) and ``"/Image"`` (one ``Timestamp`` in ns per frame; the frame file is
  ``Image<Timestamp>.png``). Both clocks are the same, so the waveform is interpolated at the exact
  frame timestamps.
* ``mmpd``: MMPD (Tang et al., "MMPD: Multi-Domain Mobile Video Physiology Dataset", IEEE EMBC 2023).
  Files ``subject*/p*_*.mat`` (MATLAB v5, read with `scipy.io.loadmat`) holding ``video``
  (T,H,W,3) RGB, float in [0, 1] or uint8, at 30 fps, ``GT_ppg`` (the PPG waveform) and the label
  strings ``light, motion, exercise, skin_color, gender, glasser, hair_cover, makeup`` (copied into
  ``meta`` when present). When ``GT_ppg`` has as many samples as the video has frames, sample i is
  frame i; otherwise it is taken to span the video from its first to its last frame (as the
  rPPG-Toolbox resamples it). MATLAB v7.3 (HDF5) files are refused.
* ``mmse_hr``: MMSE-HR (Zhang et al., "Multimodal spontaneous emotion corpus for human behavior
  analysis", CVPR 2016; the BP4D+ physiology format). Every folder ``<subject>/<task>/`` holding
  ``*.jpg`` frames (natural file-name order) is one recording at 25 fps. Its physiology is
  ``BP_mmHg.txt`` (required: the continuous blood-pressure waveform, one value per line at 1000 Hz,
  used as the pulse waveform) and ``Pulse Rate_BPM.txt`` (optional: heart rate per sample, same
  length), found either in the frame folder itself or in a folder with the same ``<subject>/<task>``
  names anywhere under ``data_dir`` (e.g. ``Phydata/F013/T1/`` for ``2D/F013/T1/``). The physiology
  and the frames are taken to start together (sample 40 i is frame i), as published MMSE-HR
  pipelines assume.
* ``folder``: any videos (``.mp4 .avi .mkv .mov .webm``) or folders of PNG frames under ``data_dir``
  (any depth), each with an optional ground truth: ``<stem>_bvp.csv`` or ``<stem>.csv`` beside it
  (two columns, time in s and BVP, optional header; time 0 is the first frame), or
  ``ground_truth.txt`` in UBFC DATASET_2 format (one column per frame) in the same folder (for a
  video: only when it is the folder's one video; for a PNG folder: inside it). PNG folders have no
  stored frame rate: 30 fps is assumed (with a `FrameRateAssumedWarning`).

Alignment: ground truth and frames share one clock (`GroundTruth.times`, seconds from the first
ground-truth sample). Frame times are the dataset's own where it has them (PURE ``/Image``
timestamps; the UBFC time row, one per frame), else the container's timestamps for variable-rate
files, else i / fps. The waveform is linearly interpolated at the frame times; frames more than one
ground-truth sample interval outside the ground truth's span are refused ("ground truth shorter
than the video").

Format details that could not be checked against the real datasets here (no copies available; only
UBFC DATASET_2 subject 1 was checked, see tests) are parsed strictly, so a different layout fails with
a one-line `RppgEditError` naming the file instead of loading wrong data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import re
import warnings
from collections.abc import Callable, Iterable, Iterator

import imageio.v3 as iio
import numpy as np
import scipy.io

from rppgedit.data.ground_truth import GroundTruth, load_csv, load_ubfc
from rppgedit.errors import RppgEditError, one_line
from rppgedit.video import decode, probe

_log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm")
MMPD_FPS = 30.0
MMPD_LABELS = (
    "light",
    "motion",
    "exercise",
    "skin_color",
    "gender",
    "glasser",
    "hair_cover",
    "makeup",
)
MMSE_HR_FPS = 25.0
MMSE_HR_PHYSIOLOGY_HZ = 1000.0
_PURE_SESSION = re.compile(r"^\d{2}-\d{2}$")
_JPEG_SUFFIXES = (".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True, eq=False)
class Sample:
    """One recording of a dataset.

    Attributes:
      id: stable name, unique within the dataset (e.g. "subject1", "01-02", "subject3/p3_1").
      video_path: the video file, frame folder or .mat file holding the frames.
      fps: frame rate in Hz (the container's, the dataset's nominal rate, or the mean rate of the
        dataset's frame timestamps).
      ground_truth: the contact pulse on its own clock, or None (``folder`` without a ground truth).
      meta: dataset labels and provenance (subject, task, ground-truth file, MMPD labels, ...).
      frame_times: (N,) float64 seconds of frame i on the ground truth's clock, from the dataset's
        own timestamps (N >= the number of frames), or None for i / fps.
      reader: how the frames are decoded: "video" (`rppgedit.video.decode.read_video`: containers and
        PNG folders), "mat" (MMPD ``video`` array) or "jpg" (folder of JPEG frames).
    """

    id: str
    video_path: str
    fps: float
    ground_truth: GroundTruth | None
    meta: dict
    frame_times: np.ndarray | None = None
    reader: str = "video"


# --------------------------------------------------------------------------------------------
# Small helpers.


def _error(path, problem: str) -> RppgEditError:
    """A one-line user error naming ``path``."""
    return RppgEditError(" ".join(f"{os.fspath(path)}: {problem}".split()))


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _sorted_dirs(paths: Iterable[pathlib.Path]) -> list[pathlib.Path]:
    return sorted(paths, key=lambda p: _natural_key(p.as_posix()))


def _walk(root: pathlib.Path) -> Iterator[tuple[pathlib.Path, list[str], list[str]]]:
    """os.walk in natural order, skipping hidden folders and files."""
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=_natural_key)
        yield (
            pathlib.Path(top),
            dirs,
            sorted((f for f in files if not f.startswith(".")), key=_natural_key),
        )


def _rel_id(root: pathlib.Path, path: pathlib.Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel if rel != "." else path.resolve().name


def _load_column(path: pathlib.Path) -> np.ndarray:
    """A text file of one number per line -> (N,) float64, N >= 2, all finite."""
    if not path.is_file():
        raise _error(path, "file not found")
    try:
        data = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as err:
        raise _error(path, f"expected one number per line ({one_line(err)})") from None
    if data.ndim != 1:
        raise _error(path, f"expected one number per line, got {data.shape[1]} columns")
    if data.size < 2 or not np.all(np.isfinite(data)):
        raise _error(path, "needs at least 2 finite samples")
    return data


def _probe_fps(path: pathlib.Path) -> float:
    return float(probe.probe(path).fps)


# --------------------------------------------------------------------------------------------
# UBFC-rPPG.


def _load_ubfc1_gtdump(path: pathlib.Path) -> GroundTruth:
    """UBFC-rPPG DATASET_1 ``gtdump.xmp``: comma-separated rows (time ms, HR bpm, SpO2 %, PPG)."""
    try:
        data = np.genfromtxt(path, dtype=np.float64, delimiter=",", ndmin=2)
    except ValueError as err:
        raise _error(path, f"not a numeric CSV ({one_line(err)})") from None
    if data.shape[0] < 2 or data.shape[1] != 4 or not np.all(np.isfinite(data)):
        raise _error(
            path, f"expected rows of 4 numbers (time ms, HR, SpO2, PPG), got shape {data.shape}"
        )
    times = (data[:, 0] - data[0, 0]) / 1000.0
    if not np.all(np.diff(times) > 0):
        raise _error(path, "timestamps are not strictly increasing")
    return GroundTruth(times=times, bvp=data[:, 3], hr_bpm=data[:, 1])


def _list_ubfc_rppg(data_dir: pathlib.Path) -> list[Sample]:
    """UBFC-rPPG: ``*/vid.avi`` with ``ground_truth.txt`` (DATASET_2) or ``gtdump.xmp`` (DATASET_1)."""
    samples = []
    for folder, _, files in _walk(data_dir):
        if "vid.avi" not in files:
            continue
        video = folder / "vid.avi"
        meta = {"subject": folder.resolve().name}
        if "ground_truth.txt" in files:
            gt_path = folder / "ground_truth.txt"
            gt = load_ubfc(gt_path)
            # One ground-truth column per frame: the time row is the frames' own timestamps.
            frame_times, meta["layout"] = gt.times, "DATASET_2"
        elif "gtdump.xmp" in files:
            gt_path = folder / "gtdump.xmp"
            gt = _load_ubfc1_gtdump(gt_path)
            frame_times, meta["layout"] = None, "DATASET_1"
        else:
            raise _error(
                video, "no ground_truth.txt (DATASET_2) or gtdump.xmp (DATASET_1) beside it"
            )
        meta["ground_truth_path"] = str(gt_path)
        samples.append(
            Sample(
                id=_rel_id(data_dir, folder),
                video_path=str(video),
                fps=_probe_fps(video),
                ground_truth=gt,
                meta=meta,
                frame_times=frame_times,
            )
        )
    if not samples:
        raise _error(data_dir, "no UBFC-rPPG subjects found (expected <subject>/vid.avi)")
    return samples


# --------------------------------------------------------------------------------------------
# PURE.


def _pure_number(path, value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise _error(path, f"{where} is not a number")
    return float(value)


def _pure_timestamp(path, entry, where: str) -> int:
    if not isinstance(entry, dict) or not isinstance(entry.get("Timestamp"), int):
        raise _error(path, f"{where} has no integer Timestamp (ns)")
    return entry["Timestamp"]


def _parse_pure_json(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pulse timestamps ns int64, waveform, pulse rate bpm, frame timestamps ns int64)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _error(path, f"not a readable JSON file ({one_line(err)})") from None
    for key in ("/FullPackage", "/Image"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list) or not data[key]:
            raise _error(path, f'expected a non-empty "{key}" list (PURE format)')
    pulse_ns, wave, rate = [], [], []
    for i, entry in enumerate(data["/FullPackage"]):
        where = f"/FullPackage[{i}]"
        pulse_ns.append(_pure_timestamp(path, entry, where))
        value = entry.get("Value")
        if not isinstance(value, dict) or "waveform" not in value or "pulseRate" not in value:
            raise _error(path, f"{where} has no Value.waveform and Value.pulseRate")
        wave.append(_pure_number(path, value["waveform"], f"{where}.Value.waveform"))
        rate.append(_pure_number(path, value["pulseRate"], f"{where}.Value.pulseRate"))
    image_ns = [_pure_timestamp(path, e, f"/Image[{i}]") for i, e in enumerate(data["/Image"])]
    pulse_ns, image_ns = np.asarray(pulse_ns, np.int64), np.asarray(image_ns, np.int64)
    order = np.argsort(pulse_ns, kind="stable")
    pulse_ns, wave, rate = pulse_ns[order], np.asarray(wave)[order], np.asarray(rate)[order]
    if len(pulse_ns) < 2 or not np.all(np.diff(pulse_ns) > 0):
        raise _error(path, "/FullPackage needs at least 2 samples with distinct Timestamps")
    if len(image_ns) < 2 or not np.all(np.diff(image_ns) > 0):
        raise _error(path, "/Image needs at least 2 strictly increasing Timestamps")
    return pulse_ns, wave, rate, image_ns


def _pure_frames_folder(folder: pathlib.Path, image_ns: np.ndarray, json_path) -> None:
    """Check that ``folder`` holds exactly the PNGs ``Image<ns>.png`` that /Image lists."""
    if not folder.is_dir():
        raise _error(folder, f"frame folder not found (listed by {json_path})")
    present = {n for n in os.listdir(folder) if n.lower().endswith(".png")}
    expected = [f"Image{ns}.png" for ns in image_ns]
    for name in expected:
        if name not in present:
            raise _error(folder / name, f"frame listed in {json_path} /Image is missing")
    extra = sorted(present.difference(expected), key=_natural_key)
    if extra:
        raise _error(folder / extra[0], f"PNG not listed in {json_path} /Image")


def _list_pure(data_dir: pathlib.Path) -> list[Sample]:
    """PURE: ``NN-NN/NN-NN.json`` + ``NN-NN/NN-NN/Image<ns>.png`` (or the JSON beside ``NN-NN/``)."""
    sessions = _sorted_dirs(
        p for p in data_dir.iterdir() if p.is_dir() and _PURE_SESSION.match(p.name)
    )
    samples = []
    for session in sessions:
        name = session.name
        inside, beside = session / f"{name}.json", data_dir / f"{name}.json"
        if inside.is_file():
            json_path, frames = inside, session / name
        elif beside.is_file():
            json_path, frames = beside, session
        else:
            raise _error(session, f"no {name}.json inside or beside the session folder")
        pulse_ns, wave, rate, image_ns = _parse_pure_json(json_path)
        _pure_frames_folder(frames, image_ns, json_path)
        # Seconds on the pulse clock; integer ns differences first (epoch ns exceed float64's
        # 53-bit mantissa).
        origin = pulse_ns[0]
        times = (pulse_ns - origin).astype(np.float64) * 1e-9
        frame_times = (image_ns - origin).astype(np.float64) * 1e-9
        fps = (len(image_ns) - 1) / (frame_times[-1] - frame_times[0])
        samples.append(
            Sample(
                id=name,
                video_path=str(frames),
                fps=float(fps),
                ground_truth=GroundTruth(times=times, bvp=wave, hr_bpm=rate),
                meta={
                    "subject": int(name[:2]),
                    "setup": int(name[3:]),
                    "ground_truth_path": str(json_path),
                },
                frame_times=frame_times,
            )
        )
    if not samples:
        raise _error(data_dir, "no PURE sessions found (expected NN-NN/NN-NN.json)")
    return samples


# --------------------------------------------------------------------------------------------
# MMPD.


def _mat_label(value):
    """A loadmat label (1-element char array or number) -> str / int / float / list."""
    array = np.asarray(value)
    if array.dtype.kind in "US":
        parts = [str(x).strip() for x in array.ravel()]
        return parts[0] if len(parts) == 1 else parts
    if array.dtype.kind in "biuf" and array.size == 1:
        return array.item()
    return array.tolist()


def _mat_variables(path: pathlib.Path) -> dict[str, tuple]:
    """name -> shape of the variables of a MATLAB v5 file, without loading them."""
    try:
        return {name: shape for name, shape, _ in scipy.io.whosmat(path)}
    except NotImplementedError:
        raise _error(path, "MATLAB v7.3 (HDF5) .mat files are not supported; save as v5") from None
    except (ValueError, TypeError, OSError) as err:
        raise _error(path, f"not a readable .mat file ({one_line(err)})") from None


def _loadmat(path, names: list[str]) -> dict:
    try:
        return scipy.io.loadmat(path, variable_names=names)
    except (ValueError, TypeError, OSError, NotImplementedError) as err:
        raise _error(path, f"not a readable .mat file ({one_line(err)})") from None


def _list_mmpd(data_dir: pathlib.Path) -> list[Sample]:
    """MMPD: ``subject*/p*_*.mat`` with ``video``, ``GT_ppg`` and label strings, 30 fps."""
    files = sorted(data_dir.glob("subject*/p*_*.mat"), key=lambda p: _natural_key(p.as_posix()))
    samples = []
    for path in files:
        variables = _mat_variables(path)
        shape = variables.get("video")
        if shape is None:
            raise _error(path, "has no 'video' variable (MMPD format)")
        if len(shape) != 4 or shape[3] != 3 or shape[0] < 1:
            raise _error(path, f"'video' has shape {shape}, expected (T,H,W,3)")
        if "GT_ppg" not in variables:
            raise _error(path, "has no 'GT_ppg' variable (MMPD format)")
        labels = [k for k in MMPD_LABELS if k in variables]
        mat = _loadmat(path, ["GT_ppg", *labels])
        ppg = np.asarray(mat["GT_ppg"], np.float64)
        if ppg.ndim > 2 or (ppg.ndim == 2 and 1 not in ppg.shape):
            raise _error(path, f"'GT_ppg' has shape {ppg.shape}, expected a vector")
        ppg = ppg.ravel()
        if ppg.size < 2 or not np.all(np.isfinite(ppg)):
            raise _error(path, "'GT_ppg' needs at least 2 finite samples")
        num_frames = shape[0]
        span = (num_frames - 1) / MMPD_FPS
        if ppg.size == num_frames:
            times = np.arange(ppg.size) / MMPD_FPS
        else:
            times = np.linspace(0.0, span, ppg.size)
        meta = {k: _mat_label(mat[k]) for k in labels}
        meta.update(subject=path.parent.name, num_frames=num_frames, ground_truth_path=str(path))
        samples.append(
            Sample(
                id=f"{path.parent.name}/{path.stem}",
                video_path=str(path),
                fps=MMPD_FPS,
                ground_truth=GroundTruth(times=times, bvp=ppg),
                meta=meta,
                reader="mat",
            )
        )
    if not samples:
        raise _error(data_dir, "no MMPD files found (expected subject*/p*_*.mat)")
    return samples


# --------------------------------------------------------------------------------------------
# MMSE-HR.


def _is_jpeg(name: str) -> bool:
    return name.lower().endswith(_JPEG_SUFFIXES)


def _list_mmse_hr(data_dir: pathlib.Path) -> list[Sample]:
    """MMSE-HR: ``<subject>/<task>/*.jpg`` (25 fps) + ``BP_mmHg.txt`` at 1 kHz (same or twin folder)."""
    frame_dirs, physiology = [], {}
    for folder, _, files in _walk(data_dir):
        key = (folder.parent.name, folder.name)
        if "BP_mmHg.txt" in files:
            if key in physiology:
                raise _error(
                    folder / "BP_mmHg.txt", f"second physiology folder for {key[0]}/{key[1]}"
                )
            physiology[key] = folder
        if any(_is_jpeg(f) for f in files):
            frame_dirs.append(folder)
    samples, seen = [], {}
    for folder in frame_dirs:
        key = (folder.parent.name, folder.name)
        if key in seen:
            raise _error(folder, f"second frame folder for {key[0]}/{key[1]} (first: {seen[key]})")
        seen[key] = folder
        phys = folder if (folder / "BP_mmHg.txt").is_file() else physiology.get(key)
        if phys is None:
            raise _error(
                folder, f"no BP_mmHg.txt in it or in a {key[0]}/{key[1]}/ folder under {data_dir}"
            )
        bp_path = phys / "BP_mmHg.txt"
        bp = _load_column(bp_path)
        rate_path = phys / "Pulse Rate_BPM.txt"
        rate = None
        if rate_path.is_file():
            rate = _load_column(rate_path)
            if rate.size != bp.size:
                raise _error(rate_path, f"has {rate.size} samples but {bp_path.name} has {bp.size}")
        times = np.arange(bp.size) / MMSE_HR_PHYSIOLOGY_HZ
        samples.append(
            Sample(
                id=f"{key[0]}/{key[1]}",
                video_path=str(folder),
                fps=MMSE_HR_FPS,
                ground_truth=GroundTruth(times=times, bvp=bp, hr_bpm=rate),
                meta={
                    "subject": key[0],
                    "task": key[1],
                    "ground_truth_path": str(bp_path),
                    "pulse_rate_path": str(rate_path) if rate is not None else None,
                },
                reader="jpg",
            )
        )
    if not samples:
        raise _error(data_dir, "no MMSE-HR recordings found (expected <subject>/<task>/*.jpg)")
    return samples


# --------------------------------------------------------------------------------------------
# Any folder of videos.


def _folder_ground_truth(candidates: list[pathlib.Path], ubfc: pathlib.Path | None, owner):
    """(GroundTruth or None, frame_times or None, path or None) from the candidate files."""
    found = [p for p in candidates if p.is_file()]
    if len(found) > 1:
        raise _error(found[1], f"ambiguous ground truth for {owner}: also {found[0].name}")
    if found:
        return load_csv(found[0]), None, found[0]
    if ubfc is not None and ubfc.is_file():
        gt = load_ubfc(ubfc)
        return gt, gt.times, ubfc
    return None, None, None


def _list_folder(data_dir: pathlib.Path) -> list[Sample]:
    """Videos (mp4 avi mkv mov webm) or PNG folders, with optional CSV / ground_truth.txt."""
    samples = []
    for folder, dirs, files in _walk(data_dir):
        if any(f.lower().endswith(".png") for f in files):
            dirs[:] = []  # a PNG folder is one sample; do not descend into it
            gt, frame_times, gt_path = _folder_ground_truth(
                [folder.parent / f"{folder.name}_bvp.csv", folder.parent / f"{folder.name}.csv"],
                folder / "ground_truth.txt",
                folder,
            )
            warnings.warn(
                f"{folder}: PNG frames carry no frame rate; assuming {probe.DEFAULT_FPS:g} fps",
                probe.FrameRateAssumedWarning,
                stacklevel=3,
            )
            samples.append(
                Sample(
                    id=_rel_id(data_dir, folder),
                    video_path=str(folder),
                    fps=probe.DEFAULT_FPS,
                    ground_truth=gt,
                    meta={"ground_truth_path": gt_path and str(gt_path), "fps_assumed": True},
                    frame_times=frame_times,
                )
            )
            continue
        videos = [f for f in files if f.lower().endswith(VIDEO_EXTENSIONS)]
        for name in videos:
            video = folder / name
            stem = video.stem
            ubfc = folder / "ground_truth.txt"
            if len(videos) > 1 and ubfc.is_file():
                raise _error(ubfc, f"ambiguous: the folder holds {len(videos)} videos")
            gt, frame_times, gt_path = _folder_ground_truth(
                [folder / f"{stem}_bvp.csv", folder / f"{stem}.csv"], ubfc, video
            )
            samples.append(
                Sample(
                    id=_rel_id(data_dir, video),
                    video_path=str(video),
                    fps=_probe_fps(video),
                    ground_truth=gt,
                    meta={"ground_truth_path": gt_path and str(gt_path)},
                    frame_times=frame_times,
                )
            )
    if not samples:
        raise _error(
            data_dir, f"no videos ({' '.join(VIDEO_EXTENSIONS)}) or PNG frame folders found"
        )
    return samples


# Name -> loader. Each loader takes the dataset's root folder and returns its samples.
DATASETS: dict[str, Callable[[pathlib.Path], list[Sample]]] = {
    "ubfc_rppg": _list_ubfc_rppg,
    "pure": _list_pure,
    "mmpd": _list_mmpd,
    "mmse_hr": _list_mmse_hr,
    "folder": _list_folder,
}


def list_samples(dataset: str, data_dir) -> list[Sample]:
    """The recordings of a dataset folder, in natural order, without decoding any video.

    Args:
      dataset: a key of `DATASETS` ("ubfc_rppg", "pure", "mmpd", "mmse_hr", "folder").
      data_dir: the dataset's root folder (see the module docstring for each layout).

    Returns:
      list of `Sample`, at least one.

    Raises:
      RppgEditError: unknown dataset, missing data_dir, no samples, or a missing or malformed
        ground-truth / metadata file (the message names the file).
    """
    if dataset not in DATASETS:
        raise RppgEditError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise _error(root, "data_dir is not an existing folder")
    return DATASETS[dataset](root)


# --------------------------------------------------------------------------------------------
# Decoding and alignment.


def _read_container(sample: Sample, max_frames: int | None) -> decode.Video:
    fps = sample.fps if os.path.isdir(sample.video_path) else None
    return decode.read_video(sample.video_path, max_frames=max_frames, fps=fps)


def _read_mat(sample: Sample, max_frames: int | None) -> decode.Video:
    path = sample.video_path
    if "video" not in _mat_variables(pathlib.Path(path)):
        raise _error(path, "has no 'video' variable (MMPD format)")
    video = _loadmat(path, ["video"])["video"]
    if video.ndim != 4 or video.shape[3] != 3:
        raise _error(path, f"'video' has shape {video.shape}, expected (T,H,W,3)")
    video = video[:max_frames]
    if video.dtype == np.uint8:
        frames = np.ascontiguousarray(video)
    elif video.dtype.kind == "f":
        if not np.all(np.isfinite(video)) or video.min() < 0.0 or video.max() > 1.0:
            raise _error(path, "float 'video' must be finite and in [0, 1]")
        frames = np.round(video * 255.0).astype(np.uint8)
    else:
        raise _error(path, f"'video' has dtype {video.dtype}; expected float in [0, 1] or uint8")
    return decode.Video(frames, sample.fps, None, path)


def _read_jpg_folder(sample: Sample, max_frames: int | None) -> decode.Video:
    folder = pathlib.Path(sample.video_path)
    if not folder.is_dir():
        raise _error(folder, "frame folder not found")
    names = sorted((n for n in os.listdir(folder) if _is_jpeg(n)), key=_natural_key)
    if not names:
        raise _error(folder, "holds no .jpg frames")
    names = names[:max_frames]
    frames = None
    for i, name in enumerate(names):
        try:
            image = np.asarray(iio.imread(folder / name))
        except Exception as err:  # imageio raises plugin-specific errors
            raise _error(folder / name, f"not a readable JPEG ({one_line(err)})") from None
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise _error(folder / name, f"expected 8-bit RGB, got {image.shape} {image.dtype}")
        if frames is None:
            frames = np.empty((len(names), *image.shape), np.uint8)
        elif image.shape != frames.shape[1:]:
            raise _error(folder / name, f"size {image.shape} differs from {frames.shape[1:]}")
        frames[i] = image
    return decode.Video(frames, sample.fps, None, str(folder))


_READERS: dict[str, Callable[[Sample, int | None], decode.Video]] = {
    "video": _read_container,
    "mat": _read_mat,
    "jpg": _read_jpg_folder,
}


def _gt_name(sample: Sample) -> str:
    return sample.meta.get("ground_truth_path") or sample.video_path


def align_ground_truth(gt: GroundTruth, frame_times: np.ndarray, name: str = "ground truth"):
    """The ground-truth waveform at the frame times (linear interpolation), one value per frame.

    Args:
      gt: the contact pulse on its own clock.
      frame_times: (T,) seconds of each frame on the same clock.
      name: the ground-truth file, for error messages.

    Returns:
      (T,) float32 BVP at the frames.

    Raises:
      RppgEditError: frames lie more than one ground-truth sample interval outside its span.
    """
    t = np.asarray(gt.times, np.float64)
    frame_times = np.asarray(frame_times, np.float64)
    tolerance = float(np.median(np.diff(t))) if t.size > 1 else 0.0
    if frame_times[0] < t[0] - tolerance or frame_times[-1] > t[-1] + tolerance:
        raise _error(
            name,
            f"ground truth covers {t[0]:.3f}..{t[-1]:.3f} s but the {frame_times.size} frames "
            f"span {frame_times[0]:.3f}..{frame_times[-1]:.3f} s (ground truth shorter than "
            "the video)",
        )
    return np.interp(frame_times, t, gt.bvp).astype(np.float32)


def load_sample(
    sample: Sample, *, max_frames: int | None = None
) -> tuple[decode.Video, np.ndarray | None]:
    """Decode a sample and align its ground truth to the frames.

    Args:
      sample: from `list_samples`.
      max_frames: decode at most this many frames from the start (MMPD files are read whole, then
        cut).

    Returns:
      (video, bvp): video with frames (T,H,W,3) uint8 RGB and its fps (PURE: ``timestamps`` holds
      the dataset's per-frame times, seconds from the first frame); bvp (T,) float32, the
      ground-truth waveform at each frame's time (in the dataset's units), or None without a
      ground truth.

    Raises:
      RppgEditError: unreadable frames, or a ground truth that does not cover the video.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    video = _READERS[sample.reader](sample, max_frames)
    num = len(video.frames)
    if sample.frame_times is not None:
        if len(sample.frame_times) < num:
            raise _error(
                _gt_name(sample),
                f"has {len(sample.frame_times)} frame timestamps but the video has {num} frames "
                "(ground truth shorter than the video)",
            )
        frame_times = np.asarray(sample.frame_times[:num], np.float64)
        if sample.reader == "video" and os.path.isdir(sample.video_path):
            video = dataclasses.replace(video, timestamps=frame_times - frame_times[0])
    elif video.timestamps is not None:
        frame_times = np.asarray(video.timestamps, np.float64)
    else:
        frame_times = np.arange(num) / video.fps
    if sample.ground_truth is None:
        return video, None
    video, frame_times = _trim_to_ground_truth(video, frame_times, sample)
    return video, align_ground_truth(sample.ground_truth, frame_times, _gt_name(sample))


# Real recordings often stop the pulse oximeter a sample before the camera (physrecorder: the last 2
# of 602 frames lie 58 ms past the last of its 20 Hz samples). Up to this fraction of the frames,
# at the start or end, may lie outside the ground truth's span: they are dropped, with a warning.
MAX_UNCOVERED_FRACTION = 0.01


def _trim_to_ground_truth(video, frame_times: np.ndarray, sample: Sample):
    """Drops the few edge frames the ground truth does not cover (see MAX_UNCOVERED_FRACTION)."""
    t = np.asarray(sample.ground_truth.times, np.float64)
    tolerance = float(np.median(np.diff(t))) if t.size > 1 else 0.0
    covered = (frame_times >= t[0] - tolerance) & (frame_times <= t[-1] + tolerance)
    if covered.all() or not covered.any():
        return video, frame_times  # all covered, or nothing: align_ground_truth decides
    first, last = np.flatnonzero(covered)[[0, -1]]
    dropped = len(frame_times) - (last - first + 1)
    if dropped > MAX_UNCOVERED_FRACTION * len(frame_times):
        return video, frame_times  # too many: refused by align_ground_truth
    _log.warning(
        "%s: ground truth does not cover %d edge frame(s) of %d; dropped them",
        _gt_name(sample),
        dropped,
        len(frame_times),
    )
    keep = slice(first, last + 1)
    timestamps = (
        None if video.timestamps is None else video.timestamps[keep] - video.timestamps[first]
    )
    video = dataclasses.replace(video, frames=video.frames[keep], timestamps=timestamps)
    return video, frame_times[keep]


def clips(
    samples: Iterable[Sample], clip_seconds: float = 15.0, *, drop_last: bool = True
) -> Iterator[tuple[str, int, np.ndarray, float, np.ndarray | None]]:
    """Cut each sample into consecutive, non-overlapping clips of ``clip_seconds``.

    Each sample is decoded whole (`load_sample`), one at a time.

    Args:
      samples: from `list_samples`.
      clip_seconds: clip length in s; a clip has round(clip_seconds * fps) frames.
      drop_last: drop a trailing part shorter than a clip (the papers' protocol); a sample
        shorter than one clip then gives no clip (logged).

    Yields:
      (sample_id, start_frame, frames (n,H,W,3) uint8, fps in Hz, bvp (n,) float32 or None).
    """
    if not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be positive, got {clip_seconds}")
    for sample in samples:
        video, bvp = load_sample(sample)
        n = max(1, round(clip_seconds * video.fps))
        total = len(video.frames)
        last = total - n if drop_last else total - 1
        if last < 0:
            _log.warning(
                "%s: %d frames is shorter than one %.1f s clip (%d frames); skipped",
                sample.id,
                total,
                clip_seconds,
                n,
            )
        for start in range(0, last + 1, n):
            stop = start + n
            yield (
                sample.id,
                start,
                video.frames[start:stop],
                video.fps,
                None if bvp is None else bvp[start:stop],
            )
