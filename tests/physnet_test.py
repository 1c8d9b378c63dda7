"""Tests of rppgedit.models.physnet: area resize vs OpenCV, parity with open-rppg's Keras PhysNet,
BatchNorm folding, gradients, jit hygiene and heart rate on synthetic and real clips."""

import textwrap

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require_open_rppg, run_keras_script, shared_file

from rppgedit import checkpoints, signals
from rppgedit.data.synthetic import make_clip
from rppgedit.estimators import get as get_estimator
from rppgedit.models import physnet

require_open_rppg()  # the weights and the Keras reference (imported in a subprocess only)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Real open-rppg weights, converted into a temporary checkpoint folder."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {v: checkpoints.load_physnet(v, root) for v in ("pure", "rlap")}


def _random_variables(rng):
    """PhysNet-shaped variables with random values (shapes from `jax.eval_shape`, no compile)."""
    shapes = jax.eval_shape(physnet.init_variables, jax.random.PRNGKey(0))
    variables = jax.tree.map(lambda s: rng.normal(0.0, 0.1, s.shape).astype(np.float32), shapes)
    for stats in variables["batch_stats"].values():
        stats["bn"]["var"] = np.abs(stats["bn"]["var"]) + 0.5
    return variables


def _synthetic_clip(seed, hr_bpm, num_frames, size):
    clip = make_clip(seed, hr_bpm=hr_bpm, num_frames=num_frames, height=size, width=size)
    return clip, clip.frames.astype(np.float32) / 255.0


def _pearson(a, b):
    a = a - jnp.mean(a)
    b = b - jnp.mean(b)
    return jnp.sum(a * b) / jnp.sqrt(jnp.sum(a * a) * jnp.sum(b * b))


# ----------------------------------------------------------------------------------- area resize


@pytest.mark.parametrize(
    "shape",
    [
        (128, 128),  # integer factor 4 (open-rppg's 128 -> 32)
        (96, 64),  # integer factors 3 and 2
        (100, 90),  # non-integer shrink
        (77, 45),
        (33, 40),
        (20, 16),  # both axes grow (OpenCV's linear "area" mode)
        (40, 20),  # one shrinks, one grows
    ],
)
def test_area_resize_matches_opencv_inter_area(rng, shape):
    frames = rng.random((3, *shape, 3), dtype=np.float32)
    want = np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in frames])
    got = np.asarray(jax.jit(physnet.area_resize, static_argnums=1)(frames, 32))
    assert got.shape == (3, 32, 32, 3) and got.dtype == np.float32
    # OpenCV accumulates in float32 as well: both sides are within a few float32 ulps of [0, 1].
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_area_resize_integer_factor_is_mean_pool_and_batches(rng):
    clip = rng.random((2, 4, 64, 48, 3), dtype=np.float32)  # leading batch axes
    ref = clip.astype(np.float64).reshape(2, 4, 16, 4, 16, 3, 3).mean(axis=(3, 5))
    got = np.asarray(physnet.area_resize(clip, 16))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    rect = np.asarray(physnet.area_resize(clip, (20, 30)))  # (height, width)
    assert rect.shape == (2, 4, 20, 30, 3)


def test_standardize_input_matches_numpy(rng):
    clip = rng.random((2, 8, 6, 5, 3)) * 0.3 + 0.2
    mean = clip.mean(axis=(1, 2, 3), keepdims=True)
    ref = (clip - mean) / (clip.std(axis=(1, 2, 3), keepdims=True) + 1e-6)
    got = np.asarray(physnet.standardize_input(jnp.asarray(clip, jnp.float32)))
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5)


# ------------------------------------------------------------------------------ model structure


