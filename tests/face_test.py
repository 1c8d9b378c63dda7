"""Tests for rppgedit.video.face: BlazeFace decoding, NMS, tracking, no-face errors, real clips."""

import numpy as np
import pytest
from conftest import shared_file

from rppgedit.errors import RppgEditError
from rppgedit.video import face


def _read(path, max_frames):
    """First frames of a real clip as uint8 (T,H,W,3)."""
    try:
        from rppgedit.video.decode import read_video

        return read_video(path, max_frames=max_frames).frames
    except ImportError:
        import imageio.v3 as iio

        frames = []
        for frame in iio.imiter(path, plugin="pyav"):
            frames.append(frame)
            if len(frames) == max_frames:
                break
        return np.stack(frames)


@pytest.fixture(scope="module")
def detector():
    return face.load_detector()


class _FakeModel:
    """Stands in for `blazeface.predict`: one confident anchor per call, from a list of outputs."""

    def __init__(self, outputs):
        self.outputs = list(outputs)
        self.inputs = []

    def __call__(self, params, images):
        assert params == "fake params"
        self.inputs.append(images)
        return self.outputs.pop(0)


def _raw(anchor, reg, logit):
    regressors = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896), -20.0, np.float32)
    if anchor is not None:
        regressors[0, anchor, :4] = reg
        logits[0, anchor] = logit
    return regressors, logits


def _fake(outputs):
    return face.FaceDetector(
        params="fake params", anchors=face.make_anchors(), predict=_FakeModel(outputs)
    )


