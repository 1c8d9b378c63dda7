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
* `source_clips`: "synthetic" or a dataset by name, at most `max_clips`.

Each runner keeps its own clip recipe (sizes, seeds, heart rates); what is shared is how a clip of
a source is made and described.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator

import numpy as np

from rppgedit import signals
from rppgedit.data import synthetic
from rppgedit.errors import RppgEditError

# Synthetic clips of `source_clips` when no `max_clips` is given (the experiments' default).
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


def synthetic_variants(
    num_clips: int, clip_seconds: float, *, size: int = 128, fps: float = 30.0, seed: int = 0
) -> Iterator[Clip]:
    """Seeded synthetic face clips cycling through `SYNTHETIC_VARIANTS`.

    Args:
      num_clips: how many clips.
      clip_seconds: clip length in s (round(clip_seconds * fps) frames, at least 32).
      size: frame side in pixels.
      fps: frame rate in Hz.
      seed: clip i is rendered from seed `seed * 1000 + i`; its heart rate is drawn uniformly in
        55-95 bpm from the same seed.

    Yields:
      `Clip` "syn<i>_<tone>[_motion][_light]@0" with the generator's own face boxes and true heart
      rate.
    """
    num_frames = max(32, round(clip_seconds * fps))
    for i in range(num_clips):
        clip_seed = seed * 1000 + i
        tone, motion, light = SYNTHETIC_VARIANTS[i % len(SYNTHETIC_VARIANTS)]
        hr = float(np.random.default_rng(clip_seed).uniform(55.0, 95.0))
        name = f"syn{i:02d}_{tone}{'_motion' if motion else ''}{'_light' if light else ''}"
        yield synthetic_clip(
            clip_seed,
            id=f"{name}@0",
            meta={
                "dataset": "synthetic",
                "sample": name,
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


def source_clips(
    source: str,
    data_dir,
    clip_seconds: float,
    *,
    max_clips: int | None,
    seed: int,
    synthetic_size: int,
    allow_no_face: bool = False,
) -> Iterator[Clip]:
    """The clips of a source: `synthetic_variants` (default `DEFAULT_SYNTHETIC_CLIPS`) or a
    dataset's `dataset_clips`, at most `max_clips`."""
    if source == "synthetic":
        num = DEFAULT_SYNTHETIC_CLIPS if max_clips is None else max_clips
        yield from synthetic_variants(num, clip_seconds, size=synthetic_size, seed=seed)
        return
    if data_dir is None:
        raise RppgEditError(f"dataset {source!r} needs a data_dir")
    yield from itertools.islice(
        dataset_clips(source, data_dir, clip_seconds, allow_no_face=allow_no_face), max_clips
    )


def count_clips(source: str, max_clips: int | None) -> int | None:
    """How many clips `source_clips` yields, known without decoding: exact for synthetic, at most
    `max_clips` for a dataset (None: unknown)."""
    if source == "synthetic":
        return DEFAULT_SYNTHETIC_CLIPS if max_clips is None else max_clips
    return max_clips
