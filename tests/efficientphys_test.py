"""Tests of rppgedit.models.efficientphys: the temporal shift, the frames-per-call rule, parity
with open-rppg's Keras EfficientPhys, the converted weights, gradients and synthetic heart rates."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    check_keras_conversion,
    count_values,
    pearson,
    require_open_rppg,
    run_keras_script,
)

from rppgedit import checkpoints, signals
from rppgedit.data.synthetic import grid_clip, make_clip
from rppgedit.estimators import get as get_estimator
from rppgedit.models import efficientphys

require_open_rppg()  # the weights and the Keras reference (imported in a subprocess only)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Real open-rppg weights, converted into a temporary checkpoint folder."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {v: checkpoints.load_efficientphys(v, root) for v in checkpoints.VARIANTS}


# ------------------------------------------------------------------------------ model structure


def test_parameter_count_and_shapes(key):
    variables = jax.eval_shape(efficientphys.init_variables, key)
    # The open-rppg weight files hold 2,178,561 trainable values and 10,368 BN running statistics
    # (mean and variance of each of the 72*72 pixel positions).
    assert count_values(variables["params"]) == 2_178_561
    assert count_values(variables["batch_stats"]) == 10_368
    for t in (8, 16, 160):
        x = jax.ShapeDtypeStruct((2, t, 72, 72, 3), jnp.float32)
        y = jax.eval_shape(efficientphys.EfficientPhys().apply, variables, x)
        assert y.shape == (2, t) and y.dtype == jnp.float32
    for shape in ((1, 12, 72, 72, 3), (1, 16, 64, 64, 3)):  # T not a multiple of 8; not 72x72
        with pytest.raises(ValueError, match="multiple of 8 and 72x72"):
            x = jax.ShapeDtypeStruct(shape, jnp.float32)
            jax.eval_shape(efficientphys.EfficientPhys().apply, variables, x)
    # estimate_bvp takes any frame size (area-resized to 72x72) and leading batch axes.
    for shape in ((16, 64, 64, 3), (2, 24, 100, 90, 3), (8, 32, 32, 3), (12, 64, 64, 3)):
        y = jax.eval_shape(efficientphys.estimate_bvp, variables, jnp.zeros(shape, jnp.float32))
        assert y.shape == shape[:-3] and y.dtype == jnp.float32
    with pytest.raises(TypeError, match="float"):
        x = jax.ShapeDtypeStruct((16, 72, 72, 3), jnp.uint8)
        jax.eval_shape(efficientphys.estimate_bvp, variables, x)


def test_temporal_shift_matches_a_frame_by_frame_reference(rng):
    x = rng.normal(size=(2, 16, 3, 2, 7)).astype(np.float32)  # C = 7: fold 2, 3 channels unshifted
    want = x.copy()
    for start in (0, 8):
        for i in range(8):
            t = start + i
            want[:, t, ..., :2] = x[:, start + min(i + 1, 7), ..., :2]  # from the next frame
            want[:, t, ..., 2:4] = x[:, start + max(i - 1, 0), ..., 2:4]  # from the previous one
    np.testing.assert_array_equal(np.asarray(efficientphys.temporal_shift(jnp.asarray(x))), want)


def test_any_multiple_of_8_frames_equals_the_longer_call(key, rng):
    """Frames interact only through the differences and inside 8-frame TSM segments: two 80-frame
    calls give a 160-frame call's output except in each half's last segment (where the last
    difference of the shorter call is zero, as at the end of every open-rppg chunk)."""
    variables = jax.jit(efficientphys.init_variables)(key)  # one program, not op by op
    x = jnp.asarray(rng.random((1, 160, 72, 72, 3), dtype=np.float32))
    forward = jax.jit(efficientphys.EfficientPhys().apply)
    whole = np.asarray(forward(variables, x))[0]
    halves = np.concatenate([np.asarray(forward(variables, x[:, s : s + 80]))[0] for s in (0, 80)])
    same = np.r_[0:72, 80:152]
    np.testing.assert_allclose(halves[same], whole[same], rtol=0, atol=1e-5)
    np.testing.assert_allclose(halves[152:], whole[152:], rtol=0, atol=1e-5)  # both end the clip
    assert np.abs(halves[72:80] - whole[72:80]).max() > 1e-3  # the boundary segment does differ


# ------------------------------------------------------------------ parity with open-rppg (Keras)

# Runs in a subprocess: importing rppg sets the global Keras policy, KERAS_BACKEND, XLA env vars and
# silences UserWarning for the whole process. Besides the raw output, it applies open-rppg's own
# post-processing of one 160-frame chunk: `load_EfficientPhys_*`'s cumsum, standardisation and
# first difference, then `Model.bvp`'s cumsum and `rppg.main.detrend` at 30 fps.
_KERAS_SCRIPT = textwrap.dedent(
    """
    import importlib.util, pathlib, sys
    import numpy as np
    import rppg.models
    from rppg.main import detrend
    import keras
    keras.mixed_precision.set_global_policy("float32")
    package = pathlib.Path(importlib.util.find_spec("rppg").submodule_search_locations[0])
    weights = package / "weights"
    data = np.load(sys.argv[1])
    out = {}
    model = rppg.models.EfficientPhys()  # built once, as open-rppg's load_EfficientPhys does
    model(np.zeros((1, 160, 72, 72, 3), np.float32))
    for variant in ("pure", "rlap"):
        model.load_weights(str(weights / f"EfficientPhys.{variant}.weights.h5"))
        for name in data.files:
            raw = np.asarray(model(data[name][None]), np.float32)[0]
            y = np.cumsum(raw)
            y = (y - y.mean()) / (y.std() + 1e-6)
            y = np.diff(np.concatenate([[0.0], y]))
            out[f"{variant}/{name}/raw"] = raw
            out[f"{variant}/{name}/bvp"] = detrend(np.cumsum(y), sr=30.0)
    np.savez(sys.argv[2], **out)
    """
)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_matches_open_rppg_keras_efficientphys(weights, tmp_path, rng):
    face = make_clip(3, hr_bpm=75.0, num_frames=160, height=72, width=72)
    inputs = {  # one 160-frame chunk of 72x72 frames, open-rppg's input: uniform noise and a face
        "noise": rng.random((160, 72, 72, 3), dtype=np.float32),
        "face": face.frames.astype(np.float32) / 255.0,
    }
    keras_out = run_keras_script(tmp_path, _KERAS_SCRIPT, inputs)
    network = jax.jit(efficientphys.EfficientPhys().apply)
    bvp_fn = jax.jit(efficientphys.estimate_bvp)
    for variant, variables in weights.items():
        for name, clip in inputs.items():
            # Raw network output (the pulse's derivative, RMS 0.07-0.26): measured max |difference|
            # 6e-8 to 3.6e-7, float32 rounding; a wrong layer or layout gives > 1e-2.
            want = keras_out[f"{variant}/{name}/raw"]
            got = np.asarray(network(variables, clip[None]))[0]
            assert got.shape == want.shape == (160,)
            assert np.abs(got - want).max() <= 1e-5, (variant, name, np.abs(got - want).max())
            # The integrated, detrended BVP (standardised on both sides): measured 1.1e-5 to 6.6e-5
            # (float32 cumulative sum and dense detrending here, a float64 sparse solve there).
            reference = keras_out[f"{variant}/{name}/bvp"]
            bvp = np.asarray(bvp_fn(variables, clip))
            standard = (reference - reference.mean()) / reference.std()
            assert np.abs(bvp - standard).max() <= 5e-4, (variant, name)
            # The same heart rate read from both (measured: equal to 4e-5 bpm).
            hr, hr_keras = (float(signals.heart_rate(b, 30.0)) for b in (bvp, reference))
            assert abs(hr - hr_keras) <= 0.01, (variant, name, hr, hr_keras)
        # The face's pulse is what both read (a 75 bpm mean rate with its variability).
        face_hr = float(signals.heart_rate(keras_out[f"{variant}/face/bvp"], 30.0))
        assert abs(face_hr - face.hr_bpm) <= 3.0, (variant, face_hr, face.hr_bpm)


# -------------------------------------------------------------------------------- the weights


@pytest.mark.parametrize("variant", checkpoints.VARIANTS)
def test_checkpoint_equals_a_fresh_conversion_of_the_h5(weights, variant, tmp_path):
    h5_path = checkpoints.open_rppg_efficientphys_file(variant)
    fresh = checkpoints.convert_open_rppg_efficientphys(variant, tmp_path / "ckpt")
    candidates = {"converted": weights[variant]}  # restored from the fixture's orbax checkpoint
    shipped = checkpoints.PACKAGE_DIR / f"efficientphys_{variant}"
    if shipped.exists():  # a shipped checkpoint must equal the conversion as well
        candidates["shipped"] = checkpoints.load_efficientphys(variant, checkpoints.PACKAGE_DIR)
    for label, variables in candidates.items():
        assert jax.tree.structure(variables) == jax.tree.structure(fresh), label
        for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(fresh), strict=True):
            assert np.asarray(a).dtype == np.float32, label
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), label
    checks = [
        (fresh["params"]["mc1"]["kernel"], "layers/conv2d/vars/0"),
        (fresh["params"]["mc4"]["bias"], "layers/conv2d_3/vars/1"),
        (fresh["params"]["attc2"]["kernel"], "attc2/vars/0"),
        (fresh["params"]["bn"]["scale"], "bn/vars/0"),
        (fresh["batch_stats"]["bn"]["var"], "bn/vars/3"),
        (fresh["params"]["dense1"]["kernel"], "dense1/vars/0"),
    ]
    check_keras_conversion(
        h5_path, tmp_path / "ckpt", fresh, checks, model="EfficientPhys",
        trained_on=variant.upper(), bn_epsilon=efficientphys.KERAS_BN_EPSILON,
        num_values=2_188_929,
    )  # fmt: skip


# ------------------------------------------------------------------------------ gradients


def test_gradient_through_estimate_bvp_is_finite_nonzero_and_descends(weights):
    variables = weights["pure"]
    clip = make_clip(5, hr_bpm=70.0, num_frames=160, height=64, width=64)
    frames = jnp.asarray(clip.frames.astype(np.float32) / 255.0)
    t = np.arange(160) / clip.fps
    target = jnp.asarray(np.sin(2 * np.pi * 2.0 * t), jnp.float32)

    @jax.jit
    def loss(x):
        return -pearson(efficientphys.estimate_bvp(variables, x), target)

    value, grad = jax.jit(jax.value_and_grad(loss))(frames)
    assert np.isfinite(float(value))
    grad = np.asarray(grad)
    assert grad.shape == frames.shape and np.all(np.isfinite(grad))
    assert np.abs(grad).max() > 0
    assert np.mean(np.abs(grad) > 0) > 0.5  # the pixels, not a handful, move the output
    step = frames - 1e-3 * grad / np.abs(grad).max()
    assert float(loss(step)) < float(value)  # the real gradient: a small step lowers the loss


# ------------------------------------------------------------------------------ heart rate


@pytest.mark.parametrize("variant", checkpoints.VARIANTS)
@pytest.mark.parametrize("seed", [0, 1, 2])  # light still, medium moving and lit, dark still
def test_registry_entry_reads_synthetic_heart_rate(weights, variant, seed):
    est = get_estimator(f"efficientphys_{variant}")
    assert est.input == "video" and est.differentiable and "WACV 2023" in est.citation
    assert est.load_params.func is checkpoints.load_efficientphys
    assert est.load_params.args == (variant,)
    clip = grid_clip(seed, num_frames=256, size=128)
    x0, y0, x1, y1 = np.rint(np.median(clip.crop_boxes, axis=0)).astype(int)
    frames = clip.frames.astype(np.float32) / 255.0
    bvp = est.fn(weights[variant], frames[:, y0:y1, x0:x1], clip.fps)
    assert bvp.shape == (256,)
    # Measured (crop, seeds 0-5): PURE within 0.85 bpm, RLAP within 0.62 bpm of the true rate.
    hr = float(signals.heart_rate(bvp, clip.fps))
    assert abs(hr - clip.hr_bpm) <= 3.0, (variant, seed, hr, clip.hr_bpm)
    # The project's sign: positively correlated with the true pulse (measured r = 0.76 to 0.92).
    assert float(pearson(bvp, jnp.asarray(clip.bvp, jnp.float32))) > 0.5


def test_a_privacy_phys_edit_with_it_as_the_surrogate_moves_its_reading(weights):
    """Usable as an editing surrogate (`--surrogates=efficientphys_pure`): a few Adam steps through
    it alone take its BVP from the clip's pulse to the target waveform."""
    from rppgedit.editors import privacy_phys
    from rppgedit.targets import sinusoid

    clip = grid_clip(0, num_frames=64, size=96)
    x0, y0, x1, y1 = np.rint(np.median(clip.crop_boxes, axis=0)).astype(int)
    crop = jnp.asarray(clip.frames[:, y0:y1, x0:x1], jnp.float32) / 255.0
    mask = jnp.ones(crop.shape[:3], bool)
    target = jnp.asarray(sinusoid(150.0, 64, clip.fps))
    cfg = privacy_phys.Config(
        fps=clip.fps, surrogates=(("efficientphys_pure", 1.0),), steps=8, extra_steps=0
    )
    state = {"efficientphys_pure": weights["pure"]}
    edited, aux = privacy_phys.edit(state, crop, mask, target, cfg)
    before = float(pearson(jax.jit(efficientphys.estimate_bvp)(weights["pure"], crop), target))
    after = float(pearson(aux["surrogates"]["efficientphys_pure"], target))
    assert before < 0.3 and after > 0.6, (before, after)
    assert float(jnp.abs(edited - crop).max()) < 0.1  # a small edit did it
