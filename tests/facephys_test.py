"""Tests of rppgedit.models.facephys: the chunked SSM scan and the moving normalisation against
plain loops, parity with open-rppg's Keras FacePhys (whole clip and frame by frame), the converted
weights, gradients and synthetic heart rates."""

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
from rppgedit.errors import RppgEditError
from rppgedit.estimators import get as get_estimator
from rppgedit.models import facephys

require_open_rppg()  # the weights and the Keras reference (imported in a subprocess only)

NUM_VALUES = 1_221_137  # values in open-rppg's FacePhys.rlap.weights.h5 = the Keras model's count

# Runs in a subprocess (importing rppg sets the global Keras policy, KERAS_BACKEND, XLA env vars
# and silences UserWarning for the whole process). The model is built and loaded as open-rppg's
# `load_FacePhys` does; its 3x3 convolutions are declared mixed_float16 in the Keras code and are
# switched to float32 here. `step` is run frame by frame from `init_state`, jitted, with dt = 1/30,
# as `load_FacePhys_rlap` runs it on a video; `call` is Keras's whole-clip form.
_KERAS_SCRIPT = textwrap.dedent(
    """
    import importlib.util, pathlib, sys
    import jax
    import numpy as np
    from rppg.models_code.FacePhys import FacePhys
    import keras
    keras.mixed_precision.set_global_policy("float32")
    package = pathlib.Path(importlib.util.find_spec("rppg").submodule_search_locations[0])
    model = FacePhys([2] * 4, [32] * 4)
    model.build((1, 1, 36, 36, 3))
    model.load_weights(str(package / "weights" / "FacePhys.rlap.weights.h5"))
    for layer in model._flatten_layers():
        if layer.dtype_policy.name != "float32":
            layer.dtype_policy = "float32"
    step = jax.jit(lambda x, s: model.step(x, s, dt=1 / 30))
    whole = jax.jit(lambda x: model(x))
    data = np.load(sys.argv[1])
    clips = np.stack([data[name] for name in data.files])  # one batch: (clips, T, 36, 36, 3)
    state = model.init_state((len(clips), 1, 36, 36, 3))
    ys = []
    for t in range(clips.shape[1]):
        y, state = step(clips[:, t : t + 1], state)
        ys.append(np.asarray(y, np.float32).reshape(len(clips)))
    steps, calls = np.stack(ys, 1), np.asarray(whole(clips), np.float32)
    out = {"count": np.array(model.count_params())}
    for i, name in enumerate(data.files):
        out[f"{name}/step"], out[f"{name}/call"] = steps[i], calls[i]
    np.savez(sys.argv[2], **out)
    """
)