def test_anchor_grid_layout():
    anchors = face.make_anchors()
    assert anchors.shape == (896, 2) and anchors.dtype == np.float32
    # Stride 8: 16x16 cells, 2 anchors each, row-major; then stride 16: 8x8 cells, 6 anchors each.
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[32], [0.5 / 16, 1.5 / 16])
    np.testing.assert_allclose(anchors[512], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(anchors[517], anchors[512])
    np.testing.assert_allclose(anchors[518], [1.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])


def test_model_matches_anchor_count(detector):
    regressors, logits = detector.predict(detector.params, np.zeros((2, 128, 128, 3), np.float32))
    assert regressors.shape == (2, 896, 16) and logits.shape == (2, 896)
    assert regressors.dtype == logits.dtype == np.float32
    assert detector.anchors.shape == (896, 2)


def test_decoding_letterbox_and_scale():
    # A 64x256 frame: scale 0.5 into the 128 input, letterboxed with 48 rows on top.
    frame = np.full((64, 256, 3), 255, np.uint8)
    anchor, reg = 600, np.array([3.0, -2.0, 20.0, 10.0])
    det = _fake([_raw(anchor, reg, 4.0)])
    out = face.detect_faces(frame, detector=det, min_score=0.5)
    ax, ay = face.make_anchors()[anchor].astype(np.float64) * 128
    cx, cy = (ax + 3.0) / 0.5, (ay - 2.0 - 48.0) / 0.5
    expected = [cx - 20.0, cy - 10.0, cx + 20.0, cy + 10.0, 1.0 / (1.0 + np.exp(-4.0))]
    np.testing.assert_allclose(out, [expected], rtol=1e-5, atol=1e-4)
    (image,) = det.predict.inputs
    assert image.shape == (1, 128, 128, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[0, :48], -1.0)  # black letterbox rows
    np.testing.assert_allclose(image[0, 48:80], 1.0)  # white frame, scaled to [-1, 1]
    np.testing.assert_allclose(image[0, 80:], -1.0)


def test_score_threshold_and_empty_output():
    frame = np.zeros((32, 32, 3), np.uint8)
    det = _fake([_raw(10, [0, 0, 10, 10], -1.0)])  # sigmoid(-1) = 0.27 < 0.5
    out = face.detect_faces(frame, detector=det)
    assert out.shape == (0, 5)


def test_nms_weighted_and_plain():
    dets = np.array(
        [
            [10.0, 10.0, 30.0, 30.0, 0.9],
            [12.0, 12.0, 32.0, 32.0, 0.6],  # IoU with the first ~0.68: merged
            [60.0, 60.0, 80.0, 80.0, 0.7],  # separate face
        ]
    )
    weighted = face._nms(dets, 0.3, face.NMS_METHODS["weighted"])
    blended = (0.9 * dets[0, :4] + 0.6 * dets[1, :4]) / 1.5
    np.testing.assert_allclose(weighted, [[*blended, 0.9], dets[2]], rtol=1e-12)
    plain = face._nms(dets, 0.3, face.NMS_METHODS["plain"])
    np.testing.assert_allclose(plain, dets[[0, 2]])


def test_track_interpolates_fills_misses_and_squares():
    # Key frames 0, 5 (missed), 6 (retry, found), 11 (found); 14 frames in all; smoothing off.
    frames = [np.zeros((128, 128, 3), np.uint8)] * 14
    anchor = 300
    ax, ay = face.make_anchors()[anchor].astype(np.float64) * 128
    outputs = [
        _raw(anchor, [0.0, 0.0, 20.0, 30.0], 5.0),
        _raw(None, None, None),
        _raw(anchor, [10.0, 4.0, 20.0, 30.0], 5.0),
        _raw(anchor, [10.0, 4.0, 40.0, 30.0], 5.0),
    ]
    det = _fake(outputs)
    boxes = face.track_face(frames, detect_every=5, smooth=0, detector=det, scale=1.0, shift=0.0)
    assert boxes.shape == (14, 4)
    assert not det.predict.outputs  # exactly four detector calls: frames 0, 5, 6, 11
    side = boxes[:, 2] - boxes[:, 0]
    np.testing.assert_allclose(side, boxes[:, 3] - boxes[:, 1], rtol=1e-6)
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    key_t, key_cx = [0, 6, 11], [ax, ax + 10, ax + 10]
    np.testing.assert_allclose(centre_x, np.interp(np.arange(14), key_t, key_cx), atol=1e-3)
    # Sides: 30, 30, 40 (max of w, h), log-linear in between, held after the last key frame.
    expected_side = np.exp(np.interp(np.arange(14), key_t, np.log([30.0, 30.0, 40.0])))
    np.testing.assert_allclose(side, expected_side, rtol=1e-5)


def test_no_face_raises_one_line_error(detector):
    rng = np.random.default_rng(0)
    frames = (rng.uniform(0, 1, (7, 48, 64, 3)) * 40 + 100).astype(np.uint8)  # flat grey noise
    with pytest.raises(RppgEditError) as err:
        face.track_face(frames, detector=detector, name="noise.mp4")
    message = str(err.value)
    assert "noise.mp4" in message and "no face found in 7 frames" in message
    assert "--allow_no_face" in message and "\n" not in message


def test_fixed_box_is_centred_square():
    box = face.fixed_box(480, 640, frac=0.5)
    np.testing.assert_allclose(box, [200.0, 120.0, 440.0, 360.0])


def _jitter(boxes):
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return float(np.std(np.linalg.norm(np.diff(centres, axis=0), axis=1)))


@pytest.mark.slow
def test_physrecorder_boxes_stable_and_on_the_head(detector):
    frames = _read(shared_file("physrecorder", "video_ZIP_H264.avi"), 120)
    dets = face.detect_faces(frames[0], detector=detector)
    assert dets.shape[0] == 1 and dets[0, 4] > 0.8
    boxes = face.track_face(frames, detector=detector)
    assert boxes.shape == (len(frames), 4)
    side = boxes[:, 2] - boxes[:, 0]
    np.testing.assert_allclose(side, boxes[:, 3] - boxes[:, 1], rtol=1e-5)
    # The README's head region (x 170..489, y 40..359) holds every box; the face is ~150 px.
    assert np.all(boxes[:, 0] >= 170) and np.all(boxes[:, 2] <= 490)
    assert np.all(boxes[:, 1] >= 40) and np.all(boxes[:, 3] <= 360)
    assert np.all((side > 120) & (side < 260))
    # Every box holds the raw detector box of its frame's face (forehead to chin).
    assert np.all(boxes[0, :2] <= dets[0, :2]) and np.all(boxes[0, 2:] >= dets[0, 2:4] - 2)
    raw = np.stack([face.detect_faces(f, detector=detector)[0, :4] for f in frames[:60:2]])
    assert _jitter(boxes) < 0.3 < _jitter(raw)


@pytest.mark.slow
def test_evm_face_boxes_stable(detector):
    frames = _read(shared_file("evm_mit", "face.mp4"), 90)
    boxes = face.track_face(frames, detector=detector)
    height, width = frames.shape[1:3]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    # A large frontal face near the middle of the 528x592 frame.
    assert np.all(np.abs(centres[:, 0] - width / 2) < 0.15 * width)
    assert np.all(np.abs(centres[:, 1] - height / 2) < 0.15 * height)
    assert np.all(boxes[:, 2] - boxes[:, 0] > 0.5 * width)
    assert _jitter(boxes) < 0.3


# --- The letterbox resize without OpenCV ------------------------------------------------------

# Frame sizes of the letterbox: integer factors (640x480, 1080p, 2x2), fractional shrinks
# (592x528, 320x320, 751x1000), an upscale (48x64) and an identity.
_RESIZE_CASES = [
    (480, 640),
    (1080, 1920),
    (256, 256),
    (592, 528),
    (320, 320),
    (1000, 751),
    (64, 48),
    (128, 128),
]


def _letterbox_size(height, width):
    scale = 128 / max(height, width)
    return max(1, min(128, round(height * scale))), max(1, min(128, round(width * scale)))


def _area_reference(image, height, width):
    """Float64 area average: each output pixel is the mean of its footprint, pixels weighted by
    their overlap with it (written independently of rppgedit's weight tables)."""

    def weights(src, dst):
        scale = src / dst
        out = np.zeros((dst, src))
        for d in range(dst):
            lo, hi = d * scale, (d + 1) * scale
            for s in range(int(np.floor(lo)), min(int(np.ceil(hi)), src)):
                out[d, s] = max(0.0, min(hi, s + 1) - max(lo, s)) / scale
        return out

    wy, wx = weights(image.shape[0], height), weights(image.shape[1], width)
    rows = np.tensordot(wy, image.astype(np.float64), axes=(1, 0))  # (height, W, C)
    return np.einsum("pw,owc->opc", wx, rows)


@pytest.mark.parametrize("size", [s for s in _RESIZE_CASES if s[0] >= 128 or s[1] >= 128])
def test_area_resize_matches_float64_area_average(size, rng):
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    height, width = _letterbox_size(*size)
    got = face.area_resize_uint8(image, height, width).astype(np.float64)
    want = _area_reference(image, height, width)
    assert got.shape == want.shape == (height, width, 3)
    # Rounded to the nearest grey level: within 0.5 (plus OpenCV's dropped overlaps under 1e-3
    # of a pixel and float32 sums).
    assert np.max(np.abs(got - want)) <= 0.5 + 1e-2


@pytest.mark.parametrize("size", _RESIZE_CASES)
def test_area_resize_matches_opencv(size, rng):
    import cv2  # OpenCV comes with the attackers extra, which the test extra includes

    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    height, width = _letterbox_size(*size)
    got = face.area_resize_uint8(image, height, width)
    want = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    diff = np.abs(got.astype(int) - want.astype(int))
    if size[0] % height == 0 and size[1] % width == 0:
        assert diff.max() == 0  # integer factors: OpenCV's exact box sums, its rounding
    else:
        assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3


def test_face_module_does_not_use_opencv():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(face))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(name.split(".")[0] == "cv2" for name in names)


def test_detector_is_the_shipped_recorded_file():
    from rppgedit import checkpoints

    path = face.blazeface_path()
    assert path.parent == checkpoints.PACKAGE_DIR
    assert checkpoints.read_records()[path.name] == checkpoints._sha256(path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "parts",
    [
        ("physrecorder", "video_ZIP_H264.avi"),  # 640x480: integer factor 5
        ("evm_mit", "face.mp4"),  # 528x592: factor 4.625
        ("physrecorder", "v01_facecrop320_lossless_ffv1.mkv"),  # 320x320: factor 2.5
    ],
)
def test_tracker_boxes_equal_those_of_the_opencv_letterbox(parts, detector, monkeypatch):
    import cv2

    frames = _read(shared_file(*parts), 150)
    boxes = face.track_face(frames, detector=detector)
    monkeypatch.setattr(
        face,
        "area_resize_uint8",
        lambda image, h, w: cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA),
    )
    opencv_boxes = face.track_face(frames, detector=detector)
    # Measured: identical on the 640x480 and 320x320 clips, 0.006 px apart on the 528x592 one.
    np.testing.assert_allclose(boxes, opencv_boxes, rtol=0, atol=0.05)
