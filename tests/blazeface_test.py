"""Tests for rppgedit.video.blazeface: the Flax BlazeFace against ONNX Runtime on the shipped .onnx.

The parity checks compare the raw network outputs (every regressor and logit of the 896 anchors), so a
wrong layer, padding, channel order or output order fails them even where the decoded boxes would
survive; then `face.detect_faces` with either backend. Inputs: random images (several seeds),
letterboxed frames of synthetic face clips, and, when it is there, the real physrecorder clip.
"""

import shutil

import jax
import numpy as np
import pytest
from conftest import shared_file
from flax import traverse_util

from rppgedit import checkpoints
from rppgedit.data import synthetic
from rppgedit.errors import RppgEditError
from rppgedit.video import blazeface, face

# Raw outputs: |JAX - ONNX Runtime| <= RAW_TOL * (1 + |ONNX Runtime|), i.e. assert_allclose with
# rtol = atol = RAW_TOL (the outputs reach |300| on faces, where float32 steps are 3e-5). Measured
# (XLA CPU, jaxlib 0.10.2, onnxruntime 1.32, float32), as that ratio: at most 6.9e-5 on regressors
# and 6.6e-6 on logits; in absolute terms 9.2e-5 / 6.5e-5 (regressors / logits) on random images,
# 2.6e-4 / 7.6e-4 (at a logit of -222) on synthetic faces, 9.2e-5 / 1.1e-4 on the real clip, and
# at most 5.7e-5 on the logits within +-20 of the score threshold. One weight scaled by 1% moves
# the outputs by more than ten times the tolerance (`test_tolerance_catches_a_wrong_layer`).
RAW_TOL = 5e-4
BOX_ATOL = 0.5  # px, frame pixels
SCORE_ATOL = 1e-4
NUM_PARAMS = 101_390  # 101,078 distinct ONNX values; tf2onnx shares four all-zero bias tensors


@pytest.fixture(scope="module")
def params():
    return blazeface.load_params()


@pytest.fixture(scope="module")
def session():
    import onnxruntime as ort  # the [test] extra's; the package itself never imports it

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    path = checkpoints.shipped_file("blaze_face.onnx")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnx(session, images):
    """ONNX Runtime's (regressors (N,896,16), logits (N,896)), one image at a time (batch 1)."""
    outputs = [session.run(None, {"input": image[None]}) for image in images]
    regressors = np.concatenate([reg for reg, _ in outputs])
    logits = np.concatenate([cls[..., 0] for _, cls in outputs])
    return regressors, logits


def _frames():
    """uint8 RGB frames of synthetic faces: still and moving, square and letterboxed, two faces."""
    frames = []
    for seed, (height, width), motion in [
        (0, (128, 128), False),
        (1, (96, 160), True),
        (2, (240, 180), True),
    ]:
        clip = synthetic.make_clip(seed, num_frames=30, height=height, width=width, motion=motion)
        frames += [clip.frames[0], clip.frames[29]]
    pair = synthetic.make_multi_face_clip([3, 4], [70.0, 90.0], num_frames=2)
    return frames + [pair.frames[1]]


def _real_frames():
    from rppgedit.video.decode import read_video

    path = shared_file("physrecorder", "v01_facecrop320_lossless_ffv1.mkv")
    return list(read_video(path, max_frames=91).frames[::30])


def _random_images(seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (2, 128, 128, 3)).astype(np.float32)


def _letterboxed(frames):
    return np.stack([face._letterbox(frame)[0] for frame in frames])


# The jitted Flax network and its NumPy twin (`predict_numpy`, the live mode's) are held to the
# same reference.
PREDICTS = (blazeface.predict, blazeface.predict_numpy)


def _assert_raw_parity(params, session, images):
    want_reg, want_logits = _onnx(session, images)
    for predict in PREDICTS:
        reg, logits = (np.asarray(out) for out in predict(params, images))
        assert reg.shape == (len(images), 896, 16) and logits.shape == (len(images), 896)
        assert reg.dtype == logits.dtype == np.float32
        np.testing.assert_allclose(reg, want_reg, rtol=RAW_TOL, atol=RAW_TOL)
        np.testing.assert_allclose(logits, want_logits, rtol=RAW_TOL, atol=RAW_TOL)
    return want_reg, want_logits


