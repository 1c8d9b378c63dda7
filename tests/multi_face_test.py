"""Tests for rppgedit.video.face.track_faces (every face, stable identities) and the synthetic
multi-face clips (rppgedit.data.synthetic.make_multi_face_clip) they run on."""

import numpy as np
import pytest

from rppgedit.data import synthetic
from rppgedit.errors import RppgEditError
from rppgedit.video import face

PANEL = 128  # width of each face's panel
GREY = 128  # value of a blanked panel


@pytest.fixture(scope="module")
def detector():
    return face.load_detector()


@pytest.fixture(scope="module", params=[False, True], ids=["still", "motion"])
def two_faces(request):
    """Two faces side by side (seeds 0 and 1), 90 frames of 128x256, still or moving."""
    return synthetic.make_multi_face_clip(
        [0, 1], [72.0, 90.0], num_frames=90, skin_tones=[0.3, 0.7], motion=request.param
    )


def _blank(frames, panel, start, stop):
    """A copy of frames with face `panel`'s columns set to flat grey on frames [start, stop)."""
    out = frames.copy()
    out[start:stop, :, panel * PANEL : (panel + 1) * PANEL] = GREY
    return out


def _centres(boxes):
    return (boxes[:, 0:2] + boxes[:, 2:4]) / 2


def _span(track):
    """(first, last) frame where the track is present."""
    idx = np.flatnonzero(track.present)
    return int(idx[0]), int(idx[-1])


# --- synthetic multi-face clips ---------------------------------------------------------------


def test_multi_face_clip_panels_and_ground_truth(two_faces):
    clip = two_faces
    assert clip.frames.shape == (90, 128, 2 * PANEL, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == 30.0 and len(clip.faces) == 2
    motion = not np.array_equal(clip.faces[0].face_boxes[0], clip.faces[0].face_boxes[-1])
    for i, (seed, hr, tone) in enumerate([(0, 72.0, 0.3), (1, 90.0, 0.7)]):
        single = synthetic.make_clip(
            seed, hr_bpm=hr, num_frames=90, height=128, width=PANEL, skin_tone=tone, motion=motion
        )
        cols = slice(i * PANEL, (i + 1) * PANEL)
        truth = clip.faces[i]
        np.testing.assert_array_equal(clip.frames[:, :, cols], single.frames)
        assert truth.frames is clip.frames
        assert truth.mask.shape == (90, 128, 2 * PANEL)
        np.testing.assert_array_equal(truth.mask[:, :, cols], single.mask)
        assert not truth.mask[:, :, (1 - i) * PANEL : (2 - i) * PANEL].any()
        np.testing.assert_array_equal(
            truth.face_boxes, single.face_boxes + [i * PANEL, 0, i * PANEL, 0]
        )
        np.testing.assert_array_equal(truth.bvp, single.bvp)
        assert truth.hr_bpm == single.hr_bpm


def test_multi_face_clip_rejects_mismatched_lists():
    with pytest.raises(ValueError, match="heart rates"):
        synthetic.make_multi_face_clip([0, 1], [72.0], num_frames=2)
    with pytest.raises(ValueError, match="skin tones"):
        synthetic.make_multi_face_clip([0, 1], [72.0, 80.0], skin_tones=[0.1], num_frames=2)


# --- track_faces on synthetic faces -----------------------------------------------------------


def test_two_faces_side_by_side(two_faces, detector):
    clip = two_faces
    width = clip.frames.shape[2]
    tracks = face.track_faces(clip.frames, detector=detector)
    assert len(tracks) == 2
    for track, truth in zip(tracks, clip.faces, strict=True):
        assert track.boxes.shape == (90, 4) and track.boxes.dtype == np.float32
        assert track.present.shape == (90,) and track.present.all()
        side = track.boxes[:, 2] - track.boxes[:, 0]
        np.testing.assert_allclose(side, track.boxes[:, 3] - track.boxes[:, 1], rtol=1e-5)
        # Measured: at most 10.4 px off (vertical: the truth box includes the hair), x < 2 px.
        err = np.linalg.norm(_centres(track.boxes) - _centres(truth.face_boxes), axis=1)
        assert np.all(err < 0.1 * width), err.max()
    # Left then right on every frame: identities never swap.
    assert np.all(_centres(tracks[0].boxes)[:, 0] < PANEL)
    assert np.all(_centres(tracks[1].boxes)[:, 0] > PANEL)


def test_tracking_a_sparse_decode_gives_the_same_tracks(tmp_path, two_faces, detector):
    """The edit tracks a large input on `decode.iter_sparse` (only key frames and the last
    converted to RGB): the same tracks as on every frame; a missing key frame is refused."""
    from rppgedit.video import decode, encode

    path = encode.write_video(tmp_path / "two.mkv", two_faces.frames[:88], 30.0)  # 87 % 5 != 0
    sparse = [f for chunk in decode.iter_sparse(path, face.DETECT_EVERY, 16) for f in chunk]
    assert sum(f is not None for f in sparse) == 18 + 1
    want = face.track_faces(two_faces.frames[:88], detector=detector)
    got = face.track_faces(sparse, detector=detector)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.present, b.present)
    sparse[10] = None
    with pytest.raises(ValueError, match="key frame 10 was not decoded"):
        face.track_faces(sparse, detector=detector)