@pytest.fixture(scope="module", autouse=True)
def keras_job(tmp_path_factory):
    """open-rppg's Keras FacePhys on two 160-frame 36x36 clips (uniform noise and a synthetic face),
    started in a subprocess before the first test so that it runs beside them (about 35 s)."""
    face = make_clip(3, hr_bpm=75.0, num_frames=160, height=36, width=36)
    inputs = {
        "noise": np.random.default_rng(0).random((160, 36, 36, 3), dtype=np.float32),
        "face": face.frames.astype(np.float32) / 255.0,
    }
    tmp = tmp_path_factory.mktemp("keras")
    np.savez(tmp / "in.npz", **inputs)
    (tmp / "keras_script.py").write_text(_KERAS_SCRIPT)
    # XLA's CPU optimisation is off there: Keras's build runs ~400 small programs eagerly, each
    # compiled, and this halves the subprocess's time (its outputs move by < 6e-5, well inside the
    # tolerances). Started with Popen, not `conftest.run_keras_script`, so that it runs in parallel.
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_backend_optimization_level=0",
    )
    with open(tmp / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(tmp / "keras_script.py"),
                str(tmp / "in.npz"),
                str(tmp / "out.npz"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    job = {"proc": proc, "dir": tmp, "inputs": inputs, "face_hr": face.hr_bpm}
    yield job
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def keras_out(keras_job):
    proc, tmp = keras_job["proc"], keras_job["dir"]
    assert proc.wait(timeout=600) == 0, (tmp / "stderr.txt").read_text()[-3000:]
    return dict(np.load(tmp / "out.npz"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Real open-rppg weights, converted into a temporary checkpoint folder."""
    return checkpoints.load_facephys("rlap", tmp_path_factory.mktemp("checkpoints"))


# ------------------------------------------------------------------------------ model structure


def test_parameter_count_and_shapes(key):
    variables = jax.eval_shape(facephys.init_variables, key)
    assert set(variables) == {"params"} and count_values(variables) == NUM_VALUES
    x = jax.ShapeDtypeStruct((2, 45, 36, 36, 3), jnp.float32)  # any T: the scan pads to chunks
    y = jax.eval_shape(facephys.FacePhys().apply, variables, x)
    assert y.shape == (2, 45) and y.dtype == jnp.float32
    with pytest.raises(ValueError, match="36,36,3"):
        x = jax.ShapeDtypeStruct((1, 8, 32, 32, 3), jnp.float32)
        jax.eval_shape(facephys.FacePhys().apply, variables, x)
    # estimate_bvp takes any frame size (area-resized to 36x36), any T and leading batch axes.
    x = jax.ShapeDtypeStruct((2, 24, 100, 90, 3), jnp.float32)
    y = jax.eval_shape(facephys.estimate_bvp, variables, x, 25.0)
    assert y.shape == (2, 24) and y.dtype == jnp.float32
    with pytest.raises(TypeError, match="float"):
        x = jax.ShapeDtypeStruct((16, 36, 36, 3), jnp.uint8)
        jax.eval_shape(facephys.estimate_bvp, variables, x)


@pytest.mark.parametrize("chunk", [8, 37])
def test_chunked_ssd_equals_the_sequential_recurrence(rng, chunk):
    """`ssd` (quadratic inside chunks, carried between them; T = 37 pads the last chunk) gives
    the recurrence state_t = exp(a_t) state_{t-1} + x_t b_t^T, y_t = state_t c_t step by step."""
    bsz, t, h, p, n = 2, 37, 3, 2, 5
    dt = rng.uniform(0.1, 2.0, (bsz, t, h))
    rate = -np.exp(rng.normal(size=h)) + 1j * rng.normal(size=h)
    x = rng.normal(size=(bsz, t, h, p)) * dt[..., None]
    b, c = rng.normal(size=(bsz, t, n)), rng.normal(size=(bsz, t, n))
    h0 = rng.normal(size=(bsz, h, p, n)) + 1j * rng.normal(size=(bsz, h, p, n))
    a = dt * rate
    state, want = h0.copy(), np.zeros((bsz, t, h, p), complex)
    for i in range(t):
        state = np.exp(a[:, i])[..., None, None] * state + np.einsum(
            "bhp,bn->bhpn", x[:, i], b[:, i]
        )
        want[:, i] = np.einsum("bhpn,bn->bhp", state, c[:, i])
    args = [jnp.asarray(v, jnp.complex64) for v in (x, a)]
    args += [jnp.asarray(v, jnp.float32) for v in (b, c)] + [jnp.asarray(h0, jnp.complex64)]
    got = np.asarray(jax.jit(facephys.ssd, static_argnames="chunk")(*args, chunk=chunk))
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_moving_normalize_equals_a_frame_loop(rng):
    x = rng.normal(size=(2, 50, 3, 4)).astype(np.float32) * 2 + 1
    decay = rng.uniform(0.5, 0.99, 4).astype(np.float32)
    mean0, var0 = rng.normal(size=(3, 4)), np.exp(rng.normal(size=(3, 4)))
    mean, var, want = np.broadcast_to(mean0, (2, 3, 4)), np.broadcast_to(var0, (2, 3, 4)), []
    for i in range(50):
        mean = decay * mean + (1 - decay) * x[:, i]
        var = decay * var + (1 - decay) * (x[:, i] - mean) ** 2
        want.append((x[:, i] - mean) / np.sqrt(var + 1e-5))
    got = facephys.moving_normalize(jnp.asarray(x), jnp.asarray(decay), mean0, var0)
    np.testing.assert_allclose(np.asarray(got), np.stack(want, 1), rtol=0, atol=1e-4)


# -------------------------------------------------------------------------------- the weights


def test_checkpoint_equals_a_fresh_conversion_of_the_h5(weights, tmp_path):
    h5_path = checkpoints.open_rppg_facephys_file()
    fresh = checkpoints.convert_open_rppg_facephys("rlap", tmp_path / "ckpt")
    assert jax.tree.structure(weights) == jax.tree.structure(fresh)
    for a, b in zip(jax.tree.leaves(weights), jax.tree.leaves(fresh), strict=True):
        assert np.asarray(a).dtype == np.float32
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    p = fresh["params"]
    block = "layers/sequential/layers/ssc_block"
    checks = [
        (p["block0"]["ssconv0"]["ssm"]["A_log"], f"{block}/ssc/layers/ss_conv/ssm/vars/0"),
        (p["block1"]["ssconv1"]["tn"]["x2mean"], f"{block}_1/ssc/layers/ss_conv_1/tn/vars/4"),
        (
            p["block2"]["ssconv0"]["conv1"]["kernel"],
            f"{block}_2/ssc/layers/ss_conv/conv1/layers/conv2d/vars/0",
        ),  # fmt: skip
        (p["block3"]["ds_kernel"], f"{block}_3/ds/vars/0"),
        (p["out_proj"]["kernel"], "layers/sequential_1/layers/dense/vars/0"),
        (p["head_ssm1"]["init_ssm_state"], "head/layers/ss_mr_ppg_1/vars/4"),
        (p["head_dense"]["bias"], "head/layers/dense/vars/1"),
    ]
    check_keras_conversion(
        h5_path, tmp_path / "ckpt", fresh, checks, model="FacePhys", trained_on="RLAP",
        bn_epsilon=None, num_values=NUM_VALUES,
    )  # fmt: skip
    with pytest.raises(RppgEditError, match="RLAP only"):
        checkpoints.load_facephys("pure", tmp_path)
    with pytest.raises(RppgEditError, match="unknown FacePhys variant"):
        checkpoints.convert_open_rppg_facephys("ubfc", tmp_path / "other")


# ------------------------------------------------------------------ gradients and heart rate
# One compiled program, one run per clip, serves both (compiling FacePhys's gradient takes seconds).


@pytest.fixture(scope="module")
def face_run(weights):
    """run(seed) -> (clip, frames, loss, bvp, grad), once per seed: `facephys_rlap`'s `fn` on the
    face crop (256, 59, 59, 3) of `grid_clip(seed)`, the negative Pearson correlation of its BVP
    with the clip's true pulse, and that loss's gradient w.r.t. the frames. `run(seed, frames)`
    evaluates other frames of the same clip."""
    fn = get_estimator("facephys_rlap").fn

    def loss(frames, target):
        bvp = fn(weights, frames, 30.0)
        return -pearson(bvp, target), bvp

    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
    done = {}

    def run(seed, frames=None):
        if frames is None and seed in done:
            return done[seed]
        clip = grid_clip(seed, num_frames=256, size=128)
        if frames is None:
            x0, y0, x1, y1 = np.rint(np.median(clip.crop_boxes, axis=0)).astype(int)
            frames = jnp.asarray(clip.frames[:, y0:y1, x0:x1].astype(np.float32) / 255.0)
            assert frames.shape == (256, 59, 59, 3)  # one program for seeds 0 and 2
        (value, bvp), grad = value_and_grad(frames, jnp.asarray(clip.bvp, jnp.float32))
        result = (clip, frames, float(value), np.asarray(bvp), np.asarray(grad))
        done.setdefault(seed, result)
        return result

    return run


def test_gradient_of_a_pearson_loss_is_finite_nonzero_and_descends(face_run):
    _, frames, value, _, grad = face_run(0)
    assert np.isfinite(value)
    assert grad.shape == frames.shape and np.all(np.isfinite(grad))
    assert np.abs(grad).max() > 0
    assert np.mean(np.abs(grad) > 0) > 0.5  # the pixels, not a handful, move the output
    step = frames - 1e-3 * grad / np.abs(grad).max()
    assert face_run(0, step)[2] < value  # a small step lowers the loss


def test_registry_entry():
    est = get_estimator("facephys_rlap")
    assert est.input == "video" and est.differentiable and "open-rppg" in est.citation
    assert est.load_params.func is checkpoints.load_facephys
    assert est.load_params.args == ("rlap",)


@pytest.mark.parametrize("seed", [0, 2])  # light still, dark still
def test_registry_entry_reads_synthetic_heart_rate(face_run, seed):
    clip, _, loss, bvp, _ = face_run(seed)
    assert bvp.shape == (256,) and clip.fps == 30.0
    # Measured (crop, seeds 0-5): within 1.3 bpm of the true rate.
    hr = float(signals.heart_rate(bvp, clip.fps))
    assert abs(hr - clip.hr_bpm) <= 3.0, (seed, hr, clip.hr_bpm)
    # The project's sign: positively correlated with the true pulse (measured r = 0.26 to 0.77).
    assert -loss > 0.15


# ------------------------------------------------------------------ parity with open-rppg (Keras)
# Last in the file: the Keras subprocess (started before the first test) runs beside the others.


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_matches_open_rppg_keras_facephys(weights, keras_job, keras_out):
    assert int(keras_out["count"]) == count_values(weights) == NUM_VALUES
    inputs = keras_job["inputs"]
    network = jax.jit(facephys.FacePhys().apply)
    outputs = network(weights, np.stack(list(inputs.values())), 1 / 30)
    for name, got in zip(inputs, np.asarray(outputs), strict=True):
        call, step = keras_out[f"{name}/call"], keras_out[f"{name}/step"]
        assert got.shape == call.shape == step.shape == (160,)
        # Keras's whole-clip `call` (output RMS 0.5-0.8): measured max |difference| 1.2e-4 (noise)
        # and 3.5e-4 (face). This port is within 2e-6 and 1.6e-4 of its own float64 run, Keras's
        # `call` 1.1e-4 and 3.3e-4: float32 rounding, amplified by the moving normalisations.
        assert np.abs(got - call).max() <= 2e-3, (name, np.abs(got - call).max())
        # open-rppg's frame-by-frame `step`, which replaces exp, sin and cos by polynomials:
        # measured 2.8e-3 (noise) and 5.1e-3 (face) from this port, as from Keras's own `call`.
        assert np.abs(got - step).max() <= 2e-2, (name, np.abs(got - step).max())
        assert np.abs(call - step).max() <= 2e-2, (name, np.abs(call - step).max())
        # The same heart rate read from both.
        hr, hr_keras = (float(signals.heart_rate(y, 30.0)) for y in (got, step))
        assert abs(hr - hr_keras) <= 0.1, (name, hr, hr_keras)
    face_hr = float(signals.heart_rate(keras_out["face/step"], 30.0))
    assert abs(face_hr - keras_job["face_hr"]) <= 3.0, (face_hr, keras_job["face_hr"])