def _error(got, want):
    """Largest |got - want| / (1 + |want|): the quantity that RAW_TOL bounds."""
    return float(np.max(np.abs(got - want) / (1.0 + np.abs(want))))


def _onnx_detector(session):
    """A `FaceDetector` whose network is ONNX Runtime (the reference for `detect_faces`)."""
    return face.FaceDetector(
        params=None,
        anchors=face.make_anchors(),
        predict=lambda params, images: _onnx(session, np.asarray(images)),
    )


def _assert_detection_parity(params, session, frames):
    reference = _onnx_detector(session)
    for ours in (face.FaceDetector(params=params, anchors=face.make_anchors()),
                 face.load_detector(beside_jax=True)):  # fmt: skip
        for frame in frames:
            got = face.detect_faces(frame, detector=ours)
            want = face.detect_faces(frame, detector=reference)
            assert len(want) >= 1  # a face in every frame: the comparison is not vacuous
            assert got.shape == want.shape
            np.testing.assert_allclose(got[:, :4], want[:, :4], rtol=0, atol=BOX_ATOL)
            np.testing.assert_allclose(got[:, 4], want[:, 4], rtol=0, atol=SCORE_ATOL)


# --- the network --------------------------------------------------------------------------------


def test_parameter_count_and_layout(params):
    shapes = blazeface.param_shapes()
    assert sum(int(np.prod(shape)) for shape in shapes.values()) == NUM_PARAMS
    assert shapes["stem/kernel"] == (5, 5, 3, 24)
    assert shapes["block03/depthwise/kernel"] == (3, 3, 1, 28)  # depthwise: one input per group
    assert shapes["regressor_16/kernel"] == (1, 1, 96, 96)
    leaves = jax.tree.leaves(params)
    assert len(leaves) == len(shapes) == 74 and all(x.dtype == np.float32 for x in leaves)
    # the shipped weights, loaded without the shape check (their sha256 is checked instead)
    flat = traverse_util.flatten_dict(params["params"], sep="/")
    assert {name: tuple(x.shape) for name, x in flat.items()} == shapes


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_raw_outputs_match_onnx_runtime_on_random_images(params, session, seed):
    _assert_raw_parity(params, session, _random_images(seed))


def test_raw_outputs_match_onnx_runtime_on_synthetic_faces(params, session):
    images = _letterboxed(_frames())
    _, logits = _assert_raw_parity(params, session, images)  # one batch of 7
    assert np.all(logits.max(axis=1) > 0)  # each holds a confident face (score > 0.5)


def test_raw_outputs_match_onnx_runtime_on_the_real_clip(params, session):
    images = _letterboxed(_real_frames())
    _, logits = _assert_raw_parity(params, session, images)
    assert np.all(logits.max(axis=1) > 0)


def test_detect_faces_matches_onnx_runtime(params, session):
    _assert_detection_parity(params, session, _frames())


def test_detect_faces_matches_onnx_runtime_on_the_real_clip(params, session):
    _assert_detection_parity(params, session, _real_frames())


def test_tolerance_catches_a_wrong_layer(params, session):
    images = _letterboxed(_frames()[:2])
    want_reg, want_logits = _onnx(session, images)
    for name in ("block07/depthwise/kernel", "block16/pointwise/bias", "classifier_8/kernel"):
        flat = traverse_util.flatten_dict(params["params"], sep="/")
        flat[name] = flat[name] * 1.01
        wrong = {"params": traverse_util.unflatten_dict(flat, sep="/")}
        for predict in PREDICTS:
            reg, logits = (np.asarray(out) for out in predict(wrong, images))
            worst = max(_error(reg, want_reg), _error(logits, want_logits))
            assert worst > 10 * RAW_TOL, (name, predict.__name__, worst)