def test_entering_and_leaving_faces(two_faces, detector):
    # The left face enters at frame 40; the right one leaves after frame 59 (blank 60..89).
    frames = _blank(_blank(two_faces.frames, 0, 0, 40), 1, 60, 90)
    every = 5
    stream = (frame for frame in frames)  # an iterable, consumed once
    tracks = face.track_faces(stream, detect_every=every, detector=detector)
    assert len(tracks) == 2
    right, left = tracks  # ordered by first appearance: the right face is there from frame 0
    assert _centres(right.boxes)[0, 0] > PANEL > _centres(left.boxes)[0, 0]
    left_first, left_last = _span(left)
    right_first, right_last = _span(right)
    assert 40 <= left_first <= 40 + every + 1 and left_last == 89  # measured: 40, 89
    assert right_first == 0 and 59 - (every + 1) <= right_last <= 59  # measured: 0, 55
    assert left.present[left_first : left_last + 1].all()
    assert right.present[: right_last + 1].all()
    # Outside its span a track holds its first / last in-span box.
    np.testing.assert_array_equal(
        left.boxes[:left_first], np.tile(left.boxes[left_first], (left_first, 1))
    )
    tail = 90 - right_last - 1
    np.testing.assert_array_equal(
        right.boxes[right_last + 1 :], np.tile(right.boxes[right_last], (tail, 1))
    )
    # In the span the boxes follow the face.
    truth = two_faces.faces
    err_left = np.linalg.norm(_centres(left.boxes) - _centres(truth[0].face_boxes), axis=1)
    err_right = np.linalg.norm(_centres(right.boxes) - _centres(truth[1].face_boxes), axis=1)
    assert err_left[left_first:].max() < 0.1 * frames.shape[2]
    assert err_right[: right_last + 1].max() < 0.1 * frames.shape[2]


def test_short_gap_bridged_long_gap_splits(two_faces, detector):
    # 10 blank frames: one track per face, present across the gap.
    tracks = face.track_faces(_blank(two_faces.frames, 0, 40, 50), detector=detector)
    assert len(tracks) == 2 and all(track.present.all() for track in tracks)
    assert _centres(tracks[0].boxes)[45, 0] < PANEL < _centres(tracks[1].boxes)[45, 0]
    # 50 blank frames (> max_gap = 30): the left face comes back as a new, third track.
    frames = _blank(two_faces.frames, 0, 20, 70)
    tracks = face.track_faces(frames, max_gap=30, detector=detector)
    assert len(tracks) == 3
    before, right, after = tracks  # first appearance, then x: (0, left), (0, right), (70, left)
    assert _centres(before.boxes)[0, 0] < PANEL < _centres(right.boxes)[0, 0]
    assert _centres(after.boxes)[-1, 0] < PANEL
    assert 20 - 6 <= _span(before)[1] < 20 and _span(before)[0] == 0  # measured: ends at 15
    assert _span(after) == (70, 89) and right.present.all()
    # A larger max_gap bridges the same gap.
    tracks = face.track_faces(frames, max_gap=60, detector=detector)
    assert len(tracks) == 2 and all(track.present.all() for track in tracks)