def test_parameter_count_and_output_shape(key):
    variables = jax.eval_shape(physnet.init_variables, key)
    count = lambda tree: sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))  # noqa: E731
    # The open-rppg weight files hold 768,577 trainable values and 1,248 BN running statistics.
    assert count(variables["params"]) == 768_577
    assert count(variables["batch_stats"]) == 1_248
    for size in (16, 24, 36):  # any size >= 8 works thanks to the global spatial mean
        x = jax.ShapeDtypeStruct((2, 16, size, size, 3), jnp.float32)
        y = jax.eval_shape(physnet.PhysNet().apply, variables, x)
        assert y.shape == (2, 16) and y.dtype == jnp.float32
    with pytest.raises(ValueError, match="divisible by 4"):
        x = jax.ShapeDtypeStruct((1, 18, 16, 16, 3), jnp.float32)
        jax.eval_shape(physnet.PhysNet().apply, variables, x)
    with pytest.raises(TypeError, match="float"):
        x = jax.ShapeDtypeStruct((16, 32, 32, 3), jnp.uint8)
        jax.eval_shape(physnet.estimate_bvp, variables, x)


# ------------------------------------------------------------------ parity with open-rppg (Keras)

# Runs in a subprocess: importing rppg sets the global Keras policy, KERAS_BACKEND, XLA env vars
# and silences UserWarning for the whole process.
_KERAS_SCRIPT = textwrap.dedent(
    """
    import importlib.util, pathlib, sys
    import numpy as np
    import rppg.models
    import keras
    keras.mixed_precision.set_global_policy("float32")
    weights = pathlib.Path(importlib.util.find_spec("rppg").submodule_search_locations[0]) / "weights"
    data = np.load(sys.argv[1])
    out = {}
    model = rppg.models.PhysNet()  # built once, as open-rppg's load_PhysNet does, then loaded
    model(np.zeros(data[data.files[0]].shape, np.float32))
    for variant in ("pure", "rlap"):
        model.load_weights(str(weights / f"physnet.{variant}.weights.h5"))
        for name in data.files:
            out[f"{variant}/{name}"] = np.asarray(model(data[name]), np.float32)
    np.savez(sys.argv[2], **out)
    """
)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_matches_open_rppg_keras_physnet(weights, tmp_path, rng):
    _, synthetic = _synthetic_clip(3, 75.0, 128, 32)
    # One batch shape, so Keras compiles once: a uniform-noise clip and a synthetic face clip.
    inputs = {"clips": np.stack([rng.random((128, 32, 32, 3), dtype=np.float32), synthetic])}
    keras_out = run_keras_script(tmp_path, _KERAS_SCRIPT, inputs)
    for variant, variables in weights.items():
        for name, clip in inputs.items():
            want = keras_out[f"{variant}/{name}"]
            got = np.asarray(jax.jit(physnet.estimate_bvp)(variables, clip))
            assert got.shape == want.shape == (2, 128)
            assert np.abs(got - want).max() <= 1e-4, (variant, name, np.abs(got - want).max())


def test_folded_batchnorm_equals_unfolded(weights, rng):
    _, synthetic = _synthetic_clip(4, 88.0, 64, 40)
    clips = [rng.random((2, 64, 32, 32, 3), dtype=np.float32), synthetic]
    forward = jax.jit(physnet.estimate_bvp)
    for variables in weights.values():
        folded = physnet.fold_batchnorm(variables)
        assert set(folded) == {"params"}
        assert "bn" not in folded["params"]["ConvBlock1"]
        for clip in clips:
            a = np.asarray(forward(variables, clip))
            b = np.asarray(forward(folded, clip))
            # Folding reorders float32 products through 11 layers: measured up to 1.4e-5 on the
            # unit-std output (run to run, with the CPU's threading); a folding bug gives ~1e-1.
            assert np.abs(a - b).max() <= 3e-5
            # Batched leading axes give the same result as one clip at a time.
            if clip.ndim == 5:
                single = np.asarray(forward(folded, clip[1]))
                np.testing.assert_allclose(b[1], single, rtol=0, atol=1e-5)


# ------------------------------------------------------------------- gradients and jit hygiene


