"""Pure optimisation loops: a whole run of an optax optimiser as one `lax.scan`.

Written once and shared by every editor (Privacy-Phys on pixels, PulseEdit on a per-channel trace), so
that a loop is jit-compiled as one program and `jax.vmap` over clips is free.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax


def optimize(
    params: Any,
    loss_fn: Callable[[Any], tuple[jax.Array, dict[str, jax.Array]]],
    tx: optax.GradientTransformation,
    num_steps: int,
    project: Callable[[Any], Any] | None = None,
    unroll: int = 1,
    done: Callable[[dict[str, jax.Array]], jax.Array] | None = None,
) -> tuple[Any, dict[str, jax.Array]]:
    """Runs `num_steps` of projected gradient descent with `tx`.

    Args:
      params: initial parameters (any pytree).
      loss_fn: `params -> (loss, metrics)`, differentiable in `params`; `metrics` a dict of scalars.
      tx: an optax gradient transformation (e.g. `optax.adam(0.1)`).
      num_steps: static number of steps.
      project: optional projection applied to the parameters after every update (the "P" of PGD).
      unroll: steps per iteration of the compiled loop (`lax.scan`'s unroll; the same result).
        XLA's cost analysis counts a loop body once, so `--mode=bench` counts FLOPs with
        `unroll=num_steps`.
      done: optional `metrics -> bool scalar`, evaluated at the parameters before each step: once it
        is true the parameters and the optimiser state are kept for the remaining steps. The loop
        then ends early (`lax.while_loop`; under `vmap` when every clip of the batch is done): the
        remaining steps are not computed, and the history repeats the stopping step's metrics,
        which are those of the kept parameters. With `unroll` > 1 the loop runs every step
        (`lax.scan`, the same result) so that XLA's cost analysis sees them all.

    Returns:
      The final parameters and a history dict: `loss` (num_steps,) and each metric (num_steps,), each
      measured at the parameters *before* that step's update; with `done`, also `updated`
      (num_steps,) bool, whether that step changed the parameters.
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(carry, _):
        p, opt_state, stopped = carry
        (loss, metrics), grads = grad_fn(p)
        updates, new_state = tx.update(grads, opt_state, p)
        new_p = optax.apply_updates(p, updates)
        if project is not None:
            new_p = project(new_p)
        record = {"loss": loss, **metrics}
        if done is None:
            return (new_p, new_state, stopped), record
        stopped = jnp.logical_or(stopped, done(metrics))
        keep = functools.partial(jnp.where, stopped)
        p = jax.tree.map(keep, p, new_p)
        opt_state = jax.tree.map(keep, opt_state, new_state)
        return (p, opt_state, stopped), {**record, "updated": jnp.logical_not(stopped)}

    init = (params, tx.init(params), jnp.zeros((), bool))
    if done is None or unroll > 1:
        (params, _, _), history = jax.lax.scan(step, init, None, length=num_steps, unroll=unroll)
        return params, history
    return _until_done(step, init, num_steps)


def _until_done(step, init, num_steps: int):
    """`lax.scan(step, init, length=num_steps)` for a `step` that stops changing its carry once
    `carry[2]` (stopped) is true: runs steps only until then, and fills the rest of the history with
    the stopping step's record (what the scan would have recorded at the kept parameters)."""
    record_shape = jax.eval_shape(lambda c: step(c, None)[1], init)
    empty = jax.tree.map(lambda a: jnp.zeros((num_steps, *a.shape), a.dtype), record_shape)

    def cond(loop):
        i, (_, _, stopped), _ = loop
        return jnp.logical_and(i < num_steps, jnp.logical_not(stopped))

    def body(loop):
        i, carry, history = loop
        carry, record = step(carry, None)
        history = jax.tree.map(lambda h, r: h.at[i].set(r), history, record)
        return i + 1, carry, history

    ran, (params, _, _), history = jax.lax.while_loop(cond, body, (0, init, empty))
    last = jnp.maximum(ran - 1, 0)
    after = jnp.arange(num_steps) >= ran

    def fill(h):
        expand = (slice(None),) + (None,) * (h.ndim - 1)
        return jnp.where(after[expand], h[last], h)

    return params, jax.tree.map(fill, history)