@pytest.mark.parametrize("motion", [False, True], ids=["still", "motion"])
def test_single_face_matches_track_face(motion, detector):
    clip = synthetic.make_clip(0, num_frames=90, height=128, width=128, motion=motion)
    (track,) = face.track_faces(clip.frames, detector=detector)
    assert track.present.all()
    # Same squares, interpolation and smoothing; track_faces also detects on the last frame.
    # Measured: at most 0.08 px (still) and 0.10 px (motion) apart, largest at the last frames.
    reference = face.track_face(clip.frames, detector=detector)
    np.testing.assert_allclose(track.boxes, reference, atol=1.0)
    np.testing.assert_allclose(track.boxes[:80], reference[:80], atol=0.05)


def test_no_face_raises_one_line_error(detector):
    rng = np.random.default_rng(0)
    frames = (rng.uniform(0, 1, (7, 48, 64, 3)) * 40 + 100).astype(np.uint8)  # flat grey noise
    with pytest.raises(RppgEditError) as err:
        face.track_faces(frames, detector=detector, name="noise.mp4")
    message = str(err.value)
    assert "noise.mp4" in message and "no face found in 7 frames" in message
    assert "--allow_no_face" in message and "\n" not in message


# --- track_faces logic with a scripted detector -----------------------------------------------


class _ScriptedModel:
    """Stands in for `blazeface.predict`: returns the next of a list of raw outputs per call."""

    def __init__(self, outputs):
        self.outputs = list(outputs)

    def __call__(self, params, images):
        assert params is None and images.shape == (1, 128, 128, 3)
        return self.outputs.pop(0)  # IndexError when called more often than scripted


def _raw(*faces):
    """Raw BlazeFace outputs with one confident anchor per (anchor, (dx, dy, w, h), logit)."""
    regressors = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896), -20.0, np.float32)
    for anchor, reg, logit in faces:
        regressors[0, anchor, :4] = reg
        logits[0, anchor] = logit
    return regressors, logits


def _scripted(outputs):
    return face.FaceDetector(
        params=None, anchors=face.make_anchors(), predict=_ScriptedModel(outputs)
    )


def _anchor_centre(anchor):
    return face.make_anchors()[anchor].astype(np.float64) * 128


FACE, FAR = 300, 40  # stride-8 anchors centred at (52, 76) and (84, 12) in a 128x128 frame


def test_cadence_centre_fallback_and_spurious_tracks():
    # 12 frames, key frames 0, 5, 10 and the last frame 11: exactly four detector calls.
    # Frame 0: the face (20x20) and a far spurious box; frame 5: the face doubled in size (IoU
    # 0.25 < 0.3, same centre: matched by distance); frame 10: nothing (no retry on 6, 7, ...);
    # frame 11: the face again.
    big = (FACE, [0.0, 0.0, 40.0, 40.0], 5.0)
    det = _scripted(
        [_raw((FACE, [0.0, 0.0, 20.0, 20.0], 5.0), (FAR, [0.0, 0.0, 16.0, 16.0], 6.0)), _raw(big)]
        + [_raw(), _raw(big)]
    )
    frames = [np.zeros((128, 128, 3), np.uint8)] * 12
    tracks = face.track_faces(frames, detect_every=5, smooth=0, scale=1.0, shift=0.0, detector=det)
    assert not det.predict.outputs
    assert len(tracks) == 1  # the spurious one-detection track is dropped
    (track,) = tracks
    assert track.present.all()
    np.testing.assert_allclose(
        _centres(track.boxes), np.tile(_anchor_centre(FACE), (12, 1)), atol=1e-3
    )
    side = track.boxes[:, 2] - track.boxes[:, 0]
    expected = np.exp(np.interp(np.arange(12), [0, 5, 11], np.log([20.0, 40.0, 40.0])))
    np.testing.assert_allclose(side, expected, rtol=1e-5)


