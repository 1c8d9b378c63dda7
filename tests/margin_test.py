"""The ring around each face box that the paste also reaches (`rppgedit.video.margin`).

On a generated face (`synthetic.grid_clip`, whose tracker crop leaves skin of the face outside the
box) with a residual whose mean follows a known wave: the pixels inside the box get the same bits
with and without the ring, the ring's skin follows the face's mean change, the ring's other pixels
and everything outside the grown boxes keep their input bits.
"""

import numpy as np
import pytest

from rppgedit import pipeline
from rppgedit.data import synthetic
from rppgedit.errors import RppgEditError
from rppgedit.video import crop, skin
from rppgedit.video import margin as ring

SIZE = 32  # the work size of these tests
FRAMES = 48


@pytest.fixture(scope="module")
def scene():
    """(frames, boxes, FaceEdit) of a still generated face with a residual of 2 grey levels times a
    wave on its skin, and the wave."""
    clip = synthetic.grid_clip(0, num_frames=FRAMES, size=128)
    boxes = np.asarray(clip.crop_boxes, np.float32)
    crops = crop.crop_resize(clip.frames, boxes, SIZE)
    mask = skin.skin_mask(crops)
    wave = np.sin(2 * np.pi * np.arange(FRAMES) / 12.0).astype(np.float32)
    colour = np.array([0.5, 1.0, 0.7], np.float32) * 2.0 / 255.0
    residual = wave[:, None, None, None] * colour * mask[..., None]
    face = pipeline.FaceEdit(boxes, 0, FRAMES, crops, mask, residual.astype(np.float32), True)
    return clip.frames, boxes, face, wave * colour[:, None] * 255.0


def _paste(frames, face, margin, **job):
    job = pipeline.EditJob(margin=margin, **job)
    return pipeline.paste_frames(frames, [face], job)


def test_the_box_keeps_its_bits_and_the_ring_follows_the_faces_mean_change(scene):
    frames, boxes, face, wave = scene
    without, mask0 = _paste(frames, face, 0.0)
    with_ring, mask1 = _paste(frames, face, 0.15)
    inside = ring.box_footprint(boxes, *frames.shape[1:3])
    np.testing.assert_array_equal(with_ring[inside], without[inside])
    np.testing.assert_array_equal(without[~inside], frames[~inside])  # no ring: nothing outside
    ring_pixels = mask1 & ~inside
    assert not (mask0 & ~inside).any()
    assert ring_pixels.sum(axis=(1, 2)).min() > 50  # the face's skin goes past its box
    # everything off the ring's skin keeps its bits
    off = ~mask1
    np.testing.assert_array_equal(with_ring[off], frames[off])
    # the ring's mean change per frame and channel is the face's mean change (rounding aside)
    change = with_ring.astype(np.float64) - frames
    weights = ring_pixels[..., None]
    ring_mean = np.sum(change * weights, axis=(1, 2)) / np.sum(weights, axis=(1, 2))
    face_mask = face.mask[..., None]
    face_mean = np.sum(face.residual * face_mask, axis=(1, 2)) / np.sum(face_mask, axis=(1, 2))
    np.testing.assert_allclose(ring_mean, face_mean * 255.0, atol=0.15)
    for c in range(3):  # and it follows the wave
        assert np.corrcoef(ring_mean[:, c], wave[c])[0, 1] > 0.98


def test_the_ring_grows_with_the_margin_and_stays_inside_the_grown_boxes(scene):
    frames, boxes, face, _ = scene
    height, width = frames.shape[1:3]
    sizes = []
    for margin in (0.1, 0.25):
        out, mask = _paste(frames, face, margin)
        grown = ring.grown_boxes(boxes, SIZE, margin)
        reach = ring.box_footprint(grown, height, width)
        assert not (mask & ~reach).any()
        np.testing.assert_array_equal(out[~reach], frames[~reach])
        sizes.append(int(mask.sum()))
    assert sizes[1] > sizes[0]


def test_the_all_mask_keeps_the_box_as_the_region(scene):
    frames, boxes, face, _ = scene
    out, mask = _paste(frames, face, 0.3, mask_method="all")
    inside = ring.box_footprint(boxes, *frames.shape[1:3])
    assert not (mask & ~inside).any()
    np.testing.assert_array_equal(out[~inside], frames[~inside])


def test_grown_boxes_keep_the_centre_and_the_crop_cells():
    boxes = np.array([[10.0, 20.0, 74.0, 84.0], [0.5, 1.5, 33.0, 34.0]], np.float32)
    grown = ring.grown_boxes(boxes, 32, 0.15)
    assert ring.grown_size(32, 0.15) == 42  # 5 cells on each side
    np.testing.assert_allclose((grown[:, :2] + grown[:, 2:]) / 2, (boxes[:, :2] + boxes[:, 2:]) / 2)
    cell = (boxes[:, 2:] - boxes[:, :2]) / 32
    np.testing.assert_allclose((grown[:, 2:] - grown[:, :2]) / 42, cell, rtol=1e-6)


@pytest.mark.parametrize("margin", [-0.1, 1.5, float("nan")])
def test_a_margin_out_of_range_is_refused(margin):
    with pytest.raises(RppgEditError, match="margin must be in"):
        pipeline.EditJob(margin=margin)
