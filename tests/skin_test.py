"""Tests for rppgedit.video.skin: colour conversion, the fixed and adaptive masks, temporal vote."""

import numpy as np
import pytest
from conftest import shared_file

from rppgedit.data import synthetic
from rppgedit.video import crop, skin


def _ycrcb_reference(rgb01):
    """ITU-R BT.601 full-range (JPEG) YCbCr in float64, 0-255 scale."""
    r, g, b = (np.asarray(rgb01, np.float64)[..., i] * 255.0 for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return np.stack([y, cr, cb], axis=-1)


def test_rgb_to_ycrcb_matches_bt601(rng):
    rgb = rng.uniform(0, 1, (5, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(skin.rgb_to_ycrcb(rgb), _ycrcb_reference(rgb), atol=0.15)


def test_textbook_rule_bounds():
    # Build pixels with known (Y, Cr, Cb) by inverting the BT.601 transform.
    def rgb(y, cr, cb):
        r = y + 1.402 * (cr - 128)
        g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
        b = y + 1.772 * (cb - 128)
        return np.array([r, g, b]) / 255.0

    pixels = np.stack(
        [
            rgb(120, 150, 100),
            rgb(120, 130, 100),
            rgb(120, 176, 100),
            rgb(120, 150, 74),
            rgb(120, 150, 130),
        ]
    )[None]
    np.testing.assert_array_equal(
        skin.skin_mask(pixels, method="ycrcb")[0], [True, False, False, False, False]
    )


def test_all_and_coverage():
    clip = np.zeros((2, 4, 6, 3), np.float32)
    mask = skin.skin_mask(clip, method="all")
    assert mask.shape == (2, 4, 6) and mask.dtype == bool and mask.all()
    assert skin.mask_coverage(mask) == 1.0
    assert skin.mask_coverage(np.eye(4, dtype=bool)) == 0.25


def test_unknown_method_and_uint8_are_refused():
    with pytest.raises(ValueError, match="unknown skin mask method"):
        skin.skin_mask(np.zeros((4, 4, 3), np.float32), method="hsv")
    with pytest.raises(ValueError, match="uint8"):
        skin.skin_mask(np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize("length", [5, 599, 600, 1200])  # np.nanmedian's two code paths
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nanmedian_of_the_valid_entries_is_numpys(rng, length, dtype):
    """Bit for bit `np.nanmedian` of the valid entries: odd and even counts, ties, a row with one
    valid entry and a row with none (NaN)."""
    x = np.round(rng.standard_normal((40, length)) * 50.0).astype(dtype)  # many ties
    x[::2] += rng.random((20, length)).astype(dtype)
    valid = rng.random((40, length)) < rng.random((40, 1))
    valid[0], valid[1], valid[2, :1] = False, True, True
    valid[2, 1:] = False
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):
        want = np.nanmedian(np.where(valid, x, np.nan), axis=-1)
    got = skin._nanmedian(x, valid)
    assert got.dtype == want.dtype and np.isnan(got[0]) and got[2] == x[2, 0]
    np.testing.assert_array_equal(got, want)


def test_temporal_majority_matches_loop(rng):
    mask = rng.uniform(size=(2, 9, 5, 4)) < 0.5
    got = skin.temporal_majority(mask, 3)
    padded = np.concatenate([mask[:, :1], mask, mask[:, -1:]], axis=1).astype(int)
    expected = (padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]) >= 2
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError):
        skin.temporal_majority(mask, 4)


def test_skin_mask_temporal_window_is_the_vote_of_frame_masks(rng):
    clip = rng.uniform(0.3, 0.9, (7, 16, 16, 3)).astype(np.float32)
    per_frame = skin.skin_mask(clip, method="ycrcb")
    np.testing.assert_array_equal(
        skin.skin_mask(clip, method="ycrcb", temporal_window=5),
        skin.temporal_majority(per_frame, 5),
    )


def _synthetic_face_crops(seed, tone, size=64):
    """Square crops around the head of a synthetic clip, and the ground-truth pulse-skin mask."""
    clip = synthetic.make_clip(seed, num_frames=3, height=96, width=96, skin_tone=tone)
    b = clip.face_boxes.astype(np.float64)
    cx, cy, side = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 3] - b[:, 1]
    boxes = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=-1)
    frames = crop.crop_resize(clip.frames, boxes, size)
    truth = np.repeat(clip.mask[..., None].astype(np.uint8) * 255, 3, axis=-1)
    truth = crop.crop_resize(truth, boxes, size)[..., 0] > 0.5
    return frames, truth