def test_identities_follow_overlap_not_score_order():
    # Two faces; their score order flips between key frames and they move a little.
    left, right = FACE, 310  # centres (52, 76) and (92, 76), 24x24 boxes: no overlap
    reg = [0.0, 0.0, 24.0, 24.0]
    moved = [3.0, 1.0, 24.0, 24.0]
    outputs = [
        _raw((left, reg, 3.0), (right, reg, 6.0)),  # right face scores higher: listed first
        _raw((left, moved, 6.0), (right, moved, 3.0)),  # now the left one does
        _raw((left, reg, 3.0), (right, moved, 6.0)),
    ]
    frames = [np.zeros((128, 128, 3), np.uint8)] * 11
    tracks = face.track_faces(frames, detect_every=5, smooth=0, detector=_scripted(outputs))
    assert len(tracks) == 2
    first, second = (_centres(track.boxes) for track in tracks)
    ax, bx = _anchor_centre(left)[0], _anchor_centre(right)[0]
    # Ordered by x (same first frame), each following its own face on every key frame.
    np.testing.assert_allclose(first[[0, 5, 10], 0], [ax, ax + 3, ax], atol=1e-3)
    np.testing.assert_allclose(second[[0, 5, 10], 0], [bx, bx + 3, bx + 3], atol=1e-3)


def test_weak_overlap_starts_a_new_track():
    # Face A on key frames 0 and 5; on 10 and 11 A is missed and face B appears 18 px to its right:
    # IoU 0.14 (<= 0.3) and centre distance 18 (>= half of A's 24 px side), so B is a new face.
    a, b = [0.0, 0.0, 24.0, 24.0], [18.0, 0.0, 24.0, 24.0]
    outputs = [
        _raw((FACE, a, 5.0)),
        _raw((FACE, a, 5.0)),
        _raw((FACE, b, 5.0)),
        _raw((FACE, b, 5.0)),
    ]
    frames = [np.zeros((128, 128, 3), np.uint8)] * 12
    tracks = face.track_faces(frames, detect_every=5, smooth=0, detector=_scripted(outputs))
    assert [_span(track) for track in tracks] == [(0, 5), (10, 11)]
    np.testing.assert_allclose(
        _centres(tracks[1].boxes)[:, 0], _anchor_centre(FACE)[0] + 18, atol=1e-3
    )


def test_spurious_only_raises_and_single_frame_keeps_its_face():
    frames = [np.zeros((128, 128, 3), np.uint8)] * 12
    det = _scripted([_raw((FAR, [0.0, 0.0, 16.0, 16.0], 6.0)), _raw(), _raw(), _raw()])
    with pytest.raises(RppgEditError, match="clip.avi: no face found in 12 frames"):
        face.track_faces(frames, detector=det, name="clip.avi")
    det = _scripted([_raw((FACE, [0.0, 0.0, 20.0, 20.0], 5.0))])
    (track,) = face.track_faces(frames[:1], detector=det)  # one key frame: one detection is enough
    assert track.boxes.shape == (1, 4) and track.present.all()


def test_rejects_bad_parameters():
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    for kwargs in ({"detect_every": 0}, {"detect_every": 10, "max_gap": 5}, {"min_detections": 0}):
        with pytest.raises(ValueError, match="max_gap"):
            face.track_faces(frames, detector=_scripted([]), **kwargs)
