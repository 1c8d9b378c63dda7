"""The clips of a source: one home for the clips every runner edits or reads.

A `Clip` is one clip of a source: its id, its frames, frame rate, face boxes and ground truth (the
true heart rate and contact pulse when the source has them). The sources:

* `synthetic_clip`: one seeded `rppgedit.data.synthetic` face (the sweep's seeds, the demo clip);
* `random_synthetic_clip`: one face whose look, motion and pulse are drawn from its seed (training
  and held-out validation clips of `rppgedit.train`);
* `synthetic_variants`: the experiments' synthetic set, cycling skin tones, head motion and
  illumination drift (`SYNTHETIC_VARIANTS`);
* `dataset_clips`: consecutive fixed-length clips of a dataset's recordings
  (`rppgedit.data.datasets`), faces found by `pipeline.find_boxes`;
* `index_recordings` / `read_recordings` / `dataset_clip`: a dataset's clips listed once (each
  recording decoded and tracked once, sharded over processes by the caller), then loaded one by
  one (`rppgedit.runner` runs grids over them).

Each runner keeps its own clip recipe (sizes, seeds, heart rates); what is shared is how a clip of
a source is made and described.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import pathlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from rppgedit import signals
from rppgedit.data import synthetic
from rppgedit.errors import RppgEditError

# Synthetic clips of the experiments when no `max_clips` is given.
DEFAULT_SYNTHETIC_CLIPS = 6
# Synthetic clip variants: (skin tone, head motion, illumination drift), cycled over clip indices.
SYNTHETIC_VARIANTS = (
    ("light", False, False),
    ("dark", True, False),
    ("medium", False, True),
    ("dark", False, False),
    ("light", True, True),
    ("medium", True, False),
)


@dataclasses.dataclass
class Clip:
    """One clip of a source with everything an edit and a reading need.

    Attributes:
      id: unique name in its source, e.g. "synthetic/seed0" or "<sample id>@<start frame>".
      frames: uint8 "t h w 3" RGB.
      fps: frame rate in Hz.
      boxes: float32 "t 4" face crop boxes (x0, y0, x1, y1) in pixels: the generator's tracker crop
        (synthetic) or the tracked face (datasets).
      true_hr_bpm: heart rate of the ground-truth pulse over the clip, or None.
      meta: JSON-able description (dataset, sample, start frame, seed, synthetic variant ...).
      bvp: the ground-truth pulse, one value per frame, or None.
      face_boxes: synthetic clips: the generator's head boxes "t 4" (int64); else None.
    """

    id: str
    frames: np.ndarray
    fps: float
    boxes: np.ndarray
    true_hr_bpm: float | None
    meta: dict = dataclasses.field(default_factory=dict)
    bvp: np.ndarray | None = None
    face_boxes: np.ndarray | None = None


def true_heart_rate(bvp, fps: float) -> float | None:
    """The spectral-peak heart rate (`signals.heart_rate`) of a ground-truth pulse, in bpm; None
    without a pulse or for a flat one."""
    if bvp is None or not np.std(bvp) > 0:
        return None
    return float(signals.heart_rate(np.asarray(bvp, np.float64), fps))


def synthetic_clip(seed: int, *, id: str | None = None, meta: dict | None = None, **kwargs) -> Clip:
    """One seeded synthetic face clip: `synthetic.make_clip(seed, **kwargs)` as a `Clip`.

    Its boxes are the generator's tracker crop (`crop_boxes`), its true heart rate the generator's
    mean rate; `id` defaults to "synthetic/seed<seed>".
    """
    clip = synthetic.make_clip(seed, **kwargs)
    return Clip(
        id=f"synthetic/seed{seed}" if id is None else id,
        frames=clip.frames,
        fps=clip.fps,
        boxes=clip.crop_boxes,
        true_hr_bpm=float(clip.hr_bpm),
        meta={"dataset": "synthetic", "seed": seed} if meta is None else meta,
        bvp=clip.bvp,
        face_boxes=clip.face_boxes,
    )


# The embedded demo: a moving generated face with a 72 bpm pulse, 10 s at 30 fps, 128x128.
DEMO_HR_BPM = 72.0


def demo_clip(
    *, seconds: float = 10.0, size: int = 128, hr_bpm: float = DEMO_HR_BPM, seed: int = 0
) -> Clip:
    """The demo's generated face clip (no download): `rppgedit demo` edits the defaults."""
    return synthetic_clip(
        seed,
        id="demo",
        hr_bpm=hr_bpm,
        num_frames=int(round(seconds * 30.0)),
        height=size,
        width=size,
        motion=True,
    )


