"""The shared optimisation loop equals a plain Python loop and vmaps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

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