def test_uint8_input_is_normalised_like_the_letterbox(params):
    pixels = np.random.default_rng(5).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    scaled = pixels.astype(np.float32) / 127.5 - 1.0  # what `face._letterbox` feeds
    np.testing.assert_array_equal(np.asarray(blazeface.normalise(pixels)), scaled)
    for a, b in zip(
        blazeface.predict(params, pixels), blazeface.predict(params, scaled), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-5)


def test_batch_equals_one_at_a_time(params):
    images = _random_images(7)
    batch = blazeface.predict(params, images)
    for i in range(len(images)):
        single = blazeface.predict(params, images[i : i + 1])
        for a, b in zip(batch, single, strict=True):  # float32 rounding: a few ulp of logits ~30
            np.testing.assert_allclose(np.asarray(a)[i], np.asarray(b)[0], rtol=1e-6, atol=1e-5)


def test_rejects_wrong_input_shape(params):
    with pytest.raises(ValueError, match="128, 128, 3"):
        blazeface.predict(params, np.zeros((1, 64, 64, 3), np.float32))


# --- the shipped weights ------------------------------------------------------------------------


def test_shipped_npz_equals_a_fresh_conversion_of_the_onnx(tmp_path, params):
    pytest.importorskip("onnx", reason="onnx (the [convert] extra) is needed to convert")
    from rppgedit.checkpoints import blazeface_convert

    fresh = blazeface_convert.convert_blazeface(tmp_path / "blaze_face.npz")
    shipped = blazeface.params_path()
    assert fresh.read_bytes() == shipped.read_bytes()  # fixed zip timestamps: reproducible
    with np.load(fresh) as got, np.load(shipped) as want:
        assert sorted(got.files) == sorted(want.files) == sorted(blazeface.param_shapes())
        for name in want.files:
            assert got[name].dtype == np.float32
            assert got[name].tobytes() == want[name].tobytes(), name
    # load_detector converts an .onnx path on loading, to the same parameters.
    onnx_detector = face.load_detector(checkpoints.PACKAGE_DIR / "blaze_face.onnx")
    for a, b in zip(jax.tree.leaves(onnx_detector.params), jax.tree.leaves(params), strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_conversion_without_onnx_is_a_one_line_error(monkeypatch, tmp_path):
    import sys

    from rppgedit.checkpoints import blazeface_convert

    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(RppgEditError, match=r"needs the onnx package: pip install onnx") as err:
        blazeface_convert.convert_blazeface(tmp_path / "x.npz")
    assert "\n" not in str(err.value) and not (tmp_path / "x.npz").exists()


def test_npz_is_recorded_and_checked(tmp_path, monkeypatch):
    path = face.blazeface_path()
    assert path == checkpoints.PACKAGE_DIR / "blaze_face.npz"
    assert checkpoints.read_records()[path.name] == checkpoints._sha256(path)
    # A changed copy in a stand-in package folder is refused before it is read.
    root = tmp_path / "shipped"
    root.mkdir()
    for name in ("blaze_face.npz", "SHA256SUMS"):
        shutil.copy(checkpoints.PACKAGE_DIR / name, root / name)
    blob = bytearray((root / "blaze_face.npz").read_bytes())
    blob[len(blob) // 2] ^= 1
    (root / "blaze_face.npz").write_bytes(bytes(blob))
    monkeypatch.setattr(checkpoints, "PACKAGE_DIR", root)
    checkpoints._verified.cache_clear()
    try:
        with pytest.raises(RppgEditError, match="sha256 differs"):
            face.load_detector()
    finally:
        checkpoints._verified.cache_clear()


def test_not_blazeface_weights_is_a_one_line_error(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, **{"stem/kernel": np.zeros((3, 3, 3, 24), np.float32)})
    with pytest.raises(RppgEditError, match="not BlazeFace short-range weights") as err:
        face.load_detector(path)
    assert "\n" not in str(err.value)
    with pytest.raises(RppgEditError, match="not found"):
        face.load_detector(tmp_path / "absent.npz")
