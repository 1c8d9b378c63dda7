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
