"""The synthetic faces are read by the in-house deep models as by POS, on the crop the tracker takes.

The renderer is the base most edit tests measure on: an edit test that asserts "the target is read"
with a deep surrogate is only meaningful if that model reads the clip's true rate before the edit.
Cropped like a face tracker crops (`SyntheticClip.crop_boxes`, forehead to chin, as the deep weights
were trained), both PhysNets read every light and medium clip of this grid; the old fixed head square
(hair and the head's whole path, 25-35% skin) left PhysNet-PURE at 40-61 bpm on seeds 0 and 1.

Dark skin is harder (a weaker pulse in 8-bit levels next to the same bright eyes and background; see
`rppgedit.data.synthetic`). The grid's seeds 0 and 1 are among the hardest dark faces of the 32-seed
benchmark (the brightest background for the skin). With the old camera model (1 level of noise, a
0.2% per-frame flicker, pulse amplitude 0.004) PhysNet-PURE missed 3 of this grid's 8 dark clips
(seed 0 still and moving: 57.0 and 66.4 bpm for 91.8; seed 1 moving: 71.5 for 85.6), so the 95% test
fails there; with the measured one (0.6 levels, 0.03%, 0.005) it misses one of the 24 clips (seed 0
dark moving, 67.5) and PhysNet-RLAP none. `benchmarks/synthetic_readability.py` has the grid numbers.
"""

import itertools

import numpy as np
import pytest

from rppgedit import pipeline
from rppgedit.data import synthetic
from rppgedit.readings import read_heart_rates
from rppgedit.video import crop

DEEP = ("physnet_pure", "physnet_rlap")
SEEDS = (0, 1, 2, 3)
CASES = list(itertools.product(SEEDS, synthetic.SKIN_TONES, (False, True)))


@pytest.fixture(scope="module")
def readings():
    """{(seed, tone, moving): (true rate, {reader: hr}, {reader: hr on the head square})}.

    The head square is read only where a test looks at it: by PhysNet-PURE on the light and
    medium clips (`test_the_loose_head_square_is_what_defeated_physnet_pure`); elsewhere its
    readings are empty."""
    params, out = {}, {}
    for seed, tone, moving in CASES:
        clip = synthetic.grid_clip(seed, tone=tone, motion=moving, num_frames=256)
        head = np.tile(crop.enclosing_square(clip.face_boxes), (len(clip.frames), 1))
        on_head = ("physnet_pure",) if tone != "dark" else ()
        read = {}
        for name, boxes, readers in (
            ("face", clip.crop_boxes, ("pos",) + DEEP),
            ("head", head, on_head),
        ):
            if not readers:
                read[name] = {}
                continue
            face, mask = pipeline.crop_and_mask(clip.frames, boxes, pipeline.EditJob())
            hr = read_heart_rates(face, mask, clip.fps, readers, params)
            read[name] = {n: v["hr_bpm"] for n, v in hr.items()}
        out[seed, tone, moving] = (clip.hr_bpm, read["face"], read["head"])
    return out


def _read(truth, hr):
    return abs(hr - truth) <= 3.0


def test_crop_boxes_frame_the_face_like_the_tracker():
    clip = synthetic.make_clip(0, num_frames=8, height=128, width=128)
    box = clip.crop_boxes[0]
    side = box[2] - box[0]
    assert side == pytest.approx(box[3] - box[1])
    head = clip.face_boxes[0]
    # Inside the head box, narrower than it, and more than half skin (the head square is not).
    assert head[0] <= box[0] and box[2] <= head[2] and side < head[3] - head[1]
    face, mask = pipeline.crop_and_mask(clip.frames, clip.crop_boxes, pipeline.EditJob())
    assert mask.mean() > 0.5


def test_crop_boxes_follow_the_moving_head():
    clip = synthetic.make_clip(1, num_frames=90, height=96, width=96, motion=True)
    centres = (clip.crop_boxes[:, :2] + clip.crop_boxes[:, 2:]) / 2
    head = (clip.face_boxes[:, :2] + clip.face_boxes[:, 2:]) / 2
    assert np.ptp(centres[:, 0]) > 3.0  # it moves with the head ...
    np.testing.assert_allclose(centres[:, 0], head[:, 0], atol=1.5)  # ... and stays on it


def test_pos_reads_every_clip(readings):
    misses = [k for k, (truth, face, _) in readings.items() if not _read(truth, face["pos"])]
    assert not misses


@pytest.mark.parametrize("name", DEEP)
def test_deep_models_read_light_and_medium_faces(readings, name):
    misses = [
        (k, round(face[name], 1))
        for k, (truth, face, _) in readings.items()
        if k[1] != "dark" and not _read(truth, face[name])
    ]
    assert not misses


@pytest.mark.parametrize("name", DEEP)
def test_deep_models_read_95_percent_of_the_grid_dark_skin_included(readings, name):
    """Of the clips POS reads (all of them), light, medium and dark, still and moving."""
    pos_read = [v for v in readings.values() if _read(v[0], v[1]["pos"])]
    misses = [
        (k, round(face[name], 1))
        for k, (truth, face, _) in readings.items()
        if _read(truth, face["pos"]) and not _read(truth, face[name])
    ]
    assert len(misses) <= 0.05 * len(pos_read), misses


def test_the_loose_head_square_is_what_defeated_physnet_pure(readings):
    """The cause, kept measured: on the old crop PhysNet-PURE misses clips it reads on the face."""
    light_medium = [v for k, v in readings.items() if k[1] != "dark"]
    on_head = sum(_read(truth, head["physnet_pure"]) for truth, _, head in light_medium)
    on_face = sum(_read(truth, face["physnet_pure"]) for truth, face, _ in light_medium)
    assert on_face == len(light_medium) and on_head <= len(light_medium) - 3
