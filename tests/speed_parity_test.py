"""Every speed-up of the PhysNet edit computes what the plain implementation computes.

PhysNet's "stacked" formulation (2-D convolutions over time-stacked channels, a space-to-depth first
block, reshape-max pooling, a custom convolution gradient) against the textbook "lax" one and against
NumPy float64 references; the Privacy-Phys edit with either; and the PyTorch reference used by
`benchmarks/realtime.py` against rppgedit's forward pass.
"""

import importlib.util
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rppgedit import metrics, signals
from rppgedit.models import physnet


def _conv_same_numpy(x, w):
    """float64 "same" cross-correlation of (N,T,H,W,C) with (kt,kh,kw,C,O), straight from the sum."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    kt, kh, kw = w.shape[:3]
    n, t, h, wd, _ = x.shape
    pads = [((k - 1) // 2, k // 2) for k in (kt, kh, kw)]
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    out = np.zeros((n, t, h, wd, w.shape[-1]))
    for a in range(kt):
        for b in range(kh):
            for c in range(kw):
                out += xp[:, a : a + t, b : b + h, c : c + wd] @ w[a, b, c]
    return out


def _random_variables(rng):
    """PhysNet-shaped variables with random values and positive BN variances."""
    shapes = jax.eval_shape(physnet.init_variables, jax.random.PRNGKey(0))
    variables = jax.tree.map(lambda s: rng.normal(0.0, 0.2, s.shape).astype(np.float32), shapes)
    for stats in variables["batch_stats"].values():
        stats["bn"]["var"] = np.abs(stats["bn"]["var"]) + 0.5
    return variables


def test_resolve_impl():
    assert physnet.resolve_impl("lax") == "lax"
    assert physnet.resolve_impl("stacked") == "stacked"
    expected = "stacked" if jax.default_backend() == "cpu" else "lax"
    assert physnet.resolve_impl("auto") == expected
    assert physnet.resolve_impl(None) == physnet.resolve_impl(physnet.DEFAULT_IMPL)
    with pytest.raises(ValueError, match="impl"):
        physnet.resolve_impl("winograd")


@pytest.mark.parametrize("kernel", [(3, 3, 3), (1, 5, 5), (1, 1, 1), (3, 1, 1), (2, 3, 4)])
@pytest.mark.parametrize("impl", ["lax", "stacked"])
def test_conv3d_formulations_match_numpy(rng, kernel, impl):
    x = rng.normal(size=(2, 6, 8, 10, 4)).astype(np.float32)
    w = rng.normal(size=(*kernel, 4, 5)).astype(np.float32)
    got = np.asarray(jax.jit(physnet.conv3d, static_argnums=2)(x, w, impl))
    want = _conv_same_numpy(x, w)
    assert got.shape == want.shape
    # float32 sums of <= 27*4 products of unit normals: rounding well under 1e-4.
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kernel", [(1, 5, 5), (1, 3, 3), (1, 4, 2)])
def test_conv2d_phases_is_the_convolution_split_into_2x2_phases(rng, kernel):
    x = rng.normal(size=(2, 3, 8, 12, 3)).astype(np.float32)
    w = rng.normal(size=(*kernel, 3, 6)).astype(np.float32)
    got = np.asarray(jax.jit(physnet.conv2d_phases)(x, w))
    full = _conv_same_numpy(x, w)  # (2,3,8,12,6)
    assert got.shape == (2, 3, 4, 6, 4, 6)
    for a in (0, 1):
        for b in (0, 1):
            np.testing.assert_allclose(got[..., 2 * a + b, :], full[:, :, a::2, b::2], atol=1e-4)
    # The max over phases is the (1,2,2) max-pool of the convolution.
    pooled = full.reshape(2, 3, 4, 2, 6, 2, 6).max(axis=(3, 5))
    np.testing.assert_allclose(got.max(axis=-2), pooled, rtol=0, atol=1e-4)


@pytest.mark.parametrize("window", [(1, 2, 2), (2, 2, 2)])
@pytest.mark.parametrize("impl", ["lax", "stacked"])
def test_max_pool_formulations_match_numpy(rng, window, impl):
    x = rng.normal(size=(2, 9, 7, 10, 3)).astype(np.float32)  # odd sizes: remainders are dropped
    a, b, c = window
    t, h, w = 9 // a, 7 // b, 10 // c
    want = x[:, : t * a, : h * b, : w * c].reshape(2, t, a, h, b, w, c, 3).max(axis=(2, 4, 6))
    got = np.asarray(physnet.max_pool(jnp.asarray(x), window, impl))
    np.testing.assert_array_equal(got, want)


def test_custom_conv_gradient_equals_autodiff_also_inside_scan(rng):
    x = jnp.asarray(rng.normal(size=(3, 6, 7, 4)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(3, 2, 4, 5)).astype(np.float32))
    padding = ((1, 2), (0, 1))  # asymmetric: exercises the backward padding formula
    dn = ("NHWC", "HWIO", "NHWC")

    def plain(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=dn)

    def loss(conv, x, w):
        return jnp.sum(jnp.sin(conv(x, w)))

    fast = lambda x, w: physnet._conv2d(x, w, padding)  # noqa: E731
    np.testing.assert_allclose(fast(x, w), plain(x, w), rtol=0, atol=1e-5)
    want = jax.grad(loss, argnums=(1, 2))(plain, x, w)
    got = jax.grad(loss, argnums=(1, 2))(fast, x, w)
    for g, ref in zip(got, want, strict=True):
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-4)

    def descend(conv):  # the situation that motivated the custom gradient: a scan over steps
        def step(carry, _):
            return carry - 0.01 * jax.grad(loss, argnums=1)(conv, carry, w), None

        return jax.jit(lambda x: jax.lax.scan(step, x, None, length=3)[0])(x)

    np.testing.assert_allclose(descend(fast), descend(plain), rtol=0, atol=1e-4)


def test_physnet_formulations_are_the_same_function_in_float64(rng):
    """In float64 the two formulations agree to ~1e-12: the same sums of the same products (the
    differences of order 1e-6 in float32 are rounding, not a different network). 36x36 also
    drops a remainder row in the (2,2,2) pools (18 -> 9 -> 4)."""
    variables = _random_variables(rng)
    x = rng.normal(size=(1, 8, 36, 36, 3))
    target = np.sin(np.arange(8) / 2.0)[None]
    with jax.enable_x64(True):
        v64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)
        outs = {}
        for impl in ("lax", "stacked"):
            for folded in (False, True):
                v = physnet.fold_batchnorm(v64) if folded else v64
                v = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), v)
                model = physnet.PhysNet(folded=folded, impl=impl)

                def loss(x, model=model, v=v):
                    return jnp.sum(model.apply(v, x) * target)

                y = np.asarray(jax.jit(model.apply)(v, jnp.asarray(x)))
                g = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(x)))
                assert y.dtype == np.float64 and g.dtype == np.float64
                outs[impl, folded] = (y, g)
    for folded in (False, True):
        (y0, g0), (y1, g1) = outs["lax", folded], outs["stacked", folded]
        assert np.abs(y0).max() > 1e-3 and np.abs(g0).max() > 1e-6  # not a trivially zero network
        np.testing.assert_allclose(y1, y0, rtol=0, atol=1e-9 * np.abs(y0).max())
        np.testing.assert_allclose(g1, g0, rtol=0, atol=1e-9 * np.abs(g0).max())
    # fold_batchnorm stores float32, so folded and unfolded agree to float32 rounding only.
    np.testing.assert_allclose(outs["stacked", True][0], outs["lax", False][0], atol=1e-4)


def test_physnet_formulations_float32_outputs_agree(rng):
    variables = _random_variables(rng)
    clip = rng.uniform(0.2, 0.8, (2, 16, 32, 32, 3)).astype(np.float32)
    forward = jax.jit(physnet.estimate_bvp, static_argnames="impl")
    lax_out = np.asarray(forward(variables, clip, impl="lax"))
    fast_out = np.asarray(forward(variables, clip, impl="stacked"))
    assert lax_out.shape == (2, 16)
    np.testing.assert_allclose(fast_out, lax_out, rtol=0, atol=1e-4)  # unit-std BVP


def _physnet_state():
    from rppgedit.editors import privacy_phys

    # The paper's free-colour PGD from zero at its learning rate, PhysNet at every step (the
    # tolerances below are derived from it).
    cfg = privacy_phys.Config(
        fps=30.0,
        surrogates=(("physnet_pure", 1.0),),
        colour="free",
        learning_rate=0.1,
        stop_pearson=None,
        init_scale=0.0,
        deep_every=1,
    )
    # The PhysNet weights ship with the package: a load error is a failure, never a skip.
    return cfg, privacy_phys.load_state(cfg)


def test_privacy_phys_edit_with_stacked_physnet_matches_lax(rng, monkeypatch):
    """The whole edit (20 Adam steps through PhysNet) with either formulation.

    Tolerance: Adam's first update is lr * sign(gradient), so a pixel whose gradient is at float32
    rounding level can move by up to 2 * 0.1 / 255 = 7.8e-4 differently; such pixels are rare but
    their share depends on the CPU's kernels (measured on this test's clips, jax 0.10.2, AMD EPYC
    Zen 4: 0.57% of values above 1e-4 and max 5.2e-4 for seed 0; 0% and 0.16% for seeds 1 and 2;
    an earlier machine: 0.006%). Hence: mean |diff| <= 2e-5, 99% of values within 1e-4, all within
    1e-3, and the same outcome: correlation with the target to 1e-4, PSNR to 0.05 dB.
    """
    from rppgedit.editors import privacy_phys

    cfg, state = _physnet_state()
    clips = rng.uniform(0.3, 0.7, (2, 16, 32, 32, 3)).astype(np.float32)
    masks = rng.random((2, 16, 32, 32)) < 0.8
    waves = np.tile(np.cos(2 * np.pi * 3.0 * np.arange(16) / 30.0), (2, 1)).astype(np.float32)
    out = {}
    for impl in ("lax", "stacked"):
        monkeypatch.setattr(physnet, "DEFAULT_IMPL", impl)
        jax.clear_caches()  # the formulation is read at trace time
        edited, aux = privacy_phys.edit_batch(state, clips, masks, waves, cfg)
        out[impl] = (np.asarray(edited), aux)
    jax.clear_caches()
    (e0, aux0), (e1, aux1) = out["lax"], out["stacked"]
    assert np.abs(e0 - clips).max() > 3e-3  # the edit did something (~ +/-2 grey levels)
    np.testing.assert_array_equal(e1[~masks], clips[~masks])
    diff = np.abs(e1 - e0)
    assert diff.mean() <= 2e-5, diff.mean()
    assert np.quantile(diff, 0.99) <= 1e-4, np.quantile(diff, 0.99)
    assert diff.max() <= 1e-3, diff.max()
    psnr = [float(metrics.psnr(clips, e)) for e in (e0, e1)]
    assert abs(psnr[1] - psnr[0]) <= 0.05, psnr
    r0 = np.asarray(signals.pearson(aux0["surrogates"]["physnet_pure"], waves))
    r1 = np.asarray(signals.pearson(aux1["surrogates"]["physnet_pure"], waves))
    assert np.all(r0 > 0.5)  # the surrogate follows the target after the edit
    np.testing.assert_allclose(r1, r0, rtol=0, atol=1e-4)
    np.testing.assert_allclose(aux1["history"]["loss"], aux0["history"]["loss"], atol=1e-4)


# -------------------------------------------------------- the PyTorch reference of the benchmark


def _torch_reference():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch not installed (pip install -e .[bench])")
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
    import torch_reference

    return torch_reference


@pytest.mark.parametrize("size", [32, 45])
def test_torch_reference_physnet_matches_rppgedit(rng, size):
    tr = _torch_reference()
    import torch

    variables = physnet.fold_batchnorm(_random_variables(rng))
    weights = tr.torch_weights(variables["params"])
    clip = rng.uniform(0.2, 0.8, (16, size, size, 3)).astype(np.float32)
    resize = None if size == 32 else (tr.area_matrix(size, 32), tr.area_matrix(size, 32))
    got = tr.bvp(weights, torch.from_numpy(clip), resize).numpy()
    want = np.asarray(physnet.estimate_bvp(variables, clip, impl="lax"))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    # OpenCV's INTER_AREA weights read off cv2 equal rppgedit's own table.
    np.testing.assert_allclose(
        tr.area_matrix(243, 32).numpy(), physnet._area_matrix(243, 32, True), rtol=0, atol=1e-6
    )


def test_torch_reference_edit_matches_rppgedit(rng):
    """The benchmark compares like with like: the PyTorch edit is rppgedit's edit to within the
    same Adam sign-flip tolerance as above (both float32, different kernels)."""
    tr = _torch_reference()
    from rppgedit.editors import privacy_phys

    cfg, state = _physnet_state()
    weights = tr.torch_weights(physnet.fold_batchnorm(state["physnet_pure"])["params"])
    clip = rng.uniform(0.3, 0.7, (16, 40, 40, 3)).astype(np.float32)  # upsampled 32x32 grid
    mask = rng.random((16, 40, 40)) < 0.8
    wave = np.cos(2 * np.pi * 3.0 * np.arange(16) / 30.0).astype(np.float32)
    want, aux = privacy_phys.edit(state, clip, mask, wave, cfg)
    got, bvp = tr.edit(weights, clip, mask, wave)
    diff = np.abs(got - np.asarray(want))
    assert np.abs(got - clip).max() > 3e-3
    np.testing.assert_array_equal(got[~mask], clip[~mask])
    assert diff.mean() <= 1e-5, diff.mean()
    assert diff.max() <= 2e-3
    np.testing.assert_allclose(bvp, aux["surrogates"]["physnet_pure"], rtol=0, atol=2e-2)
