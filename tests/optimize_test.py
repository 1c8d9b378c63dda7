"""The shared optimisation loop equals a plain Python loop and vmaps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rppgedit.optimize import optimize


def _loss(p, target):
    loss = jnp.sum((p - target) ** 2) + jnp.sum(jnp.sin(p))
    return loss, {"norm": jnp.linalg.norm(p)}


def test_scan_loop_equals_python_loop_with_projection():
    target = jnp.array([3.0, -2.0, 0.5])
    tx = optax.adam(0.1)
    project = lambda p: jnp.clip(p, -1.0, 1.0)  # noqa: E731
    params, history = jax.jit(lambda p0: optimize(p0, lambda p: _loss(p, target), tx, 25, project))(
        jnp.zeros(3)
    )
    p, state = jnp.zeros(3), tx.init(jnp.zeros(3))
    losses = []
    for _ in range(25):
        (loss, _), g = jax.value_and_grad(lambda q: _loss(q, target), has_aux=True)(p)
        losses.append(loss)
        updates, state = tx.update(g, state, p)
        p = project(optax.apply_updates(p, updates))
    np.testing.assert_allclose(params, p, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(history["loss"], np.array(losses), rtol=1e-6)
    assert history["norm"].shape == (25,)
    assert float(params[0]) == 1.0  # the projection is active


def test_vmap_over_problems_equals_one_by_one():
    targets = jnp.array([[1.0, 2.0], [-3.0, 0.0], [0.5, 0.5]])
    run = lambda t: optimize(jnp.zeros(2), lambda p: _loss(p, t), optax.adam(0.2), 10)[0]  # noqa: E731
    batched = jax.jit(jax.vmap(run))(targets)
    for i in range(3):
        np.testing.assert_allclose(batched[i], run(targets[i]), rtol=1e-5, atol=1e-6)


def test_done_keeps_the_parameters_from_the_first_step_it_holds():
    """With `done`, the loop equals a Python loop that stops at the first step whose metrics
    (measured before that step's update) satisfy it; later steps change nothing."""
    target = jnp.array([3.0, -2.0, 0.5])
    tx = optax.adam(0.1)
    done = lambda m: m["norm"] >= 1.0  # noqa: E731
    params, history = jax.jit(
        lambda p0: optimize(p0, lambda p: _loss(p, target), tx, 25, done=done)
    )(jnp.zeros(3))
    p, state, steps = jnp.zeros(3), tx.init(jnp.zeros(3)), 0
    for _ in range(25):
        (_, metrics), g = jax.value_and_grad(lambda q: _loss(q, target), has_aux=True)(p)
        if metrics["norm"] >= 1.0:
            break
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
        steps += 1
    assert 0 < steps < 25  # the rule fires inside the run
    np.testing.assert_allclose(params, p, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(history["updated"], np.arange(25) < steps)
    # after the stop every recorded loss is the loss at the kept parameters
    np.testing.assert_allclose(history["loss"][steps:], history["loss"][steps], rtol=1e-6)


def test_early_exit_equals_the_full_scan_under_vmap_and_skips_the_steps_after_it():
    """Problems that stop at different steps, vmapped: the early-exit loop (unroll 1) gives the
    parameters and history of the loop that runs every step (unroll = steps), and the loss is
    evaluated only until the last problem stops."""
    targets = jnp.tile(jnp.array([3.0, -2.0, 0.5]), (3, 1))
    starts = jnp.array([[0.0, 0.0, 0.0], [0.4, -0.3, 0.0], [0.6, -0.5, 0.1]])  # 3 stopping steps
    tx = optax.adam(0.1)
    done = lambda m: m["norm"] >= 1.0  # noqa: E731
    calls = []

    def loss(p, target):
        jax.debug.callback(lambda: calls.append(1))
        return _loss(p, target)

    def run(unroll):
        fn = lambda p0, t: optimize(p0, lambda p: loss(p, t), tx, 40, unroll=unroll, done=done)  # noqa: E731
        return jax.jit(jax.vmap(fn))(starts, targets)

    calls.clear()
    params, history = run(1)
    jax.block_until_ready(params)
    early_calls = len(calls)
    calls.clear()
    full_params, full_history = run(40)
    jax.block_until_ready(full_params)
    stops = np.asarray(history["updated"]).sum(axis=1)
    assert len(set(stops.tolist())) == 3 and stops.max() < 39  # different stops, all inside the run
    np.testing.assert_allclose(params, full_params, rtol=1e-6, atol=1e-7)
    for name in ("loss", "norm"):
        np.testing.assert_allclose(history[name], full_history[name], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(history["updated"], full_history["updated"])
    # vmapped callbacks run once per step for the whole batch: the last stop + 1 steps, not 40
    assert early_calls == stops.max() + 1 < len(calls) == 40


def _split(p, target):
    """`_loss` as a costly inner part (two nonlinear terms "d") and the rest."""
    inner = lambda q: jnp.stack([jnp.sum(jnp.sin(q)), jnp.sum(q**3) / 10.0])  # noqa: E731

    def outer(q, values):
        loss = jnp.sum((q - target) ** 2) + values[0] + 0.5 * jnp.tanh(values[1])
        return loss, {"norm": jnp.linalg.norm(q), "inner0": values[0]}

    return inner, outer


def _reference_refreshed(p, target, tx, steps, refresh, done=None):
    """A Python loop of the refreshed scheme: every `refresh`-th step takes inner's value and
    Jacobian at the parameters, and the steps until the next refresh use its first-order
    expansion there. Records (loss, expanded inner0, exact inner0, updated) per step; after a
    stop, the stopping step's record."""
    inner, outer = _split(p, target)
    state, records, stopped = tx.init(p), [], False
    for s in range(steps):
        if stopped:  # the stopping step's record, at the kept parameters
            records.append(records[-1])
            continue
        if s % refresh == 0:
            p0, v0, jac = p, inner(p), jax.jacobian(inner)(p)
        expanded = lambda q, p0=p0, v0=v0, jac=jac: outer(q, v0 + jac @ (q - p0))  # noqa: E731
        (loss, metrics), g = jax.value_and_grad(expanded, has_aux=True)(p)
        stopped = stopped or (done is not None and bool(done(metrics)))
        records.append((float(loss), float(metrics["inner0"]), float(inner(p)[0]), not stopped))
        if not stopped:
            updates, state = tx.update(g, state, p)
            p = optax.apply_updates(p, updates)
    return p, np.array(records)


def test_refresh_one_is_the_exact_gradient_of_the_composed_loss():
    target = jnp.array([3.0, -2.0, 0.5])
    inner, outer = _split(None, target)
    tx = optax.adam(0.1)
    split = optimize(jnp.zeros(3), outer, tx, 15, inner=inner, refresh=1)
    whole = optimize(jnp.zeros(3), lambda p: outer(p, inner(p)), tx, 15)
    np.testing.assert_allclose(split[0], whole[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(split[1]["loss"], whole[1]["loss"], rtol=1e-6)


@pytest.mark.parametrize("refresh", [2, 3])
def test_refreshed_inner_equals_the_python_loop_and_is_exact_at_each_refresh(refresh):
    """Steps between refreshes use inner's first-order expansion (params and history as the Python
    loop; 10 steps, so the last block is cut short); the refreshing steps see inner exactly."""
    target = jnp.array([3.0, -2.0, 0.5])
    start = jnp.array([0.3, 0.9, -1.2])
    inner, outer = _split(None, target)
    tx = optax.adam(0.3)
    run = jax.jit(lambda p0: optimize(p0, outer, tx, 10, inner=inner, refresh=refresh))
    params, history = run(start)
    ref_params, records = _reference_refreshed(start, target, tx, 10, refresh)
    np.testing.assert_allclose(params, ref_params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history["loss"], records[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history["inner0"], records[:, 1], rtol=1e-5, atol=1e-6)
    fresh = np.arange(10) % refresh == 0
    np.testing.assert_allclose(records[fresh, 1], records[fresh, 2], rtol=1e-6, atol=1e-6)
    # between refreshes the expansion is not the function (so inner was not re-evaluated there)
    assert np.max(np.abs(records[~fresh, 1] - records[~fresh, 2])) > 1e-3


def test_refreshed_inner_with_done_stops_as_the_python_loop_and_vmaps():
    """With `done` the refreshed loop stops at the Python loop's step (inside a block), keeps the
    parameters, evaluates inner once per block until the last problem stops, and vmaps."""
    target = jnp.array([3.0, -2.0, 0.5])
    starts = jnp.array([[0.0, 0.0, 0.0], [0.4, -0.3, 0.0], [0.6, -0.5, 0.1]])
    inner, outer = _split(None, target)
    tx = optax.adam(0.1)
    done = lambda m: m["norm"] >= 1.0  # noqa: E731
    calls = []

    def counted(q):
        jax.debug.callback(lambda: calls.append(1))
        return inner(q)

    fn = lambda p0: optimize(p0, outer, tx, 40, done=done, inner=counted, refresh=3)  # noqa: E731
    params, history = jax.jit(jax.vmap(fn))(starts)
    jax.block_until_ready(params)
    stops = []
    for i in range(3):
        ref_params, records = _reference_refreshed(starts[i], target, tx, 40, 3, done)
        np.testing.assert_allclose(params[i], ref_params, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(history["updated"][i], records[:, 3].astype(bool))
        np.testing.assert_allclose(history["loss"][i], records[:, 0], rtol=1e-5, atol=1e-6)
        stops.append(int(records[:, 3].sum()))
    assert len(set(stops)) == 3 and max(stops) < 39
    # one evaluation per block (vmapped: once for the batch) until the last stop's block
    assert len(calls) == max(stops) // 3 + 1
    # the loop that runs every block (unroll > 1, for the cost analysis) gives the same
    full = lambda p0: optimize(p0, outer, tx, 40, unroll=40, done=done, inner=inner, refresh=3)  # noqa: E731
    full_params, full_history = jax.jit(jax.vmap(full))(starts)
    np.testing.assert_allclose(params, full_params, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(history["updated"], full_history["updated"])
    np.testing.assert_allclose(history["loss"], full_history["loss"], rtol=1e-6, atol=1e-7)