def test_gradient_of_neg_pearson_is_finite_nonzero_and_descends(weights, rng):
    variables = weights["pure"]
    t = np.arange(128) / 30.0
    target = jnp.asarray(np.sin(2 * np.pi * 2.0 * t), jnp.float32)
    _, clip = _synthetic_clip(5, 70.0, 128, 32)

    @jax.jit
    def loss(x):
        return -_pearson(physnet.estimate_bvp(variables, x), target)

    value, grad = jax.jit(jax.value_and_grad(loss))(jnp.asarray(clip))
    assert np.isfinite(float(value))
    grad = np.asarray(grad)
    assert np.all(np.isfinite(grad))
    assert np.abs(grad).max() > 0
    assert np.mean(np.abs(grad) > 0) > 0.5  # the pixels, not a handful, move the output
    # A small step against the gradient lowers the loss (the gradient is the real one, not noise).
    step = clip - 1e-3 * grad / np.abs(grad).max()
    assert float(loss(jnp.asarray(step))) < float(value)


def test_jit_traces_once_for_same_shape(rng):
    variables = _random_variables(rng)
    traces = []

    @jax.jit
    def forward(v, x):
        traces.append(x.shape)
        return physnet.estimate_bvp(v, x)

    for seed in range(3):
        x = jax.random.uniform(jax.random.PRNGKey(seed), (16, 32, 32, 3))
        forward(variables, x).block_until_ready()
    assert len(traces) == 1
    forward(variables, jnp.zeros((20, 32, 32, 3))).block_until_ready()
    assert len(traces) == 2


# ------------------------------------------------------------------------------ heart rate


@pytest.mark.parametrize("variant", ["pure", "rlap"])
@pytest.mark.parametrize("hr_bpm", [60.0, 90.0, 120.0])
def test_physnet_reads_synthetic_heart_rate(weights, variant, hr_bpm):
    # On the tracker's forehead-to-chin crop (`crop_boxes`); on the looser head box physnet_pure
    # locked onto 30-56 bpm for some seeds and rates (tests/synthetic_readability_test.py).
    clip, frames = _synthetic_clip(0, hr_bpm, 256, 64)
    x0, y0, x1, y1 = np.rint(np.median(clip.crop_boxes, axis=0)).astype(int)
    bvp = get_estimator(f"physnet_{variant}").fn(
        weights[variant], frames[:, y0:y1, x0:x1], clip.fps
    )
    assert bvp.shape == (256,)
    hr = float(signals.heart_rate(bvp, clip.fps))
    assert abs(hr - clip.hr_bpm) <= 2.0, (hr, clip.hr_bpm)


def _reference_hr_bpm(bvp_csv):
    """Ground-truth HR: FFT peak (40-180 bpm) of the contact PPG resampled uniformly, float64."""
    data = np.loadtxt(bvp_csv, delimiter=",", skiprows=1)
    stamps, values = data[:, 0], data[:, 1]
    fs = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    uniform = np.interp(np.arange(stamps[0], stamps[-1], 1.0 / fs), stamps, values)
    uniform = (uniform - uniform.mean()) * np.hanning(len(uniform))
    nfft = 1 << 16
    freqs = np.fft.rfftfreq(nfft, 1.0 / fs) * 60.0
    power = np.abs(np.fft.rfft(uniform, nfft)) ** 2
    band = (freqs >= 40.0) & (freqs <= 180.0)
    return float(freqs[band][np.argmax(power[band])])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_physnet_reads_real_physrecorder_clip(weights):
    import imageio

    video = shared_file("physrecorder", "v01_facecrop320_lossless_ffv1.mkv")
    truth = _reference_hr_bpm(shared_file("physrecorder", "BVP.csv"))
    assert 69.0 < truth < 72.5  # the README's ~70.7 bpm
    # A fixed square face box (forehead to chin, cheek to cheek) of the 320x320 head crop, checked on
    # the first and last frames; 160 -> 32 is an exact 5x5 area resize.
    x0, y0, size = 96, 112, 160
    with imageio.get_reader(video, "ffmpeg") as reader:
        crops = np.stack([f[y0 : y0 + size, x0 : x0 + size] for f in reader])
    clip = crops[:512].astype(np.float32) / 255.0  # four 128-frame windows at 30 fps
    windows = clip.reshape(4, 128, size, size, 3)
    for variant in ("pure", "rlap"):
        bvp = get_estimator(f"physnet_{variant}").fn(weights[variant], windows, 30.0)
        hr = float(signals.heart_rate(np.asarray(bvp).reshape(-1), 30.0))
        assert abs(hr - truth) <= 3.0, (variant, hr, truth)