def random_synthetic_clip(
    seed: int, num_frames: int, fps: float = 30.0, size: int = 64, **overrides
) -> Clip:
    """A synthetic face whose look, motion and pulse are drawn from `seed` alone.

    Skin tone in [0.05, 0.95], motion and illumination each on with probability 1/2, true heart
    rate in [50, 130] bpm, pulse amplitude in [0.002, 0.008], face fraction in [0.5, 0.75];
    `overrides` replace any of these `make_clip` arguments.
    """
    rng = np.random.default_rng([seed, 7])
    kwargs = dict(
        hr_bpm=float(rng.uniform(50.0, 130.0)),
        skin_tone=float(rng.uniform(0.05, 0.95)),
        motion=bool(rng.random() < 0.5),
        illumination=bool(rng.random() < 0.5),
        pulse_amplitude=float(rng.uniform(0.002, 0.008)),
        face_fraction=float(rng.uniform(0.5, 0.75)),
    )
    kwargs.update(overrides)
    return synthetic_clip(seed, num_frames=num_frames, fps=fps, height=size, width=size, **kwargs)


def synthetic_variant_id(index: int) -> str:
    """The id of synthetic variant clip `index`: "syn<i>_<tone>[_motion][_light]@0"."""
    tone, motion, light = SYNTHETIC_VARIANTS[index % len(SYNTHETIC_VARIANTS)]
    return f"syn{index:02d}_{tone}{'_motion' if motion else ''}{'_light' if light else ''}@0"


def synthetic_variant(
    index: int, clip_seconds: float, *, size: int = 128, fps: float = 30.0, seed: int = 0
) -> Clip:
    """Synthetic clip `index` of the experiments' set (`SYNTHETIC_VARIANTS`, cycled).

    Args:
      index: position in the set; its variant is `SYNTHETIC_VARIANTS[index % 6]`.
      clip_seconds: clip length in s (round(clip_seconds * fps) frames, at least 32).
      size: frame side in pixels.
      fps: frame rate in Hz.
      seed: the clip is rendered from seed `seed * 1000 + index`; its heart rate is drawn uniformly
        in 55-95 bpm from the same seed.

    Returns:
      `Clip` `synthetic_variant_id(index)` with the generator's own face boxes and true rate.
    """
    num_frames = max(32, round(clip_seconds * fps))
    clip_seed = seed * 1000 + index
    tone, motion, light = SYNTHETIC_VARIANTS[index % len(SYNTHETIC_VARIANTS)]
    hr = float(np.random.default_rng(clip_seed).uniform(55.0, 95.0))
    clip_id = synthetic_variant_id(index)
    return synthetic_clip(
        clip_seed,
        id=clip_id,
        meta={
            "dataset": "synthetic",
            "sample": clip_id.split("@")[0],
            "start": 0,
            "seed": clip_seed,
            "skin_tone": tone,
            "motion": motion,
            "illumination": light,
        },
        hr_bpm=hr,
        num_frames=num_frames,
        fps=fps,
        height=size,
        width=size,
        skin_tone=synthetic.SKIN_TONES[tone],
        motion=motion,
        illumination=light,
    )


def synthetic_variants(
    num_clips: int, clip_seconds: float, *, size: int = 128, fps: float = 30.0, seed: int = 0
) -> Iterator[Clip]:
    """The first `num_clips` clips of `synthetic_variant`, rendered as they are taken."""
    for i in range(num_clips):
        yield synthetic_variant(i, clip_seconds, size=size, fps=fps, seed=seed)


def dataset_clips(
    dataset: str,
    data_dir,
    clip_seconds: float,
    *,
    samples: Iterable | None = None,
    allow_no_face: bool = False,
) -> Iterator[Clip]:
    """Consecutive `clip_seconds` clips of a dataset's recordings, with tracked face boxes.

    Args:
      dataset: a name of `rppgedit.data.datasets.DATASETS`.
      data_dir: the dataset's root folder.
      clip_seconds: clip length in s (a recording's trailing part shorter than that is dropped).
      samples: the recordings to cut (default: all of `datasets.list_samples(dataset, data_dir)`).
      allow_no_face: use a centred box when no face is found (else a one-line error).

    Yields:
      `Clip` "<sample id>@<start frame>", meta {"dataset", "sample", "start"}; `true_hr_bpm` is
      `true_heart_rate` of the ground-truth pulse over the clip when the dataset has one. Clips
      are decoded and tracked only as they are taken.
    """
    from rppgedit import pipeline
    from rppgedit.data import datasets

    if samples is None:
        samples = datasets.list_samples(dataset, data_dir)
    for sample_id, start, frames, fps, bvp in datasets.clips(samples, clip_seconds):
        boxes = pipeline.find_boxes(frames, allow_no_face=allow_no_face).astype(np.float32)
        yield Clip(
            id=f"{sample_id}@{start}",
            frames=frames,
            fps=float(fps),
            boxes=boxes,
            true_hr_bpm=true_heart_rate(bvp, fps),
            meta={"dataset": dataset, "sample": sample_id, "start": int(start)},
            bvp=bvp,
        )