@pytest.mark.parametrize("tone", [0.1, 0.45, 0.85])
def test_adaptive_precision_recall_on_synthetic_faces(tone):
    precision, recall = [], []
    for seed in range(5):
        frames, truth = _synthetic_face_crops(seed, tone)
        mask = skin.skin_mask(frames)
        hits = np.sum(mask & truth)
        precision.append(hits / mask.sum())
        recall.append(hits / truth.sum())
        # The textbook rule takes the skin-coloured neck and more background: lower precision.
        fixed = skin.skin_mask(frames, method="ycrcb")
        assert np.sum(fixed & truth) / fixed.sum() < precision[-1] - 0.05
    # Measured (seeds 0-4): recall 0.98-1.00; precision 0.91-0.93 (tones 0.1, 0.45) and 0.82-0.85
    # (tone 0.85) on seeds 0-2, whose hair differs from the skin. Seeds 3-4 have hair close to the
    # skin colour (the documented weak spot): 0.71-0.79, and 0.45 at tone 0.85. The neck is skin
    # without pulse: a false positive by construction.
    assert min(precision[:3]) > (0.8 if tone > 0.5 else 0.88), precision
    assert min(precision) > (0.4 if tone > 0.5 else 0.68), precision
    assert min(recall) > 0.97, recall


def test_batched_equals_per_item():
    a, _ = _synthetic_face_crops(0, 0.2, size=32)
    b, _ = _synthetic_face_crops(1, 0.7, size=32)
    both = skin.skin_mask(np.stack([a, b]))
    np.testing.assert_array_equal(both[0], skin.skin_mask(a))
    np.testing.assert_array_equal(both[1], skin.skin_mask(b))


def test_adaptive_excludes_dark_features():
    # A flat skin patch with a dark "eye" and a blue background border.
    img = np.empty((48, 48, 3), np.float32)
    img[:] = [0.2, 0.4, 0.8]
    img[6:42, 6:42] = [0.85, 0.65, 0.55]
    img[14:20, 12:22] = [0.15, 0.1, 0.08]
    mask = skin.skin_mask(img, cleanup_frac=0.0, ellipse=None)
    assert mask[20:40, 8:40].all()
    assert not mask[14:20, 12:22].any()
    assert not mask[:6].any() and not mask[:, 42:].any()


@pytest.mark.slow
def test_real_crop_coverage_beats_textbook_rule():
    from rppgedit.video import face

    path = shared_file("physrecorder", "video_ZIP_H264.avi")
    try:
        from rppgedit.video.decode import read_video

        frames = read_video(path, max_frames=10).frames
    except ImportError:
        import itertools

        import imageio.v3 as iio

        frames = np.stack(list(itertools.islice(iio.imiter(path, plugin="pyav"), 10)))
    boxes = face.track_face(frames)
    clip = crop.crop_resize(frames, boxes, 128)
    adaptive = skin.mask_coverage(skin.skin_mask(clip))
    fixed = skin.mask_coverage(skin.skin_mask(clip, method="ycrcb"))
    # Measured 0.69 vs 0.37: the fixed rule misses the lit half of the face.
    assert 0.5 < adaptive < 0.85
    assert adaptive > fixed + 0.15
    # The centre of the crop (nose and cheeks) is skin in every frame.
    assert skin.skin_mask(clip)[:, 56:72, 56:72].mean() > 0.9
