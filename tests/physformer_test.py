"""Tests of rppgedit.models.physformer: its building blocks, the frames-per-call rule, parity with
open-rppg's Keras PhysFormer, the converted weights, gradients and synthetic heart rates."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import check_keras_conversion, count_values, pearson, require_open_rppg

from rppgedit import checkpoints, signals
from rppgedit.data.synthetic import grid_clip, make_clip
from rppgedit.estimators import get as get_estimator
from rppgedit.models import physformer

require_open_rppg()  # the weights and the Keras reference (imported in a subprocess only)

PARITY_FRAMES = 32  # T of the parity inputs: the network takes any multiple of 4 (Keras too)

# Runs in a subprocess: importing rppg sets the global Keras policy, KERAS_BACKEND, XLA env vars and
# silences UserWarning for the whole process. The model is built symbolically on the inputs' shape,
# then run in float32 under `jax.jit` (as open-rppg's `load_PhysFormer_*` runs it) through
# `stateless_call`, with each weight file's values as arguments: one compile for both, a third of
# the CPU time of Keras's op-by-op eager calls. The output is open-rppg's (standardised along T).
_KERAS_SCRIPT = textwrap.dedent(
    """
    import importlib.util, pathlib, sys
    import numpy as np
    import rppg.models
    import jax, keras
    keras.mixed_precision.set_global_policy("float32")
    package = pathlib.Path(importlib.util.find_spec("rppg").submodule_search_locations[0])
    data = np.load(sys.argv[1])
    x = np.stack([data[name] for name in data.files])
    model = rppg.models.PhysFormer()
    model(keras.KerasTensor(x.shape))
    call = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x)[0])
    out = {}
    for variant in ("pure", "rlap"):
        model.load_weights(str(package / "weights" / f"PhysFormer.{variant}.weights.h5"))
        values = [[v.value for v in vs] for vs in (model.trainable_variables,
                                                   model.non_trainable_variables)]
        y = np.asarray(call(*values, x), np.float32)
        out.update({f"{variant}/{name}": y[i] for i, name in enumerate(data.files)})
    np.savez(sys.argv[2], **out)
    """
)


def _parity_inputs():
    """open-rppg's input, 128x128 frames in [0, 1]: uniform noise and a synthetic face."""
    rng = np.random.default_rng(0)
    face = make_clip(3, hr_bpm=75.0, num_frames=PARITY_FRAMES, height=128, width=128)
    return {
        "noise": rng.random((PARITY_FRAMES, 128, 128, 3), dtype=np.float32),
        "face": face.frames.astype(np.float32) / 255.0,
    }


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    """The Keras reference, started first and left running beside the other tests (it spends its
    time in Keras's op-by-op dispatch, one core): `finish()` waits for its outputs. One subprocess
    for the whole file, as `conftest.run_keras_script` runs one."""
    tmp = tmp_path_factory.mktemp("keras")
    inputs = _parity_inputs()
    np.savez(tmp / "in.npz", **inputs)
    (tmp / "keras_script.py").write_text(_KERAS_SCRIPT)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(
        [sys.executable, str(tmp / "keras_script.py"), str(tmp / "in.npz"), str(tmp / "out.npz")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )

    def finish():
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        return inputs, dict(np.load(tmp / "out.npz"))

    yield finish
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def weights(tmp_path_factory, keras_run):
    """Real open-rppg weights, converted into a temporary checkpoint folder (the Keras reference
    is started before, to run meanwhile)."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {v: checkpoints.load_physformer(v, root) for v in checkpoints.VARIANTS}


# ------------------------------------------------------------------------------ model structure


def test_parameter_count_and_shapes(key, weights):
    variables = jax.eval_shape(physformer.init_variables, key)
    # Keras's model.count_params() of open-rppg's PhysFormer: 7,380,865 trainable values and 14,448
    # BatchNorm running statistics (the .weights.h5 files hold 7,395,313 values in all).
    assert count_values(variables["params"]) == 7_380_865
    assert count_values(variables["batch_stats"]) == 14_448
    x = jax.ShapeDtypeStruct((2, 160, 128, 128, 3), jnp.float32)
    y = jax.eval_shape(physformer.PhysFormer().apply, variables, x)
    assert y.shape == (2, 160) and y.dtype == jnp.float32
    for shape in ((1, 30, 128, 128, 3), (1, 32, 64, 64, 3)):  # T not a multiple of 4; not 128x128
        with pytest.raises(ValueError, match="multiple of 4 and 128x128"):
            x = jax.ShapeDtypeStruct(shape, jnp.float32)
            jax.eval_shape(physformer.PhysFormer().apply, variables, x)
    # estimate_bvp takes any frame size (area-resized to 128x128), any T and leading batch axes.
    for shape in ((2, 7, 100, 90, 3), (161, 96, 96, 3)):
        y = jax.eval_shape(physformer.estimate_bvp, variables, jnp.zeros(shape, jnp.float32))
        assert y.shape == shape[:-3] and y.dtype == jnp.float32
    with pytest.raises(ValueError, match="chunk must be a positive multiple of 4"):
        x = jax.ShapeDtypeStruct((8, 128, 128, 3), jnp.float32)
        jax.eval_shape(lambda v, c: physformer.estimate_bvp(v, c, chunk=10), variables, x)
    with pytest.raises(TypeError, match="float"):
        x = jax.ShapeDtypeStruct((16, 128, 128, 3), jnp.uint8)
        jax.eval_shape(physformer.estimate_bvp, variables, x)


def test_tdc_kernel_is_the_two_convolutions(rng):
    """conv(x, w) - theta * conv(x, w_d), w_d the summed first and last time slices of w."""
    x = jnp.asarray(rng.normal(size=(2, 6, 4, 4, 5)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 3, 5, 7)), jnp.float32)

    def conv(x, k):
        dims = ("NDHWC", "DHWIO", "NDHWC")
        hi = jax.lax.Precision.HIGHEST
        return jax.lax.conv_general_dilated(
            x, k, (1, 1, 1), "SAME", dimension_numbers=dims, precision=hi
        )

    w_d = jnp.sum(w[jnp.array([0, -1])], axis=(0, 1, 2), keepdims=True)
    want = conv(x, w) - 0.7 * conv(x, w_d)
    got = conv(x, physformer.tdc_kernel(w, 0.7))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-4)


def test_patch_embed_is_a_strided_valid_convolution(rng):
    x = jnp.asarray(rng.normal(size=(2, 8, 16, 16, 6)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(4, 4, 4, 6, 5)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(5,)), jnp.float32)
    want = jax.lax.conv_general_dilated(
        x,
        k,
        (4, 4, 4),
        "VALID",
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )
    got = physformer.patch_embed(x, k, b)
    assert got.shape == (2, 2, 4, 4, 5)
    want = want + b.reshape(1, 1, 1, 1, 5)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-4)


# -------------------------------------------------------------------------------- the weights


@pytest.mark.parametrize("variant", checkpoints.VARIANTS)
def test_checkpoint_equals_a_fresh_conversion_of_the_h5(weights, variant, tmp_path):
    h5_path = checkpoints.open_rppg_physformer_file(variant)
    fresh = checkpoints.convert_open_rppg_physformer(variant, tmp_path / "ckpt")
    variables = weights[variant]  # restored from the fixture's orbax checkpoint
    assert jax.tree.structure(variables) == jax.tree.structure(fresh)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(fresh), strict=True):
        assert np.asarray(a).dtype == np.float32
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    group = "layers/transformer_st_tdc_gra_sharp_2/blocks/block_st_tdc_gra_sharp_3"
    checks = [
        (fresh["params"]["stem0"]["conv"]["kernel"], "layers/sequential/layers/conv3d/vars/0"),
        (
            fresh["params"]["upsample2"]["bn"]["scale"],
            "layers/sequential_4/layers/batch_normalization/vars/0",
        ),  # fmt: skip
        (fresh["params"]["patch_embedding"]["kernel"], "layers/conv3d/vars/0"),
        (
            fresh["params"]["block11"]["attn"]["proj_q"]["kernel"],
            f"{group}/attn/proj_q/layers/cdc/vars/0",
        ),  # fmt: skip
        (
            fresh["batch_stats"]["block11"]["pwff"]["stconv_bn"]["var"],
            f"{group}/pwff/STConv/layers/batch_normalization/vars/3",
        ),  # fmt: skip
        (fresh["params"]["block11"]["norm2"]["scale"], f"{group}/norm2/vars/0"),
        (fresh["params"]["last"]["kernel"].reshape(1, -1, 1), "ConvBlockLast/vars/0"),
    ]
    check_keras_conversion(
        h5_path, tmp_path / "ckpt", fresh, checks, model="PhysFormer",
        trained_on=variant.upper(), bn_epsilon=physformer.KERAS_BN_EPSILON,
        num_values=7_395_313,
    )  # fmt: skip


# ------------------------------------------------------------------------------ gradients


def test_gradient_through_estimate_bvp_is_finite_nonzero_and_descends(weights):
    variables = weights["pure"]
    clip = make_clip(5, hr_bpm=70.0, num_frames=16, height=64, width=64)
    frames = jnp.asarray(clip.frames.astype(np.float32) / 255.0)
    t = np.arange(16) / clip.fps
    target = jnp.asarray(np.sin(2 * np.pi * 2.0 * t), jnp.float32)

    def loss(x):
        return -pearson(physformer.estimate_bvp(variables, x), target)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    value, grad = value_and_grad(frames)
    assert np.isfinite(float(value))
    grad = np.asarray(grad)
    assert grad.shape == frames.shape and np.all(np.isfinite(grad))
    assert np.abs(grad).max() > 0
    assert np.mean(np.abs(grad) > 0) > 0.5  # the pixels, not a handful, move the output
    step = frames - 1e-3 * grad / np.abs(grad).max()
    assert float(value_and_grad(step)[0]) < float(value)  # a small step lowers the loss


# ------------------------------------------------------------------------------ heart rate


@pytest.mark.parametrize("variant", checkpoints.VARIANTS)
def test_registry_entry_reads_synthetic_heart_rate(weights, variant):
    est = get_estimator(f"physformer_{variant}")
    assert est.input == "video" and est.differentiable and "CVPR 2022" in est.citation
    assert est.load_params.func is checkpoints.load_physformer
    assert est.load_params.args == (variant,)
    clip = grid_clip(0, num_frames=160, size=128)  # light skin, still: one 160-frame chunk
    x0, y0, x1, y1 = np.rint(np.median(clip.crop_boxes, axis=0)).astype(int)
    frames = clip.frames.astype(np.float32) / 255.0
    bvp = est.fn(weights[variant], frames[:, y0:y1, x0:x1], clip.fps)
    assert bvp.shape == (160,)
    # Measured (crop, 160 frames): PURE 92.47, RLAP 92.31 bpm for a 91.85 bpm pulse (seeds 0-5:
    # both within 1 bpm on five, both miss seed 1, medium skin moving under changing light).
    hr = float(signals.heart_rate(bvp, clip.fps))
    assert abs(hr - clip.hr_bpm) <= 3.0, (variant, hr, clip.hr_bpm)
    # The project's sign: positively correlated with the true pulse (measured r = 0.71, 0.77).
    assert float(pearson(bvp, jnp.asarray(clip.bvp, jnp.float32))) > 0.5


# ------------------------------------------------------------------ parity with open-rppg (Keras)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_matches_open_rppg_keras_physformer(weights, keras_run):
    inputs, keras_out = keras_run()
    names = list(inputs)
    network = jax.jit(physformer.PhysFormer().apply)
    for variant, variables in weights.items():
        got = np.asarray(network(variables, np.stack([inputs[n] for n in names])))
        for i, name in enumerate(names):
            # The output, standardised along T as open-rppg's: measured max |difference| 1.7e-6 to
            # 3.2e-6 here (up to 7.8e-6 on 160-frame inputs, 1.9e-5 on the real webcam clip's
            # 160-frame chunks), float32 rounding.
            want = keras_out[f"{variant}/{name}"]
            assert got[i].shape == want.shape == (PARITY_FRAMES,)
            err = np.abs(got[i] - want).max()
            assert err <= 1e-4, (variant, name, err)
    # A clip longer than `chunk` runs in chunks of `chunk` frames, the last padded with its last
    # frame, as open-rppg runs a video (160-frame chunks; 32 here), the whole re-standardised.
    clip = np.concatenate([inputs["noise"], inputs["face"][:30]])  # 62 frames: chunks 32 + 30
    chunks = np.stack([clip[:32], np.concatenate([clip[32:], np.repeat(clip[-1:], 2, axis=0)])])
    want = np.asarray(network(weights["rlap"], chunks)).reshape(-1)[:62]
    want = (want - want.mean()) / (want.std() + 1e-6)
    bvp_fn = jax.jit(physformer.estimate_bvp, static_argnames="chunk")
    got = np.asarray(bvp_fn(weights["rlap"], clip, chunk=32))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