@dataclasses.dataclass(frozen=True)
class Listing:
    """How a dataset's recordings are cut into clips and listed by `index_recordings`.

    Attributes:
      dataset: a name of `rppgedit.data.datasets.DATASETS`.
      data_dir: the dataset's root folder.
      clip_seconds: clip length in s.
      clips_per_sample: at most this many clips per recording (None: all).
      allow_no_face: a clip without a detected face gets a centred box (else a one-line error).
      recipe: what a runner caches per clip (JSON-able; part of each list's name, with the above
        except `data_dir`).
    """

    dataset: str
    data_dir: str
    clip_seconds: float
    clips_per_sample: int | None = None
    allow_no_face: bool = False
    recipe: dict = dataclasses.field(default_factory=dict, hash=False)

    def name(self, sample_id: str) -> str:
        """The stem of a recording's list (and of the files cached for its clips)."""
        desc = [self.dataset, sample_id, self.clip_seconds, self.clips_per_sample,
                self.allow_no_face, self.recipe]  # fmt: skip
        return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:24]


def index_recordings(
    listing: Listing,
    folder: pathlib.Path,
    samples: Sequence,
    *,
    on_clip: Callable[[Clip, str], None] | None = None,
    enough: int | None = None,
    progress: bool = False,
) -> None:
    """Cuts each recording of `samples` into clips once and lists them in `folder`.

    A recording not listed yet is decoded and face-tracked (`dataset_clips`); its first
    `listing.clips_per_sample` clips are handed to `on_clip(clip, name)` (a runner caches what it
    needs under `folder/<name>*`) and listed, atomically, in `folder/<listing.name>.json`
    ({"sample", "clips": [{"id", "sample", "start", "num_frames", "fps", "true_hr_bpm", "name"}]});
    listed recordings are skipped, so a rerun decodes nothing. `enough`: stop once this many clips
    are listed.
    """
    from rppgedit import progress as progress_bars
    from rppgedit import safe_write

    listed = 0
    bar = progress_bars.wrap(samples, f"{listing.dataset} recordings", progress, unit="rec")
    for sample in bar:
        if enough is not None and listed >= enough:
            return
        stem = listing.name(sample.id)
        index = folder / f"{stem}.json"
        if index.exists():
            listed += len(json.loads(index.read_text())["clips"])
            continue
        entries = []
        found = dataset_clips(
            listing.dataset,
            listing.data_dir,
            listing.clip_seconds,
            samples=[sample],
            allow_no_face=listing.allow_no_face,
        )
        for clip in itertools.islice(found, listing.clips_per_sample):
            name = f"{stem}_{clip.meta['start']}"
            if on_clip is not None:
                on_clip(clip, name)
            entries.append(
                {
                    "id": clip.id,
                    "sample": sample.id,
                    "start": clip.meta["start"],
                    "num_frames": int(len(clip.frames)),
                    "fps": clip.fps,
                    "true_hr_bpm": clip.true_hr_bpm,
                    "name": name,
                }
            )
        safe_write.write_text_atomic(index, json.dumps({"sample": sample.id, "clips": entries}))
        listed += len(entries)


def read_recordings(
    listing: Listing, folder: pathlib.Path, samples: Sequence, *, max_clips: int | None = None
) -> list[dict]:
    """The clips `index_recordings` listed for `samples`, in order, at most `max_clips`; a one-line
    error names a recording that is not listed."""
    entries: list[dict] = []
    for sample in samples:
        if max_clips is not None and len(entries) >= max_clips:
            break
        index = folder / f"{listing.name(sample.id)}.json"
        if not index.exists():
            raise RppgEditError(f"{index}: clip list of {sample.id} missing (did a process fail?)")
        entries += json.loads(index.read_text())["clips"]
    return entries[:max_clips]


@functools.lru_cache(maxsize=1)
def _decoded_sample(dataset: str, data_dir: str, sample_id: str):
    from rppgedit.data import datasets

    for sample in datasets.list_samples(dataset, data_dir):
        if sample.id == sample_id:
            return datasets.load_sample(sample)
    raise RppgEditError(f"{data_dir}: recording {sample_id!r} of {dataset} not found")


def dataset_clip(listing: Listing, entry: dict) -> Clip:
    """The clip of a `read_recordings` entry, decoded again (the last recording decoded is kept,
    so consecutive clips of one recording decode it once) and face-tracked as `dataset_clips`
    tracks it."""
    from rppgedit import pipeline

    dataset, allow_no_face = listing.dataset, listing.allow_no_face
    video, bvp = _decoded_sample(dataset, str(listing.data_dir), entry["sample"])
    span = slice(entry["start"], entry["start"] + entry["num_frames"])
    frames = video.frames[span]
    boxes = pipeline.find_boxes(frames, allow_no_face=allow_no_face).astype(np.float32)
    bvp = None if bvp is None else bvp[span]
    return Clip(
        id=entry["id"],
        frames=frames,
        fps=float(video.fps),
        boxes=boxes,
        true_hr_bpm=true_heart_rate(bvp, video.fps),
        meta={"dataset": dataset, "sample": entry["sample"], "start": int(entry["start"])},
        bvp=bvp,
    )
